"""The last step every digits loader shares: checked labels, a seeded limit, the channel count."""

from __future__ import annotations

import numpy as np

from refinekit.data.image_set import ImageSet
from refinekit.errors import DataError

NUM_CLASSES = 10


def check_labels(labels: np.ndarray, where: str, field: str) -> np.ndarray:
    """``labels`` as int64 after checking they are digits 0-9.

    Args:
        labels: one integer label per image.
        where: the file or folder the labels came from, for the error message.
        field: the field, dataset or folder inside ``where`` that holds them.

    Raises:
        DataError: a label is not an integer in 0..9 (EMNIST letters, or a
            1-based labelling such as USPS's original 1..10, would be caught here).
    """
    labels = np.asarray(labels)
    if labels.size and not np.all(np.equal(np.mod(labels, 1), 0)):
        raise DataError(f"{where}: {field} holds non-integer labels; expected digit classes 0-9")
    labels = labels.astype(np.int64).reshape(-1)
    bad = labels[(labels < 0) | (labels >= NUM_CLASSES)]
    if bad.size:
        raise DataError(
            f"{where}: {field} has {bad.size} labels outside 0-9 (e.g. {int(bad[0])}); "
            "this plugin reads digit classes 0-9 only, so relabel the data or use a loader without labels"
        )
    return labels


def limit_index(count: int, limit: int | None, seed: int) -> np.ndarray | None:
    """Sorted indices of a seeded random subset of ``limit`` out of ``count`` items, or None to keep all.

    Random rather than the first ``limit``, because digit files are often
    sorted by class and the first 500 images would then all be zeros.
    """
    if limit is None or limit >= count:
        return None
    return np.sort(np.random.default_rng(seed).choice(count, size=limit, replace=False))


def make_image_set(
    images: np.ndarray,
    labels: np.ndarray,
    *,
    channels: int,
    limit: int | None,
    seed: int,
    source: str,
) -> ImageSet:
    """Wrap grayscale uint8 (N, 1, H, W) digits and their labels as an :class:`ImageSet` with ``channels`` channels.

    ``limit`` keeps a seeded random subset (see :func:`limit_index`).
    """
    keep = limit_index(len(images), limit, seed)
    if keep is not None:
        images = images[keep]
        labels = labels[keep]
    if channels != images.shape[1]:
        images = np.repeat(images[:, :1], channels, axis=1)
    return ImageSet(
        images=np.ascontiguousarray(images),
        annotations={"label": np.asarray(labels, dtype=np.int64)},
        source=source,
    )
