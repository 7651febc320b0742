"""Refiner networks: the paper's fully convolutional ResNet and a timm-encoder U-Net."""

from __future__ import annotations

import zlib
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from refinekit.components.coordinates import COORDINATE_CHANNELS, with_coordinates
from refinekit.errors import ConfigError

PADDING_MODES = ("zeros", "replicate", "reflect")
"""How a refiner's 3x3 convolutions extend the image past its border (``torch.nn.Conv2d``'s ``padding_mode``)."""


class ResnetBlock(nn.Module):
    """Two 3x3 convolutions with an identity skip (paper, appendix: "ResNet block")."""

    def __init__(self, features: int, padding: str = "zeros") -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(features, features, 3, padding=1, padding_mode=padding)
        self.conv2 = nn.Conv2d(features, features, 3, padding=1, padding_mode=padding)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(x + self.conv2(F.relu(self.conv1(x))))


class SimGANResNet(nn.Module):
    """The paper's refiner (section 3.1): 3x3 conv, ``blocks`` ResNet blocks, 1x1 conv, tanh.

    No striding or pooling, so the output has the input's size and every output
    pixel only sees a local neighbourhood: refinement changes texture, not layout.

    Args:
        channels: image channels in and out.
        features: width of every layer (paper: 64).
        blocks: number of ResNet blocks (paper: 4).
        coordinates: also give the first layer each pixel's position (:mod:`refinekit.components.coordinates`),
            so that the refiner can change one part of the image differently from another.
        padding: one of :data:`PADDING_MODES`. Zero padding (the paper's) shows every layer where the
            image ends, and a refiner trained against a discriminator learns to paint a one-pixel frame
            there, which no real image has; ``"replicate"`` continues the edge pixels instead, so the
            border is refined like the interior.
        residual: output the input plus what the network adds (clamped to the image range), instead of
            a tanh of a new image. The refiner then starts as the identity (its last layer starts at
            zero) and spends its capacity on the changes, rather than on copying the input through nine
            convolutions.
        noise: add a fresh map of Gaussian noise after every ResNet block, scaled per channel by weights
            that start at zero (StyleGAN's noise inputs, Karras et al., CVPR 2019). Without it the texture
            a refiner paints is a fixed function of the synthetic image, so flat simulated skin comes out
            with the same blotches on every eye; real skin and sensor noise differ from frame to frame.
            In eval mode each image's noise is seeded by its own pixels (:func:`image_noise`), so an
            exported refiner refines an image the same way in any batch.

    Examples:
        >>> refiner = SimGANResNet(channels=1)
        >>> refiner(torch.zeros(2, 1, 35, 55)).shape
        torch.Size([2, 1, 35, 55])
        >>> sum(p.numel() for p in refiner.parameters())
        296129
    """

    def __init__(
        self,
        channels: int = 1,
        features: int = 64,
        blocks: int = 4,
        coordinates: bool = False,
        padding: str = "zeros",
        residual: bool = False,
        noise: bool = False,
    ) -> None:
        super().__init__()
        if padding not in PADDING_MODES:
            raise ConfigError(f"refiner.options.padding is {padding!r}; use one of: {', '.join(PADDING_MODES)}")
        self.coordinates = coordinates
        stem_in = channels + COORDINATE_CHANNELS * coordinates
        self.stem = nn.Conv2d(stem_in, features, 3, padding=1, padding_mode=padding)
        self.blocks = nn.Sequential(*(ResnetBlock(features, padding) for _ in range(blocks)))
        self.noise_scales = nn.Parameter(torch.zeros(blocks, features)) if noise else None
        self.head = nn.Conv2d(features, channels, 1)
        self.residual = residual
        if residual:
            nn.init.zeros_(self.head.weight)
            nn.init.zeros_(self.head.bias)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = with_coordinates(images) if self.coordinates else images
        x = F.relu(self.stem(x))
        if self.noise_scales is None:
            x = self.blocks(x)
        else:
            maps = len(self.blocks)
            if self.training:
                noise = torch.randn(x.shape[0], maps, *x.shape[-2:], dtype=x.dtype, device=x.device)
            else:
                noise = image_noise(images, maps).to(x.dtype)
            for index, block in enumerate(self.blocks):
                x = block(x) + self.noise_scales[index].view(1, -1, 1, 1) * noise[:, index : index + 1]
        out = self.head(x)
        return (images + out).clamp(-1.0, 1.0) if self.residual else torch.tanh(out)


