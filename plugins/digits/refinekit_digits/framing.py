"""MNIST-style framing: every digit source puts its digit in the same place.

MNIST fits each digit into a 20x20 box and centres it in a 28x28 frame. If the
synthetic and the real digits were framed differently, a discriminator could
tell them apart by position and size alone, and the refiner would learn to move
digits instead of changing their look; so every loader in this plugin frames
digits the same way, at any working size.
"""

from __future__ import annotations

import numpy as np

from refinekit.data.image_set import resize_uint8

BOX_FRACTION = 20 / 28
"""The fraction of the frame that the digit box spans, as in MNIST (20 of 28 pixels)."""


def digit_box(size: tuple[int, int]) -> tuple[int, int]:
    """The (height, width) of the box a digit is fitted into for a frame of ``size``.

    Examples:
        >>> digit_box((28, 28))
        (20, 20)
        >>> digit_box((56, 40))
        (40, 29)
    """
    height, width = size
    return max(1, round(height * BOX_FRACTION)), max(1, round(width * BOX_FRACTION))


def frame_digits(images: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize whole-box digits (N, C, h, w) uint8 into the digit box, then pad them centred to ``size``.

    The inputs are digits that already fill their own box, as the sklearn and
    USPS digits do; upsampling is bilinear (see the README for why not bicubic).

    Examples:
        >>> frame_digits(np.full((2, 1, 8, 8), 255, np.uint8), (28, 28)).shape
        (2, 1, 28, 28)
    """
    box_h, box_w = digit_box(size)
    boxed = resize_uint8(images, (box_h, box_w))
    framed = np.zeros((len(images), images.shape[1], *size), dtype=np.uint8)
    top, left = (size[0] - box_h) // 2, (size[1] - box_w) // 2
    framed[:, :, top : top + box_h, left : left + box_w] = boxed
    return framed
