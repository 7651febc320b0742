"""``refinekit run``: train a recipe into a run folder, with a live display and a resume hint on Ctrl-C."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING

import click
from rich.console import Console
from rich.markup import escape

from refinekit.cli.shell import EXIT_INTERRUPTED, command_line, console, friendly_errors

if TYPE_CHECKING:
    from refinekit.training.loop import Trainer


@click.command()
@click.argument("recipe")
@click.option("--out", "out", default=None, help="Run folder (default: runs/RECIPE).")
@click.option("--steps", type=click.IntRange(min=0), default=None, help="Adversarial rounds (schedule.steps).")
@click.option("--schedule", default=None, help="One of the recipe's named schedules, e.g. 'paper'.")
@click.option("--resume", is_flag=True, help="Continue the run in --out from its checkpoint.")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default=None)
@click.option("--precision", type=click.Choice(["auto", "fp32", "bf16", "fp16"]), default=None)
@click.option("--config", "config_file", type=click.Path(dir_okay=False), default=None, help="A TOML config file.")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Override a config key (repeatable).")
@click.option("--synthetic", default=None, help="Synthetic data: any supported file or folder (format detected).")
@click.option("--real", default=None, help="Real data: any supported file or folder (format detected).")
@click.option("--skip-bad", is_flag=True, help="Skip unreadable or malformed input files, with a count.")
@click.option(
    "--eval-every", type=click.IntRange(min=1), default=None, metavar="N",
    help="Every N steps, log held-out realism and label metrics to eval.jsonl and save refiner_step_N.safetensors.",
)
@click.option("--quiet", is_flag=True, help="No progress display.")
@friendly_errors
def run(
    recipe: str,
    out: str | None,
    steps: int | None,
    schedule: str | None,
    resume: bool,
    device: str | None,
    precision: str | None,
    config_file: str | None,
    overrides: tuple[str, ...],
    synthetic: str | None,
    real: str | None,
    skip_bad: bool,
    eval_every: int | None,
    quiet: bool,
) -> None:
    """Train RECIPE (see 'refinekit recipes') and write the run folder."""
    from refinekit.plugins.registry import get_recipe
    from refinekit.training.loop import TrainingInterrupted
    from refinekit.training.progress import TrainingDisplay
    from refinekit.training.setup import prepare, resolve_config

    extra = list(overrides)
    for key, value in (("schedule.steps", steps), ("device", device), ("precision", precision)):
        if value is not None:
            extra.append(f"{key}={json.dumps(value)}")
    config = resolve_config(
        recipe, schedule=schedule, config_file=config_file, overrides=extra, synthetic=synthetic, real=real
    )
    out_dir = out or f"runs/{recipe}"
    # Under torchrun rank 0 alone reports (RANK is set before the process group is joined).
    display = TrainingDisplay(console, enabled=not quiet and os.environ.get("RANK", "0") in ("", "0"))
    callbacks: list[Callable[..., None]] = [display.update]
    if eval_every is not None:
        from refinekit.evaluation.during_training import EvalDuringTraining
        from refinekit.plugins.registry import get_recipe

        callbacks.append(EvalDuringTraining(eval_every, get_recipe(recipe).task))
    with display.preparing() as on_stage:
        trainer = prepare(config, out_dir, resume=resume, skip_bad=skip_bad, callbacks=callbacks, on_stage=on_stage)
    if trainer.is_main:
        display.describe(trainer, recipe, schedule or get_recipe(recipe).default_schedule)
    else:  # under torchrun rank 0 alone reports and evaluates; the other ranks only train
        trainer.callbacks, display = [], TrainingDisplay(Console(quiet=True), enabled=False)
    interrupted: TrainingInterrupted | None = None
    try:
        with display:
            result = trainer.fit()
    except TrainingInterrupted as exc:
        interrupted = exc
    finally:
        if getattr(trainer, "folder_lock", None) is not None:  # the next writer of --out may start
            trainer.folder_lock.release()
    if interrupted is not None:
        if trainer.is_main:
            console.print(
                f"Interrupted at step {interrupted.step}; checkpoint saved. Resume with:\n"
                f"  {escape(_resume_command(out_dir))}",
                highlight=False,
                soft_wrap=True,
            )
        _leave(trainer, EXIT_INTERRUPTED)
    display.finish(result)
    _leave(trainer, 0)


def _leave(trainer: Trainer, code: int) -> None:
    """End the command with ``code``; under torchrun through :func:`refinekit.runtime.distributed.exit_rank`."""
    if trainer.topology.distributed:
        from refinekit.runtime.distributed import exit_rank

        exit_rank(code)
    if code:
        sys.exit(code)


def _resume_command(out_dir: str) -> str:
    """This ``run`` command line with ``--resume``: a resumed run must repeat the data paths and settings."""
    recipe = click.get_current_context().params["recipe"]
    return command_line(["refinekit", "run", recipe, "--out", out_dir], skip=("recipe", "out", "resume")) + " --resume"
