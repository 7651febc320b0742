"""The ``kaggle-h5`` dataset: the Kaggle "eye-gaze" ``gaze.h5`` / ``real_gaze.h5`` files.

Many SimGAN ports train on these two files. Both hold a group ``image`` of
(35, 55) uint8 datasets; ``gaze.h5`` (UnityEyes renders) also has ``look_vec``
(N, 3) and ``path`` (N,). Images are read in the order of their names
(numerically when every name is a number), which is the order of ``look_vec``.

``look_vec`` is in UnityEyes' camera frame (y up); ``gaze`` converts it to this
plugin's MPIIGaze convention (see :mod:`refinekit_eyes.gaze`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import h5py
import numpy as np

from refinekit.data.image_set import ImageSet
from refinekit.errors import DataError
from refinekit_eyes.gaze import unityeyes_look_vec_to_gaze, vector_to_pitch_yaw
from refinekit_eyes.loading import (
    SkipBad,
    check_flag,
    choose,
    fit_image,
    reject_unknown_options,
    require_path,
)

NAME = "kaggle-h5"
HINT = "is this the Kaggle gaze.h5 or real_gaze.h5 (group 'image' of (35, 55) uint8 images)?"
OPTIONS = ("skip_bad",)
HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"


def load_kaggle_h5(
    path: str | None,
    *,
    channels: int,
    size: tuple[int, int],
    limit: int | None,
    seed: int,
    skip_bad: bool = False,
    **unknown: Any,
) -> ImageSet:
    """Load ``gaze.h5`` (with gaze) or ``real_gaze.h5`` (images only).

    Args:
        path: the .h5 file.
        channels: 1, or 3 (gray repeated).
        size: (H, W) of the output images.
        limit: keep at most this many images, chosen at random under ``seed``.
        seed: picks the subset when ``limit`` is set.
        skip_bad: skip (and count) malformed image datasets instead of stopping at the first.
    """
    reject_unknown_options(NAME, unknown, OPTIONS)
    skip = SkipBad(NAME, HINT, check_flag(NAME, "skip_bad", skip_bad))
    file = require_path(NAME, path, "a gaze.h5 or real_gaze.h5 file")
    try:
        with h5py.File(file, "r") as h5:
            return _read(h5, file, channels, size, limit, seed, skip)
    except OSError as exc:
        raise DataError(f"{NAME}: {file} is not a readable HDF5 file ({exc}); {HINT}") from None


def is_kaggle_h5(path: str) -> bool:
    """An HDF5 file (signature at byte 0, so not a MATLAB v7.3 file) with a group ``image``."""
    candidate = Path(path)
    if not candidate.is_file():
        return False
    try:
        with open(candidate, "rb") as handle:
            if handle.read(8) != HDF5_SIGNATURE:
                return False
        with h5py.File(candidate, "r") as h5:
            return isinstance(h5.get("image"), h5py.Group)
    except OSError:
        return False


def _read(
    h5: h5py.File, file: Path, channels: int, size: tuple[int, int], limit: int | None, seed: int, skip: SkipBad
) -> ImageSet:
    group = h5.get("image")
    if not isinstance(group, h5py.Group):
        raise DataError(f"{NAME}: {file} has no group 'image'; {HINT}")
    names = sorted(group.keys(), key=lambda n: (int(n), n) if n.isdigit() else (1 << 62, n))
    if not names:
        raise DataError(f"{NAME}: {file} has an empty group 'image'; {HINT}")
    look_vec = _look_vec(h5, file, len(names))
    keep = choose(len(names), limit, seed)
    images, rows = [], []
    for index in keep:
        try:
            item = group[names[index]]
        except (KeyError, OSError):  # a soft or external link to nothing: h5py cannot open the member
            problem = "is a link to nothing (a dangling soft or external link)"
        else:
            image = np.asarray(item) if isinstance(item, h5py.Dataset) else None
            problem = _problem(image)
        if problem is None and look_vec is not None and not np.isfinite(look_vec[index]).all():
            problem = f"has a NaN or infinite 'look_vec' (row {index}: {look_vec[index].tolist()})"
        elif problem is None and look_vec is not None and not np.linalg.norm(look_vec[index]) > 0:
            problem = f"has a zero 'look_vec' (row {index}), which gives no gaze direction"
        if problem:
            skip.bad(f"{file.name}:image/{names[index]}", problem)
            continue
        chw = image[None] if image.ndim == 2 else image.transpose(2, 0, 1)
        images.append(fit_image(np.ascontiguousarray(chw), NAME, channels, size))
        rows.append(index)
    skip.finish(total=len(keep), kept=len(images), where=str(file))
    annotations = {}
    if look_vec is not None:
        gaze = unityeyes_look_vec_to_gaze(look_vec[rows])
        annotations = {"gaze": gaze.astype(np.float32), "pitch_yaw": vector_to_pitch_yaw(gaze).astype(np.float32)}
    return ImageSet(np.stack(images), annotations, source=f"kaggle-h5 {file} ({len(images)} images)")


def _look_vec(h5: h5py.File, file: Path, count: int) -> np.ndarray | None:
    if "look_vec" not in h5:
        return None
    values = np.asarray(h5["look_vec"])
    if values.dtype.kind not in "fiu" or values.ndim != 2 or values.shape[1] < 3 or len(values) != count:
        raise DataError(
            f"{NAME}: {file} has 'look_vec' of {values.dtype} {values.shape}, expected numbers ({count}, 3), "
            "one row per image; fix or remove 'look_vec'"
        )
    return values[:, :3].astype(np.float64)


def _problem(image: np.ndarray | None) -> str | None:
    """Why an 'image' member is not a usable (H, W) or (H, W, 1|3) uint8 image, or None."""
    if image is None:
        return "is not a dataset"
    if image.dtype != np.uint8:
        return f"is {image.dtype}, expected uint8"
    if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] not in (1, 3)):
        return f"has shape {image.shape}, expected (H, W) or (H, W, 1|3)"
    if 0 in image.shape[:2]:
        return f"has shape {image.shape}: an image of no pixels"
    return None
