"""The ``mpiigaze`` dataset: MPIIGaze ``Data/Normalized`` eye patches with gaze and head pose.

``path`` may be one ``pXX/dayYY.mat`` file, one person's folder ``pXX/``, the
``Data/Normalized`` tree, or the MPIIGaze root holding ``Data/Normalized``.
MATLAB v5 files are read with scipy; v7.3 (HDF5) files with h5py.

Choices, stated because they change what a model learns:

* The 36x60 patches are area-resized as a whole to ``size`` (35x55 by default),
  not cropped: the paper resizes its images to 55x35, and the Kaggle
  ``real_gaze.h5`` patches used by SimGAN ports show the same full field of view.
* Eyes are kept as stored: left and right eyes are not mirrored, since a refiner
  must see real eyes as they are. ``flip_right=true`` mirrors right eyes (image,
  gaze x and head-pose rotation vector) for the single-eye models of Zhang et al.
* ``gaze`` is the file's normalised-camera gaze vector, already in this plugin's
  convention (see :mod:`refinekit_eyes.gaze`); ``head_pose`` is the file's
  ``pose`` (a Rodrigues rotation vector).

Annotations: ``gaze`` (N, 3), ``pitch_yaw`` (N, 2), ``head_pose`` (N, 3), ``eye``
(0 left, 1 right), ``person`` (the XX of pXX, -1 if the folder is named otherwise),
``day`` (YY of dayYY.mat or -1) and ``frame`` (the number in the file name, e.g. 123
for 0123.jpg, or -1).

The option ``evaluation_list`` selects MPIIGaze's "Evaluation Subset": either the
folder of ``pXX.txt`` lists (each loaded person's list is looked up by name) or one
list file, which then applies to every loaded file. Lines read ``day01/0123.jpg left``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import scipy.io

from refinekit.data.image_set import ImageSet
from refinekit.errors import DataError
from refinekit_eyes.gaze import vector_to_pitch_yaw
from refinekit_eyes.loading import (
    BadFile,
    SkipBad,
    check_flag,
    choose,
    fit_images,
    reject_unknown_options,
    require_path,
)

NAME = "mpiigaze"
HINT = "is this an MPIIGaze Data/Normalized file (struct 'data' with 'left' and 'right', plus 'filenames')?"
OPTIONS = ("skip_bad", "evaluation_list", "flip_right")
EYES = ("left", "right")
HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"

Selection = set[tuple[str, str, str]]  # (dayYY, file name, eye)


@dataclass
class EyeArrays:
    """One eye's arrays from one .mat file."""

    image: np.ndarray  # (N, H, W) uint8
    gaze: np.ndarray  # (N, 3)
    pose: np.ndarray  # (N, 3)


@dataclass
class DayFile:
    """One ``dayYY.mat``: both eyes and the frame file names."""

    left: EyeArrays
    right: EyeArrays
    filenames: list[str]


def load_mpiigaze(
    path: str | None,
    *,
    channels: int,
    size: tuple[int, int],
    limit: int | None,
    seed: int,
    skip_bad: bool = False,
    evaluation_list: str | None = None,
    flip_right: bool = False,
    **unknown: Any,
) -> ImageSet:
    """Load MPIIGaze normalised eye patches.

    Args:
        path: a ``dayYY.mat`` file, a ``pXX`` folder, ``Data/Normalized`` or the MPIIGaze root.
        channels: 1, or 3 (gray repeated).
        size: (H, W) of the patches.
        limit: keep at most this many samples, chosen at random under ``seed``.
        seed: picks the subset when ``limit`` is set.
        skip_bad: skip (and count) unreadable .mat files instead of stopping at the first.
        evaluation_list: MPIIGaze's evaluation-subset folder of ``pXX.txt``, or one such file.
        flip_right: mirror right-eye samples so every sample looks like a left eye.
    """
    reject_unknown_options(NAME, unknown, OPTIONS)
    skip = SkipBad(NAME, HINT, check_flag(NAME, "skip_bad", skip_bad))
    flip = check_flag(NAME, "flip_right", flip_right)
    root = require_path(NAME, path, "an MPIIGaze .mat file or Data/Normalized folder")
    files = find_mat_files(root)
    lists = read_evaluation_lists(Path(evaluation_list)) if evaluation_list is not None else None

    parts: list[tuple[np.ndarray, dict[str, np.ndarray]]] = []
    for file in files:
        name = _display_name(file, root)
        try:
            day_file = read_day_file(file)
        except BadFile as bad:
            skip.bad(name, bad.reason)
            continue
        selection = _selection_for(file, lists) if lists is not None else None
        parts.extend(_samples(day_file, file, selection, flip))
    skip.finish(total=len(files), kept=len(files) - len(skip.skipped), where=str(root))

    images = np.concatenate([p[0] for p in parts]) if parts else np.empty((0, 36, 60), np.uint8)
    if len(images) == 0:
        chosen = f" with the evaluation list {evaluation_list}" if evaluation_list is not None else ""
        raise DataError(f"{NAME}: no samples in {root}{chosen}; check that the list names days and files of this data")
    annotations = {key: np.concatenate([p[1][key] for p in parts]) for key in parts[0][1]}
    keep = choose(len(images), limit, seed)
    images = fit_images(images[keep][:, None], NAME, channels, size)
    annotations = {key: value[keep] for key, value in annotations.items()}
    return ImageSet(images, annotations, source=f"mpiigaze {root} ({len(images)} images)")


