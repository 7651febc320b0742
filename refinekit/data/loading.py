"""Turn a dataset entry of the config into an :class:`ImageSet` of the working shape."""

from __future__ import annotations

import inspect
import warnings
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from refinekit.config import DatasetConfig, ImageConfig
from refinekit.data.file_tree import refuse_special
from refinekit.data.image_set import ImageSet, resize_uint8
from refinekit.errors import DataError, PluginError, RefinekitError
from refinekit.plugins.registry import get_dataset, get_registry


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
        detect = entry.detect if entry else None
        if detect is None:
            continue
        tried.append(name)
        try:
            found = detect(path)
        except KeyboardInterrupt:
            raise
        except BaseException as exc:  # one plugin's crashing detector must not break another plugin's run
            from refinekit.plugins.registry import PluginWarning, _describe

            warnings.warn(
                f"dataset '{name}' of plugin '{entry.plugin}' ({registry._origin(entry.plugin)}) crashed while "
                f"checking whether it reads {path} ({_describe(exc)}); it was skipped. A detector should return "
                "False for files it does not read: report this to the plugin's author.",
                PluginWarning,
                stacklevel=2,
            )
            continue
        if found:
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
    images = call_loader(config.name, config.path, channels=image.channels, size=size, limit=config.limit,
                         seed=seed, options=options)
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


def call_loader(
    name: str, path: str | None, *, channels: int, size: tuple[int, int], limit: int | None, seed: int,
    options: dict[str, Any],
) -> Any:
    """Call dataset loader ``name``, telling the user's mistakes (options it does not take) from the loader's own.

    A loader reports a bad file with a :class:`DataError`; any other exception
    escaping it is the plugin's bug and becomes a :class:`PluginError` naming the
    plugin and its distribution, not an error about the user's options.
    """
    from refinekit.plugins.registry import _describe

    registry = get_registry()
    entry = get_dataset(name)
    arguments = dict(channels=channels, size=size, limit=limit, seed=seed, **options)
    try:
        inspect.signature(entry.factory).bind(path, **arguments)
    except TypeError as exc:
        raise DataError(f"dataset '{name}' rejected its options {sorted(options)}: {exc}") from None
    except ValueError:  # no signature to check (a builtin): call it and see
        pass
    try:
        return entry.factory(path, **arguments)
    except (RefinekitError, KeyboardInterrupt):
        raise
    except Exception as exc:
        raise PluginError(
            f"dataset '{name}' of plugin '{entry.plugin}' ({registry._origin(entry.plugin)}) crashed reading {path} "
            f"({_describe(exc)}). A loader should say what is wrong with a file; this is a bug in that plugin: "
            "report it to its author (if the file is damaged, replacing it may get you going meanwhile)"
        ) from exc
