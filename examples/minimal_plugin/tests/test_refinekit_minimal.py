"""The plugin's own tests: refinekit's contract for datasets, plus what only this plugin promises."""

from __future__ import annotations

import numpy as np
import refinekit_minimal
from refinekit_minimal import disks as disks_module

import refinekit
from refinekit.plugins.contracts import DatasetContract


class TestDisks(DatasetContract):
    name = "disks"
    plugin = refinekit_minimal  # registered for each test, so this passes before `pip install` too
    size = (32, 32)


class TestCameraLikeDisks(TestDisks):
    options = {"blur": 1.5, "noise": 12.0}


def test_annotations_say_where_the_disk_is() -> None:
    disks = disks_module.load_disks(None, channels=1, size=(32, 32), limit=20, seed=0)
    for image, (x, y), radius in zip(disks.images[:, 0], disks.annotations["centre"], disks.annotations["radius"]):
        assert image[round(y), round(x)] == disks_module.DISK  # the centre is inside the disk
        assert image[0, 0] == disks_module.BACKGROUND  # a corner is outside it
        assert abs((image == disks_module.DISK).sum() - np.pi * radius**2) < 2 * np.pi * radius + 4


def test_recipe_resolves_to_a_valid_config(refinekit_registry) -> None:
    refinekit_registry.register_plugin(refinekit_minimal, "minimal")
    config = refinekit.resolve_config("disks-simgan", overrides=["schedule.steps=3"])
    assert config.synthetic.name == config.real.name == "disks"
    assert (config.image.height, config.image.width, config.schedule.steps) == (32, 32, 3)
