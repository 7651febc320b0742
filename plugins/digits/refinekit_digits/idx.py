"""MNIST-style IDX files: an images file (magic 2051) and a labels file (magic 2049).

The format (http://yann.lecun.com/exdb/mnist/) is a big-endian header (a
magic number whose last byte is the number of dimensions, then each
dimension as a 32-bit integer) followed by unsigned bytes. MNIST, Fashion-
and EMNIST, and QMNIST's compatibility files use it, gzipped or not.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np

from refinekit.data.image_set import ImageSet, resize_uint8
from refinekit.errors import DataError
from refinekit_digits.digit_sets import check_labels, make_image_set

IMAGES_MAGIC = 2051
"""0x00000803: unsigned bytes in 3 dimensions (count, rows, columns)."""

LABELS_MAGIC = 2049
"""0x00000801: unsigned bytes in 1 dimension (count)."""

GZIP_MAGIC = b"\x1f\x8b"


def _open_bytes(path: Path, size: int | None = None) -> bytes:
    """The (decompressed) bytes of ``path``, or its first ``size`` of them; gzip is recognised by content."""
    with open(path, "rb") as raw:
        gzipped = raw.read(2) == GZIP_MAGIC
    opener = gzip.open if gzipped else open
    try:
        with opener(path, "rb") as f:
            return f.read() if size is None else f.read(size)
    except (OSError, EOFError) as exc:
        raise DataError(f"mnist-idx: cannot read {path}: {exc}; the file may be truncated, download it again") from None


def read_magic(path: Path) -> int | None:
    """The IDX magic number of ``path``, or None when it is too short or unreadable to have one."""
    try:
        head = _open_bytes(path, 4)
    except (DataError, OSError):
        return None
    return int.from_bytes(head, "big") if len(head) == 4 else None


def read_idx(path: Path, magic: int, field: str) -> np.ndarray:
    """The uint8 array stored in IDX file ``path``, after checking its magic number and its size.

    Args:
        path: the file, gzipped or not.
        magic: :data:`IMAGES_MAGIC` or :data:`LABELS_MAGIC`.
        field: "images" or "labels", for the messages.

    Raises:
        DataError: wrong magic number, or a header that disagrees with the data size.
    """
    data = _open_bytes(path)
    found = int.from_bytes(data[:4], "big") if len(data) >= 4 else None
    if found != magic:
        other = {IMAGES_MAGIC: "an images file", LABELS_MAGIC: "a labels file"}.get(found or -1)
        hint = f"it looks like {other}; are the images and labels files swapped?" if other else "is it an IDX file?"
        raise DataError(f"mnist-idx: {path}: magic number is {found}, expected {magic} for the {field} file; {hint}")
    ndim = magic & 0xFF
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataError(f"mnist-idx: {path}: the file ends inside its header; it is truncated, download it again")
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    expected = int(np.prod(shape))
    if len(data) - header != expected:
        raise DataError(
            f"mnist-idx: {path}: header says {field} of shape {shape} ({expected} bytes) "
            f"but the file holds {len(data) - header} bytes after the header; it is truncated or not IDX"
        )
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(shape).copy()  # writable, for torch


def find_pair(path: Path, labels: str | None = None, prefix: str | None = None) -> tuple[Path, Path]:
    """The (images, labels) files for ``path``: an images file, or a folder holding one pair.

    The labels file is found by name (``train-images-idx3-ubyte.gz`` ->
    ``train-labels-idx1-ubyte.gz``) unless ``labels`` names it.
    """
    if path.is_dir():
        candidates = sorted(p for p in path.iterdir() if "idx3" in p.name and p.name.startswith(prefix or ""))
        if len(candidates) != 1:
            found = ", ".join(p.name for p in candidates) or "none"
            what = "no" if not candidates else "several"
            raise DataError(
                f"mnist-idx: {path} holds {what} IDX images files (*idx3*{f', prefix {prefix!r}' if prefix else ''}): "
                f"{found}; pass the images file itself, or options.prefix (e.g. 'train' or 't10k') to choose one"
            )
        path = candidates[0]
    if not path.is_file():
        raise DataError(f"mnist-idx: {path} does not exist; pass an IDX images file or the folder that holds it")
    if labels is not None:
        return path, Path(labels)
    labels_path = path.with_name(path.name.replace("images", "labels").replace("idx3", "idx1"))
    if labels_path == path or not labels_path.is_file():
        raise DataError(
            f"mnist-idx: no labels file next to {path} (looked for {labels_path.name}); "
            "pass its path as options.labels"
        )
    return path, labels_path


def is_idx(path: str) -> bool:
    """Whether ``path`` is an IDX images file or a folder with one (for ``--real PATH`` / ``--synthetic PATH``)."""
    p = Path(path)
    files = sorted(q for q in p.iterdir() if "idx3" in q.name) if p.is_dir() else [p]
    return any(q.is_file() and read_magic(q) == IMAGES_MAGIC for q in files)


def load_mnist_idx(
    path: str | None,
    *,
    channels: int = 1,
    size: tuple[int, int] = (28, 28),
    limit: int | None = None,
    seed: int = 0,
    labels: str | None = None,
    prefix: str | None = None,
    transpose: bool = False,
) -> ImageSet:
    """The ``mnist-idx`` dataset: an IDX images + labels pair, resized to ``size`` if needed.

    Args:
        path: the images file, or a folder holding exactly one images file (or one per ``prefix``).
        channels: 1, or 3 to repeat the gray image into RGB.
        size: (height, width); MNIST's 28x28 is already framed as this plugin frames digits.
        limit: keep at most this many images (a seeded random subset).
        seed: seeds the ``limit`` subset.
        labels: the labels file, when its name does not follow the images file's.
        prefix: in a folder with several pairs, the file name prefix to pick (``train``, ``t10k``).
        transpose: swap rows and columns, for EMNIST, whose images are stored transposed.

    Raises:
        DataError: a missing file, a wrong magic number, a truncated file,
            image and label counts that disagree, or labels outside 0-9.
    """
    if path is None:
        raise DataError("mnist-idx reads files: pass the IDX images file or its folder as the dataset path")
    images_path, labels_path = find_pair(Path(path), labels, prefix)
    if not labels_path.is_file():
        raise DataError(f"mnist-idx: labels file {labels_path} does not exist; fix options.labels")
    images = read_idx(images_path, IMAGES_MAGIC, "images")
    label_values = read_idx(labels_path, LABELS_MAGIC, "labels")
    if len(images) != len(label_values):
        raise DataError(
            f"mnist-idx: {images_path} has {len(images)} images but {labels_path} has {len(label_values)} labels; "
            "they must come from the same pair (e.g. both train-* or both t10k-*)"
        )
    gray = images[:, None]
    if transpose:
        gray = gray.transpose(0, 1, 3, 2)
    gray = resize_uint8(np.ascontiguousarray(gray), tuple(size))
    return make_image_set(
        gray,
        check_labels(label_values, str(labels_path), "labels"),
        channels=channels,
        limit=limit,
        seed=seed,
        source=f"mnist-idx: {images_path} ({len(images)} images)",
    )
