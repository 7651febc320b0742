"""The plugin author's kit: task and recipe contracts, and what detection and the CLI tell a plugin's users."""

from __future__ import annotations

from typing import Mapping

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from torch import nn

from refinekit.data.image_set import ImageSet
from refinekit.errors import DataError
from refinekit.evaluation.task import Task
from refinekit.plugins.contracts import RecipeContract, TaskContract
from refinekit.plugins.hookspecs import hookimpl
from refinekit.plugins.recipe import Recipe

SIZE = (16, 20)


def noise(count: int, seed: int, bright: int = 100) -> ImageSet:
    rng = np.random.default_rng(seed)
    images = np.clip(rng.normal(bright, 30, (count, 1, *SIZE)), 0, 255).astype(np.uint8)
    return ImageSet(images, {"label": np.arange(count) % 3}, source=f"kit-noise(seed={seed})")


class KitTask(Task):
    """Three classes from image brightness; 40 labelled real images split 30/10 by position."""

    label_keys = ("label",)
    metric = "accuracy"
    leaky = False  # a broken task for the contract to catch: its test split overlaps its train split

    def make_model(self, channels: int, size: tuple[int, int]) -> nn.Module:
        return nn.Sequential(nn.Flatten(), nn.Linear(channels * size[0] * size[1], 3))

    def targets(self, annotations: Mapping[str, np.ndarray]) -> torch.Tensor:
        return torch.as_tensor(np.asarray(annotations["label"]), dtype=torch.long)

    def loss(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return nn.functional.cross_entropy(outputs, targets)

    def decode(self, outputs: torch.Tensor) -> torch.Tensor:
        return outputs.argmax(dim=1)

    def compare(self, predicted: torch.Tensor, reference: torch.Tensor) -> dict[str, np.ndarray]:
        return {"accuracy": (predicted == reference).numpy()}

    def labelled_real(self, split, path, image, seed):
        everything = noise(40, seed=123)
        rows = np.arange(30) if split == "train" else np.arange(20 if self.leaky else 30, 40)
        return everything.subset(rows)


class LeakyTask(KitTask):
    leaky = True


class KitPlugin:
    @staticmethod
    @hookimpl
    def register_datasets(register) -> None:
        register("kit-noise", lambda path, *, channels, size, limit, seed, bright=100: noise(limit or 32, seed, bright),
                 "generated noise, no detect")

    @staticmethod
    @hookimpl
    def register_tasks(register) -> None:
        register("kit-task", KitTask, "brightness classes")
        register("kit-leaky", LeakyTask, "a task whose splits overlap")

    @staticmethod
    @hookimpl
    def register_recipes(register) -> None:
        register(Recipe(
            name="kit-tiny",
            description="the kit's tiny recipe",
            config={
                "synthetic": {"name": "kit-noise", "options": {"bright": 60}},
                "real": {"name": "kit-noise", "options": {"bright": 190}},
                "image": {"channels": 1, "height": SIZE[0], "width": SIZE[1]},
                "batch_size": 4, "buffer_size": 8, "precision": "fp32",
                "refiner": {"name": "simgan-resnet", "options": {"features": 8, "blocks": 1}},
                "discriminator": {"name": "local-patch", "options": {"widths": [8, 8, 8, 8]}},
            },
            schedules={"quick": {"schedule": {"steps": 2}}},
            task="kit-task",
        ))


class TestKitTask(TaskContract):
    name = "kit-task"
    plugin = KitPlugin
    size = SIZE


class TestKitRecipe(RecipeContract):
    name = "kit-tiny"
    plugin = KitPlugin
    smoke_overrides = ["synthetic.limit=16", "real.limit=16"]


def test_the_task_contract_catches_overlapping_splits(refinekit_registry) -> None:
    refinekit_registry.register_plugin(KitPlugin, "kit")
    contract = TestKitTask()
    contract.name = "kit-leaky"
    with pytest.raises(AssertionError, match="must be disjoint"):
        contract.test_labelled_real_splits_are_disjoint_and_fixed(tmp_path=None)


def test_detection_names_only_loaders_that_can_detect(refinekit_registry, tmp_path) -> None:
    from refinekit.data.loading import detect_dataset

    refinekit_registry.register_plugin(KitPlugin, "kit")
    (tmp_path / "notes.txt").write_text("not data")
    with pytest.raises(DataError, match=r"tried image-folder") as caught:
        detect_dataset(str(tmp_path / "notes.txt"), ("image-folder",))
    assert "kit-noise" not in str(caught.value)


def test_a_loaders_options_are_listed_from_its_signature(refinekit_registry) -> None:
    from refinekit.cli.app import main

    refinekit_registry.register_plugin(KitPlugin, "kit")
    result = CliRunner().invoke(main, ["datasets", "kit-noise"], env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.output
    assert "bright" in result.output and "100" in result.output and "--set synthetic.options.bright=" in result.output
    listing = CliRunner().invoke(main, ["datasets"], env={"COLUMNS": "80"})
    assert "kit-noise" in listing.output and "image-folder" in listing.output


def test_the_plugin_page_states_the_inherited_defaults_the_code_has() -> None:
    import re
    from pathlib import Path

    from refinekit.config import iter_keys

    page = (Path(__file__).resolve().parents[1] / "docs" / "plugins.md").read_text()
    block = page.split("<!-- inherited defaults", 1)[1].split("\n\n", 1)[0]
    stated = dict(re.findall(r"`([\w.]+)=([^`]+)`", block))
    defaults = {key: default for key, _, default, _ in iter_keys()}
    assert len(stated) >= 10 and {k: defaults[k] for k in stated} == stated
