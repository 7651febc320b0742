"""Every hook: documented in one line, and exercised by a ``test_hook_<name>`` test (datasette's rule)."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from refinekit.config import DatasetConfig, ImageConfig
from refinekit.data.image_set import ImageSet
from refinekit.data.loading import detect_dataset, load_dataset
from refinekit.plugins import hookspecs
from refinekit.plugins.hookspecs import hookimpl
from refinekit.plugins.recipe import Recipe
from refinekit.plugins.registry import (
    create_discriminator,
    create_refiner,
    create_regularizer,
    get_recipe,
    get_task,
    list_tasks,
)

HOOKS = sorted(
    name for name, fn in inspect.getmembers(hookspecs, inspect.isfunction) if hasattr(fn, "refinekit_spec")
)


def test_hooks_are_found() -> None:
    assert HOOKS == [
        "register_datasets",
        "register_discriminators",
        "register_recipes",
        "register_refiners",
        "register_regularizers",
        "register_tasks",
    ]


@pytest.mark.parametrize("hook", HOOKS)
def test_every_hook_has_a_one_line_docstring_and_takes_register(hook: str) -> None:
    spec = getattr(hookspecs, hook)
    doc = (spec.__doc__ or "").strip()
    assert doc and "\n" not in doc, f"{hook}: the docstring must be one line"
    assert list(inspect.signature(spec).parameters) == ["register"]


@pytest.mark.parametrize("hook", HOOKS)
def test_every_hook_has_a_test(hook: str) -> None:
    tests = "\n".join(p.read_text() for p in Path(__file__).parent.rglob("test_*.py"))
    assert re.search(rf"^def test_hook_{hook}\(", tests, re.MULTILINE), f"write a test called test_hook_{hook}"


# -- one test per hook: a throwaway plugin uses it, the core picks it up -------------


class Doubler(nn.Module):
    def __init__(self, channels: int = 1, gain: float = 2.0) -> None:
        super().__init__()
        self.channels, self.gain = channels, gain

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(x * self.gain)


class EveryHook:
    """A plugin that implements every hook once."""

    @staticmethod
    @hookimpl
    def register_refiners(register) -> None:
        register("doubler", Doubler, "multiplies by gain")

    @staticmethod
    @hookimpl
    def register_discriminators(register) -> None:
        register("const-d", lambda channels, bias=0.0: nn.Conv2d(channels, 2, 1), "1x1 conv")

    @staticmethod
    @hookimpl
    def register_regularizers(register) -> None:
        register("max-diff", lambda channels: (lambda r, s: (r - s).abs().max()), "largest change")

    @staticmethod
    @hookimpl
    def register_datasets(register) -> None:
        def load(path, *, channels, size, limit, seed, level=7):
            return ImageSet(np.full((limit or 3, channels, *size), level, np.uint8), {"y": np.zeros(limit or 3)}, "ones")

        register("flat", load, "constant images", detect=lambda path: path.endswith(".flat"))

    @staticmethod
    @hookimpl
    def register_recipes(register) -> None:
        register(Recipe(name="every", description="uses every hook", config={"refiner": {"name": "doubler"}}))

    @staticmethod
    @hookimpl
    def register_tasks(register) -> None:
        register("count", lambda: {"fresh": True}, "a task object")


@pytest.fixture
def every_hook(isolated_registry):
    isolated_registry.register_plugin(EveryHook, "every-hook")
    yield isolated_registry
    isolated_registry.unregister_plugin("every-hook")


def test_hook_register_refiners(every_hook) -> None:
    refiner = create_refiner("doubler", channels=3, gain=0.5)
    assert isinstance(refiner, Doubler) and (refiner.channels, refiner.gain) == (3, 0.5)
    assert every_hook.infos["every-hook"].components["refiner"] == ["doubler"]


def test_hook_register_discriminators(every_hook) -> None:
    d = create_discriminator("const-d", channels=3)
    assert d(torch.zeros(1, 3, 4, 5)).shape == (1, 2, 4, 5)


def test_hook_register_regularizers(every_hook) -> None:
    reg = create_regularizer("max-diff", channels=1)
    assert float(reg(torch.ones(1, 1, 2, 2), torch.zeros(1, 1, 2, 2))) == 1.0


def test_hook_register_datasets(every_hook, tmp_path) -> None:
    path = tmp_path / "data.flat"
    path.touch()
    assert detect_dataset(str(path), ["image-folder"]) == "flat"  # detect() extra reaches the core
    config = DatasetConfig(name="flat", path=str(path), limit=2, options={"level": 9})
    images = load_dataset(config, ImageConfig(channels=1, height=8, width=10), seed=0)
    assert images.images.shape == (2, 1, 8, 10) and (images.images == 9).all()


def test_hook_register_recipes(every_hook) -> None:
    recipe = get_recipe("every")
    assert recipe.description == "uses every hook" and every_hook.get("recipe", "every").plugin == "every-hook"


def test_hook_register_tasks(every_hook) -> None:
    assert list_tasks() == ["count"]
    first, second = get_task("count"), get_task("count")
    assert first == {"fresh": True} and first is not second  # a fresh task each time
