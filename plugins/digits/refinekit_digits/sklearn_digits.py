"""The default real digits: scikit-learn's bundled 1,797 handwritten digits (UCI optdigits test set).

They ship inside scikit-learn, so a run needs no download. Each is an 8x8
image of 4x4 block counts (0-16) of a 32x32 bitmap that was already
size-normalised, so the digit fills its 8x8 box. To meet the other sources at
28x28 the counts are scaled 0..16 -> 0..255 and the 8x8 box is upsampled
bilinearly to the 20x20 MNIST digit box and padded to 28x28 (see :mod:`framing`).

Bilinear, not bicubic: the 8x8 values are block averages, and bilinear
interpolation between them stays inside their range. Bicubic overshoots by up
to a fifth of the range on these digits (-55..305 for 0..255), and clipping
that back turns soft strokes into flat saturated plateaus with dark dips, an
artefact the real digits never had; a discriminator would learn it as a sign
of "real" and the refiner would learn to paint it.

The images are split once, stratified by class, with a fixed ``split_seed``
that does not follow the run's seed: the test split must stay the same
images whatever seed a refiner or classifier is trained with, or a run with
another seed would train on some of another run's test images.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from refinekit.data.image_set import ImageSet
from refinekit.errors import DataError
from refinekit_digits.digit_sets import make_image_set
from refinekit_digits.framing import frame_digits

Split = Literal["train", "test", "all"]

SKLEARN_MAX = 16
"""The largest value in the 8x8 images: a fully inked 4x4 block."""


def split_indices(
    labels: np.ndarray, split: Split, test_fraction: float = 0.25, split_seed: int = 0
) -> np.ndarray:
    """Sorted indices of ``split``: a stratified, seeded train/test partition of ``labels``.

    Examples:
        >>> labels = np.repeat(np.arange(10), 8)
        >>> train, test = split_indices(labels, "train"), split_indices(labels, "test")
        >>> len(train) + len(test) == len(labels), set(train) & set(test)
        (True, set())
    """
    if split == "all":
        return np.arange(len(labels))
    if split not in ("train", "test"):
        raise DataError(f"sklearn-digits: split must be 'train', 'test' or 'all', got {split!r}")
    if not 0 < test_fraction < 1:
        raise DataError(f"sklearn-digits: test_fraction must be between 0 and 1, got {test_fraction}")
    from sklearn.model_selection import train_test_split  # lazy: importing scikit-learn takes seconds

    train, test = train_test_split(
        np.arange(len(labels)), test_size=test_fraction, random_state=split_seed, stratify=labels
    )
    return np.sort(train if split == "train" else test)


def load_sklearn_digits(
    path: str | None,
    *,
    channels: int = 1,
    size: tuple[int, int] = (28, 28),
    limit: int | None = None,
    seed: int = 0,
    split: Split = "train",
    test_fraction: float = 0.25,
    split_seed: int = 0,
) -> ImageSet:
    """The ``sklearn-digits`` dataset: one split of scikit-learn's digits, framed like MNIST, with labels.

    Args:
        path: must be None; the digits ship with scikit-learn.
        channels: 1, or 3 to repeat the gray image into RGB.
        size: (height, width) of every image.
        limit: keep at most this many images (a seeded random subset of the split).
        seed: seeds the ``limit`` subset only, never the split.
        split: ``"train"`` (75 %, for the refiner's real side and for
            training classifiers), ``"test"`` (25 %, held out for evaluation
            only) or ``"all"``.
        test_fraction: the share of each class in the test split.
        split_seed: fixes the partition; keep the default so every run holds out the same images.

    Raises:
        DataError: a path was given or an option is invalid.
    """
    if path is not None:
        raise DataError(
            f"sklearn-digits reads the digits bundled with scikit-learn, not a path, but got {path!r}; "
            "drop 'real.path', or read your files with mnist-idx, usps-h5 or digit-class-folders"
        )
    from sklearn.datasets import load_digits  # lazy: every refinekit command loads this plugin

    bunch = load_digits()
    index = split_indices(bunch.target, split, test_fraction, split_seed)
    counts = np.asarray(bunch.images[index], dtype=np.float32)[:, None]
    gray = np.clip(np.rint(counts * (255 / SKLEARN_MAX)), 0, 255).astype(np.uint8)
    source = f"sklearn-digits: {split} split ({len(index)} of {len(bunch.target)} digits, split_seed {split_seed})"
    return make_image_set(
        frame_digits(gray, tuple(size)),
        bunch.target[index],
        channels=channels,
        limit=limit,
        seed=seed,
        source=source,
    )
