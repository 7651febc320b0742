"""The display of a training run: data preparation, then phase, step, ETA, images/s and losses.

It reads at 80 columns and in a log file: see :class:`TrainingDisplay`.
"""

from __future__ import annotations

import copy
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from types import TracebackType
from typing import Callable, Iterator

import torch
from rich.console import Console, ConsoleOptions, RenderResult
from rich.live import Live
from rich.text import Text

from refinekit.runtime.plain_progress import clock, plain_every_seconds
from refinekit.training.loop import StepReport, Trainer, TrainResult
from refinekit.training.simgan import refiner_loss


def step_costs(trainer: Trainer, repeats: int = 3) -> tuple[float, float, float]:
    """Rough seconds per step of each phase (R pre-train, D pre-train, adversarial round), timed on copies.

    The phases cost very different amounts: an R update runs R forward and
    backward with its regulariser (through D once adversarial), while a D update
    only runs R forward on half a batch and D, which is far smaller. R's passes
    are its training loss itself, so a regulariser with a network of its own
    (``gaze-consistency``) is paid for. Each pass is timed on one training chunk
    (``trainer.micro_batch`` images) and scaled to the batch, as the trainer runs
    it, so start-up stays short at large CPU batches. The run's own state is
    untouched, torch's random numbers included. The 15% on top pays for data sampling, the optimiser steps,
    samples and checkpoints.
    """
    config = trainer.config
    c, h, w = config.image.channels, config.image.height, config.image.width
    refiner, discriminator = copy.deepcopy(trainer.refiner), copy.deepcopy(trainer.discriminator)
    regularizer = copy.deepcopy(trainer.regularizer)
    chunk = min(trainer.micro_batch, trainer.local_batch)
    chunks_per_batch = trainer.local_batch / chunk
    x = torch.zeros(chunk, c, h, w, device=trainer.device).contiguous(memory_format=trainer.memory_format)

    def timed(passes: Callable[[], torch.Tensor]) -> float:
        timings = []
        for _ in range(repeats + 1):
            start = time.perf_counter()
            with trainer.precision.autocast():
                loss = passes().float().mean()
            loss.backward()
            timings.append(time.perf_counter() - start)
        return min(timings[1:]) * chunks_per_batch * 1.15  # the first call pays one-off allocation costs

    def refiner_passes(critic: torch.nn.Module | None) -> torch.Tensor:
        return refiner_loss(refiner, regularizer, x, discriminator=critic, augment=config.adversarial.augment)[
            "refiner_loss"
        ]

    def discriminator_passes() -> torch.Tensor:
        with torch.no_grad():
            refiner(x[: max(len(x) // 2, 1)])
        return discriminator(torch.cat([x, x]))  # the refined and the real images

    # R's loss augments D's view with torch's generator, which training draws from and the checkpoint saves
    with torch.random.fork_rng(devices=[trainer.device] if trainer.device.type == "cuda" else []):
        refiner_pretrain = timed(lambda: refiner_passes(None))
        refiner_update = timed(lambda: refiner_passes(discriminator))
        discriminator_update = timed(discriminator_passes)
    s = config.schedule
    return refiner_pretrain, discriminator_update, s.k_g * refiner_update + s.k_d * discriminator_update


def _schedule_seconds(trainer: Trainer, costs: tuple[float, float, float], begin: int, end: int) -> float:
    """The estimated seconds of steps ``begin`` to ``end`` (by phase, from :func:`step_costs`)."""
    s = trainer.config.schedule
    bounds = (0, s.refiner_pretrain_steps, s.refiner_pretrain_steps + s.discriminator_pretrain_steps, trainer.total_steps)
    return sum(
        max(min(end, hi) - max(begin, lo), 0) * cost for lo, hi, cost in zip(bounds, bounds[1:], costs)
    )


def estimate_seconds(trainer: Trainer, repeats: int = 3) -> float:
    """Rough wall time of the rest of the schedule (see :func:`step_costs`)."""
    return _schedule_seconds(trainer, step_costs(trainer, repeats), trainer.step, trainer.total_steps)


def _duration(seconds: float) -> str:
    """A rough duration in the unit a person would say it in.

    Examples:
        >>> _duration(396), _duration(578_000)
        ('6.6 min', '160.6 h')
    """
    minutes = seconds / 60
    return f"{minutes:.1f} min" if minutes < 120 else f"{minutes / 60:.1f} h"


PHASE_LABELS = {
    "refiner-pretrain": "R pre-train",
    "discriminator-pretrain": "D pre-train",
    "adversarial": "adversarial",
}
METRIC_LABELS = {
    "refiner_reg": "R reg",
    "refiner_adv": "R adv",
    "discriminator_loss": "D loss",
    "d_acc_real": "D acc real",
    "d_acc_refined": "D acc refined",
}


def _fit(parts: list[str], width: int, sep: str = "  ") -> str:
    """As many whole ``parts`` as fit in ``width`` columns: never one cut in the middle."""
    line = ""
    for part in parts:
        candidate = f"{line}{sep}{part}" if line else part
        if len(candidate) > width:
            break
        line = candidate
    return line


@dataclass
class ProgressState:
    """What the display shows, kept apart from how: the same state gives the live lines and the plain ones."""

    total: int
    step: int = 0
    phase: str = ""
    metrics: dict[str, float] = field(default_factory=dict)
    speed: float = 0.0
    elapsed: float = 0.0
    eta: float | None = None

    def status(self) -> list[str]:
        """The parts of the status line, most important first."""
        share = self.step / self.total if self.total else 1.0
        parts = [f"{self.step}/{self.total}", f"{share:4.0%}"]
        if self.eta is not None:
            parts.append(f"ETA {clock(self.eta)}")
        if self.speed:
            parts.append(f"{self.speed:,.0f} img/s")
        return parts

    def losses(self, width: int) -> str:
        shown = [f"{label} {self.metrics[k]:.3f}" for k, label in METRIC_LABELS.items() if k in self.metrics]
        return _fit(shown, width)

    def live_lines(self, width: int) -> tuple[Text, Text]:
        """Two lines that fit ``width`` columns: phase, bar, step count, ETA and speed; then the losses."""
        label = f"{PHASE_LABELS.get(self.phase, self.phase or 'starting'):<11}"
        status = self.status()
        while status and len(label) + 1 + 10 + 1 + len("  ".join(status)) > width:
            status.pop()  # the speed first, then the ETA: the step count is the last to go
        tail = "  ".join(status)
        bar_width = max(width - len(label) - len(tail) - 2, 0)
        done = round(bar_width * (self.step / self.total if self.total else 1.0))
        line = Text(label + " ", style="bold")
        line.append("━" * done, style="magenta")
        line.append("━" * (bar_width - done), style="grey37")
        line.append(" " + tail)
        line.truncate(width)
        return line, Text("  " + self.losses(max(width - 2, 0)), style="dim")

    def plain_line(self) -> str:
        """One self-contained line for a log: no bar, no colour, nothing redrawn."""
        label = PHASE_LABELS.get(self.phase, self.phase or "starting")
        parts = [f"step {self.step}/{self.total} ({self.step / max(self.total, 1):.0%})", label]
        parts.append(f"elapsed {clock(self.elapsed)}")
        if self.eta is not None:
            parts.append(f"ETA {clock(self.eta)}")
        if self.speed:
            parts.append(f"{self.speed:,.0f} img/s")
        losses = self.losses(10_000)
        return " | ".join(parts + ([losses] if losses else []))


class _LiveView:
    """Renders the state at whatever width the terminal has now (rich asks on every refresh)."""

    def __init__(self, state: ProgressState) -> None:
        self.state = state

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        yield from self.state.live_lines(options.max_width)


class TrainingDisplay:
    """Progress of a training run fed by a :class:`Trainer` callback, readable on a terminal of any width or in a log.

    On a terminal two live lines are redrawn (phase, bar, step count, ETA and
    images/s; then the losses), each cut to the terminal's width by whole
    items. Elsewhere (stdout or stderr sent to a file or a pipe) a plain line
    is printed every ``plain_every`` seconds and at each change of phase.
    """

    def __init__(self, console: Console, enabled: bool = True, plain_every: float | None = None) -> None:
        self.console = console
        self.enabled = enabled
        self.live_mode = console.is_terminal and not console.is_dumb_terminal
        if plain_every is None:
            plain_every = plain_every_seconds()
        self.plain_every = plain_every
        self.state: ProgressState | None = None
        self.live: Live | None = None
        self._costs: tuple[float, float, float] | None = None
        self._started = time.perf_counter()
        self._first_step = 0
        self._last_plain = -float("inf")

    @contextmanager
    def preparing(self, what: str = "preparing data") -> Iterator[Callable[[str], None]]:
        """Show that the command is alive while the data loads (a simulator may render for minutes).

        Yields a function that names the current stage, e.g. ``"rendering synthetic: eyes-sim"``.
        """
        started = time.perf_counter()
        stage = [what]
        last = [time.perf_counter()]

        def say(message: str) -> None:
            stage[0] = message
            if not self.enabled:
                return
            if status is not None:
                status.update(f"{message} ...")
            else:
                self.console.print(f"{message} ...", highlight=False, soft_wrap=True)
                last[0] = time.perf_counter()

        status = self.console.status(f"{what} ...") if self.enabled and self.live_mode else None
        if status is not None:
            status.start()
        elif self.enabled:
            self.console.print(f"{what} ...", highlight=False, soft_wrap=True)
        stop = threading.Event()

        def heartbeat() -> None:  # a log shows the command is alive during a long render
            while not stop.wait(min(max(self.plain_every, 0.05), 5.0)):
                if time.perf_counter() - last[0] >= self.plain_every:
                    last[0] = time.perf_counter()
                    elapsed = clock(time.perf_counter() - started)
                    self.console.print(f"still {stage[0]} ({elapsed} so far)", highlight=False, soft_wrap=True)

        beat = threading.Thread(target=heartbeat, daemon=True) if self.enabled and status is None else None
        if beat is not None:
            beat.start()
        try:
            yield say
        finally:
            stop.set()
            if beat is not None:
                beat.join()
            if status is not None:
                status.stop()
        if self.enabled:  # not reached when preparing failed: its error says what happened instead
            self.console.print(f"data ready in {clock(time.perf_counter() - started)}", highlight=False)

    def describe(self, trainer: Trainer, recipe: str, schedule: str | None) -> None:
        """Say where the data comes from, what was picked, and roughly how long it will take."""
        config = trainer.config
        synthetic, real = getattr(trainer, "sources", ("?", "?"))
        s = config.schedule
        self._costs = step_costs(trainer)
        duration = _duration(_schedule_seconds(trainer, self._costs, trainer.step, trainer.total_steps))
        self.console.print(f"[bold]refinekit run {recipe}[/] -> {trainer.out_dir}")
        self.console.print(f"  synthetic: {synthetic}")
        self.console.print(f"  real:      {real}")
        self.console.print(
            f"  device {trainer.device}, precision {trainer.precision.name} ({trainer.precision.reason}), "
            f"batch {config.batch_size}, buffer {config.buffer_size}"
        )
        self.console.print(
            f"  schedule {schedule or 'default'}: R pre-train {s.refiner_pretrain_steps}, "
            f"D pre-train {s.discriminator_pretrain_steps}, {s.steps} rounds of k_g={s.k_g}/k_d={s.k_d}; "
            f"about {duration} on this machine"
        )
        if trainer.step:
            self.console.print(f"  resuming at step {trainer.step} of {trainer.total_steps}")
        self.state = ProgressState(total=trainer.total_steps, step=trainer.step, phase=trainer.phase_of(trainer.step))
        self._first_step = trainer.step
        self._started = time.perf_counter()

    def update(self, trainer: Trainer, report: StepReport) -> None:
        state = self.state
        if state is None:
            return
        phase_changed = report.phase != state.phase
        state.step, state.phase, state.speed = report.step, report.phase, report.images_per_second
        state.metrics = {k: v for k, v in report.metrics.items() if k in METRIC_LABELS} or state.metrics
        state.elapsed = time.perf_counter() - self._started
        state.eta = self._eta(trainer, report.step, state.elapsed)
        if self.enabled and not self.live_mode:
            now = time.perf_counter()
            if phase_changed or now - self._last_plain >= self.plain_every or report.step == report.total:
                self._last_plain = now
                self.console.print(state.plain_line(), highlight=False, soft_wrap=True, markup=False)

    def _eta(self, trainer: Trainer, step: int, elapsed: float) -> float | None:
        """The estimate of the steps left, corrected by how this run's steps so far compare with it."""
        if self._costs is None:
            return None
        done = _schedule_seconds(trainer, self._costs, self._first_step, step)
        left = _schedule_seconds(trainer, self._costs, step, trainer.total_steps)
        return left * (elapsed / done if done > 0 and elapsed > 0 else 1.0)

    def finish(self, result: TrainResult) -> None:
        self.console.print(f"Done: {result.step} steps. Refiner: {result.refiner_path}")
        if result.skipped_steps:
            self.console.print(f"  skipped {result.skipped_steps} updates with non-finite losses")
        self.console.print(f"  samples: {result.out_dir / 'samples'}  losses: {result.out_dir / 'losses.png'}")

    def __enter__(self) -> TrainingDisplay:
        if self.enabled and self.live_mode and self.state is not None:
            self.live = Live(_LiveView(self.state), console=self.console, refresh_per_second=4, transient=False)
            self.live.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        if self.live is not None:
            self.live.stop()
            self.live = None
