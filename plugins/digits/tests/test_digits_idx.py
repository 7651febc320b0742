"""MNIST-style IDX files, written tiny in tmp_path, read back exactly, and rejected with useful errors."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest
from refinekit_digits import plugin
from refinekit_digits.idx import IMAGES_MAGIC, LABELS_MAGIC, is_idx, load_mnist_idx

from refinekit.errors import DataError
from refinekit.plugins.contracts import DatasetContract


def idx_bytes(magic: int, array: np.ndarray) -> bytes:
    """The IDX encoding of a uint8 array: big-endian magic, dimensions, then the bytes."""
    header = magic.to_bytes(4, "big") + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    return header + np.ascontiguousarray(array, dtype=np.uint8).tobytes()


def write_pair(
    folder: Path, images: np.ndarray, labels: np.ndarray, prefix: str = "train", gz: bool = True
) -> tuple[Path, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    suffix = ".gz" if gz else ""
    write = gzip.compress if gz else bytes
    image_file = folder / f"{prefix}-images-idx3-ubyte{suffix}"
    label_file = folder / f"{prefix}-labels-idx1-ubyte{suffix}"
    image_file.write_bytes(write(idx_bytes(IMAGES_MAGIC, images)))
    label_file.write_bytes(write(idx_bytes(LABELS_MAGIC, labels)))
    return image_file, label_file


def tiny(count: int = 6, side: int = 28) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (count, side, side), dtype=np.uint8), np.arange(count, dtype=np.uint8) % 10


def load(path: Path | str, **options):
    return load_mnist_idx(str(path), channels=1, size=(28, 28), limit=None, seed=0, **options)


class TestMnistIdxContract(DatasetContract):
    name = "mnist-idx"
    plugin = plugin
    size = (28, 28)

    def path(self, tmp_path: Path) -> str:
        write_pair(tmp_path / "mnist", *tiny(12))
        return str(tmp_path / "mnist")


@pytest.mark.parametrize("gz", [True, False])
def test_reads_back_exactly_gzipped_or_not(tmp_path: Path, gz: bool) -> None:
    images, labels = tiny()
    image_file, _ = write_pair(tmp_path, images, labels, gz=gz)
    loaded = load(image_file)
    assert loaded.images.dtype == np.uint8 and loaded.images.shape == (6, 1, 28, 28)
    assert np.array_equal(loaded.images[:, 0], images)
    assert loaded.annotations["label"].dtype == np.int64
    assert np.array_equal(loaded.annotations["label"], labels)


def test_folder_with_two_pairs_needs_a_prefix(tmp_path: Path) -> None:
    write_pair(tmp_path, *tiny(4), prefix="train")
    write_pair(tmp_path, *tiny(2), prefix="t10k")
    with pytest.raises(DataError, match="prefix"):
        load(tmp_path)
    assert len(load(tmp_path, prefix="t10k")) == 2


def test_resize_and_transpose(tmp_path: Path) -> None:
    images, labels = tiny(3, side=8)
    image_file, _ = write_pair(tmp_path, images, labels)
    assert load_mnist_idx(str(image_file), channels=1, size=(16, 16), limit=None, seed=0).images.shape == (3, 1, 16, 16)
    transposed = load_mnist_idx(str(image_file), channels=1, size=(8, 8), limit=None, seed=0, transpose=True)
    assert np.array_equal(transposed.images[:, 0], images.transpose(0, 2, 1))


def test_detects_idx_files_and_folders_only(tmp_path: Path) -> None:
    image_file, label_file = write_pair(tmp_path / "mnist", *tiny())
    (tmp_path / "other.png").write_bytes(b"\x89PNG not really")
    assert is_idx(str(image_file)) and is_idx(str(tmp_path / "mnist"))
    assert not is_idx(str(label_file)) and not is_idx(str(tmp_path / "other.png")) and not is_idx(str(tmp_path))


def test_swapped_files_are_named_with_the_magic_numbers(tmp_path: Path) -> None:
    image_file, label_file = write_pair(tmp_path, *tiny())
    with pytest.raises(DataError, match=r"magic number is 2049, expected 2051 .*swapped") as info:
        load(label_file, labels=str(image_file))
    assert str(label_file) in str(info.value)


def test_truncated_file_says_so(tmp_path: Path) -> None:
    image_file, _ = write_pair(tmp_path, *tiny(), gz=False)
    image_file.write_bytes(image_file.read_bytes()[:-100])
    with pytest.raises(DataError, match="truncated") as info:
        load(image_file)
    assert str(image_file) in str(info.value)


def test_count_mismatch_names_both_files(tmp_path: Path) -> None:
    images, labels = tiny(6)
    image_file, label_file = write_pair(tmp_path, images, labels)
    label_file.write_bytes(gzip.compress(idx_bytes(LABELS_MAGIC, labels[:4])))
    with pytest.raises(DataError, match="6 images.*4 labels") as info:
        load(image_file)
    assert str(image_file) in str(info.value) and str(label_file) in str(info.value)


def test_labels_out_of_range(tmp_path: Path) -> None:
    images, labels = tiny(3)
    _, label_file = write_pair(tmp_path, images, np.array([1, 12, 3], np.uint8))
    with pytest.raises(DataError, match="outside 0-9") as info:
        load(tmp_path)
    assert str(label_file) in str(info.value)


def test_missing_labels_file(tmp_path: Path) -> None:
    image_file, label_file = write_pair(tmp_path, *tiny())
    label_file.unlink()
    with pytest.raises(DataError, match="options.labels"):
        load(image_file)
