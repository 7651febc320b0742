"""Coordinate channels (CoordConv, Liu et al., NeurIPS 2018): where in the image each pixel is.

A convolution treats every position alike, so a fully convolutional refiner or
local discriminator cannot learn a difference bound to a place in the image, such
as real eye patches being darker on their left above the eye. Two extra input
channels holding each pixel's x and y, from -1 to 1 across the image, let them.
"""

from __future__ import annotations

import torch

COORDINATE_CHANNELS = 2


def with_coordinates(images: torch.Tensor) -> torch.Tensor:
    """(N, C, H, W) -> (N, C + 2, H, W): the images, then x and y from -1 at the first pixel to 1 at the last."""
    n, _, height, width = images.shape
    ys = torch.linspace(-1.0, 1.0, height, dtype=images.dtype, device=images.device)
    xs = torch.linspace(-1.0, 1.0, width, dtype=images.dtype, device=images.device)
    grid = torch.stack((xs[None, :].expand(height, width), ys[:, None].expand(height, width)))
    return torch.cat((images, grid[None].expand(n, -1, -1, -1)), dim=1)
