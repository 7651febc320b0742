"""Task consistency: self-regularisation that knows what the labels depend on.

A pixel or feature leash guesses which changes break a label. A frozen network
trained on the synthetic labels knows: it reads the label from the image. This
regulariser adds ``weight`` x the mean L1 change of that network's output between
the synthetic image and its refinement (CyCADA's semantic consistency, Hoffman et
al. 2018) to a leash. Domain plugins build it with their own network and register
it as a regulariser (the eyes plugin's ``gaze-consistency``).
"""

from __future__ import annotations

import torch
from torch import nn

from refinekit.components.regularizers import check_weight_option
from refinekit.runtime.chunks import batch_independent


class TaskConsistency(nn.Module):
    """``leash(refined, synthetic) + weight * mean |network(refined) - network(synthetic)|``.

    Args:
        network: the frozen task network; its output on the synthetic image is the target.
        leash: the self-regulariser it adds to, ``leash(refined, synthetic)`` -> scalar.
        weight: the consistency term's weight relative to the leash's.
        name: the option's name in error messages (``regularizer.options.<name>``).

    Examples:
        >>> reg = TaskConsistency(nn.Conv2d(1, 1, 1, bias=False), nn.L1Loss(), 2.0)
        >>> float(reg(torch.ones(1, 1, 2, 2), torch.ones(1, 1, 2, 2)))
        0.0
    """

    def __init__(self, network: nn.Module, leash: nn.Module, weight: float, name: str = "weight") -> None:
        super().__init__()
        check_weight_option(weight, name, "0: the leash alone", minimum=0)
        self.network = network.requires_grad_(False).eval()
        self.leash = leash
        self.weight = float(weight)

    @property
    def refinekit_batch_independent(self) -> bool:
        """The leash's answer: the frozen network runs in eval mode, with no batch statistics."""
        return batch_independent(self.leash)

    def train(self, mode: bool = True) -> TaskConsistency:
        super().train(mode)
        self.network.eval()  # frozen: batch norm or dropout must not change what it reads
        return self

    def forward(self, refined: torch.Tensor, synthetic: torch.Tensor) -> torch.Tensor:
        leash = self.leash(refined, synthetic)
        if not self.weight:
            return leash
        with torch.no_grad():
            target = self.network(synthetic)
        return leash + self.weight * (self.network(refined) - target).abs().mean()
