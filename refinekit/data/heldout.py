"""The real images that training never sees: chosen by content, so every run agrees on them.

Each image is ranked by a keyed BLAKE2 hash of its pixels and the lowest
``fraction`` are held out. The split depends only on the images and the key:
not on the loader's order, the run's seed or which process asks. Training and
every later ``refinekit evaluate`` of the run therefore rebuild the same split
from ``config.json`` alone, and duplicates of one image land on the same side.

Real sets filmed from a few people hold near twins: the same person a few frames
apart. A random split puts one twin on each side, and the held-out images then
test memory of those people as much as realism. With ``group_by`` whole groups
(every image of one person, say) are ranked by a keyed hash of their annotation
value and held out together.
"""

from __future__ import annotations

import hashlib

import numpy as np

from refinekit.config import HoldoutConfig
from refinekit.data.image_set import ImageSet
from refinekit.errors import DataError


def held_out_mask(images: ImageSet, holdout: HoldoutConfig) -> np.ndarray:
    """True for the images that are held out from training."""
    count = int(len(images) * holdout.fraction)
    if count == 0:
        return np.zeros(len(images), dtype=bool)
    if holdout.group_by is not None:
        return _held_out_groups(images, holdout, count)
    digests = [_digest(image, holdout) for image in images.images]
    ranks = np.argsort(np.array(digests), kind="stable")
    mask = np.zeros(len(images), dtype=bool)
    mask[ranks[:count]] = True
    return mask


def _held_out_groups(images: ImageSet, holdout: HoldoutConfig, count: int) -> np.ndarray:
    """Whole groups in hash order until at least ``count`` images are held out; at least one group stays."""
    values = _group_values(images, holdout.group_by)
    groups, group_of_row = np.unique(values, axis=0, return_inverse=True)
    group_of_row = group_of_row.reshape(-1)  # numpy 2.0 returned it shaped like the input along the axis
    if len(groups) < 2:
        raise DataError(
            f"real_holdout.group_by is {holdout.group_by!r}, but all {len(images)} real images ({images.source}) "
            f"share one value of it, so holding out whole groups would leave nothing to train on; load real images "
            f"of several groups, or remove real_holdout.group_by"
        )
    order = np.argsort(np.array([_digest(group, holdout) for group in groups]), kind="stable")
    held_so_far = np.cumsum(np.bincount(group_of_row, minlength=len(groups))[order])
    enough = int(np.searchsorted(held_so_far, count)) + 1  # the first groups that reach ``count`` images
    return np.isin(group_of_row, order[: min(enough, len(groups) - 1)])


def _group_values(images: ImageSet, name: str) -> np.ndarray:
    if name not in images.annotations:
        carried = ", ".join(sorted(images.annotations)) or "none"
        raise DataError(
            f"real_holdout.group_by is {name!r}, but the real images ({images.source}) carry no {name!r} annotation "
            f"(they carry: {carried}); set real_holdout.group_by to one they carry, or remove it"
        )
    values = np.asarray(images.annotations[name]).reshape(len(images), -1)
    # np.unique cannot sort Python objects along an axis; their text names the group as well
    return values.astype(str) if values.dtype.hasobject else values


def _digest(values: np.ndarray, holdout: HoldoutConfig) -> bytes:
    """A keyed hash of an image's pixels (or a group's annotation value): the key is the holdout seed."""
    key = holdout.seed.to_bytes(8, "little", signed=True)
    return hashlib.blake2b(np.ascontiguousarray(values).tobytes(), digest_size=8, key=key).digest()


def training_rows(images: ImageSet, holdout: HoldoutConfig) -> np.ndarray:
    """The rows of ``images`` that training may use, in order: a view by index keeps a memory map mapped."""
    return np.flatnonzero(~held_out_mask(images, holdout))


def split_real(images: ImageSet, holdout: HoldoutConfig) -> tuple[ImageSet, ImageSet]:
    """(the images training may use, the held-out ones), each in the loader's order.

    Examples:
        >>> images = ImageSet(np.arange(10, dtype=np.uint8).reshape(10, 1, 1, 1))
        >>> train, held = split_real(images, HoldoutConfig(fraction=0.2, seed=0))
        >>> len(train), len(held)
        (8, 2)
    """
    mask = held_out_mask(images, holdout)
    if not mask.any():
        return images, images.subset(np.flatnonzero(mask))
    train, held = images.subset(np.flatnonzero(~mask)), images.subset(np.flatnonzero(mask))
    train.source = f"{images.source}, less {len(held)} held out"
    held.source = f"{images.source}, the {len(held)} held out from training"
    return train, held
