"""Progress without a terminal: one plain line every N seconds, as pip and tqdm print into log files.

``refinekit run`` and ``refinekit refine`` share the cadence and the clock format,
so their log lines read alike. ``REFINEKIT_PROGRESS_SECONDS`` sets the cadence.
"""

from __future__ import annotations

import os

PLAIN_EVERY_SECONDS = 60.0
"""Without a terminal (a log file, CI), one plain progress line this often."""


def plain_every_seconds() -> float:
    """The cadence: ``REFINEKIT_PROGRESS_SECONDS`` if set, else :data:`PLAIN_EVERY_SECONDS`."""
    return float(os.environ.get("REFINEKIT_PROGRESS_SECONDS", PLAIN_EVERY_SECONDS))


def clock(seconds: float) -> str:
    """H:MM:SS, or M:SS under an hour.

    Examples:
        >>> clock(75), clock(3725)
        ('1:15', '1:02:05')
    """
    seconds = max(int(round(seconds)), 0)
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"
