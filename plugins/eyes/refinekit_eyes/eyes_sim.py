"""The ``eyes-sim`` dataset: eye patches from the procedural simulator, generated on load.

It is the embedded synthetic default of ``eyes-simgan``. Options are ``count``
(default 20,000), ``equalize`` (default true, as the real MPIIGaze patches are
histogram-equalised), ``camera_size`` (default ``[36, 60]``, MPIIGaze's patch: each
eye is drawn and equalised there, then resized to the working size as the real
patches are; the working size, e.g. ``[35, 55]``, draws at it directly) and any field of
:class:`refinekit_eyes.simulator.SimulatorRanges` as a ``[low, high]`` pair,
e.g. ``--set synthetic.options.pitch=[-20,10]``. ``seed`` fixes every image.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

import torch

from refinekit.data.image_set import ImageSet
from refinekit.errors import DataError
from refinekit_eyes.loading import check_flag, fit_images, refuse_path, reject_unknown_options
from refinekit_eyes.simulator import CAMERA_SIZE, SimulatorRanges, simulate_eyes

NAME = "eyes-sim"
DEFAULT_COUNT = 20_000


def load_eyes_sim(
    path: str | None,
    *,
    channels: int,
    size: tuple[int, int],
    limit: int | None,
    seed: int,
    count: int = DEFAULT_COUNT,
    equalize: bool = True,
    camera_size: Sequence[int] | None = CAMERA_SIZE,
    **ranges: Any,
) -> ImageSet:
    """Render simulated eyes with exact ``gaze``, ``pitch_yaw``, ``iris_centre`` and ``landmarks``.

    Args:
        path: must be None (nothing is read).
        channels: 1, or 3 (gray repeated).
        size: (H, W) of the images returned.
        limit: caps ``count``.
        seed: seeds the simulator.
        count: how many images to render.
        equalize: histogram-equalise each image like the MPIIGaze patches.
        camera_size: (H, W) each eye is drawn and equalised at before the resize to ``size``; None: ``size``.
        **ranges: ``SimulatorRanges`` fields as (low, high) pairs.
    """
    known = SimulatorRanges.names()
    reject_unknown_options(
        NAME, {k: v for k, v in ranges.items() if k not in known}, ("count", "equalize", "camera_size", *known)
    )
    refuse_path(NAME, path, "unityeyes")
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise DataError(f"{NAME}: option 'count' must be a positive whole number, got {count!r}")
    total = count if limit is None else min(count, limit)
    images, labels = simulate_eyes(
        total,
        torch.Generator().manual_seed(seed),
        size,
        simulator_ranges(ranges),
        equalize=check_flag(NAME, "equalize", equalize),
        camera_size=_camera_size(camera_size),
    )
    return ImageSet(
        fit_images(images[:, None].numpy(), NAME, channels, size),
        {key: value.numpy() for key, value in labels.items()},
        source=f"eyes-sim ({total} simulated eyes, seed {seed})",
    )


def simulator_ranges(options: Mapping[str, Any]) -> SimulatorRanges:
    """The ranges that an ``eyes-sim`` dataset's options select (its other options are not ranges), checked."""
    known = SimulatorRanges.names()
    return SimulatorRanges(**{name: _pair(name, value) for name, value in options.items() if name in known})


def _camera_size(value: Any) -> tuple[int, int] | None:
    """The ``camera_size`` option: [H, W] of positive whole numbers (None, from Python: the working size)."""
    if value is None:
        return None
    ok = isinstance(value, (list, tuple)) and len(value) == 2
    if not ok or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in value):
        raise DataError(
            f"{NAME}: option 'camera_size' must be [height, width] in whole pixels (default {list(CAMERA_SIZE)}; "
            f"the working size draws each eye at it directly), got {value!r}"
        )
    return int(value[0]), int(value[1])


def _pair(name: str, value: Any) -> tuple[float, float]:
    """A [low, high] option as floats, with low <= high."""
    ok = isinstance(value, (list, tuple)) and len(value) == 2
    ok = ok and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)
    if not ok or value[0] > value[1]:
        default = dataclasses.asdict(SimulatorRanges())[name]
        raise DataError(
            f"{NAME}: option '{name}' must be a [low, high] pair of numbers with low <= high "
            f"(default {list(default)}), got {value!r}"
        )
    return float(value[0]), float(value[1])
