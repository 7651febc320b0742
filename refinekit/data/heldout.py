"""The real images that training never sees: chosen by content, so every run agrees on them.

Each image is ranked by a keyed BLAKE2 hash of its pixels and the lowest
``fraction`` are held out. The split depends only on the images and the key:
not on the loader's order, the run's seed or which process asks. Training and
every later ``refinekit evaluate`` of the run therefore rebuild the same split
from ``config.json`` alone, and duplicates of one image land on the same side.
"""

from __future__ import annotations

import hashlib

import numpy as np

from refinekit.config import HoldoutConfig
from refinekit.data.image_set import ImageSet


def held_out_mask(images: np.ndarray, holdout: HoldoutConfig) -> np.ndarray:
    """True for the images that are held out from training."""
    count = int(len(images) * holdout.fraction)
    if count == 0:
        return np.zeros(len(images), dtype=bool)
    key = holdout.seed.to_bytes(8, "little", signed=True)
    digests = [hashlib.blake2b(np.ascontiguousarray(image).tobytes(), digest_size=8, key=key).digest() for image in images]
    ranks = np.argsort(np.array(digests), kind="stable")
    mask = np.zeros(len(images), dtype=bool)
    mask[ranks[:count]] = True
    return mask


def training_rows(images: ImageSet, holdout: HoldoutConfig) -> np.ndarray:
    """The rows of ``images`` that training may use, in order: a view by index keeps a memory map mapped."""
    return np.flatnonzero(~held_out_mask(images.images, holdout))


def split_real(images: ImageSet, holdout: HoldoutConfig) -> tuple[ImageSet, ImageSet]:
    """(the images training may use, the held-out ones), each in the loader's order.

    Examples:
        >>> images = ImageSet(np.arange(10, dtype=np.uint8).reshape(10, 1, 1, 1))
        >>> train, held = split_real(images, HoldoutConfig(fraction=0.2, seed=0))
        >>> len(train), len(held)
        (8, 2)
    """
    mask = held_out_mask(images.images, holdout)
    if not mask.any():
        return images, images.subset(np.flatnonzero(mask))
    train, held = images.subset(np.flatnonzero(~mask)), images.subset(np.flatnonzero(mask))
    train.source = f"{images.source}, less {len(held)} held out"
    held.source = f"{images.source}, the {len(held)} held out from training"
    return train, held
