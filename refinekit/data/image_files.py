"""Reading image files into uint8 arrays, with errors that name the file.

Any PIL-readable format works. 16-bit, palette and alpha images are converted
explicitly (not by PIL's defaults, which clip 16-bit data to white).
"""

from __future__ import annotations

import os
import stat
import warnings
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image, UnidentifiedImageError

from refinekit.data.file_tree import Folder, describe_skipped, has_suffix, walk_folder
from refinekit.errors import DataError

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".pgm", ".ppm"})


def list_images(folder: Path, what: str = "image-folder") -> list[Path]:
    """Image files under ``folder`` (recursively, :func:`refinekit.data.file_tree.walk_folder` order).

    Only regular files are listed; named pipes, sockets, devices, dangling
    symlinks and unlistable folders are never opened, and a warning lists them.
    """
    if not folder.exists():
        raise DataError(f"{what}: {folder} does not exist; check the path")
    if not folder.is_dir():
        raise DataError(f"{what}: {folder} is not a folder of images")
    found: list[Path] = []
    skipped: list[tuple[str, str]] = []
    for part in walk_folder(folder):
        base = folder / part.prefix if part.prefix else folder
        found.extend(base / name for name in part.files if has_suffix(name, IMAGE_SUFFIXES))
        skipped.extend(skipped_images(part))
    if skipped:
        warnings.warn(describe_skipped(folder, skipped), stacklevel=2)
    if not found:
        raise DataError(
            f"{what}: {folder} holds no images (looked for {', '.join(sorted(IMAGE_SUFFIXES))}); check the path"
        )
    return found


def skipped_images(part: Folder) -> list[tuple[str, str]]:
    """What a reader of images skips in ``part`` and should say so: image names that are not regular
    files, and folders that cannot be listed."""
    return [(name, why) for name, why in part.others if why.startswith("is a folder") or has_suffix(name, IMAGE_SUFFIXES)]


def open_regular(path: Path) -> BinaryIO:
    """Open ``path`` for reading if it is a regular file; a named pipe is never waited on.

    The open itself does not block (O_NONBLOCK), and the check is on the opened
    descriptor, so a file swapped for a FIFO after the folder was listed is refused too.
    """
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise UnreadableImageError(
                path, "not a regular file: a named pipe, device or socket is never read",
                "replace it with an image file or move it out of the folder",
            )
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


class UnreadableImageError(DataError):
    """An image file that exists but cannot be decoded; ``path`` and ``reason`` let callers give their own advice."""

    def __init__(self, path: Path, reason: str, advice: str = "delete or replace the file") -> None:
        super().__init__(f"{path}: not a readable image ({reason}); {advice}")
        self.path, self.reason = path, reason


def read_image(path: Path, channels: int, size: tuple[int, int] | None = None) -> np.ndarray:
    """One image as uint8 (channels, H, W), resized to ``size`` (H, W) when given."""
    try:
        with open_regular(path) as file, Image.open(file) as img:
            img.load()
            array = _to_uint8(img, channels, size)
    except FileNotFoundError:
        raise DataError(f"{path}: file does not exist") from None
    except PermissionError:
        raise DataError(f"{path}: permission denied; make the file readable (chmod +r)") from None
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError, SyntaxError, ValueError) as exc:
        raise UnreadableImageError(path, str(exc)) from None
    return array


def _to_uint8(img: Image.Image, channels: int, size: tuple[int, int] | None) -> np.ndarray:
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        # PIL opens 16-bit PNG, TIFF and PGM as I;16 or I, scaled to 0..65535. The scale
        # must not depend on the pixels: a dark 16-bit image is dark, not 8-bit.
        data = np.asarray(img, dtype=np.float64)
        img = Image.fromarray(np.clip(np.rint(data * (255.0 / 65535.0)), 0, 255).astype(np.uint8))
    elif img.mode == "F":
        raise ValueError("floating-point images are not supported; save as 8- or 16-bit")
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        img = img.convert("RGBA")
        background = Image.new("RGBA", img.size, (255, 255, 255, 255))
        img = Image.alpha_composite(background, img)
    img = img.convert("L" if channels == 1 else "RGB")
    if size is not None and img.size != (size[1], size[0]):
        shrink = img.size[0] >= size[1] and img.size[1] >= size[0]
        img = img.resize((size[1], size[0]), Image.Resampling.BOX if shrink else Image.Resampling.BILINEAR)
    array = np.asarray(img, dtype=np.uint8)
    array = array[None] if array.ndim == 2 else array.transpose(2, 0, 1)
    return np.ascontiguousarray(array)


def write_image(path: Path, image: np.ndarray) -> None:
    """Write uint8 (C, H, W) as PNG (or any format the suffix names)."""
    array = image[0] if image.shape[0] == 1 else image.transpose(1, 2, 0)
    Image.fromarray(array).save(path)
