"""USPS h5 files, written tiny in tmp_path: values, framing, splits and errors that name the field."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest
from refinekit_digits import plugin
from refinekit_digits.usps import is_usps_h5, load_usps_h5

from refinekit.errors import DataError
from refinekit.plugins.contracts import DatasetContract


def write_usps(path: Path, train: int = 5, test: int = 3, **replace: np.ndarray) -> Path:
    """A USPS-layout h5 file: random [0, 1] 16x16 images flattened to 256, labels 0-9; ``replace`` swaps a field."""
    rng = np.random.default_rng(0)
    fields = {
        "train/data": rng.random((train, 256)),
        "train/target": np.arange(train) % 10,
        "test/data": rng.random((test, 256)),
        "test/target": np.arange(test) % 10,
    }
    fields.update({k.replace("__", "/"): v for k, v in replace.items()})
    with h5py.File(path, "w") as f:
        for name, value in fields.items():
            f[name] = value
    return path


def load(path: Path, **options):
    return load_usps_h5(str(path), channels=1, size=(28, 28), limit=None, seed=0, **options)


class TestUspsH5Contract(DatasetContract):
    name = "usps-h5"
    plugin = plugin
    size = (28, 28)

    def path(self, tmp_path: Path) -> str:
        return str(write_usps(tmp_path / "usps.h5", train=12))


def test_values_map_to_uint8_and_digits_are_framed(tmp_path: Path) -> None:
    data = np.zeros((2, 256))
    data[0] = 1.0  # a full white box
    path = write_usps(tmp_path / "usps.h5", train=2, train__data=data, train__target=np.array([3, 7]))
    loaded = load(path)
    assert loaded.images.shape == (2, 1, 28, 28) and loaded.images.dtype == np.uint8
    assert np.array_equal(loaded.annotations["label"], [3, 7])
    assert (loaded.images[0, 0, 4:24, 4:24] == 255).all(), "the 16x16 box fills the centred 20x20 box"
    assert loaded.images[0].sum() == 255 * 400 and loaded.images[1].max() == 0


def test_splits(tmp_path: Path) -> None:
    path = write_usps(tmp_path / "usps.h5", train=5, test=3)
    assert (len(load(path)), len(load(path, split="test")), len(load(path, split="all"))) == (5, 3, 8)


def test_detects_usps_files_only(tmp_path: Path) -> None:
    path = write_usps(tmp_path / "usps.h5")
    with h5py.File(tmp_path / "other.h5", "w") as f:
        f["images"] = np.zeros((2, 2))
    (tmp_path / "not.h5").write_text("hello")
    assert is_usps_h5(str(path))
    assert not is_usps_h5(str(tmp_path / "other.h5")) and not is_usps_h5(str(tmp_path / "not.h5"))
    assert not is_usps_h5(str(tmp_path))


@pytest.mark.parametrize(
    ("replace", "message"),
    [
        ({"train__data": np.full((5, 256), 2.0)}, r"'train/data' values span \[2, 2\].*\[0, 1\]"),
        ({"train__data": np.zeros((5, 100))}, r"'train/data' has shape \(5, 100\)"),
        ({"train__target": np.arange(4)}, r"5 images but 'train/target' has 4 labels"),
        ({"train__target": np.array([0, 1, 2, 3, 10])}, r"'train/target' has 1 labels outside 0-9"),
    ],
)
def test_bad_fields_are_named_with_the_file(tmp_path: Path, replace: dict, message: str) -> None:
    path = write_usps(tmp_path / "usps.h5", **replace)
    with pytest.raises(DataError, match=message) as info:
        load(path)
    assert str(path) in str(info.value)


def test_missing_group_and_non_hdf5(tmp_path: Path) -> None:
    path = tmp_path / "half.h5"
    with h5py.File(path, "w") as f:
        f["train/data"] = np.zeros((2, 256))
    with pytest.raises(DataError, match="no dataset 'train/target'"):
        load(path)
    (tmp_path / "text.h5").write_text("not hdf5")
    with pytest.raises(DataError, match="not an HDF5 file"):
        load(tmp_path / "text.h5")
