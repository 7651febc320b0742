"""The LeCam regulariser of D (Tseng et al., "Regularizing GANs under Limited Data", CVPR 2021).

On a few thousand real images D's outputs drift apart: it grows ever surer of the
real images it has seen and of the refined ones, and its gradient to R turns into
a push away from D's memory rather than towards the real images. LeCam pulls D's
realness on real patches towards the running mean of its realness on refined ones,
and the other way round, which bounds the LeCam divergence that D's loss then
minimises. It was made for the small sets DiffAugment was made for, and stacks
with it, on the hinge loss; with the cross-entropy's patch logits of ``eyes-simgan``
even a tenth of its authors' weight flattened D (``docs/quality.md``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class LeCam(nn.Module):
    """``weight * (mean relu(d_real - anchor_refined)^2 + mean relu(anchor_real - d_refined)^2)`` over patches.

    ``d`` is each patch's realness (:func:`refinekit.training.losses.realness`); the
    two anchors are exponential moving averages (``decay``) of its mean on real and
    on refined patches, moved towards each batch before it is scored, as the
    authors' code does. Only D's overshoot is penalised: real patches judged more
    real than refined ones usually are, refined patches less real than real ones
    usually are. The anchors are buffers, so a checkpoint that holds this module's
    state resumes bit for bit.

    Examples:
        >>> lecam = LeCam(weight=0.3)
        >>> round(float(lecam(torch.full((2, 3, 4), 2.0), torch.full((2, 3, 4), -2.0))), 4)
        2.4482
        >>> round(float(lecam.anchor_real), 4), round(float(lecam.anchor_refined), 4)
        (0.02, -0.02)
    """

    anchor_real: torch.Tensor
    anchor_refined: torch.Tensor

    def __init__(self, weight: float, decay: float = 0.99) -> None:
        super().__init__()
        self.weight = weight
        self.decay = decay
        self.register_buffer("anchor_real", torch.zeros(()))
        self.register_buffer("anchor_refined", torch.zeros(()))

    def forward(self, realness_real: torch.Tensor, realness_refined: torch.Tensor) -> torch.Tensor:
        """Move the anchors towards this batch, then the penalty against them."""
        with torch.no_grad():
            self.anchor_real.lerp_(realness_real.detach().float().mean(), 1 - self.decay)
            self.anchor_refined.lerp_(realness_refined.detach().float().mean(), 1 - self.decay)
        overshoot_real = F.relu(realness_real - self.anchor_refined).square().mean()
        overshoot_refined = F.relu(self.anchor_real - realness_refined).square().mean()
        return self.weight * (overshoot_real + overshoot_refined)
