"""The ``unityeyes`` dataset: a UnityEyes output folder of ``N.jpg`` + ``N.json`` pairs.

Each image is cropped to an eye patch the way MPIIGaze patches are framed, so
synthetic and real eyes have the same layout (the refiner changes texture, not
geometry):

* the box is centred on the centre of the ``interior_margin_2d`` bounding box;
* its width is ``crop_scale`` (default 1.5) times the horizontal distance between
  the eye corners (the left-most and right-most margin points), and its height
  follows the requested size's aspect (35:55 by default).

This is GazeML's UnityEyes framing (Park et al., ETRA 2018) without its random
jitter.

With 1.5 the eye (including the caruncle) spans about 75% of the patch width,
which is how wide eyes are in the MPIIGaze normalised patches (about 45 of 60
pixels); the 1.5-2x range used by other ports frames the eye smaller than the
real data. Boxes that leave the image repeat its edge pixels. Iris-contour points
hidden under an eyelid may fall outside the patch when the eye looks far up or down.

Annotations (float32), all in output-pixel coordinates with the centre of the
top-left pixel at (0, 0):

* ``gaze`` (N, 3): unit vector in the MPIIGaze camera convention
  (see :func:`refinekit_eyes.gaze.unityeyes_look_vec_to_gaze`), ``pitch_yaw`` (N, 2) radians;
* ``landmarks`` (N, 48, 2): the 16 ``interior_margin_2d`` points, then the 32 ``iris_2d`` points;
* ``caruncle`` (N, 7, 2) and ``iris_centre`` (N, 2) (mean of the iris contour);
* ``head_pose_unity`` (N, 3): the file's ``head_pose`` Euler angles in degrees, unchanged
  (Unity's convention, not MPIIGaze's rotation vector, hence the different name).
"""

from __future__ import annotations

import json
import math
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from refinekit.data.image_files import read_image
from refinekit.data.image_set import ImageSet
from refinekit.errors import DataError
from refinekit_eyes.gaze import unityeyes_look_vec_to_gaze, vector_to_pitch_yaw
from refinekit_eyes.loading import (
    BadFile,
    SkipBad,
    check_flag,
    check_positive,
    fit_image,
    reject_unknown_options,
    require_path,
    seeded_order,
)

NAME = "unityeyes"
HINT = "is this a UnityEyes folder (N.jpg + N.json pairs)?"
OPTIONS = ("skip_bad", "crop_scale")
POINT_FIELDS = ("interior_margin_2d", "caruncle_2d", "iris_2d")
_NUMBER = r"\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*"


@dataclass
class UnityEyesRecord:
    """One parsed annotation file; points are source-image pixels, y up as in the file until flipped."""

    margin: np.ndarray  # (16, 2)
    caruncle: np.ndarray  # (7, 2)
    iris: np.ndarray  # (32, 2)
    look_vec: np.ndarray  # (3,), Unity camera frame
    head_pose: np.ndarray  # (3,), degrees


def load_unityeyes(
    path: str | None,
    *,
    channels: int,
    size: tuple[int, int],
    limit: int | None,
    seed: int,
    skip_bad: bool = False,
    crop_scale: float = 1.5,
    **unknown: Any,
) -> ImageSet:
    """Load a UnityEyes folder as cropped eye patches with gaze and landmark annotations.

    Args:
        path: the folder holding ``N.jpg`` and ``N.json`` files.
        channels: 1 (grayscale) or 3 (the rendered colour).
        size: (H, W) of the patches.
        limit: read at most this many pairs, chosen at random under ``seed``.
        seed: picks the subset when ``limit`` is set.
        skip_bad: skip (and count) malformed pairs instead of stopping at the first.
        crop_scale: patch width as a multiple of the eye-corner distance.
    """
    reject_unknown_options(NAME, unknown, OPTIONS)
    skip = SkipBad(NAME, HINT, check_flag(NAME, "skip_bad", skip_bad))
    scale = check_positive(NAME, "crop_scale", crop_scale)
    folder = require_path(NAME, path, "a UnityEyes folder")
    if not folder.is_dir():
        raise DataError(f"{NAME}: {folder} is not a folder; pass the UnityEyes output folder of N.jpg + N.json")
    annotation_files = sorted(folder.glob("*.json"), key=_natural_key)
    if not annotation_files:
        raise DataError(f"{NAME}: {folder} has no N.json files; {HINT}")

    wanted = len(annotation_files) if limit is None else min(limit, len(annotation_files))
    kept: list[tuple[int, np.ndarray, UnityEyesRecord, np.ndarray]] = []
    counts: dict[str, int] | None = None
    for index, json_path in seeded_order(list(enumerate(annotation_files)), seed):
        if len(kept) >= wanted:
            break
        try:
            record = parse_annotation(json_path)
            counts = _check_counts(record, counts)
            image = _read_pair_image(json_path, channels)
            _check_inside(record, image.shape[1], image.shape[2])
        except BadFile as bad:
            skip.bad(json_path.name, bad.reason)
            continue
        record = flip_to_y_down(record, image.shape[1])
        patch, transform = crop_eye(image, record, size, scale)
        kept.append((index, fit_image(patch, NAME, channels, size), record, transform))
    skip.finish(total=len(kept) + len(skip.skipped), kept=len(kept), where=str(folder))
    kept.sort(key=lambda item: item[0])
    return _image_set(kept, folder)


