"""Core test fixtures: an isolated plugin registry and a tiny in-process domain plugin."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import numpy as np
import pytest
import torch

from refinekit.components.refiners import SimGANResNet
from refinekit.data.image_set import ImageSet
from refinekit.plugins.hookspecs import hookimpl
from refinekit.plugins.recipe import Recipe
from refinekit.plugins.registry import Registry, get_registry, reset_registry
from refinekit.weights.files import export_refiner

TINY_SIZE = (16, 20)
EYE_SIZE = (35, 55)


def export_tiny_refiner(path: Path, size: tuple[int, int] = EYE_SIZE) -> Path:
    """A seeded one-block, 8-channel SimGAN refiner exported to ``path``: a real refiner file that refines in ms."""
    torch.manual_seed(0)
    export_refiner(SimGANResNet(1, 8, 1), path, "simgan-resnet", {"features": 8, "blocks": 1}, 1, size)
    return path


@pytest.fixture
def refiner_file(tmp_path: Path) -> Path:
    """A tiny refiner for 35x55 grayscale images, exported into the test's folder."""
    return export_tiny_refiner(tmp_path / "refiner.safetensors")


def make_tiny_images(count: int, size: tuple[int, int], seed: int, bright: int) -> ImageSet:
    """Noise images around a brightness level: two levels make two easily told-apart domains."""
    rng = np.random.default_rng(seed)
    images = np.clip(rng.normal(bright, 20, (count, 1, *size)), 0, 255).astype(np.uint8)
    return ImageSet(images, {"label": np.arange(count) % 10}, source=f"tiny(bright={bright})")


class TinyDomain:
    """A synthetic-dark / real-bright domain and a recipe that trains on it in about a second."""

    @staticmethod
    @hookimpl
    def register_datasets(register) -> None:
        def load_tiny(path, *, channels, size, limit, seed, bright=60, count=64):
            return make_tiny_images(limit or count, size, seed, bright)

        register("tiny", load_tiny, "noise images at a brightness level")

    @staticmethod
    @hookimpl
    def register_recipes(register) -> None:
        register(
            Recipe(
                name="tiny",
                description="a seconds-long recipe for tests",
                config={
                    "synthetic": {"name": "tiny", "options": {"bright": 60}},
                    "real": {"name": "tiny", "options": {"bright": 190}},
                    "image": {"channels": 1, "height": TINY_SIZE[0], "width": TINY_SIZE[1]},
                    "batch_size": 8,
                    "buffer_size": 32,
                    "optim": {"name": "adam", "lr_refiner": 1e-3, "lr_discriminator": 1e-3},
                    "schedule": {"refiner_pretrain_steps": 4, "discriminator_pretrain_steps": 2, "steps": 6},
                    "log_every": 1,
                    "sample_every": 5,
                    "checkpoint_every": 4,
                    "precision": "fp32",
                },
            )
        )


@pytest.fixture(autouse=True)
def isolated_registry(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    """Every test sees only the built-in components (no installed entry points) plus what it registers."""
    monkeypatch.setenv("REFINEKIT_DISABLE_ENTRY_POINTS", "1")
    monkeypatch.setenv("REFINEKIT_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "dataset-cache"))  # not ~/.cache
    monkeypatch.delenv("REFINEKIT_LOAD_PLUGINS", raising=False)
    monkeypatch.delenv("REFINEKIT_STRICT_PLUGINS", raising=False)
    reset_registry()
    yield get_registry()
    reset_registry()


@pytest.fixture
def tiny_domain(isolated_registry: Registry) -> Iterator[Registry]:
    """The registry with :class:`TinyDomain` registered, unregistered afterwards."""
    isolated_registry.register_plugin(TinyDomain, "tiny-domain")
    yield isolated_registry
    isolated_registry.unregister_plugin("tiny-domain")


@pytest.fixture(scope="module")
def one_torch_thread() -> Iterator[None]:
    """For modules of tiny networks: a second thread only adds synchronisation, which costs a lot on a busy CPU.

    Use it with ``pytestmark = pytest.mark.usefixtures("one_torch_thread")``.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
