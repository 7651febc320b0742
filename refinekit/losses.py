"""SimGAN's losses, with their normalisation stated.

Adversarial (paper eq. 2-3, local version section 2.2): the two-class
cross-entropy of every patch logit, *averaged* over patches and batch. Averaging
keeps the loss's scale independent of image size (more patches) and batch size.
The paper sums over patches, so with the mean-L1 self-regularisation of
:mod:`refinekit.components.regularizers`, ``reg_weight = lambda_paper * C*H*W / P``
for P patches gives the paper's balance.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from refinekit.components.discriminators import REAL, REFINED


def patch_cross_entropy(logits: torch.Tensor, target: int) -> torch.Tensor:
    """Mean cross-entropy of (B, 2, h, w) logits against one class for every patch.

    ``F.cross_entropy`` on the (B, 2, h, w) tensor keeps channel pairing right;
    a ``view(-1, 2)`` on NCHW logits, as some ports do, pairs neighbouring
    pixels of the same channel instead of the two channels of one patch.
    """
    if logits.ndim != 4 or logits.shape[1] != 2:
        raise ValueError(f"discriminator logits must be (B, 2, h, w), got {tuple(logits.shape)}")
    labels = torch.full((logits.shape[0], *logits.shape[2:]), target, dtype=torch.long, device=logits.device)
    return F.cross_entropy(logits.float(), labels)


def refiner_adversarial_loss(logits_refined: torch.Tensor) -> torch.Tensor:
    """The refiner wants D to call its output real (paper eq. 3, l_real)."""
    return patch_cross_entropy(logits_refined, REAL)


def discriminator_loss(logits_refined: torch.Tensor, logits_real: torch.Tensor) -> torch.Tensor:
    """D's loss (paper eq. 2): refined patches are class REFINED, real patches are class REAL."""
    return 0.5 * (patch_cross_entropy(logits_refined, REFINED) + patch_cross_entropy(logits_real, REAL))


def patch_accuracy(logits: torch.Tensor, target: int) -> float:
    """Share of patches that D assigns to ``target``."""
    return float((logits.argmax(dim=1) == target).float().mean())