def parse_annotation(json_path: Path) -> UnityEyesRecord:
    """Read one UnityEyes JSON file; raises :class:`BadFile` naming the missing or malformed field."""
    try:
        data = json.loads(json_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise BadFile(f"cannot be read ({exc})") from None
    except json.JSONDecodeError as exc:
        raise BadFile(f"is not valid JSON ({exc.msg} at line {exc.lineno})") from None
    if not isinstance(data, dict):
        raise BadFile("is not a JSON object")
    points = {}
    for name in POINT_FIELDS:
        raw = _field(data, name)
        if not isinstance(raw, list) or not raw:
            raise BadFile(f"has no list of points in '{name}'")
        points[name] = np.array([_numbers(item, name, 3)[:2] for item in raw], dtype=np.float64)
    look_vec = np.array(_numbers(_field(data, "eye_details.look_vec"), "eye_details.look_vec", 4)[:3])
    if not np.linalg.norm(look_vec) > 0:
        raise BadFile("has a zero 'eye_details.look_vec'")
    head_pose = np.array(_numbers(_field(data, "head_pose"), "head_pose", 3))
    return UnityEyesRecord(
        margin=points["interior_margin_2d"],
        caruncle=points["caruncle_2d"],
        iris=points["iris_2d"],
        look_vec=look_vec,
        head_pose=head_pose,
    )


def _check_inside(record: UnityEyesRecord, height: int, width: int) -> None:
    """Refuse points far outside the image: a crop box around them would need unbounded memory.

    An eye at the image border is fine (the crop repeats edge pixels); points
    more than an image size beyond the border are a damaged file.
    """
    for name, points in (("interior_margin_2d", record.margin), ("caruncle_2d", record.caruncle),
                         ("iris_2d", record.iris)):
        if (np.abs(points[:, 0] - width / 2) > 1.5 * width).any() or (np.abs(points[:, 1] - height / 2) > 1.5 * height).any():
            raise BadFile(
                f"has '{name}' points far outside its {width}x{height} image (e.g. {points[np.argmax(np.abs(points).max(axis=1))].tolist()})"
            )


def flip_to_y_down(record: UnityEyesRecord, height: int) -> UnityEyesRecord:
    """UnityEyes measures y from the image bottom; images index rows from the top: y -> height - y."""

    def flip(points: np.ndarray) -> np.ndarray:
        return np.stack([points[:, 0], height - points[:, 1]], axis=1)

    return UnityEyesRecord(
        flip(record.margin), flip(record.caruncle), flip(record.iris), record.look_vec, record.head_pose
    )


def crop_eye(
    image: np.ndarray, record: UnityEyesRecord, size: tuple[int, int], scale: float
) -> tuple[np.ndarray, np.ndarray]:
    """Cut the eye patch out of a (C, H, W) image whose record has y-down points.

    Returns:
        The patch at source resolution, and a (2, 2) array ``[offset, factor]``
        mapping a y-down source point p to output pixels: ``(p - offset) * factor - 0.5``.
    """
    height, width = image.shape[1:]
    low, high = record.margin.min(axis=0), record.margin.max(axis=0)
    centre = (low + high) / 2
    box_w = max(2, round(scale * float(high[0] - low[0])))
    box_h = max(2, round(box_w * size[0] / size[1]))
    x0 = round(float(centre[0]) - box_w / 2)
    y0 = round(float(centre[1]) - box_h / 2)
    rows = np.clip(np.arange(y0, y0 + box_h), 0, height - 1)
    cols = np.clip(np.arange(x0, x0 + box_w), 0, width - 1)
    patch = image[:, rows[:, None], cols[None, :]]
    transform = np.array([[x0, y0], [size[1] / box_w, size[0] / box_h]], dtype=np.float64)
    return patch, transform


def is_unityeyes_folder(path: str) -> bool:
    """A folder holding at least one ``N.json`` with its ``N.jpg`` beside it."""
    if not os.path.isdir(path):
        return False
    with os.scandir(path) as entries:
        for entry in entries:
            if entry.name.endswith(".json") and os.path.isfile(os.path.join(path, entry.name[:-5] + ".jpg")):
                return True
    return False


def _image_set(kept: list[tuple[int, np.ndarray, UnityEyesRecord, np.ndarray]], folder: Path) -> ImageSet:
    images = np.stack([patch for _, patch, _, _ in kept])
    records = [record for _, _, record, _ in kept]
    transforms = [transform for _, _, _, transform in kept]

    def to_output(points: list[np.ndarray]) -> np.ndarray:
        return np.stack([(p - t[0]) * t[1] - 0.5 for p, t in zip(points, transforms, strict=True)]).astype(np.float32)

    landmarks = to_output([np.concatenate([r.margin, r.iris]) for r in records])
    gaze = unityeyes_look_vec_to_gaze(np.stack([r.look_vec for r in records]))
    annotations = {
        "gaze": gaze.astype(np.float32),
        "pitch_yaw": vector_to_pitch_yaw(gaze).astype(np.float32),
        "landmarks": landmarks,
        "iris_centre": to_output([r.iris.mean(axis=0) for r in records]),
        "caruncle": to_output([r.caruncle for r in records]),
        "head_pose_unity": np.stack([r.head_pose for r in records]).astype(np.float32),
    }
    return ImageSet(images, annotations, source=f"unityeyes {folder} ({len(images)} images)")


def _read_pair_image(json_path: Path, channels: int) -> np.ndarray:
    """The JPEG beside ``json_path`` at full size, (1 or 3, H, W) uint8."""
    image_path = json_path.with_suffix(".jpg")
    if not image_path.is_file():
        raise BadFile(f"has no image beside it (expected {image_path.name})")
    try:
        return read_image(image_path, 3 if channels == 3 else 1)
    except DataError as exc:
        raise BadFile(f"has an unreadable image {image_path.name} ({exc})") from None


def _check_counts(record: UnityEyesRecord, expected: dict[str, int] | None) -> dict[str, int]:
    """Every file must have the same number of points, so landmarks stack into one (N, K, 2) array."""
    counts = {
        "interior_margin_2d": len(record.margin),
        "caruncle_2d": len(record.caruncle),
        "iris_2d": len(record.iris),
    }
    if expected is not None:
        for name, count in counts.items():
            if count != expected[name]:
                raise BadFile(f"has {count} '{name}' points, but other files have {expected[name]}")
    return counts


def _field(data: dict[str, Any], dotted: str) -> Any:
    value: Any = data
    for part in dotted.split("."):
        if not isinstance(value, dict) or part not in value:
            raise BadFile(f"has no '{dotted}'")
        value = value[part]
    return value


def _numbers(text: Any, field: str, count: int) -> list[float]:
    """Parse a UnityEyes vector string such as "(371.4855, 296.4230, 8.8595)"."""
    pattern = r"\(" + ",".join([_NUMBER] * count) + r"\)"
    match = re.fullmatch(r"\s*" + pattern + r"\s*", text) if isinstance(text, str) else None
    if match is None:
        raise BadFile(f"has a malformed '{field}' value {text!r} (expected {count} numbers like '(1.0, 2.0, ...)')")
    values = [float(v) for v in match.groups()]
    if not all(math.isfinite(v) for v in values):  # "1e999" matches the pattern but reads as inf
        raise BadFile(f"has an out-of-range number in '{field}' ({text!r})")
    return values


def _natural_key(path: Path) -> tuple[int, str]:
    """Sort 2.json before 10.json, as UnityEyes numbers its output."""
    return (int(path.stem), "") if path.stem.isdigit() else (1 << 62, path.stem)
