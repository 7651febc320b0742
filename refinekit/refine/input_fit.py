"""How ``refinekit refine`` brings an input image to what the refiner works on: its channels and its size.

Colour images are not turned gray, nor gray images coloured, unless asked
(``--convert-channels``); an RGB file whose three channels are equal is gray
and passes as it is.

A refiner is trained at one size, so every input must reach that size, but
each way of getting there changes the image, and so the meaning of any pixel
coordinates annotated on it. Nothing is resized unless asked (``--resize``):

- ``refuse`` (the default): stop with an error that names the file and its size.
- ``stretch``: scale each side on its own; the aspect ratio changes.
- ``pad``: scale to fit inside, keeping the aspect ratio; the edge pixels fill the rest.
- ``crop``: scale to cover, keeping the aspect ratio; the middle is kept.

:func:`coordinate_map` says where a pixel coordinate of the input lands in the output.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from refinekit.data.image_files import read_image
from refinekit.data.image_set import resize_uint8, to_grayscale_uint8
from refinekit.errors import DataError

RESIZE_MODES = ("refuse", "stretch", "pad", "crop")
_GRAY_MODES = frozenset({"1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "F"})


@dataclass(frozen=True)
class CoordinateMap:
    """``x' = x * scale_x + offset_x`` and ``y' = y * scale_y + offset_y``, in pixels of the output."""

    scale_x: float
    scale_y: float
    offset_x: float
    offset_y: float

    def describe(self) -> str:
        """The map as a person would apply it, e.g. ``x' = x * 0.5 + 0, y' = y * 0.5 + 4``."""
        return (
            f"x' = x * {self.scale_x:.4g} + {self.offset_x:.4g}, "
            f"y' = y * {self.scale_y:.4g} + {self.offset_y:.4g}"
        )


def _scaled_size(found: tuple[int, int], size: tuple[int, int], mode: str) -> tuple[int, int]:
    (h, w), (height, width) = found, size
    if mode == "stretch":
        return height, width
    pick = min if mode == "pad" else max
    scale = pick(height / h, width / w)
    if mode == "pad":
        return max(1, min(height, round(h * scale))), max(1, min(width, round(w * scale)))
    return max(height, math.ceil(h * scale - 1e-9)), max(width, math.ceil(w * scale - 1e-9))


def coordinate_map(found: tuple[int, int], size: tuple[int, int], mode: str) -> CoordinateMap:
    """Where a point of an image of ``found`` (H, W) lands after :func:`fit_to_size` to ``size`` (H, W).

    Examples:
        >>> coordinate_map((480, 640), (35, 55), "stretch").describe()
        "x' = x * 0.08594 + 0, y' = y * 0.07292 + 0"
        >>> coordinate_map((70, 70), (35, 55), "pad").describe()
        "x' = x * 0.5 + 10, y' = y * 0.5 + 0"
    """
    if mode not in RESIZE_MODES[1:]:
        raise ValueError(f"no coordinate map for resize mode {mode!r}")
    (h, w), (height, width) = found, size
    scaled_h, scaled_w = _scaled_size(found, size, mode)
    return CoordinateMap(
        scaled_w / w, scaled_h / h, float((width - scaled_w) // 2 if mode == "pad" else -((scaled_w - width) // 2)),
        float((height - scaled_h) // 2 if mode == "pad" else -((scaled_h - height) // 2)),
    )


def fit_to_size(image: np.ndarray, size: tuple[int, int], mode: str, where: str) -> np.ndarray:
    """uint8 (C, h, w) -> (C, H, W) at ``size`` by ``mode``; ``where`` names the image in the ``refuse`` error.

    Examples:
        >>> fit_to_size(np.zeros((1, 70, 70), np.uint8), (35, 55), "pad", "a.png").shape
        (1, 35, 55)
    """
    found = (int(image.shape[-2]), int(image.shape[-1]))
    if found == tuple(size):
        return image
    if mode == "refuse":
        raise DataError(
            f"{where} is {found[0]}x{found[1]} (HxW) but the refiner works at {size[0]}x{size[1]}; "
            "pass --resize stretch (aspect ratio changes), pad (fit inside, edges repeated) or crop "
            "(cover, centre kept) to bring it there; pixel coordinates in annotations are not rescaled"
        )
    if mode not in RESIZE_MODES:
        raise DataError(f"--resize {mode!r} is not one of {', '.join(RESIZE_MODES)}")
    scaled_h, scaled_w = _scaled_size(found, size, mode)
    scaled = resize_uint8(np.require(image[None], requirements="W"), (scaled_h, scaled_w))[0]  # PIL's are read-only
    height, width = size
    if mode == "pad":
        top, left = (height - scaled_h) // 2, (width - scaled_w) // 2
        pads = ((0, 0), (top, height - scaled_h - top), (left, width - scaled_w - left))
        return np.pad(scaled, pads, mode="edge")
    if mode == "crop":
        top, left = (scaled_h - height) // 2, (scaled_w - width) // 2
        return np.ascontiguousarray(scaled[:, top : top + height, left : left + width])
    return scaled


def match_channels(image: np.ndarray, channels: int, convert: bool, where: str) -> np.ndarray:
    """uint8 (C, h, w) with the refiner's ``channels``: unchanged, or converted only when ``convert``.

    Examples:
        >>> match_channels(np.zeros((3, 2, 2), np.uint8), 1, False, "a.png").shape  # equal channels: gray
        (1, 2, 2)
    """
    have = image.shape[0]
    if have == channels:
        return image
    if have == 3 and channels == 1:
        if (image[0] == image[1]).all() and (image[1] == image[2]).all():
            return image[:1]
        if convert:
            return to_grayscale_uint8(image[None])[0]
        raise DataError(
            f"{where} is a colour image but the refiner refines 1-channel (gray) images; pass "
            "--convert-channels to convert it by luma (ITU-R 601), or use a refiner trained on colour images"
        )
    if have == 1 and channels == 3:
        if convert:
            return np.repeat(image, 3, axis=0)
        raise DataError(
            f"{where} is a gray image but the refiner refines 3-channel (RGB) images; pass "
            "--convert-channels to copy it into three channels, or use a refiner trained on gray images"
        )
    raise DataError(f"{where} has {have} channels but the refiner refines {channels}-channel images")


def read_native(path: Path, channels: int) -> np.ndarray:
    """One image file as uint8 (C, h, w) at its own size: gray, or RGB when stored in colour.

    For refiners of other than 1 or 3 channels the file is read at ``channels``, as training reads it.
    """
    if channels not in (1, 3):
        return read_image(path, channels)
    try:
        with Image.open(path) as img:  # the header only: is it stored as gray?
            gray = img.mode in _GRAY_MODES
    except (OSError, ValueError, SyntaxError):
        gray = channels == 1  # read_image raises the error that names the file
    return read_image(path, 1 if gray else 3)


def fit_image(
    image: np.ndarray, channels: int, size: tuple[int, int], resize: str, convert_channels: bool, where: str
) -> np.ndarray:
    """uint8 (C, h, w) -> (channels, H, W) at ``size``, converted and resized only as asked.

    Args:
        image: as :func:`read_native` gives it.
        channels: the refiner's channels.
        size: the refiner's working (H, W).
        resize: one of :data:`RESIZE_MODES`.
        convert_channels: convert colour to gray (or gray to colour) instead of refusing.
        where: the image's name, for errors.
    """
    return fit_to_size(match_channels(image, channels, convert_channels, where), size, resize, where)
