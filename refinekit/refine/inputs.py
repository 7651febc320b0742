"""What ``refinekit refine`` reads: any dataset, one batch at a time, at the refiner's working size.

Two kinds of input exist. A folder of images is listed once (names only, as
plain strings, so 1M files cost tens of MB, not a decoded dataset) and each
batch is decoded when it is needed. Every other registered dataset loader
returns a whole :class:`ImageSet`; batches are sliced from its arrays, so a
loader that memory-maps its images streams too.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np
from PIL import Image

from refinekit.components.datasets import read_sidecars
from refinekit.data.file_tree import describe_skipped, has_suffix, refuse_special, walk_folder
from refinekit.data.image_files import IMAGE_SUFFIXES, UnreadableImageError, skipped_images
from refinekit.data.image_set import ImageSet, resize_uint8
from refinekit.errors import DataError
from refinekit.refine.input_fit import fit_image, fit_to_size, read_native

FOLDER_DATASET = "image-folder"


@dataclass
class InputBatch:
    """A run of consecutive inputs, decoded, with what travels with them.

    Args:
        indices: int64 (n,) input index of each kept image.
        images: uint8 (n, C, H, W) at the working size.
        sources: where each kept image came from (a relative file name or ``name[i]``).
        sidecars: per kept image, its JSON sidecar's bytes (or None), for folder inputs.
        fields: numeric annotations, one row per kept image.
        skipped: unreadable inputs left out (only with ``skip_bad``).
    """

    indices: np.ndarray
    images: np.ndarray
    sources: list[str]
    sidecars: list[bytes | None] | None = None
    fields: dict[str, np.ndarray] = field(default_factory=dict)
    skipped: list[dict[str, object]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.indices)


class RefineInput(Protocol):
    """An input of known length that decodes any index range on demand (thread-safe)."""

    dataset: str
    description: str

    def __len__(self) -> int: ...

    def fingerprint(self) -> str:
        """A short hash that changes when the inputs (names, count or shape) change."""
        ...

    def read(self, start: int, stop: int, numeric: bool) -> InputBatch:
        """Inputs ``start:stop``; ``numeric`` also parses annotations into ``fields``."""
        ...


class FolderInput:
    """A folder of image files (recursively, in :func:`refinekit.data.image_files.list_images` order)."""

    dataset = FOLDER_DATASET

    def __init__(
        self,
        folder: Path,
        channels: int,
        size: tuple[int, int],
        skip_bad: bool,
        resize: str = "stretch",
        convert_channels: bool = True,
    ) -> None:
        self.folder = folder
        self.channels = channels
        self.size = size
        self.skip_bad = skip_bad
        # ``refinekit refine`` passes "refuse" and False: see refinekit.refine.input_fit. The defaults read as training does.
        self.resize = resize
        self.convert_channels = convert_channels
        self.resized: list[tuple[str, tuple[int, int]]] = []  # the first image resized, and a count below
        self.resized_count = 0
        self._resized_lock = threading.Lock()
        self.names, self.has_sidecar = _list_names(folder)
        if not self.names:
            raise DataError(
                f"{folder} holds no images (looked for {', '.join(sorted(IMAGE_SUFFIXES))}); check INPUT"
            )
        self.description = f"image-folder {folder} ({len(self.names)} images)"

    def __len__(self) -> int:
        return len(self.names)

    def fingerprint(self) -> str:
        digest = hashlib.sha256()
        for name in self.names:
            digest.update(name.encode("utf-8", "surrogateescape") + b"\0")
        return digest.hexdigest()[:16]

    def first_image_size(self) -> tuple[int, int] | None:
        """(H, W) of the first image, from its header only; None when it cannot be read."""
        try:
            with Image.open(self.folder / self.names[0]) as img:
                return img.size[1], img.size[0]
        except (OSError, ValueError):
            return None

    def read(self, start: int, stop: int, numeric: bool) -> InputBatch:
        kept: list[int] = []
        images: list[np.ndarray] = []
        skipped: list[dict[str, object]] = []
        for index in range(start, stop):
            try:
                native = read_native(self.folder / self.names[index], self.channels)
            except UnreadableImageError as exc:
                if not self.skip_bad:
                    # Not "delete it": that changes the input listing, and OUTPUT could no longer be finished.
                    raise UnreadableImageError(
                        exc.path, exc.reason, "replace it with a readable image and rerun the same command, or rerun "
                        "it with --skip-bad to skip (and list) unreadable files",
                    ) from None
                skipped.append({"index": index, "source": self.names[index], "reason": str(exc)})
                continue
            except DataError as exc:
                if not self.skip_bad:
                    raise DataError(f"{exc}. Pass --skip-bad to skip unreadable files.") from None
                skipped.append({"index": index, "source": self.names[index], "reason": str(exc)})
                continue
            # Outside the try: an image of the wrong size or colour is readable, so --skip-bad does not hide it.
            images.append(
                fit_image(native, self.channels, self.size, self.resize, self.convert_channels, self.names[index])
            )
            kept.append(index)
            if native.shape[1:] != tuple(self.size):
                with self._resized_lock:
                    self.resized_count += 1
                    if not self.resized:
                        self.resized.append((self.names[index], (native.shape[1], native.shape[2])))
        batch = InputBatch(
            indices=np.asarray(kept, dtype=np.int64),
            images=np.stack(images) if images else np.empty((0, self.channels, *self.size), np.uint8),
            sources=[self.names[i] for i in kept],
            skipped=skipped,
        )
        if any(self.has_sidecar[i] for i in kept):
            batch.sidecars = [self._sidecar_bytes(i) for i in kept]
            if numeric:
                # The image-folder loader's own rules, so a shard holds what training would read.
                batch.fields = read_sidecars([self.folder / self.names[i] for i in kept])
        return batch

    def _sidecar_name(self, index: int) -> str:
        return Path(self.names[index]).with_suffix(".json").as_posix()

    def _sidecar_bytes(self, index: int) -> bytes | None:
        if not self.has_sidecar[index]:
            return None
        return (self.folder / self._sidecar_name(index)).read_bytes()


class ArrayInput:
    """The :class:`ImageSet` a dataset loader returned, sliced a batch at a time."""

    def __init__(self, images: ImageSet, dataset: str, size: tuple[int, int], resize: str = "stretch") -> None:
        self.images = images
        self.dataset = dataset
        self.size = size
        self.resize = resize
        self.description = images.source or dataset
        for key, value in images.annotations.items():
            if not isinstance(value, np.ndarray):
                images.annotations[key] = np.asarray(value)

    def __len__(self) -> int:
        return len(self.images)

    def fingerprint(self) -> str:
        described = {
            "source": self.images.source,
            "shape": list(self.images.images.shape),
            "annotations": {k: [str(v.dtype), list(v.shape)] for k, v in sorted(self.images.annotations.items())},
        }
        return hashlib.sha256(json.dumps(described, sort_keys=True).encode()).hexdigest()[:16]

    def read(self, start: int, stop: int, numeric: bool) -> InputBatch:
        # np.asarray on a slice of a memmap reads just these rows from disk.
        images = np.ascontiguousarray(self.images.images[start:stop])
        if self.resize == "stretch":
            images = resize_uint8(images, self.size)
        elif images.shape[2:] != tuple(self.size):
            where = f"dataset '{self.dataset}' image {start}"
            images = np.stack([fit_to_size(image, self.size, self.resize, where) for image in images])
        return InputBatch(
            indices=np.arange(start, stop, dtype=np.int64),
            images=images,
            sources=[f"{self.dataset}[{i}]" for i in range(start, stop)],
            fields={k: np.asarray(v[start:stop]) for k, v in self.images.annotations.items()},
        )


def _list_names(folder: Path) -> tuple[list[str], bytearray]:
    """Relative image names under ``folder`` and whether each has a ``.json`` sidecar.

    The walk of :func:`refinekit.data.image_files.list_images` (the same order, regular
    files only, a warning listing what was skipped) but keeps plain strings
    instead of ``Path`` objects: a tenth of the memory at a million files, and
    sidecars are found from the same listing instead of one ``stat`` per image.
    """
    names: list[str] = []
    has_sidecar = bytearray()
    skipped: list[tuple[str, str]] = []
    for part in walk_folder(folder):
        present = set(part.files)
        for name in part.files:
            if has_suffix(name, IMAGE_SUFFIXES):
                names.append(part.prefix + name)
                has_sidecar.append(os.path.splitext(name)[0] + ".json" in present)
        skipped.extend(skipped_images(part))
    if skipped:
        warnings.warn(describe_skipped(folder, skipped), stacklevel=3)
    return names, has_sidecar


def open_input(
    path: str | os.PathLike[str],
    dataset: str | None,
    channels: int,
    size: tuple[int, int],
    skip_bad: bool,
    refiner: Path,
    resize: str = "stretch",
    convert_channels: bool = True,
) -> FolderInput | ArrayInput:
    """The input at ``path``: streamed from files for an image folder, else via its dataset loader.

    Args:
        path: a folder of images or any path a registered dataset loader detects.
        dataset: the loader's name, to skip detection.
        channels: the refiner's channels; every loader is asked for them.
        size: the refiner's working (H, W); every input is resized to it.
        skip_bad: skip unreadable images instead of stopping.
        refiner: the refiner file, named in channel-mismatch errors.
        resize: how an image not at ``size`` reaches it: one of :data:`refinekit.refine.input_fit.RESIZE_MODES`.
        convert_channels: for image folders, convert colour to gray (or back) instead of refusing.
    """
    from refinekit.data.loading import call_loader, detect_dataset
    from refinekit.plugins.registry import get_dataset

    if not Path(path).exists():
        raise DataError(f"INPUT {path} does not exist; check the path")
    refuse_special(path, "INPUT")
    if Path(path).is_dir() and not any(Path(path).iterdir()):
        raise DataError(f"INPUT {path} is an empty folder; point at a folder of images or a dataset")
    name = dataset or detect_dataset(str(path), (FOLDER_DATASET,), name_option="--dataset NAME")
    if name == FOLDER_DATASET:
        return FolderInput(Path(path), channels, size, skip_bad, resize, convert_channels)
    entry = get_dataset(name)
    options = {"skip_bad": True} if skip_bad else {}
    images = call_loader(name, str(path), channels=channels, size=size, limit=None, seed=0, options=options)
    if not isinstance(images, ImageSet):
        raise DataError(f"dataset '{name}' (plugin {entry.plugin}) returned {type(images).__name__}, not ImageSet")
    if len(images) == 0:
        raise DataError(f"dataset '{name}' found no images in {path}")
    if images.shape[0] != channels:
        raise DataError(
            f"refiner {refiner} refines {channels}-channel images, but dataset '{name}' delivered "
            f"{images.shape[0]}-channel images from {path}; use a refiner trained on {images.shape[0]}-channel images"
        )
    return ArrayInput(images, name, size, resize)
