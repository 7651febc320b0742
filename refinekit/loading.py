"""Turn a dataset entry of the config into an :class:`ImageSet` of the working shape."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from refinekit.config import DatasetConfig, ImageConfig
from refinekit.data import ImageSet, resize_uint8
from refinekit.errors import DataError
from refinekit.file_tree import refuse_special
from refinekit.plugins import get_dataset, get_registry


def detect_dataset(path: str, candidates: Sequence[str], name_option: str = "--set synthetic.name=NAME") -> str:
    """The first dataset in ``candidates`` (then any other) whose ``detect`` accepts ``path``.

    ``name_option`` is how the calling command lets the user name the loader instead.
    """
    if not Path(path).exists():
        raise DataError(f"{path} does not exist; check the path given to --synthetic / --real")
    refuse_special(path, "input")
    registry = get_registry()
    ordered = [*candidates, *(n for n in registry.names("dataset") if n not in candidates)]
    tried = []  # loaders without ``detect`` (e.g. simulators) were never asked, so they are not named below
    for name in ordered:
        entry = registry.entries["dataset"].get(name)
        detect = entry.extra.get("detect") if entry else None
        if detect is None:
            continue
        tried.append(name)
        if detect(path):
            return name
    raise DataError(
        f"{path}: no dataset loader recognises this path (tried {', '.join(tried) or 'none'}). "
        f"Point at a folder of images or a supported file, or name the loader with {name_option}."
    )


def load_dataset(config: DatasetConfig, image: ImageConfig, seed: int, skip_bad: bool = False) -> ImageSet:
    """Call the dataset's loader and check that it delivered the configured image shape."""
    entry = get_dataset(config.name)
    options = dict(config.options)
    if skip_bad:
        options["skip_bad"] = True
    size = (image.height, image.width)
    try:
        images = entry.factory(config.path, channels=image.channels, size=size, limit=config.limit, seed=seed, **options)
    except TypeError as exc:
        raise DataError(f"dataset '{config.name}' rejected its options {sorted(options)}: {exc}") from None
    if not isinstance(images, ImageSet):
        raise DataError(f"dataset '{config.name}' (plugin {entry.plugin}) returned {type(images).__name__}, not ImageSet")
    if config.limit is not None and len(images) > config.limit:
        images = images.subset(np.arange(config.limit))
    if images.shape[0] != image.channels:
        raise DataError(
            f"{images.source}: images have {images.shape[0]} channels but image.channels is {image.channels}"
        )
    if images.shape[1:] != size:
        images = ImageSet(resize_uint8(images.images, size), images.annotations, images.source)
    return images
