"""A refiner's last stage for domains whose real images were histogram-equalised: the same equalisation.

Some real sets come out of a pipeline that ends in per-image histogram
equalisation (MPIIGaze's eye patches do). Every real image then has a nearly
flat grey-level histogram, and a two-sample classifier tells a refined image
from a real one by its histogram alone unless the refined image went through the
same step. A discriminator's gradient teaches the refiner that step only
approximately; this stage applies it exactly.

The equalisation is that of an 8-bit camera frame at the size the real images
were equalised at (``size``), then area-resized to the working size, so that the
refined histogram has the same gaps and smoothing as the real one. It is not
differentiable (it ranks pixels), so training passes its gradient straight
through: the discriminator judges equalised images, and the refiner's gradient
is the one it would get if the stage were the identity.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from refinekit.errors import ConfigError


class Equalize(nn.Module):
    """Per-image, per-channel histogram equalisation of [-1, 1] images at ``size``, gradient passed straight through.

    Args:
        size: (height, width) at which the real images were equalised; the output has the input's size.

    Examples:
        >>> out = Equalize((36, 60))(torch.linspace(-0.2, 0.3, 35 * 55).reshape(1, 1, 35, 55))
        >>> round(float(out.min()), 2), round(float(out.max()), 2)
        (-1.0, 1.0)
    """

    def __init__(self, size: tuple[int, int]) -> None:
        super().__init__()
        self.size = check_equalize_size(size)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        # equalised values exactly (images - images is exactly 0), the identity's gradient
        return equalize_like_camera(images.detach(), self.size) + (images - images.detach())


def equalize_like_camera(images: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """(N, C, H, W) [-1, 1] float -> the same images as 8-bit frames equalised at ``size``, area-resized back."""
    n, c, height, width = images.shape
    frames = F.interpolate(images.float(), size=size, mode="bilinear", align_corners=False)
    equalized = equalize_histograms(((frames + 1) / 2).reshape(n * c, *size), levels=256).float()
    shrinks = size[0] >= height and size[1] >= width
    resized = F.interpolate(
        equalized.reshape(n, c, *size), size=(height, width), mode="area" if shrinks else "bilinear"
    )
    return (resized.round() / 127.5 - 1).to(images.dtype)


def equalize_histograms(images: torch.Tensor, levels: int = 256) -> torch.Tensor:
    """Per-image histogram equalisation of float (N, H, W) images in [0, 1] -> uint8 (N, H, W).

    It is OpenCV's ``equalizeHist`` computed on ``levels`` grey levels: 256 are an 8-bit
    frame's. A renderer's smooth image equalised on 256 levels has its single 8-bit steps
    stretched into visible bands, so the eye simulator uses 4096.
    """
    flat = (images.reshape(len(images), -1).clamp(0, 1) * (levels - 1)).round().long()
    ones = torch.ones_like(flat, dtype=torch.float32)
    counts = torch.zeros(len(images), levels, device=images.device).scatter_add_(1, flat, ones)
    cdf = counts.cumsum(1)
    first = cdf.gather(1, flat.amin(1, keepdim=True))  # the darkest level maps to 0
    scale = (flat.shape[1] - first).clamp(min=1)
    table = ((cdf - first) / scale * 255).round().clamp(0, 255)
    return table.gather(1, flat).to(torch.uint8).reshape(images.shape)


def check_equalize_size(value: object) -> tuple[int, int]:
    """``refiner.options.equalize`` as (height, width), or a ConfigError that says what it wants."""
    if (
        not isinstance(value, (list, tuple))
        or len(value) != 2
        or not all(isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= 4096 for v in value)
    ):
        raise ConfigError(
            "refiner.options.equalize must be [height, width] in pixels (the size the real images were "
            f"histogram-equalised at, e.g. [36, 60] for MPIIGaze), or null for no equalisation; got {value!r}"
        )
    return int(value[0]), int(value[1])
