"""Differentiable augmentation of everything D sees (DiffAugment: Zhao et al., NeurIPS 2020).

With a few thousand real images, D memorises them within minutes and its
gradients stop telling R anything general: the refined images turn blotchy.
Augmenting *both* D's real and refined inputs with the same random family of
transforms, differentiably, so that R's gradient passes through them, stops the
memorising without teaching R to produce augmented-looking images (ADA, Karras
et al. 2020, make the same argument). Augmentations that leaked into R's output
would be visible at once, so each one here is invertible in distribution.

Every op draws its randomness from ``generator`` when one is given (on the
generator's device, so one CPU generator serves images anywhere), else from
torch's default generator on the images' device, which the training checkpoint
saves, so resumed runs stay bit-exact.
"""

from __future__ import annotations

from typing import Callable, Sequence

import torch

from refinekit.errors import ConfigError

Augmentation = Callable[[torch.Tensor, torch.Generator | None], torch.Tensor]


def _per_image(x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """One uniform [0, 1) number per image, shaped to broadcast over (C, H, W)."""
    source = _source(x, generator)
    return torch.rand(x.shape[0], 1, 1, 1, device=source, dtype=x.dtype, generator=generator).to(x.device)


def _randint(low: int, high: int, n: int, x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """(n, 1, 1) integers in [low, high) on ``x``'s device."""
    return torch.randint(low, high, (n, 1, 1), device=_source(x, generator), generator=generator).to(x.device)


def _source(x: torch.Tensor, generator: torch.Generator | None) -> torch.device:
    """Where random numbers are drawn: on the generator's device, or the images' for the default generator."""
    return x.device if generator is None else generator.device


def brightness(x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Add one offset in [-0.5, 0.5) per image (images in [-1, 1])."""
    return x + (_per_image(x, generator) - 0.5)


def contrast(x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Scale each image's deviation from its mean by a factor in [0.5, 1.5)."""
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return (x - mean) * (_per_image(x, generator) + 0.5) + mean


def translation(x: torch.Tensor, generator: torch.Generator | None = None, ratio: float = 0.125) -> torch.Tensor:
    """Shift each image by whole pixels, up to ``ratio`` of its size, filling with its edge pixels.

    Edge filling (not DiffAugment's zeros) keeps a flat grey border from
    becoming a give-away of "augmented" on images without a dark frame.
    """
    n, _, h, w = x.shape
    max_y, max_x = max(1, int(h * ratio + 0.5)), max(1, int(w * ratio + 0.5))
    shift_y = _randint(-max_y, max_y + 1, n, x, generator)
    shift_x = _randint(-max_x, max_x + 1, n, x, generator)
    rows = (torch.arange(h, device=x.device)[None, :, None] + shift_y).clamp(0, h - 1)
    cols = (torch.arange(w, device=x.device)[None, None, :] + shift_x).clamp(0, w - 1)
    flat = rows * w + cols  # (N, H, W) source pixel of each output pixel
    gathered = x.flatten(2).gather(2, flat.flatten(1)[:, None, :].expand(-1, x.shape[1], -1))
    return gathered.view_as(x)


def cutout(x: torch.Tensor, generator: torch.Generator | None = None, ratio: float = 0.5) -> torch.Tensor:
    """Set one random rectangle of ``ratio`` of each side per image to 0 (mid-grey in [-1, 1])."""
    n, _, h, w = x.shape
    cut_h, cut_w = max(1, int(h * ratio + 0.5)), max(1, int(w * ratio + 0.5))
    top = _randint(0, h - cut_h + 1, n, x, generator)
    left = _randint(0, w - cut_w + 1, n, x, generator)
    ys = torch.arange(h, device=x.device)[None, :, None]
    xs = torch.arange(w, device=x.device)[None, None, :]
    inside = (ys >= top) & (ys < top + cut_h) & (xs >= left) & (xs < left + cut_w)
    return x * (~inside)[:, None].to(x.dtype)


def flip(x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Mirror each image left to right with probability 1/2 (ADA's x-flip): twice the real views D sees."""
    mirrored = _per_image(x, generator) < 0.5
    return torch.where(mirrored, x.flip(-1), x)


AUGMENTATIONS: dict[str, Augmentation] = {
    "brightness": brightness,
    "contrast": contrast,
    "translation": translation,
    "cutout": cutout,
    "flip": flip,
}


def check_policy(policy: Sequence[str], where: str = "augment") -> tuple[str, ...]:
    """The policy as a tuple, or a ConfigError naming the unknown op and the known ones."""
    unknown = [name for name in policy if name not in AUGMENTATIONS]
    if unknown:
        raise ConfigError(f"{where}: unknown augmentation {unknown[0]!r}; choose from {sorted(AUGMENTATIONS)}")
    return tuple(policy)


def augment(x: torch.Tensor, policy: Sequence[str], generator: torch.Generator | None = None) -> torch.Tensor:
    """Apply the ops of ``policy`` in order, each with fresh randomness per image (from ``generator`` if given).

    Examples:
        >>> torch.manual_seed(0) and None
        >>> augment(torch.zeros(2, 1, 8, 8), ["translation", "cutout"]).shape
        torch.Size([2, 1, 8, 8])
        >>> augment(torch.ones(1, 1, 4, 4), []).sum().item()  # the empty policy is the identity
        16.0
    """
    for name in policy:
        x = AUGMENTATIONS[name](x, generator)
    return x

