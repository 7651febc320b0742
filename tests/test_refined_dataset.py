"""RefinedDataset / RefinedBatches: refined images, everything else untouched, in DataLoaders."""

from __future__ import annotations

from collections import namedtuple
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from refinekit import RefinedBatches, RefinedDataset
from refinekit.checkpoint import export_refiner
from refinekit.components.refiners import SimGANResNet
from refinekit.errors import DataError

SIZE = (35, 55)
Pair = namedtuple("Pair", "image gaze")


class IdentityRefiner(nn.Module):
    """A refiner that changes nothing: a 1x1 convolution with weight 1, clamped to the tanh range."""

    refinekit_channels = 1
    refinekit_image_size = SIZE

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 1, 1)
        nn.init.ones_(self.conv.weight)
        nn.init.zeros_(self.conv.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x).clamp(-1, 1)


class EyeItems(Dataset):
    """Items as a gaze dataset would return them: an image plus annotations."""

    def __init__(self, count: int = 6, kind: str = "dict", dtype: torch.dtype = torch.uint8) -> None:
        rng = np.random.default_rng(0)
        self.images = torch.from_numpy(rng.integers(0, 256, (count, 1, *SIZE), dtype=np.uint8))
        if dtype != torch.uint8:
            self.images = (self.images.to(dtype) / 255.0).to(dtype)  # [0, 1], as torchvision's ToTensor
        self.gaze = torch.from_numpy(rng.normal(size=(count, 3)).astype(np.float32))
        self.kind = kind

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int):
        if self.kind == "dict":
            return {"image": self.images[i], "gaze": self.gaze[i], "name": f"eye{i}"}
        if self.kind == "tuple":
            return self.gaze[i], self.images[i]
        if self.kind == "namedtuple":
            return Pair(self.images[i], self.gaze[i])
        if self.kind == "array":
            return self.images[i].numpy()
        return self.images[i]


def same_tensor(a: torch.Tensor, b: torch.Tensor) -> bool:
    """The very same data, not a copy: the annotation was passed through untouched."""
    return a.data_ptr() == b.data_ptr() and torch.equal(a, b)


@pytest.fixture
def refiner_file(tmp_path: Path) -> Path:
    torch.manual_seed(0)
    path = tmp_path / "refiner.safetensors"
    export_refiner(SimGANResNet(1, 8, 1), path, "simgan-resnet", {"features": 8, "blocks": 1}, 1, SIZE)
    return path


def test_identity_refiner_gives_the_same_images_and_annotations_are_untouched() -> None:
    items = EyeItems()
    refined = RefinedDataset(items, IdentityRefiner())
    assert len(refined) == len(items)
    for i in range(len(items)):
        item = refined[i]
        assert same_tensor(item["gaze"], items.gaze[i]) and item["name"] == f"eye{i}"
        assert item["image"].dtype == torch.uint8 and item["image"].shape == (1, *SIZE)
        assert torch.equal(item["image"], items.images[i])


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16])
def test_float_images_in_a_declared_range_come_back_in_it(dtype: torch.dtype) -> None:
    items = EyeItems(dtype=dtype)
    refined = RefinedDataset(items, IdentityRefiner(), value_range=(0.0, 1.0))
    image = refined[2]["image"]
    assert image.dtype == dtype and image.shape == (1, *SIZE)
    assert (image.double() - items.images[2].double()).abs().max() < 2e-3


@pytest.mark.parametrize("kind", ["tuple", "namedtuple", "array", "tensor"])
def test_other_item_layouts(kind: str) -> None:
    items = EyeItems(kind=kind)
    key = 1 if kind == "tuple" else None
    item = RefinedDataset(items, IdentityRefiner(), image_key=key)[3]
    if kind == "tuple":
        assert isinstance(item, tuple) and same_tensor(item[0], items.gaze[3])
        np.testing.assert_array_equal(item[1].numpy(), items.images[3].numpy())
    elif kind == "namedtuple":
        assert isinstance(item, Pair) and same_tensor(item.gaze, items.gaze[3])
        np.testing.assert_array_equal(item.image.numpy(), items.images[3].numpy())
    elif kind == "array":
        assert isinstance(item, np.ndarray) and item.dtype == np.uint8
        np.testing.assert_array_equal(item, items.images[3].numpy())
    else:
        assert isinstance(item, torch.Tensor) and item.shape == (1, *SIZE)


def test_exported_refiner_in_a_dataloader_equals_batch_refinement(refiner_file: Path) -> None:
    items = EyeItems(count=7)
    per_item = RefinedDataset(items, refiner_file, image_key="image")
    loader = DataLoader(per_item, batch_size=4, num_workers=0)
    from_items = list(loader)
    from_batches = list(RefinedBatches(DataLoader(items, batch_size=4), refiner_file, image_key="image"))
    assert len(from_items) == len(from_batches) == 2
    for a, b, start in zip(from_items, from_batches, (0, 4)):
        assert (a["image"].int() - b["image"].int()).abs().max() <= 1  # uint8: at most one rounding step
        assert torch.equal(a["gaze"], items.gaze[start : start + 4])
        assert b["name"] == [f"eye{i}" for i in range(start, min(start + 4, 7))]
    changed = (from_batches[0]["image"].int() - items.images[:4].int()).abs().float().mean()
    assert changed > 1, "a random refiner changes the images"


def test_mistakes_are_explained(refiner_file: Path) -> None:
    with pytest.raises(DataError, match="no key 'img'"):
        RefinedDataset(EyeItems(), IdentityRefiner(), image_key="img")[0]
    rgb = [{"image": torch.zeros(3, *SIZE, dtype=torch.uint8)}]
    expected = r"refiner .*refiner\.safetensors refines 1-channel images, but .* has 3 channels"
    with pytest.raises(DataError, match=expected):
        RefinedDataset(rgb, refiner_file)[0]
    with pytest.raises(DataError, match="PILToTensor"):
        RefinedDataset([{"image": "not an image"}], IdentityRefiner())[0]
    with pytest.warns(UserWarning, match="trained at 55x35"):
        RefinedDataset([torch.zeros(1, 8, 8)], IdentityRefiner())[0]
