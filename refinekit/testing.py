"""Contract tests for components, for plugin authors (also a pytest plugin via ``pytest11``).

Subclass a contract in your tests and set ``name`` (the registered name) and,
where needed, ``options``/``channels``/``size``; pytest then runs every check::

    from refinekit.testing import RefinerContract

    class TestMyRefiner(RefinerContract):
        name = "my-refiner"
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

from refinekit.data import ImageSet


class _ComponentContract:
    name: ClassVar[str] = ""
    options: ClassVar[dict[str, Any]] = {}
    channels: ClassVar[int] = 1
    size: ClassVar[tuple[int, int]] = (35, 55)
    batch: ClassVar[int] = 2

    def make_input(self, seed: int = 0) -> torch.Tensor:
        g = torch.Generator().manual_seed(seed)
        return torch.rand(self.batch, self.channels, *self.size, generator=g) * 2 - 1


class RefinerContract(_ComponentContract):
    """A refiner keeps shape, dtype and [-1, 1] range, passes gradients, is seeded, and survives export."""

    def build(self) -> torch.nn.Module:
        from refinekit.plugins import create_refiner

        return create_refiner(self.name, channels=self.channels, **self.options)

    def test_keeps_shape_dtype_and_range(self) -> None:
        x = self.make_input()
        y = self.build()(x)
        assert y.shape == x.shape and y.dtype == x.dtype
        assert float(y.min()) >= -1.0 and float(y.max()) <= 1.0

    def test_gradients_reach_every_parameter(self) -> None:
        refiner = self.build()
        refiner(self.make_input()).square().mean().backward()
        missing = [n for n, p in refiner.named_parameters() if p.requires_grad and (p.grad is None or not p.grad.abs().sum())]
        assert not missing, f"no gradient reaches {missing[:5]}"

    def test_deterministic_under_seed(self) -> None:
        torch.manual_seed(0)
        a = self.build()(self.make_input())
        torch.manual_seed(0)
        b = self.build()(self.make_input())
        assert torch.equal(a, b)

    def test_survives_export_and_load(self, tmp_path: Path) -> None:
        from refinekit.checkpoint import export_refiner, load_refiner

        refiner = self.build().eval()
        path = tmp_path / "refiner.safetensors"
        export_refiner(refiner, path, self.name, dict(self.options), self.channels, self.size)
        loaded = load_refiner(path)
        x = self.make_input()
        with torch.no_grad():
            assert torch.allclose(refiner(x), loaded(x))


class DiscriminatorContract(_ComponentContract):
    """A discriminator returns (B, 2, h, w) logits, learns, and passes gradients to its input."""

    def build(self) -> torch.nn.Module:
        from refinekit.plugins import create_discriminator

        return create_discriminator(self.name, channels=self.channels, **self.options)

    def test_logit_grid_shape(self) -> None:
        logits = self.build()(self.make_input())
        assert logits.ndim == 4 and logits.shape[:2] == (self.batch, 2)

    def test_gradient_flows_to_input(self) -> None:
        x = self.make_input().requires_grad_(True)
        self.build()(x)[:, 1].sum().backward()
        assert x.grad is not None and x.grad.abs().sum() > 0

    def test_separates_two_constant_images(self) -> None:
        from refinekit import losses

        torch.manual_seed(0)
        d = self.build()
        optim = torch.optim.Adam(d.parameters(), lr=1e-3)
        bright, dark = torch.full((4, self.channels, *self.size), 0.8), torch.full((4, self.channels, *self.size), -0.8)
        for _ in range(60):
            loss = losses.discriminator_loss(d(dark), d(bright))
            optim.zero_grad()
            loss.backward()
            optim.step()
        assert losses.patch_accuracy(d(bright), 1) > 0.9 and losses.patch_accuracy(d(dark), 0) > 0.9


class RegularizerContract(_ComponentContract):
    """A regulariser is zero for identical inputs, positive otherwise, and differentiable."""

    def build(self) -> torch.nn.Module:
        from refinekit.plugins import create_regularizer

        return create_regularizer(self.name, channels=self.channels, **self.options)

    def test_zero_for_identical_images(self) -> None:
        x = self.make_input()
        assert float(self.build()(x, x.clone())) == 0.0

    def test_positive_and_differentiable_for_different_images(self) -> None:
        x = self.make_input(0)
        y = self.make_input(1).requires_grad_(True)
        loss = self.build()(y, x)
        loss.backward()
        assert float(loss) > 0 and y.grad is not None and y.grad.abs().sum() > 0


class DatasetContract:
    """A dataset loader returns an :class:`ImageSet` of the requested shape, uint8, seeded.

    Set ``name`` and override :meth:`path` to return the input to load (or None).
    """

    name: ClassVar[str] = ""
    options: ClassVar[dict[str, Any]] = {}
    channels: ClassVar[int] = 1
    size: ClassVar[tuple[int, int]] = (35, 55)

    def path(self, tmp_path: Path) -> str | None:
        return None

    def load(self, tmp_path: Path, seed: int = 0, limit: int | None = 8) -> ImageSet:
        from refinekit.plugins import get_dataset

        return get_dataset(self.name).factory(
            self.path(tmp_path), channels=self.channels, size=self.size, limit=limit, seed=seed, **self.options
        )

    def test_returns_uint8_images_of_requested_shape(self, tmp_path: Path) -> None:
        images = self.load(tmp_path)
        assert isinstance(images, ImageSet) and len(images) > 0
        assert images.images.dtype == np.uint8 and images.shape == (self.channels, *self.size)
        assert images.source

    def test_annotations_align_with_images(self, tmp_path: Path) -> None:
        images = self.load(tmp_path)
        assert all(len(v) == len(images) for v in images.annotations.values())

    def test_same_seed_same_images(self, tmp_path: Path) -> None:
        assert np.array_equal(self.load(tmp_path, seed=3).images, self.load(tmp_path, seed=3).images)
