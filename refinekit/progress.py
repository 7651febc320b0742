"""The live display of a training run: phase, step, losses, D accuracy and images/s."""

from __future__ import annotations

import copy
import time
from types import TracebackType
from typing import Callable

import torch
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from refinekit.trainer import StepReport, Trainer, TrainResult

_SHOWN = ("refiner_reg", "refiner_adv", "discriminator_loss", "d_acc_real", "d_acc_refined")


def estimate_seconds(trainer: Trainer, repeats: int = 3) -> float:
    """Rough wall time of the rest of the schedule, from each phase's passes timed on copies of the networks.

    The phases cost very different amounts: an R update runs R forward and
    backward (through D once adversarial), while a D update only runs R forward
    on half a batch and D, which is far smaller. Each pass is timed on one
    training chunk (``trainer.micro_batch`` images) and scaled to the batch, as
    the trainer runs it, so start-up stays short at large CPU batches. The run's
    own state is untouched.
    """
    config = trainer.config
    c, h, w = config.image.channels, config.image.height, config.image.width
    refiner, discriminator = copy.deepcopy(trainer.refiner), copy.deepcopy(trainer.discriminator)
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
        return min(timings[1:]) * chunks_per_batch  # the first call pays one-off allocation costs

    def discriminator_passes() -> torch.Tensor:
        with torch.no_grad():
            refiner(x[: max(len(x) // 2, 1)])
        return discriminator(torch.cat([x, x]))  # the refined and the real images

    refiner_pretrain = timed(lambda: refiner(x))
    refiner_update = timed(lambda: discriminator(refiner(x)))
    discriminator_update = timed(discriminator_passes)
    s = config.schedule
    bounds = (0, s.refiner_pretrain_steps, s.refiner_pretrain_steps + s.discriminator_pretrain_steps, trainer.total_steps)
    remaining = [max(end - max(begin, trainer.step), 0) for begin, end in zip(bounds, bounds[1:])]
    round_cost = s.k_g * refiner_update + s.k_d * discriminator_update
    seconds = remaining[0] * refiner_pretrain + remaining[1] * discriminator_update + remaining[2] * round_cost
    return seconds * 1.15  # data sampling, the optimiser steps, samples and checkpoints


def _duration(seconds: float) -> str:
    """A rough duration in the unit a person would say it in.

    Examples:
        >>> _duration(396), _duration(578_000)
        ('6.6 min', '160.6 h')
    """
    minutes = seconds / 60
    return f"{minutes:.1f} min" if minutes < 120 else f"{minutes / 60:.1f} h"


class TrainingDisplay:
    """A rich progress bar fed by a :class:`Trainer` callback."""

    def __init__(self, console: Console, enabled: bool = True) -> None:
        self.console = console
        self.enabled = enabled
        self.progress = Progress(
            TextColumn("[bold]{task.fields[phase]:<22}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[losses]}"),
            TextColumn("{task.fields[speed]:>9}"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=console,
            disable=not enabled,
        )
        self.task = None

    def describe(self, trainer: Trainer, recipe: str, schedule: str | None) -> None:
        """Say where the data comes from, what was picked, and roughly how long it will take."""
        config = trainer.config
        synthetic, real = getattr(trainer, "sources", ("?", "?"))
        s = config.schedule
        duration = _duration(estimate_seconds(trainer))
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
        self.task = self.progress.add_task(
            "train", total=trainer.total_steps, completed=trainer.step, phase="", losses="", speed=""
        )

    def update(self, trainer: Trainer, report: StepReport) -> None:
        if self.task is None:
            return
        shown = "  ".join(f"{k}={report.metrics[k]:.3f}" for k in _SHOWN if k in report.metrics)
        self.progress.update(
            self.task,
            completed=report.step,
            phase=report.phase,
            losses=shown,
            speed=f"{report.images_per_second:,.0f} img/s",
        )

    def finish(self, result: TrainResult) -> None:
        self.console.print(f"Done: {result.step} steps. Refiner: {result.refiner_path}")
        if result.skipped_steps:
            self.console.print(f"  skipped {result.skipped_steps} updates with non-finite losses")
        self.console.print(f"  samples: {result.out_dir / 'samples'}  losses: {result.out_dir / 'losses.png'}")

    def __enter__(self) -> "TrainingDisplay":
        self.progress.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.progress.stop()