def image_noise(images: torch.Tensor, maps: int) -> torch.Tensor:
    """``maps`` Gaussian noise maps per image, drawn from a generator seeded by that image's bytes.

    Why: a refiner that takes noise is random, but refining a file must give the same output
    every time, whichever batch the image arrives in and whatever RNG state the caller has.
    """
    out = torch.empty(images.shape[0], maps, *images.shape[-2:])
    for index, image in enumerate(images.detach().float().cpu()):
        generator = torch.Generator().manual_seed(zlib.crc32(image.numpy().tobytes()))
        out[index] = torch.randn(out.shape[1:], generator=generator)
    return out.to(images.device)


class TimmUNetRefiner(nn.Module):
    """A U-Net refiner whose encoder is any timm backbone, for larger images.

    The encoder is built with ``pretrained=False``: refinekit never downloads. Pass
    ``weights`` (a local ``.safetensors`` file of the encoder's state dict) to start
    from trained features.

    Args:
        channels: image channels in and out.
        encoder: a timm model name that supports ``features_only``.
        decoder_features: width of every decoder stage.
        weights: optional local safetensors file with the encoder's starting weights; an exported
            refiner holds all its weights, so ``load_refiner`` does not read this file again.
        coordinates: also give the full-resolution skip each pixel's position
            (:mod:`refinekit.components.coordinates`); the encoder, and so its weights, stay as they are.

    Examples:
        >>> refiner = TimmUNetRefiner(channels=3, encoder="resnet18")
        >>> refiner(torch.zeros(1, 3, 64, 64)).shape
        torch.Size([1, 3, 64, 64])
    """

    def __init__(
        self,
        channels: int = 3,
        encoder: str = "resnet18",
        decoder_features: int = 64,
        weights: str | None = None,
        coordinates: bool = False,
    ) -> None:
        super().__init__()
        import timm  # imported here: timm is only needed by this refiner

        self.encoder = timm.create_model(encoder, pretrained=False, features_only=True, in_chans=channels)
        if weights is not None:
            from refinekit.weights.files import load_encoder_weights

            load_encoder_weights(self.encoder, Path(weights), f"the encoder '{encoder}'")
        skip_channels = self.encoder.feature_info.channels()
        self.lateral = nn.ModuleList(nn.Conv2d(c, decoder_features, 1) for c in skip_channels)
        self.fuse = nn.ModuleList(nn.Conv2d(decoder_features, decoder_features, 3, padding=1) for _ in skip_channels)
        self.coordinates = coordinates
        self.input_skip = nn.Conv2d(channels + COORDINATE_CHANNELS * coordinates, decoder_features, 3, padding=1)
        self.head = nn.Conv2d(decoder_features, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = self.encoder(x)
        y = self.lateral[-1](features[-1])
        for level in range(len(features) - 1, -1, -1):
            if level < len(features) - 1:
                y = F.interpolate(y, size=features[level].shape[-2:], mode="bilinear", align_corners=False)
                y = y + self.lateral[level](features[level])
            y = F.relu(self.fuse[level](y))
        y = F.interpolate(y, size=x.shape[-2:], mode="bilinear", align_corners=False)
        skip = self.input_skip(with_coordinates(x) if self.coordinates else x)
        return torch.tanh(self.head(F.relu(y + skip)))
