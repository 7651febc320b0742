"""USPS digits in the common single-file HDF5 layout.

The file holds ``train/data`` (7,291 x 256) and ``train/target`` (7,291),
``test/data`` (2,007 x 256) and ``test/target`` (2,007): each row is a 16x16
image flattened row by row, as floats in [0, 1] with white ink on black. The
digits fill their 16x16 box, so they are framed like MNIST (see :mod:`framing`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import h5py
import numpy as np

from refinekit.data.image_set import ImageSet
from refinekit.errors import DataError
from refinekit_digits.digit_sets import check_labels, make_image_set
from refinekit_digits.framing import frame_digits

USPS_SIDE = 16
SPLITS: dict[str, tuple[str, ...]] = {"train": ("train",), "test": ("test",), "all": ("train", "test")}


def _read_split(f: h5py.File, path: Path, group: str) -> tuple[np.ndarray, np.ndarray]:
    """(uint8 images (N, 1, 16, 16), labels (N,)) of one group, after checking names, shapes and ranges."""
    for field in (f"{group}/data", f"{group}/target"):
        if field not in f:
            raise DataError(
                f"usps-h5: {path} has no dataset '{field}'; a USPS h5 file holds "
                "train/data, train/target, test/data and test/target"
            )
    data, target = np.asarray(f[f"{group}/data"]), np.asarray(f[f"{group}/target"])
    if data.ndim == 3 and data.shape[1:] == (USPS_SIDE, USPS_SIDE):
        data = data.reshape(len(data), -1)
    if data.ndim != 2 or data.shape[1] != USPS_SIDE * USPS_SIDE:
        raise DataError(
            f"usps-h5: {path}: '{group}/data' has shape {data.shape}; expected (N, 256), "
            "16x16 images flattened row by row"
        )
    if len(data) != len(target):
        raise DataError(
            f"usps-h5: {path}: '{group}/data' has {len(data)} images but '{group}/target' has {len(target)} labels; "
            "they must have one label per image"
        )
    if data.size and (not np.isfinite(data).all() or data.min() < 0 or data.max() > 1):
        raise DataError(
            f"usps-h5: {path}: '{group}/data' values span [{np.nanmin(data):.3g}, {np.nanmax(data):.3g}]; "
            "expected floats in [0, 1] (if they are the original [-1, 1] USPS values, store (x + 1) / 2)"
        )
    images = np.rint(data * 255).astype(np.uint8).reshape(-1, 1, USPS_SIDE, USPS_SIDE)
    return images, check_labels(target, str(path), f"'{group}/target'")


def is_usps_h5(path: str) -> bool:
    """Whether ``path`` is an HDF5 file with a USPS-style ``train/data`` or ``test/data`` dataset."""
    p = Path(path)
    try:
        if not p.is_file() or not h5py.is_hdf5(p):
            return False
        with h5py.File(p, "r") as f:
            return "train/data" in f or "test/data" in f
    except OSError:  # a truncated or damaged HDF5 file is not ours to read (nor to crash on: other loaders look too)
        return False


def load_usps_h5(
    path: str | None,
    *,
    channels: int = 1,
    size: tuple[int, int] = (28, 28),
    limit: int | None = None,
    seed: int = 0,
    split: Literal["train", "test", "all"] = "train",
) -> ImageSet:
    """The ``usps-h5`` dataset: one split of a USPS h5 file, framed like MNIST, with labels.

    Args:
        path: the ``.h5`` file.
        channels: 1, or 3 to repeat the gray image into RGB.
        size: (height, width) of every image.
        limit: keep at most this many images (a seeded random subset).
        seed: seeds the ``limit`` subset.
        split: ``"train"``, ``"test"`` or ``"all"`` (both, train first).

    Raises:
        DataError: not an HDF5 file, a missing dataset, a wrong shape, values
            outside [0, 1], or labels outside 0-9 or not one per image.
    """
    if path is None:
        raise DataError("usps-h5 reads a file: pass the USPS .h5 file as the dataset path")
    if split not in SPLITS:
        raise DataError(f"usps-h5: split must be one of {sorted(SPLITS)}, got {split!r}")
    p = Path(path)
    if not p.is_file():
        raise DataError(f"usps-h5: {p} does not exist; pass the USPS .h5 file")
    if not h5py.is_hdf5(p):
        raise DataError(f"usps-h5: {p} is not an HDF5 file; pass the USPS .h5 file")
    with h5py.File(p, "r") as f:
        parts = [_read_split(f, p, group) for group in SPLITS[split]]
    images = np.concatenate([images for images, _ in parts])
    labels = np.concatenate([labels for _, labels in parts])
    return make_image_set(
        frame_digits(images, tuple(size)),
        labels,
        channels=channels,
        limit=limit,
        seed=seed,
        source=f"usps-h5: {p} {split} split ({len(images)} images)",
    )
