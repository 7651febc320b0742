"""Labelled digits as a class-per-folder tree: ``root/3/any-name.png`` is a 3.

This is the layout people get from exporting, scanning or drawing their own
digits, and the one torchvision's ``ImageFolder`` reads. For images without
labels, refinekit's own ``image-folder`` loader is the one to use.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from refinekit.data.image_set import ImageSet, resize_uint8
from refinekit.errors import DataError
from refinekit_digits.digit_sets import NUM_CLASSES, limit_index, make_image_set

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".pgm", ".ppm", ".webp"})
CLASS_NAMES = frozenset(str(d) for d in range(NUM_CLASSES))


def _is_image(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES


def _visible(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if not p.name.startswith("."))


def list_class_images(root: Path) -> list[tuple[Path, int]]:
    """Every (image file, label) under ``root``'s digit folders, sorted for a stable order.

    Raises:
        DataError: ``root`` is missing, a subfolder is not named 0-9, an image
            sits outside the class folders, or there are no images at all.
    """
    if not root.is_dir():
        raise DataError(f"digit-class-folders: {root} is not a folder; pass the root of a root/0 ... root/9 tree")
    entries = _visible(root)
    stray = next((p for p in entries if _is_image(p)), None)
    if stray is not None:
        raise DataError(
            f"digit-class-folders: {stray} is outside the class folders, so it has no label; "
            f"move it into {root}/<digit>/"
        )
    found: list[tuple[Path, int]] = []
    for folder in (p for p in entries if p.is_dir()):
        if folder.name not in CLASS_NAMES:
            raise DataError(
                f"digit-class-folders: {folder} is not a class folder; folders under {root} must be named 0 to 9 "
                "(the digit they hold); move other folders elsewhere"
            )
        found.extend((p, int(folder.name)) for p in folder.rglob("*") if _is_image(p))
    if not found:
        raise DataError(
            f"digit-class-folders: no images under {root}/0 ... {root}/9 "
            f"(looked for {', '.join(sorted(IMAGE_SUFFIXES))})"
        )
    return sorted(found)


def read_gray(path: Path) -> np.ndarray:
    """One image file as uint8 (H, W) grayscale.

    Transparency is composited onto white, as refinekit's ``image-folder``
    does, so one file reads the same through either loader.
    """
    try:
        with Image.open(path) as image:
            if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
                image = image.convert("RGBA")
                image = Image.alpha_composite(Image.new("RGBA", image.size, (255, 255, 255, 255)), image)
            return np.asarray(image.convert("L"))
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise DataError(f"digit-class-folders: {path} is not a readable image ({exc}); delete or replace it") from None


def is_digit_class_folders(path: str) -> bool:
    """Whether ``path`` is a folder whose subfolders are all named 0-9 and hold at least one image."""
    root = Path(path)
    if not root.is_dir():
        return False
    folders = [p for p in _visible(root) if p.is_dir()]
    return (
        bool(folders)
        and all(p.name in CLASS_NAMES for p in folders)
        and any(_is_image(f) for p in folders for f in p.rglob("*"))
    )


def load_digit_class_folders(
    path: str | None,
    *,
    channels: int = 1,
    size: tuple[int, int] = (28, 28),
    limit: int | None = None,
    seed: int = 0,
    invert: bool = False,
) -> ImageSet:
    """The ``digit-class-folders`` dataset: images from ``path/<digit>/``, labelled by their folder.

    Images are read as grayscale and resized to ``size`` as they are (no
    reframing: the loader cannot know where in a photo the digit is).

    Args:
        path: the root folder holding ``0/`` ... ``9/``.
        channels: 1, or 3 to repeat the gray image into RGB.
        size: (height, width) of every image.
        limit: keep at most this many images (a seeded random subset).
        seed: seeds the ``limit`` subset.
        invert: turn dark ink on light paper into light ink on black, the
            convention of MNIST, USPS and every other source here.

    Raises:
        DataError: a badly named folder, a stray or unreadable image, or no images.
    """
    if path is None:
        raise DataError("digit-class-folders reads files: pass the root folder (holding 0/ ... 9/) as the path")
    files = list_class_images(Path(path))
    keep = limit_index(len(files), limit, seed)
    if keep is not None:  # choose before reading, so a limit also saves the reading
        files = [files[i] for i in keep]
    arrays = [read_gray(file) for file, _ in files]
    by_shape: dict[tuple[int, int], list[int]] = defaultdict(list)
    for i, array in enumerate(arrays):
        by_shape[array.shape].append(i)
    images = np.empty((len(files), 1, *size), dtype=np.uint8)
    for index in by_shape.values():  # one batched resize per distinct input size
        images[index] = resize_uint8(np.stack([arrays[i] for i in index])[:, None], tuple(size))
    if invert:
        images = 255 - images
    labels = np.array([label for _, label in files], dtype=np.int64)
    return make_image_set(
        images,
        labels,
        channels=channels,
        limit=None,
        seed=seed,
        source=f"digit-class-folders: {path} ({len(files)} images)",
    )