def find_mat_files(root: Path) -> list[Path]:
    """The .mat files that ``root`` designates, sorted."""
    if root.is_file():
        return [root]
    if (root / "Data" / "Normalized").is_dir():
        root = root / "Data" / "Normalized"
    files = sorted(root.glob("*.mat")) or sorted(root.glob("*/*.mat"))
    if not files:
        raise DataError(f"{NAME}: {root} holds no .mat files (looked in it and its pXX folders); {HINT}")
    return files


def read_day_file(file: Path) -> DayFile:
    """Read one MPIIGaze normalised .mat (v5 or v7.3); raises :class:`BadFile` on a wrong layout."""
    try:
        with open(file, "rb") as handle:
            head = handle.read(520)
    except OSError as exc:
        raise BadFile(f"cannot be read ({exc.strerror})") from None
    if len(head) < 128:
        raise BadFile(f"is truncated ({len(head)} bytes)")
    day_file = _read_v73(file) if head[512:520] == HDF5_SIGNATURE else _read_v5(file)
    count = len(day_file.filenames)
    for eye in EYES:
        arrays: EyeArrays = getattr(day_file, eye)
        if arrays.image.dtype != np.uint8 or arrays.image.ndim != 3:
            raise BadFile(
                f"has 'data.{eye}.image' of {arrays.image.dtype} {arrays.image.shape}, expected uint8 (N, 36, 60)"
            )
        for field, values in (("image", arrays.image), ("gaze", arrays.gaze), ("pose", arrays.pose)):
            if len(values) != count:
                raise BadFile(f"has {len(values)} rows in 'data.{eye}.{field}' but {count} 'filenames'")
    return day_file


def read_evaluation_lists(path: Path) -> dict[str | None, Selection]:
    """Evaluation-subset lists: ``{person: selection}`` for a folder, ``{None: selection}`` for one file."""
    if not path.exists():
        raise DataError(f"{NAME}: evaluation_list {path} does not exist; pass the folder of pXX.txt files or one file")
    if path.is_file():
        return {None: _read_list(path)}
    files = sorted(path.glob("p*.txt"))
    if not files:
        raise DataError(f"{NAME}: evaluation_list folder {path} holds no pXX.txt files")
    return {file.stem: _read_list(file) for file in files}


def is_mpiigaze(path: str) -> bool:
    """A .mat file, or a folder with .mat files in it, in ``pXX`` folders or under ``Data/Normalized``."""
    candidate = Path(path)
    if candidate.is_file():
        return candidate.suffix.lower() == ".mat"
    if (candidate / "Data" / "Normalized").is_dir():
        return True
    return candidate.is_dir() and (any(candidate.glob("*.mat")) or any(candidate.glob("p*/*.mat")))


def _read_v5(file: Path) -> DayFile:
    try:
        mat = scipy.io.loadmat(str(file), struct_as_record=False, squeeze_me=True)
    except Exception as exc:  # scipy raises many unrelated types for a damaged file; all mean "unreadable"
        raise BadFile(f"is not a readable MATLAB file ({type(exc).__name__}: {exc})") from None
    data = _member(mat, "data", "data")
    eyes = []
    for eye in EYES:
        struct = _member(data, eye, f"data.{eye}")
        fields = [np.asarray(_member(struct, f, f"data.{eye}.{f}")) for f in ("image", "gaze", "pose")]
        eyes.append(_eye_arrays(*fields, eye))
    filenames = [str(name) for name in np.atleast_1d(_member(mat, "filenames", "filenames"))]
    return DayFile(eyes[0], eyes[1], filenames)


