"""The contract classes of refinekit.plugins.contracts: built-in components pass them, broken components fail them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from refinekit.data.image_files import write_image
from refinekit.data.image_set import ImageSet
from refinekit.plugins.contracts import DatasetContract, DiscriminatorContract, RefinerContract, RegularizerContract
from refinekit.plugins.hookspecs import hookimpl

SMALL = (16, 20)


class TestSimganResnet(RefinerContract):
    name = "simgan-resnet"
    options = {"features": 8, "blocks": 1}
    size = SMALL


class TestLocalPatch(DiscriminatorContract):
    name = "local-patch"
    options = {"widths": (16, 16, 8, 8)}
    size = SMALL


class TestGlobal(DiscriminatorContract):
    name = "global"
    options = {"widths": (16, 16, 8, 8)}
    size = SMALL


class TestL1(RegularizerContract):
    name = "l1"
    size = SMALL


class TestSobelFeature(RegularizerContract):
    name = "feature"
    options = {"psi": "sobel"}
    size = SMALL


class TestImageFolder(DatasetContract):
    name = "image-folder"
    size = SMALL

    def path(self, tmp_path: Path) -> str:
        folder = tmp_path / "images"
        folder.mkdir(exist_ok=True)
        rng = np.random.default_rng(0)
        for i in range(5):
            write_image(folder / f"{i}.png", rng.integers(0, 256, (1, 24, 30), dtype=np.uint8))
        return str(folder)


# -- broken components: each contract must catch the promise its component breaks --


class StridedRefiner(nn.Module):
    def __init__(self, channels: int = 1) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, stride=2, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.conv(x))


class UnboundedRefiner(StridedRefiner):
    def __init__(self, channels: int = 1) -> None:
        super().__init__(channels)
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x) * 10


class BatchCentredRefiner(UnboundedRefiner):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x)
        return torch.tanh(y - y.mean())  # the mean over the whole batch leaks between images


class OneLogitDiscriminator(nn.Module):
    def __init__(self, channels: int = 1) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, 1, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class BrokenPlugin:
    @staticmethod
    @hookimpl
    def register_refiners(register) -> None:
        register("strided", StridedRefiner, "halves the image")
        register("unbounded", UnboundedRefiner, "no tanh")
        register("batch-centred", BatchCentredRefiner, "uses batch statistics")

    @staticmethod
    @hookimpl
    def register_discriminators(register) -> None:
        register("one-logit", OneLogitDiscriminator, "one channel instead of two")

    @staticmethod
    @hookimpl
    def register_datasets(register) -> None:
        def load_greedy(path, *, channels, size, limit, seed):
            rng = np.random.default_rng(seed)
            return ImageSet(rng.integers(0, 256, (10, channels, *size), dtype=np.uint8), source="greedy")

        register("greedy", load_greedy, "ignores limit")


@pytest.fixture
def broken(isolated_registry):
    isolated_registry.register_plugin(BrokenPlugin, "broken")
    yield
    isolated_registry.unregister_plugin("broken")


def contract(base: type, name: str) -> object:
    return type(f"Check{base.__name__}", (base,), {"name": name, "size": SMALL})()


def test_refiner_contract_catches_a_changed_shape(broken) -> None:
    with pytest.raises(AssertionError, match=r"'strided' changed the shape \(2, 1, 16, 20\) -> \(2, 1, 8, 10\)"):
        contract(RefinerContract, "strided").test_keeps_shape_dtype_and_range()


def test_refiner_contract_catches_an_output_outside_the_image_range(broken) -> None:
    with pytest.raises(AssertionError, match="outside the image range.*tanh"):
        contract(RefinerContract, "unbounded").test_keeps_shape_dtype_and_range()


def test_refiner_contract_catches_batch_statistics_in_eval_mode(broken) -> None:
    checks = contract(RefinerContract, "batch-centred")
    checks.test_keeps_shape_dtype_and_range()  # fine on its own, so only the batch check can catch it
    with pytest.raises(AssertionError, match="depends on the rest of its batch"):
        checks.test_eval_output_independent_of_batch()


def test_discriminator_contract_catches_a_single_logit_channel(broken) -> None:
    with pytest.raises(AssertionError, match=r"returned \(2, 1, 16, 20\); expected \(B, 2, h, w\)"):
        contract(DiscriminatorContract, "one-logit").test_logit_grid_shape()


def test_dataset_contract_catches_an_ignored_limit(broken, tmp_path) -> None:
    checks = contract(DatasetContract, "greedy")
    checks.test_returns_uint8_images_of_requested_shape(tmp_path)
    with pytest.raises(AssertionError, match="more than limit=3"):
        checks.test_honours_limit(tmp_path)


def test_contract_without_a_name_says_what_to_set() -> None:
    class TestNameless(RefinerContract):
        pass

    fixture = TestNameless._component_registered.__wrapped__  # the plain generator behind the fixture
    with pytest.raises(pytest.fail.Exception, match="TestNameless: set the class attribute `name`"):
        next(fixture(TestNameless()))


class PluginOnlyHere:
    """A plugin that is not installed: only the contract's ``plugin`` attribute makes it visible."""

    @staticmethod
    @hookimpl
    def register_refiners(register) -> None:
        register("plugin-only-here", lambda channels: UnboundedRefiner(channels).eval(), "test")


def test_contract_registers_its_plugin_for_each_test_and_forgets_it_afterwards(isolated_registry) -> None:
    class TestPluginOnlyHere(RefinerContract):
        name = "plugin-only-here"
        plugin = PluginOnlyHere

    fixture = TestPluginOnlyHere._component_registered.__wrapped__
    steps = fixture(TestPluginOnlyHere())
    next(steps)
    from refinekit.plugins.registry import list_refiners

    assert "plugin-only-here" in list_refiners()
    with pytest.raises(StopIteration):
        next(steps)
    assert "plugin-only-here" not in list_refiners()


def test_refinekit_registry_fixture_is_fresh(refinekit_registry) -> None:
    refinekit_registry.register_plugin(PluginOnlyHere, "here")
    from refinekit.plugins.registry import get_registry, list_refiners

    assert get_registry() is refinekit_registry and "plugin-only-here" in list_refiners()
