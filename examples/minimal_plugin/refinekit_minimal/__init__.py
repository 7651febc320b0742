"""The smallest complete refinekit plugin: one dataset and one recipe.

refinekit finds this module through the entry point in ``pyproject.toml`` and
calls the two hook implementations below; nothing else is needed.
"""

from __future__ import annotations

import numpy as np

from refinekit import ImageSet, Recipe
from refinekit.plugins.hookspecs import Register, hookimpl

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


DISKS_SIMGAN = Recipe(
    name="disks-simgan",
    description="Sharp generated disks refined to look blurred and noisy, each disk kept in place",
    config={
        "image": {"channels": 1, "height": 32, "width": 32},
        "synthetic": {"name": "disks"},
        # A stand-in for real camera images; pass --real FOLDER to use your own.
        "real": {"name": "disks", "options": {"blur": 1.5, "noise": 12.0}},
        "refiner": {"name": "simgan-resnet", "options": {"features": 16, "blocks": 2}},
        "batch_size": 16,
        "buffer_size": 320,
        "optim": {"name": "adam", "lr_refiner": 1e-3, "lr_discriminator": 1e-3},
        "schedule": {"refiner_pretrain_steps": 50, "discriminator_pretrain_steps": 20, "steps": 200},
        "sample_every": 50,
        "checkpoint_every": 50,
    },
)


@hookimpl
def register_datasets(register: Register) -> None:
    register("disks", load_disks, "Generated disks annotated with centre and radius; blur/noise imitate a camera")


@hookimpl
def register_recipes(register: Register) -> None:
    register(DISKS_SIMGAN)
