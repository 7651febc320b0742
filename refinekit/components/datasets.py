"""The generic ``image-folder`` dataset: any folder of images, with optional JSON sidecars."""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from refinekit.data.image_files import IMAGE_SUFFIXES, list_images, read_image
from refinekit.data.image_set import ImageSet
from refinekit.errors import DataError


def load_image_folder(
    path: str | None,
    *,
    channels: int,
    size: tuple[int, int],
    limit: int | None = None,
    seed: int = 0,
    skip_bad: bool = False,
    annotations: bool = True,
) -> ImageSet:
    """Load every image under ``path``, resized to ``size``.

    A sidecar ``name.json`` beside ``name.png`` holding numbers or lists of numbers
    becomes per-image annotations; every image must then have the same keys.

    Args:
        path: the folder.
        channels: 1 (grayscale) or 3 (RGB).
        size: (H, W) to resize to.
        limit: keep the first ``limit`` images (sorted by path).
        seed: unused; loaders share one signature.
        skip_bad: skip unreadable images (with a warning and a count) instead of stopping.
        annotations: read JSON sidecars.
    """
    if path is None:
        raise DataError("image-folder needs a path: pass --synthetic PATH or --real PATH")
    files = list_images(Path(path))
    images: list[np.ndarray] = []
    kept: list[Path] = []
    bad: list[str] = []
    for file in files:
        if limit is not None and len(images) >= limit:
            break
        try:
            images.append(read_image(file, channels, size))
            kept.append(file)
        except DataError as exc:
            if not skip_bad:
                raise DataError(f"{exc}. Pass --skip-bad to skip unreadable files.") from None
            bad.append(str(exc))
    if bad:
        warnings.warn(f"image-folder: skipped {len(bad)} of {len(files)} files (first: {bad[0]})", stacklevel=2)
    if not images:
        raise DataError(f"image-folder: no readable images in {path}")
    sidecars = read_sidecars(kept) if annotations else {}
    return ImageSet(np.stack(images), sidecars, source=f"image-folder {path} ({len(images)} images)")


def read_sidecars(files: list[Path]) -> dict[str, np.ndarray]:
    sidecar_paths = [f.with_suffix(".json") for f in files]
    present = [p.exists() for p in sidecar_paths]
    if not any(present):
        return {}
    if not all(present):
        missing = sidecar_paths[present.index(False)]
        raise DataError(f"image-folder: {missing} is missing, but other images have JSON sidecars; add it or remove all")
    rows: list[dict[str, Any]] = []
    for p in sidecar_paths:
        try:
            row = json.loads(p.read_bytes().decode("utf-8"))
        except UnicodeDecodeError:
            raise DataError(f"{p}: not valid JSON: it is not UTF-8 text; fix or delete the sidecar") from None
        except json.JSONDecodeError as exc:
            raise DataError(f"{p}: not valid JSON ({exc}); fix or delete the sidecar") from None
        if not isinstance(row, dict):
            raise DataError(
                f'{p}: must hold a JSON object such as {{"gaze": [0.1, -0.2]}}, not {type(row).__name__}; '
                "fix or delete the sidecar"
            )
        rows.append(row)
    keys = sorted(rows[0])
    for p, row in zip(sidecar_paths, rows):
        if sorted(row) != keys:
            missing, extra = sorted(set(keys) - set(row)), sorted(set(row) - set(keys))
            raise DataError(
                f"{p}: keys differ from {sidecar_paths[0].name} (missing {missing}, extra {extra}); "
                "every sidecar needs the same keys"
            )
    columns: dict[str, np.ndarray] = {}
    for key in keys:
        values = []
        for p, row in zip(sidecar_paths, rows):
            try:
                value = np.asarray(row[key], dtype=np.float64)
            except (TypeError, ValueError):
                raise DataError(f"{p}: field '{key}' is not numeric ({row[key]!r}); fix or delete the sidecar") from None
            if not np.isfinite(value).all():  # Python's json reads NaN and Infinity; no label is either
                raise DataError(f"{p}: field '{key}' is NaN or infinite ({row[key]!r}); fix or delete the sidecar")
            if values and value.shape != values[0].shape:
                raise DataError(
                    f"{p}: field '{key}' has shape {value.shape}, but in {sidecar_paths[0].name} it has "
                    f"{values[0].shape}; every sidecar needs the same shapes"
                )
            values.append(value)
        columns[key] = np.stack(values)
    return columns


def is_image_folder(path: str) -> bool:
    folder = Path(path)
    return folder.is_dir() and any(p.suffix.lower() in IMAGE_SUFFIXES for p in folder.rglob("*"))
