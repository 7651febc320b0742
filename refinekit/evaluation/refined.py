"""Run images through a refiner the way ``refinekit refine`` does: uint8 in, uint8 out."""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch

from refinekit.data.image_set import to_float, to_uint8

RefineFn = Callable[[torch.Tensor], torch.Tensor]
"""Float (B, C, H, W) in [-1, 1] -> refined float batch, e.g. ``Trainer.refine`` or a loaded refiner."""


@torch.no_grad()
def refine_images(refine: RefineFn, images: np.ndarray, device: torch.device | str, batch_size: int = 256) -> np.ndarray:
    """Refined uint8 (N, C, H, W) images.

    The output is rounded to uint8, as refined images are when saved, so the
    evaluation measures what a user would train on.
    """
    out = np.empty_like(images)
    for start in range(0, len(images), batch_size):
        batch = to_float(torch.from_numpy(np.ascontiguousarray(images[start : start + batch_size])).to(device))
        out[start : start + batch_size] = to_uint8(refine(batch).cpu()).numpy()
    return out
