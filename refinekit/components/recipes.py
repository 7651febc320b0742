"""The generic ``simgan`` recipe: the paper's networks on any two image folders."""

from __future__ import annotations

from refinekit.plugins.recipe import Recipe

SIMGAN = Recipe(
    name="simgan",
    description="The paper's networks on your data: --synthetic FOLDER --real FOLDER (any supported format)",
    config={
        "synthetic": {"name": "image-folder"},
        "real": {"name": "image-folder"},
        "optim": {"name": "adam", "lr_refiner": 2e-4, "lr_discriminator": 2e-4},
        "batch_size": 32,
        "buffer_size": 3200,
    },
    path_datasets=("image-folder",),
)

