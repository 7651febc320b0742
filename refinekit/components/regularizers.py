"""Self-regularisation: lambda * ||psi(R(x)) - psi(x)||_1 (paper, section 2.1, eq. 4).

Normalisation: the L1 is a *mean* over batch, channels and feature positions, so
the weight does not change with batch or image size. The paper writes a sum
over pixels and over patches; its lambda converts as
``reg_weight = lambda_paper * C * H * W / P`` for P discriminator patches, because
the adversarial term here is a mean too (see :mod:`refinekit.training.losses`).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Callable

import kornia
import torch
from torch import nn

from refinekit.errors import ConfigError

FeatureMap = Callable[[torch.Tensor], torch.Tensor]


def _identity(x: torch.Tensor) -> torch.Tensor:
    return x


def _channel_mean(x: torch.Tensor) -> torch.Tensor:
    return x.mean(dim=1, keepdim=True)


def _low_pass(x: torch.Tensor) -> torch.Tensor:
    # Colour and coarse shading must stay; fine texture is free to change.
    return kornia.filters.gaussian_blur2d(x, (5, 5), (1.5, 1.5))


def _gradients(x: torch.Tensor) -> torch.Tensor:
    # Edges (where landmarks are) must stay; flat-region intensity may change.
    return kornia.filters.spatial_gradient(x, mode="sobel").flatten(1, 2)


class TimmFeatures(nn.Module):
    """psi = the frozen feature maps of a timm network, from a local weights file (never downloaded)."""

    def __init__(self, channels: int, model: str, weights: str | None, layers: int = 2) -> None:
        super().__init__()
        import timm

        self.net = timm.create_model(model, pretrained=False, features_only=True, in_chans=channels)
        if weights is not None:
            from refinekit.weights.files import load_encoder_weights

            load_encoder_weights(self.net, Path(weights), f"psi's timm model '{model}'")
        self.layers = layers
        self.net.requires_grad_(False).eval()

    def train(self, mode: bool = True) -> "TimmFeatures":
        return super().train(False)  # frozen: batch-norm statistics must not drift

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([f.flatten(1) for f in self.net(x)[: self.layers]], dim=1)


PSI: dict[str, FeatureMap] = {
    "identity": _identity,
    "channel-mean": _channel_mean,
    "low-pass": _low_pass,
    "sobel": _gradients,
}


def check_weight_option(value: object, name: str, meaning: str, minimum: float | None = None) -> None:
    """Refuse a ``regularizer.options.<name>`` that is not a finite number (at least ``minimum``), saying what it means.

    A string from a config file or a NaN would otherwise surface as a crash or a NaN loss mid-training.
    """
    number = not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value)
    if not number or (minimum is not None and value < minimum):
        bound = "" if minimum is None else f" >= {minimum:g}"
        raise ConfigError(f"regularizer.options.{name} must be a finite number{bound} ({meaning}), got {value!r}")


def edge_weights(synthetic: torch.Tensor, strength: float) -> torch.Tensor:
    """Per-pixel leash weights, mean 1 in each image, set by where the synthetic image has edges.

    ``strength`` > 0 holds edges harder (weight ``1 + strength * edge``), for labels that sit on
    edges: an iris rim, a lid line, a stroke. ``strength`` < 0 holds flat regions harder (weight
    ``1 / (1 + |strength| * edge)``), for labels that shading carries, as the bright sclera beside
    an iris carries the gaze. ``edge`` is |dx| + |dy| of the Sobel gradient (mean over channels),
    blurred by sigma 1 px, over its image mean. The total leash is the same either way; only where
    it pulls moves.
    """
    channels_gradient = kornia.filters.spatial_gradient(synthetic, mode="sobel").abs().sum(dim=2)
    magnitude = kornia.filters.gaussian_blur2d(channels_gradient.mean(dim=1, keepdim=True), (5, 5), (1.0, 1.0))
    edge = magnitude / magnitude.mean(dim=(1, 2, 3), keepdim=True).clamp_min(1e-8)
    weights = 1 + strength * edge if strength >= 0 else 1 / (1 - strength * edge)
    return weights / weights.mean(dim=(1, 2, 3), keepdim=True)


class SelfRegularizer(nn.Module):
    """Mean L1 distance between psi(refined) and psi(synthetic), optionally edge-weighted.

    Args:
        channels: image channels.
        psi: one of ``identity``, ``channel-mean``, ``low-pass``, ``sobel``, ``timm``.
        model: timm model name when ``psi="timm"``.
        weights: local safetensors weights for the timm model.
        edge_weight: how much harder the leash holds the synthetic image's edges than its
            flat regions (0: evenly, the paper's leash; below 0: flat regions harder); see
            :func:`edge_weights`. The weights have mean 1, so ``reg_weight`` keeps its meaning.

    Examples:
        >>> reg = SelfRegularizer(psi="identity")
        >>> float(reg(torch.ones(1, 1, 4, 4), torch.zeros(1, 1, 4, 4)))
        1.0
    """

    def __init__(
        self,
        channels: int = 1,
        psi: str = "identity",
        model: str = "resnet18",
        weights: str | None = None,
        edge_weight: float = 0.0,
    ) -> None:
        super().__init__()
        self.psi_name = psi
        check_weight_option(
            edge_weight, "edge_weight", "0: an even leash, above 0: edges held harder, below 0: flat regions held harder"
        )
        if edge_weight and psi == "timm":
            raise ConfigError(
                "regularizer.options.edge_weight: the timm feature map has no pixel grid to weight; "
                "use edge_weight with psi identity, channel-mean, low-pass or sobel"
            )
        self.edge_weight = edge_weight
        self.features: nn.Module | None = None
        if psi == "timm":
            self.features = TimmFeatures(channels, model, weights)
        elif psi not in PSI:
            raise ConfigError(
                f"regularizer.options.psi: unknown feature map {psi!r}; choose one of {sorted([*PSI, 'timm'])}"
            )

    def psi(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x) if self.features is not None else PSI[self.psi_name](x)

    def forward(self, refined: torch.Tensor, synthetic: torch.Tensor) -> torch.Tensor:
        distance = (self.psi(refined) - self.psi(synthetic)).abs()
        if not self.edge_weight:
            return distance.mean()
        with torch.no_grad():  # every psi but timm keeps the pixel grid, so one map weights all its channels
            weights = edge_weights(synthetic, self.edge_weight)
        return (distance * weights).mean()


def l1_regularizer(channels: int = 1) -> SelfRegularizer:
    """The paper's eyes setting: L1 in pixel space."""
    return SelfRegularizer(channels=channels, psi="identity")
