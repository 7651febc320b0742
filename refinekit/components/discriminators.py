"""Discriminators. Both return (B, 2, h, w) logits; channel 0 = refined, channel 1 = real.

The channel order is the losses' to define (:data:`refinekit.training.losses.REFINED`
and ``REAL``): a discriminator only has to follow it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from refinekit.components.coordinates import COORDINATE_CHANNELS, with_coordinates
from refinekit.errors import ConfigError
from refinekit.moved import forward_attributes


class LocalPatchDiscriminator(nn.Module):
    """The paper's local adversarial discriminator (section 2.2 and appendix).

    conv3x3/2 96, conv3x3/2 64, maxpool 3x3/1, conv3x3 32, conv1x1 32, conv1x1 2,
    with "same" padding. Each output position classifies one receptive-field
    patch, so a 35x55 image gives a 9x14 grid of two-class logits.

    Args:
        channels: image channels.
        widths: channels of the four hidden convolutions (paper: 96, 64, 32, 32).
        spectral_norm: divide every convolution's weight by its largest singular value
            (Miyato et al., ICLR 2018), which bounds how sharply D can change between
            nearby images: a steadier gradient for R, less memorising of a small real set.
        coordinates: also give the first layer each pixel's position (:mod:`refinekit.components.coordinates`),
            so that a patch can be judged by where in the image it is.
        dropout: the probability each patch feature is zeroed before the decision, while training: no single
            feature can carry a verdict, so D leans less on what it memorised of a small real set.
        first_stride: the first convolution's stride (paper: 2). 1 keeps the image's full resolution through
            the first layers, so D sees pixel-level texture unaliased, as a classifier that starts at stride 1
            does; the logit grid doubles in each direction and the trunk costs about four times as much.

    Examples:
        >>> LocalPatchDiscriminator(channels=1)(torch.zeros(2, 1, 35, 55)).shape
        torch.Size([2, 2, 9, 14])
    """

    def __init__(
        self,
        channels: int = 1,
        widths: tuple[int, int, int, int] = (96, 64, 32, 32),
        spectral_norm: bool = False,
        coordinates: bool = False,
        dropout: float = 0.0,
        first_stride: int = 2,
    ) -> None:
        super().__init__()
        if first_stride not in (1, 2) or isinstance(first_stride, bool):
            raise ConfigError(f"discriminator.options.first_stride must be 1 or 2, got {first_stride!r}")
        if isinstance(dropout, bool) or not isinstance(dropout, (int, float)) or not 0 <= dropout < 1:
            raise ConfigError(f"discriminator.options.dropout must be a number in [0, 1), got {dropout!r}; e.g. 0.5")
        w1, w2, w3, w4 = widths
        self.coordinates = coordinates
        self.features = nn.Sequential(
            nn.Conv2d(channels + COORDINATE_CHANNELS * coordinates, w1, 3, stride=first_stride, padding=1),
            nn.ReLU(),
            nn.Conv2d(w1, w2, 3, stride=2, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(3, stride=1, padding=1),
            nn.Conv2d(w2, w3, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(w3, w4, 1),
            nn.ReLU(),
            *([nn.Dropout(dropout)] if dropout else []),
        )
        self.classify = nn.Conv2d(w4, 2, 1)
        if spectral_norm:
            for module in self.modules():
                if isinstance(module, nn.Conv2d):
                    nn.utils.parametrizations.spectral_norm(module)

    def patch_features(self, x: torch.Tensor) -> torch.Tensor:
        """The patch features, before the decision: the one place the coordinate channels join."""
        return self.features(with_coordinates(x) if self.coordinates else x)

    def logits_and_features(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """The logits and the patch features they were decided from, in one pass (for feature matching).

        A subclass that changes ``forward`` changes this too: feature matching reads D through it.
        """
        features = self.patch_features(x)
        return self.classify(features), [features]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classify(self.patch_features(x))


class GlobalDiscriminator(LocalPatchDiscriminator):
    """One real/refined decision per image: the local trunk, averaged over the whole image.

    Examples:
        >>> GlobalDiscriminator(channels=1)(torch.zeros(2, 1, 35, 55)).shape
        torch.Size([2, 2, 1, 1])
    """

    def logits_and_features(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        features = self.patch_features(x)
        return self.classify(F.adaptive_avg_pool2d(features, 1)), [features]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classify(F.adaptive_avg_pool2d(self.patch_features(x), 1))


class MultiScaleDiscriminator(nn.Module):
    """The paper's local discriminator at several image scales, as pix2pixHD's (Wang et al., CVPR 2018).

    A 35x55 eye's local patches are about a fifth of the eye wide: whether the lids,
    iris and skin are laid out as in a real eye is invisible to them, yet a two-sample
    classifier that looks at the whole image finds exactly that. The trunk of scale
    ``s`` sees the image average-pooled by ``s``, so its patches cover ``s`` times the
    width. Its logit grid is resized to the first scale's grid and stacked below it
    (along the height), so each scale weighs the same in the patch-averaged losses.

    Args:
        channels: image channels.
        scales: the pooling factor of each trunk, each an integer >= 1.
        widths: channels of each trunk's four hidden convolutions (as the local one's).
        spectral_norm: as the local one's.
        coordinates: as the local one's; each trunk gets the positions in its pooled image.
        dropout: as the local one's, in every trunk.
        first_stride: as the local one's, in every trunk.

    Examples:
        >>> MultiScaleDiscriminator(channels=1)(torch.zeros(2, 1, 35, 55)).shape
        torch.Size([2, 2, 27, 14])
    """

    def __init__(
        self,
        channels: int = 1,
        scales: tuple[int, ...] = (1, 2, 4),
        widths: tuple[int, int, int, int] = (96, 64, 32, 32),
        spectral_norm: bool = False,
        coordinates: bool = False,
        dropout: float = 0.0,
        first_stride: int = 2,
    ) -> None:
        super().__init__()
        if not scales or any(isinstance(s, bool) or not isinstance(s, int) or s < 1 for s in scales):
            raise ConfigError(
                f"discriminator.options.scales must be a non-empty list of integers >= 1 (pooling factors), "
                f"got {scales!r}; for example [1, 2, 4]"
            )
        self.scales = tuple(scales)
        self.trunks = nn.ModuleList(
            LocalPatchDiscriminator(channels, widths, spectral_norm, coordinates, dropout, first_stride)
            for _ in self.scales
        )

    def logits_and_features(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """The stacked logits and each trunk's patch features, in one pass (for feature matching)."""
        grids, features = [], []
        for s, trunk in zip(self.scales, self.trunks):
            logits, (trunk_features,) = trunk.logits_and_features(x if s == 1 else F.avg_pool2d(x, s, ceil_mode=True))
            grids.append(logits)
            features.append(trunk_features)
        size = grids[0].shape[-2:]
        stacked = [F.interpolate(g, size=size, mode="nearest") if g.shape[-2:] != size else g for g in grids]
        return torch.cat(stacked, 2), features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.logits_and_features(x)[0]


# 0.x kept the label constants here; they are the losses' now.
__getattr__, _ = forward_attributes(__name__, "refinekit.training.losses", names=frozenset({"REAL", "REFINED"}))
