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
    with pytest.warns(UserWarning, match=r"images are 8x8 \(HxW\) but the refiner was trained at 35x55"):
        RefinedDataset([torch.zeros(1, 8, 8)], IdentityRefiner())[0]


class HalfRefiner(nn.Module):
    """Halves its [-1, 1] input: a refiner whose output says which range the input was read in."""

    refinekit_channels = 1
    refinekit_image_size = (1, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * 0.5


def test_float_images_default_to_torchvisions_zero_to_one_range() -> None:
    items = EyeItems(dtype=torch.float32)  # [0, 1], as ToTensor gives
    image = RefinedDataset(items, IdentityRefiner())[1]["image"]
    assert (image - items.images[1]).abs().max() < 1e-6
    # Read as [0, 1], halving in [-1, 1] maps 1.0 to 0.75 and 0.0 to 0.25; read as [-1, 1] it would give 0.5 and 0.0.
    halved = RefinedDataset([torch.tensor([[[0.0, 1.0]]])], HalfRefiner())[0]
    assert torch.allclose(halved, torch.tensor([[[0.25, 0.75]]]))


@pytest.mark.parametrize(
    ("images", "value_range", "hint"),
    [
        (torch.linspace(0, 255, 35 * 55), (0.0, 1.0), r"\[0, 255\].*value_range=\(0\.0, 255\.0\)"),
        (torch.linspace(-1, 1, 35 * 55), (0.0, 1.0), r"\[-1, 1\].*value_range=\(-1\.0, 1\.0\)"),
        (torch.linspace(-2.1, 2.6, 35 * 55), (-1.0, 1.0), "Normalize"),
    ],
)
def test_float_images_that_contradict_the_range_are_refused_not_clamped(images, value_range, hint) -> None:
    item = images.reshape(1, *SIZE)
    with pytest.raises(DataError, match=hint):
        RefinedDataset([item], IdentityRefiner(), value_range=value_range)[0]
    with pytest.raises(DataError, match="would clamp them"):
        RefinedBatches([item[None]], IdentityRefiner(), value_range=value_range).__iter__().__next__()


def test_unscaled_floats_work_with_their_range_and_small_overshoot_is_allowed() -> None:
    items = EyeItems()
    unscaled = items.images[0].float()
    refined = RefinedDataset([unscaled], IdentityRefiner(), value_range=(0.0, 255.0))[0]
    assert (refined - unscaled).abs().max() < 1e-3
    overshoot = torch.full((1, *SIZE), 1.05)  # bicubic resizing overshoots a little
    RefinedDataset([overshoot], IdentityRefiner())[0]


def test_channels_last_images_and_label_first_tuples_get_errors_that_say_what_to_do() -> None:
    hwc = np.zeros((*SIZE, 1), dtype=np.uint8)
    with pytest.raises(DataError, match=r"looks like \(H, W, C\), channels last.*np\.transpose\(image, \(2, 0, 1\)\)"):
        RefinedDataset([hwc], IdentityRefiner())[0]
    with pytest.raises(DataError, match=r"\(H, W, C\).*image\.permute\(2, 0, 1\)"):
        RefinedDataset([torch.zeros(*SIZE, 3)], IdentityRefiner())[0]
    batch = torch.zeros(2, *SIZE, 1, dtype=torch.uint8)
    with pytest.raises(DataError, match=r"\(B, H, W, C\)"):
        next(iter(RefinedBatches([batch], IdentityRefiner())))
    labelled = [(7, torch.zeros(1, *SIZE, dtype=torch.uint8))]
    with pytest.raises(DataError, match=r"field 0 of the tuple item is an int, not an image.*pass image_key=1"):
        RefinedDataset(labelled, IdentityRefiner())[0]
    collated = [(torch.arange(2), torch.zeros(2, 1, *SIZE, dtype=torch.uint8))]
    with pytest.raises(DataError, match="pass image_key=1"):
        next(iter(RefinedBatches(collated, IdentityRefiner())))
    with pytest.raises(DataError, match="^the IdentityRefiner refiner refines 1-channel images"):
        RefinedDataset([torch.zeros(3, *SIZE)], IdentityRefiner())[0]


class CountingRefiner(IdentityRefiner):
    """Counts its calls and the torch threads each ran on."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple[int, int]] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls.append((len(x), torch.get_num_threads()))
        return super().forward(x)


def test_a_dataloader_batch_is_refined_in_one_call_and_equals_per_item_refinement() -> None:
    items = EyeItems(count=8)
    refiner = CountingRefiner()
    batch = next(iter(DataLoader(RefinedDataset(items, refiner), batch_size=8, num_workers=0)))
    assert refiner.calls == [(8, torch.get_num_threads())], "one refiner call for the whole batch"
    assert torch.equal(batch["image"], items.images) and torch.equal(batch["gaze"], items.gaze)
    assert batch["name"] == [f"eye{i}" for i in range(8)]
    arrays = RefinedDataset(EyeItems(count=3, kind="array"), refiner).__getitems__([0, 2])
    assert isinstance(arrays[0], np.ndarray) and np.array_equal(arrays[1], items.images[2].numpy())
    mixed = RefinedDataset([torch.zeros(1, 8, 8, dtype=torch.uint8), torch.zeros(1, *SIZE, dtype=torch.uint8)], refiner)
    with pytest.warns(UserWarning, match="trained at"):
        assert [tuple(x.shape) for x in mixed.__getitems__([0, 1])] == [(1, 8, 8), (1, *SIZE)]  # one by one


def test_one_item_is_refined_on_one_cpu_thread_and_the_thread_count_is_restored() -> None:
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        refiner = CountingRefiner()
        RefinedDataset(EyeItems(count=2), refiner)[0]
        assert refiner.calls == [(1, 1)]
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