def _read_v73(file: Path) -> DayFile:
    try:
        with h5py.File(file, "r") as mat:
            eyes = []
            for eye in EYES:
                # MATLAB stores arrays column-major, so HDF5 sees every axis reversed.
                fields = [np.asarray(_h5_member(mat, f"data/{eye}/{f}")).T for f in ("image", "gaze", "pose")]
                eyes.append(_eye_arrays(*fields, eye))
            refs = np.asarray(_h5_member(mat, "filenames")).ravel()
            filenames = ["".join(map(chr, np.asarray(mat[ref]).ravel())) for ref in refs]
    except OSError as exc:
        raise BadFile(f"is not a readable MATLAB v7.3 file ({exc})") from None
    return DayFile(eyes[0], eyes[1], filenames)


def _eye_arrays(image: np.ndarray, gaze: np.ndarray, pose: np.ndarray, eye: str) -> EyeArrays:
    """Undo squeeze_me for a single-sample file and check that gaze and pose are numeric triples."""
    if image.ndim == 2:
        image = image[None]
    vectors = []
    for field, values in (("gaze", gaze), ("pose", pose)):
        if values.dtype.kind not in "fiu" or values.size % 3:
            raise BadFile(f"has 'data.{eye}.{field}' of {values.dtype} {values.shape}, expected numbers (N, 3)")
        rows = values.reshape(-1, 3).astype(np.float32)
        bad = np.flatnonzero(~np.isfinite(rows).all(axis=1))
        if len(bad):
            raise BadFile(f"has NaN or infinity in 'data.{eye}.{field}' row {bad[0]} ({rows[bad[0]].tolist()})")
        vectors.append(rows)
    return EyeArrays(image, vectors[0], vectors[1])


def _member(container: Any, name: str, dotted: str) -> Any:
    if isinstance(container, dict):
        if name in container:
            return container[name]
    elif name in getattr(container, "_fieldnames", ()):
        return getattr(container, name)
    raise BadFile(f"has no '{dotted}'")


def _h5_member(mat: h5py.File, name: str) -> Any:
    if name not in mat:
        raise BadFile(f"has no '{name.replace('/', '.')}'")
    return mat[name]


def _samples(
    day_file: DayFile, file: Path, selection: Selection | None, flip_right: bool
) -> list[tuple[np.ndarray, dict[str, np.ndarray]]]:
    person = _number(r"p(\d+)", file.parent.name)
    day = _number(r"day(\d+)", file.stem)
    frames = np.array([_number(r"(\d+)", Path(name).stem) for name in day_file.filenames], dtype=np.int64)
    out = []
    for eye_index, eye in enumerate(EYES):
        arrays: EyeArrays = getattr(day_file, eye)
        keep = np.ones(len(frames), dtype=bool)
        if selection is not None:
            keep = np.array([(file.stem, name, eye) in selection for name in day_file.filenames], dtype=bool)
        images, gaze, pose = arrays.image[keep], arrays.gaze[keep], arrays.pose[keep]
        if flip_right and eye == "right":
            # Mirroring x flips gaze x; an axial rotation vector (rx, ry, rz) becomes (rx, -ry, -rz).
            images = images[:, :, ::-1]
            gaze = gaze * np.array([-1, 1, 1], np.float32)
            pose = pose * np.array([1, -1, -1], np.float32)
        n = int(keep.sum())
        out.append(
            (
                images,
                {
                    "gaze": gaze,
                    "pitch_yaw": vector_to_pitch_yaw(gaze).astype(np.float32),
                    "head_pose": pose,
                    "eye": np.full(n, eye_index, dtype=np.int64),
                    "person": np.full(n, person, dtype=np.int64),
                    "day": np.full(n, day, dtype=np.int64),
                    "frame": frames[keep],
                },
            )
        )
    return out


def _selection_for(file: Path, lists: dict[str | None, Selection]) -> Selection:
    if None in lists:
        return lists[None]
    person = file.parent.name
    if person not in lists:
        raise DataError(
            f"{NAME}: the evaluation_list folder has no {person}.txt for {person}/{file.name}; "
            "pass the folder holding every loaded person's list, or a single list file"
        )
    return lists[person]


def _read_list(path: Path) -> Selection:
    selection: Selection = set()
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{NAME}: cannot read evaluation list {path} ({exc})") from None
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        parts = line.split()
        day, _, name = parts[0].partition("/") if parts else ("", "", "")
        if len(parts) != 2 or not name or parts[1] not in EYES:
            raise DataError(
                f"{NAME}: evaluation list {path} line {number} is {line.strip()!r}; "
                "expected 'dayYY/NNNN.jpg left|right'"
            )
        selection.add((day, name, parts[1]))
    return selection


def _display_name(file: Path, root: Path) -> str:
    if root.is_file():
        return str(file)
    return str(file.relative_to(root)) if file.is_relative_to(root) else str(file)


def _number(pattern: str, text: str) -> int:
    match = re.fullmatch(pattern, text)
    return int(match.group(1)) if match else -1
