"""Decode each dataset once into a memory-mapped uint8 cache, so later runs start at once and stream.

Decoding 1.2M PNG files takes minutes and the decoded set (2.3 GB at 35x55) need
not fit in RAM. The first run that uses a dataset writes what its loader
returned, already resized, to ``images.npy``; every later run memory-maps it,
and the trainer samples batches from the map by index (see
:func:`refinekit.data.image_set.fits_on_device`), so memory stays flat however large the set.

Where: ``$REFINEKIT_CACHE_DIR``, else ``$XDG_CACHE_HOME/refinekit/datasets``,
else ``~/.cache/refinekit/datasets``. ``REFINEKIT_CACHE=0`` turns it off. Only
datasets read from a path are cached; generated ones (no path) are the plugin's
business. Delete the folder at any time to reclaim the space.

One entry per dataset *identity*: loader name, its plugin and version, resolved
path, loader options, image size and channels, limit, seed and skip-bad. The
entry also records a *fingerprint* of the input: size and modification time of
the file, or of every file under the folder. A changed input rebuilds the entry
in place, so stale copies do not pile up.

Layout: ``<root>/<loader>-<key>/meta.json``, ``images.npy`` and one
``annotation.<i>.npy`` per annotation. A build writes into a temporary folder
and renames it into place, so a killed build never leaves a half entry; under
torchrun rank 0 builds while the other ranks wait. Each build also removes the
entries of inputs that no longer exist (:func:`prune`).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import warnings
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import numpy as np

from refinekit.config import DatasetConfig, ImageConfig
from refinekit.data.file_tree import walk_folder
from refinekit.data.image_set import ImageSet
from refinekit.data.loading import load_dataset
from refinekit.plugins.registry import get_dataset, get_registry
from refinekit.runtime import distributed

CACHE_VERSION = 1
_WRITE_CHUNK = 16384


def cache_root() -> Path | None:
    """The cache folder, or None when ``REFINEKIT_CACHE=0``."""
    if os.environ.get("REFINEKIT_CACHE", "1").strip().lower() in ("0", "false", "off", "no"):
        return None
    if os.environ.get("REFINEKIT_CACHE_DIR"):
        return Path(os.environ["REFINEKIT_CACHE_DIR"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "refinekit" / "datasets"


def dataset_identity(config: DatasetConfig, image: ImageConfig, seed: int, skip_bad: bool) -> dict[str, Any]:
    """Everything besides the input files that decides what the loader returns."""
    entry = get_dataset(config.name)
    info = get_registry().infos.get(entry.plugin)
    return {
        "cache_version": CACHE_VERSION,
        "loader": config.name,
        "plugin": entry.plugin,
        "plugin_version": info.version if info else "?",
        "path": str(Path(config.path).resolve()) if config.path is not None else None,
        "options": config.options,
        "limit": config.limit,
        "channels": image.channels,
        "size": [image.height, image.width],
        "seed": seed,
        "skip_bad": skip_bad,
    }


def fingerprint(path: Path) -> str:
    """A digest of the size and modification time of ``path``, or of every file under it.

    A folder walk costs a few seconds per million files: far less than decoding them.
    """
    digest = hashlib.sha256()
    path = path.resolve()
    if path.is_file():
        stat = path.stat()
        digest.update(f"{stat.st_size} {stat.st_mtime_ns}".encode())
        return digest.hexdigest()
    for part in walk_folder(path):  # the walk of every image-folder reader, so the same files count
        for name in part.files:
            try:
                stat = os.stat(path / part.prefix / name)
            except OSError:  # removed since the listing: the loader decides what that means
                continue
            # surrogateescape: file names that are not UTF-8 (os.walk decodes them with surrogates) must hash too
            line = f"{part.prefix}{name}\0{stat.st_size} {stat.st_mtime_ns}\n"
            digest.update(line.encode("utf-8", "surrogateescape"))
    return digest.hexdigest()


class DatasetCache:
    """The cache entry of one dataset identity.

    Args:
        root: the cache folder.
        identity: :func:`dataset_identity`.
    """

    def __init__(self, root: Path, identity: dict[str, Any]) -> None:
        self.identity = identity
        key = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:20]
        safe_name = "".join(c if c.isalnum() or c in "-_" else "_" for c in identity["loader"])
        self.folder = root / f"{safe_name}-{key}"

    def open(self, expected_fingerprint: str) -> ImageSet | None:
        """The cached set, memory-mapped, or None when absent or built from other input files."""
        try:
            meta = json.loads((self.folder / "meta.json").read_text())
        except (OSError, json.JSONDecodeError):
            return None
        if meta.get("identity") != self.identity or meta.get("fingerprint") != expected_fingerprint:
            return None
        try:
            images = np.load(self.folder / "images.npy", mmap_mode="r")
            annotations = {
                name: np.load(self.folder / f"annotation.{i}.npy", allow_pickle=False)
                for i, name in enumerate(meta["annotations"])
            }
        except (OSError, ValueError, KeyError):
            return None
        for message in meta.get("warnings", []):  # the same warnings as the run that decoded it
            warnings.warn(message, stacklevel=3)
        return ImageSet(images, annotations, meta["source"])

    def write(self, images: ImageSet, input_fingerprint: str, messages: list[str], progress: bool) -> bool:
        """Store ``images``; False (and a warning) when they cannot be cached, e.g. object annotations."""
        unsupported = [k for k, v in images.annotations.items() if np.asarray(v).dtype.hasobject]
        if unsupported:
            warnings.warn(
                f"{images.source}: not cached, because annotation '{unsupported[0]}' holds Python objects; "
                "it will be decoded again next run. Store annotations as numeric or string arrays to cache it.",
                stacklevel=3,
            )
            return False
        self.folder.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.folder.parent / f".tmp-{self.folder.name}-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        try:
            _write_images(tmp / "images.npy", images.images, images.source, progress)
            for i, value in enumerate(images.annotations.values()):
                np.save(tmp / f"annotation.{i}.npy", np.asarray(value), allow_pickle=False)
            meta = {
                "identity": self.identity,
                "fingerprint": input_fingerprint,
                "source": images.source,
                "count": len(images),
                "shape": list(images.shape),
                "annotations": list(images.annotations),
                "warnings": messages,
            }
            (tmp / "meta.json").write_text(json.dumps(meta, indent=2))
            _replace_folder(tmp, self.folder)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        prune(self.folder.parent)
        return True


def prune(root: Path) -> list[Path]:
    """Remove entries whose input path no longer exists, and leftovers of builds whose process died.

    Run after each build, so entries of deleted datasets (and of tests' temporary
    folders) do not pile up. Returns what was removed.
    """
    removed = []
    for child in root.iterdir() if root.is_dir() else ():
        if child.name.startswith((".tmp-", ".stale-")):
            if not _process_alive(child.name.rsplit("-", 1)[-1]):
                removed.append(child)
            continue
        try:
            path = json.loads((child / "meta.json").read_text())["identity"]["path"]
        except (OSError, ValueError, KeyError, TypeError):
            continue  # not an entry of ours (or being replaced right now): leave it
        if path is not None and not Path(path).exists():
            removed.append(child)
    for child in removed:
        shutil.rmtree(child, ignore_errors=True)
    return removed


def _process_alive(pid: str) -> bool:
    try:
        os.kill(int(pid), 0)
    except (ValueError, ProcessLookupError):
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def _write_images(path: Path, images: np.ndarray, source: str, progress: bool) -> None:
    out = np.lib.format.open_memmap(path, mode="w+", dtype=np.uint8, shape=images.shape)
    bar = _progress_bar() if progress else None
    with bar or nullcontext():
        task = bar.add_task(f"caching {source}", total=len(images)) if bar else None
        for start in range(0, len(images), _WRITE_CHUNK):
            out[start : start + _WRITE_CHUNK] = images[start : start + _WRITE_CHUNK]
            if bar:
                bar.advance(task, min(_WRITE_CHUNK, len(images) - start))
    out.flush()
    del out


def _progress_bar() -> Any:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), console=Console(stderr=True))


def _say(message: str) -> None:
    from rich.console import Console

    Console(stderr=True).print(message, highlight=False, soft_wrap=True, markup=False)


def _replace_folder(tmp: Path, final: Path) -> None:
    """Move ``tmp`` to ``final``; an existing ``final`` (stale, or built concurrently) is replaced."""
    if final.exists():
        stale = final.parent / f".stale-{final.name}-{os.getpid()}"
        try:
            os.replace(final, stale)
        except OSError:
            pass  # another process moved it first
        shutil.rmtree(stale, ignore_errors=True)
    try:
        os.replace(tmp, final)
    except OSError:
        pass  # another process won the race with an equivalent entry; ours is discarded


def load_dataset_cached(
    config: DatasetConfig, image: ImageConfig, seed: int, skip_bad: bool = False, progress: bool = True
) -> ImageSet:
    """:func:`refinekit.data.loading.load_dataset`, through the cache when the dataset is read from a path.

    Under torchrun every rank must call this with the same arguments: rank 0
    decodes and writes while the others wait, then all of them map the same file.

    Args:
        config: the dataset entry of the run's config.
        image: the working image shape.
        seed: the loader's seed.
        skip_bad: skip unreadable files.
        progress: show a progress bar while writing a new entry.
    """
    root = cache_root()
    if root is None or config.path is None or not Path(config.path).exists():
        return load_dataset(config, image, seed, skip_bad)
    entry = DatasetCache(root, dataset_identity(config, image, seed, skip_bad))
    input_fingerprint = fingerprint(Path(config.path))
    topo = distributed.topology()
    if topo.is_main and entry.open(input_fingerprint) is None:
        if progress:
            _say(f"Decoding {config.name} {config.path} once into the cache {entry.folder}; later runs map it.")
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            loaded = load_dataset(config, image, seed, skip_bad)
        messages = [str(w.message) for w in caught]
        for w in caught:  # show them now, as an uncached load would
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
        if not entry.write(loaded, input_fingerprint, messages, progress):
            distributed.barrier()
            return loaded
        del loaded  # from here on the memory map serves the images
        distributed.barrier()
        return _open_quietly(entry, input_fingerprint) or load_dataset(config, image, seed, skip_bad)
    distributed.barrier()
    cached = entry.open(input_fingerprint)
    return cached if cached is not None else load_dataset(config, image, seed, skip_bad)


def _open_quietly(entry: DatasetCache, input_fingerprint: str) -> ImageSet | None:
    """Open an entry just written: its warnings were shown while decoding."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return entry.open(input_fingerprint)
