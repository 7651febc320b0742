"""The smallest complete refinekit plugin: one dataset and one recipe.

refinekit finds this module through the entry point in ``pyproject.toml`` and
calls the two hook implementations below; nothing else is needed. The dataset is
named as ``"module:attribute"`` rather than imported, so registering the plugin
costs no import of numpy or torch: ``refinekit recipes`` stays instant however
many plugins are installed. refinekit imports ``refinekit_minimal.disks`` the
first time the dataset is loaded.
"""

from __future__ import annotations

from refinekit.plugins.hookspecs import Register, hookimpl
from refinekit.plugins.recipe import Recipe

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
    register(
        "disks",
        "refinekit_minimal.disks:load_disks",
        "Generated disks annotated with centre and radius; blur/noise imitate a camera",
    )


@hookimpl
def register_recipes(register: Register) -> None:
    register(DISKS_SIMGAN)
