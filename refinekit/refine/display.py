"""The display of ``refinekit refine``: a live bar on a terminal, plain lines in a log file."""

from __future__ import annotations

import time

from refinekit.runtime.plain_progress import clock, plain_every_seconds


class RefineDisplay:
    """A rich progress bar with images/s (of this run, not counting shards already done).

    Without a terminal (output sent to a file or a pipe) a plain line is printed
    instead, every ``REFINEKIT_PROGRESS_SECONDS`` (60) seconds and at the end, as
    ``refinekit run`` does.
    """

    def __init__(self, done: int, total: int, enabled: bool) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        console = Console(stderr=True)
        self.console = console
        self.plain = enabled and not console.is_terminal
        self.plain_every = plain_every_seconds()
        self.progress = Progress(
            TextColumn("[bold]refine"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[speed]:>12}"),
            TimeRemainingColumn(),
            console=console,
            disable=not enabled or self.plain,
        )
        self.task = self.progress.add_task("refine", total=total, completed=done, speed="")
        self.done, self.total = done, total
        self.done_here = 0
        self.started = time.perf_counter()
        self.last_plain = self.started

    def advance(self, images: int) -> None:
        self.done_here += images
        self.done += images
        elapsed = max(time.perf_counter() - self.started, 1e-9)
        speed = self.done_here / elapsed
        self.progress.update(self.task, advance=images, speed=f"{speed:,.0f} img/s")
        if self.plain and (time.perf_counter() - self.last_plain >= self.plain_every or self.done >= self.total):
            self.last_plain = time.perf_counter()
            left = (self.total - self.done) / speed if speed > 0 else 0.0
            self.console.print(
                f"refine {self.done}/{self.total} ({self.done / max(self.total, 1):.0%}) | {speed:,.0f} img/s | "
                f"elapsed {clock(elapsed)} | ETA {clock(left)}",
                highlight=False,
                markup=False,
                soft_wrap=True,
            )

    def __enter__(self) -> RefineDisplay:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()
