"""The plugin's dataset: generated disks. Imported only when the dataset is loaded (see ``__init__``)."""

from __future__ import annotations

import numpy as np

from refinekit.data.image_set import ImageSet

BACKGROUND, DISK = 50.0, 200.0


def load_disks(
    path: str | None,
    *,
    channels: int,
    size: tuple[int, int],
    limit: int | None = None,
    seed: int = 0,
    count: int = 512,
    blur: float = 0.0,
    noise: float = 0.0,
) -> ImageSet:
    """Generate images of one bright disk on a dark background, annotated with where the disk is.

    Args:
        path: unused: the images are generated (loaders share one signature).
        channels, size, limit, seed: what every refinekit loader receives.
        count: images to generate when no ``limit`` is given.
        blur: edge softness in pixels; 0 draws a hard edge (the "synthetic" look).
        noise: standard deviation of Gaussian sensor noise, in grey levels.
    """
    n = min(count, limit) if limit else count
    rng = np.random.default_rng(seed)
    height, width = size
    centres = rng.uniform([0.3 * width, 0.3 * height], [0.7 * width, 0.7 * height], (n, 2))
    radii = rng.uniform(0.15, 0.3, n) * min(height, width)
    yy, xx = np.mgrid[0:height, 0:width]
    distance = np.hypot(xx - centres[:, :1, None], yy - centres[:, 1:, None])
    inside = radii[:, None, None] - distance
    coverage = inside >= 0 if blur == 0 else 1 / (1 + np.exp(-inside / blur))
    images = BACKGROUND + (DISK - BACKGROUND) * coverage
    if noise:
        images = images + rng.normal(0, noise, images.shape)
    images = np.clip(np.rint(images), 0, 255).astype(np.uint8)
    return ImageSet(
        np.repeat(images[:, None], channels, axis=1),
        {"centre": centres.astype(np.float32), "radius": radii.astype(np.float32)},
        source=f"disks ({n} generated, blur {blur}, noise {noise}, seed {seed})",
    )
