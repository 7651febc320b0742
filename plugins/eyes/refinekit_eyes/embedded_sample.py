"""The ``mpiigaze-sample`` dataset: 1,500 real MPIIGaze eye patches shipped with the plugin.

It makes ``refinekit run eyes-simgan`` work with no download. The patches are
36x60, histogram-equalised, unlabelled; they are area-resized as a whole to
``size`` exactly as the ``mpiigaze`` loader does. Licence: CC BY-NC-SA 4.0
(non-commercial), see ``data/LICENSE-DATA.md``.
"""

from __future__ import annotations

from importlib import resources
from typing import Any

import numpy as np

from refinekit.data.image_set import ImageSet
from refinekit.errors import DataError
from refinekit_eyes.loading import choose, fit_images, refuse_path, reject_unknown_options

NAME = "mpiigaze-sample"
RESOURCE = "mpiigaze-real-eyes-1500.npz"


def load_mpiigaze_sample(
    path: str | None,
    *,
    channels: int,
    size: tuple[int, int],
    limit: int | None,
    seed: int,
    **unknown: Any,
) -> ImageSet:
    """The embedded real eye patches (no labels).

    Args:
        path: must be None; use ``mpiigaze`` to read MPIIGaze files.
        channels: 1, or 3 (gray repeated).
        size: (H, W) of the output patches.
        limit: keep at most this many, chosen at random under ``seed``.
        seed: picks the subset when ``limit`` is set.
    """
    reject_unknown_options(NAME, unknown, ())
    refuse_path(NAME, path, "mpiigaze")
    images = read_embedded_patches()
    keep = choose(len(images), limit, seed)
    return ImageSet(
        fit_images(images[keep][:, None], NAME, channels, size),
        {},
        source=f"mpiigaze-sample (embedded, {len(keep)} real MPIIGaze patches, CC BY-NC-SA 4.0)",
    )


def read_embedded_patches() -> np.ndarray:
    """The (1500, 36, 60) uint8 patches from the package data."""
    resource = resources.files("refinekit_eyes") / "data" / RESOURCE
    try:
        with resource.open("rb") as handle, np.load(handle) as archive:
            return np.asarray(archive["images"])
    except (OSError, KeyError, ValueError) as exc:
        raise DataError(
            f"{NAME}: the embedded file {RESOURCE} is missing or damaged ({exc}); reinstall refinekit-eyes"
        ) from None
