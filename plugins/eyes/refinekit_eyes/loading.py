"""What every eye loader shares: option checks, ``--skip-bad`` bookkeeping, seeded limits, channels.

Keeping these in one place makes the loaders agree on the wording of their
errors and on what ``limit`` and ``seed`` mean, which users see through the CLI.
"""

from __future__ import annotations

import difflib
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from refinekit.data.image_set import resize_uint8, to_grayscale_uint8
from refinekit.errors import DataError

T = TypeVar("T")


class BadFile(Exception):
    """One input file (or record) is malformed; ``reason`` completes '<file> <reason>'."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class SkipBad:
    """Raises at the first bad file, or (with ``--skip-bad``) counts bad files and warns once.

    Args:
        dataset: the loader's registered name, the first word of every message.
        hint: what to check, e.g. "is this a UnityEyes folder?".
        enabled: the ``skip_bad`` option.
    """

    def __init__(self, dataset: str, hint: str, enabled: bool) -> None:
        self.dataset = dataset
        self.hint = hint
        self.enabled = enabled
        self.skipped: list[str] = []

    def bad(self, name: str, reason: str) -> None:
        """Record file ``name`` as bad, or raise a :class:`DataError` when skipping is off."""
        if not self.enabled:
            raise DataError(f"{self.dataset}: {name} {reason}; {self.hint} Pass --skip-bad to skip such files.")
        self.skipped.append(f"{name}: {reason}")

    def finish(self, total: int, kept: int, where: str) -> None:
        """Warn about skipped files; raise when nothing readable is left."""
        if kept == 0:
            first = f" (first problem: {self.skipped[0]})" if self.skipped else ""
            raise DataError(f"{self.dataset}: no readable samples in {where}{first}; {self.hint}")
        if self.skipped:
            warnings.warn(
                f"{self.dataset}: skipped {len(self.skipped)} of {total} files (first: {self.skipped[0]})",
                UserWarning,
                stacklevel=3,
            )


def reject_unknown_options(dataset: str, unknown: dict[str, Any], known: Sequence[str]) -> None:
    """Raise a :class:`DataError` naming unknown loader options and the closest known ones."""
    if not unknown:
        return
    parts = []
    for name in sorted(unknown):
        close = difflib.get_close_matches(name, list(known), n=1)
        parts.append(f"'{name}'" + (f" (did you mean '{close[0]}'?)" if close else ""))
    raise DataError(f"{dataset}: unknown option {', '.join(parts)}; known options: {', '.join(known) or 'none'}")


def check_flag(dataset: str, name: str, value: Any) -> bool:
    """A boolean option, refusing strings such as "false" that would silently mean True."""
    if not isinstance(value, (bool, np.bool_)):
        raise DataError(f"{dataset}: option '{name}' must be true or false, got {value!r}")
    return bool(value)


def check_positive(dataset: str, name: str, value: Any) -> float:
    """A positive number option."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise DataError(f"{dataset}: option '{name}' must be a positive number, got {value!r}")
    return float(value)


def require_path(dataset: str, path: str | None, what: str) -> Path:
    """``path`` as a Path that exists, or a :class:`DataError` saying what to pass."""
    if path is None:
        raise DataError(f"{dataset} needs a path: pass {what} with --synthetic PATH or --real PATH")
    resolved = Path(path)
    if not resolved.exists():
        raise DataError(f"{dataset}: {path} does not exist; pass {what}")
    return resolved


def refuse_path(dataset: str, path: str | None, instead: str) -> None:
    """Generated and embedded datasets take no path; say which loader reads files instead."""
    if path is not None:
        raise DataError(f"{dataset} is built in and takes no path (got {path}); for files use '{instead}'")


def seeded_order(items: Sequence[T], seed: int) -> list[T]:
    """``items`` in a seeded random order, so a ``limit`` reads a representative, repeatable subset."""
    order = np.random.default_rng(seed).permutation(len(items))
    return [items[i] for i in order]


def choose(count: int, limit: int | None, seed: int) -> np.ndarray:
    """Sorted indices of at most ``limit`` of ``count`` items, chosen at random under ``seed``."""
    if limit is None or limit >= count:
        return np.arange(count)
    return np.sort(np.random.default_rng(seed).choice(count, size=limit, replace=False))


def fit_image(image: np.ndarray, dataset: str, channels: int, size: tuple[int, int]) -> np.ndarray:
    """A (C, H, W) uint8 image with 1 or 3 channels -> (channels, *size) uint8."""
    return fit_images(image[None], dataset, channels, size)[0]


def fit_images(images: np.ndarray, dataset: str, channels: int, size: tuple[int, int]) -> np.ndarray:
    """(N, C, H, W) uint8 -> (N, channels, *size): grayscale or gray-to-RGB, then the core's resize."""
    if channels == 1:
        images = to_grayscale_uint8(images)
    elif channels == 3:
        if images.shape[1] == 1:
            images = np.repeat(images, 3, axis=1)
    else:
        raise DataError(f"{dataset}: eye images have 1 or 3 channels, but image.channels is {channels}")
    return resize_uint8(np.ascontiguousarray(images), tuple(size))
