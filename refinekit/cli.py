"""The ``refinekit`` command: a thin layer over the Python API, plus printing.

Every :class:`RefinekitError` becomes one paragraph on stderr and exit code 2;
``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import functools
import json
import sys
import warnings
from typing import Any, Callable

import click
from rich.console import Console
from rich.table import Table

from refinekit.errors import RefinekitError

console = Console(stderr=True)
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


def _friendly_errors(command: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        debug = click.get_current_context().find_root().params.get("debug", False)
        try:
            return command(*args, **kwargs)
        except RefinekitError as exc:
            if debug:
                raise
            console.print(f"[bold red]Error:[/] {exc}", highlight=False, soft_wrap=True)
            sys.exit(EXIT_USAGE)

    return wrapper


def _show_warnings(message: Warning | str, category: type[Warning], *args: Any, **kwargs: Any) -> None:
    console.print(f"[yellow]Warning:[/] {message}", highlight=False, soft_wrap=True)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--debug", is_flag=True, help="Show full tracebacks instead of one-paragraph errors.")
@click.version_option(package_name="refinekit")
def main(debug: bool) -> None:
    """Refine synthetic images to look real while keeping their annotations (SimGAN)."""
    warnings.showwarning = _show_warnings


@main.command()
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
@click.option("--quiet", is_flag=True, help="No progress display.")
@_friendly_errors
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
    quiet: bool,
) -> None:
    """Train RECIPE (see 'refinekit recipes') and write the run folder."""
    from refinekit.api import prepare, resolve_config
    from refinekit.progress import TrainingDisplay
    from refinekit.trainer import TrainingInterrupted

    extra = list(overrides)
    for key, value in (("schedule.steps", steps), ("device", device), ("precision", precision)):
        if value is not None:
            extra.append(f"{key}={json.dumps(value)}")
    config = resolve_config(
        recipe, schedule=schedule, config_file=config_file, overrides=extra, synthetic=synthetic, real=real
    )
    out_dir = out or f"runs/{recipe}"
    display = TrainingDisplay(console, enabled=not quiet)
    trainer = prepare(config, out_dir, resume=resume, skip_bad=skip_bad, callbacks=[display.update])
    display.describe(trainer, recipe, schedule)
    try:
        with display:
            result = trainer.fit()
    except TrainingInterrupted as exc:
        console.print(
            f"Interrupted at step {exc.step}; checkpoint saved. Resume with:\n"
            f"  refinekit run {recipe} --out {out_dir} --resume"
        )
        sys.exit(EXIT_INTERRUPTED)
    display.finish(result)


@main.command()
@click.argument("refiner", type=click.Path(dir_okay=False))
@click.argument("input_path", metavar="INPUT")
@click.argument("output", type=click.Path(file_okay=False))
@click.option("--batch-size", type=click.IntRange(min=1), default=256, show_default=True)
@click.option("--shard-size", type=click.IntRange(min=1), default=4096, show_default=True, help="Images per output shard.")
@click.option("--shard", default=None, metavar="I/N", help="Process only this part of the input, e.g. 0/4.")
@click.option("--format", "fmt", type=click.Choice(["png", "safetensors"]), default="png", show_default=True)
@click.option("--dataset", default=None, help="Dataset loader for INPUT (default: detected from the path).")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto")
@click.option("--precision", type=click.Choice(["auto", "fp32", "bf16", "fp16"]), default="fp32")
@click.option("--skip-bad", is_flag=True, help="Skip unreadable input files, with a count.")
@click.option("--quiet", is_flag=True)
@_friendly_errors
def refine(
    refiner: str,
    input_path: str,
    output: str,
    batch_size: int,
    shard_size: int,
    shard: str | None,
    fmt: str,
    dataset: str | None,
    device: str,
    precision: str,
    skip_bad: bool,
    quiet: bool,
) -> None:
    """Refine INPUT (a folder or dataset) with REFINER into OUTPUT, annotations unchanged."""
    from refinekit.refine import parse_shard, refine_to_folder

    manifest = refine_to_folder(
        refiner,
        input_path,
        output,
        batch_size=batch_size,
        shard_size=shard_size,
        shard=parse_shard(shard),
        fmt=fmt,
        dataset=dataset,
        device=device,
        precision=precision,
        skip_bad=skip_bad,
        progress=not quiet,
    )
    console.print(f"Refined {manifest['count']} images into {output} ({len(manifest['shards'])} shards).")


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@_friendly_errors
def plugins(as_json: bool) -> None:
    """List loaded plugins, their versions, hooks and components."""
    from refinekit.plugins import get_registry, iter_plugins

    infos = list(iter_plugins())
    problems = get_registry().problems
    if as_json:
        payload = {
            "plugins": [
                {"name": i.name, "version": i.version, "distribution": i.distribution, "hooks": i.hooks,
                 "components": i.components}
                for i in infos
            ],
            "problems": problems,
        }
        click.echo(json.dumps(payload, indent=2))
        return
    table = Table(title="refinekit plugins")
    for column in ("plugin", "distribution", "version", "hooks", "components"):
        table.add_column(column)
    for i in infos:
        components = "; ".join(f"{kind}: {', '.join(names)}" for kind, names in sorted(i.components.items()))
        table.add_row(i.name, i.distribution, i.version, ", ".join(i.hooks), components)
    Console().print(table)


@main.command()
@click.option("--keys", is_flag=True, help="Also list every configuration key with its type and default.")
@_friendly_errors
def recipes(keys: bool) -> None:
    """List recipes with a one-line description each."""
    from refinekit.config import iter_keys
    from refinekit.plugins import get_registry

    registry = get_registry()
    out = Console()
    table = Table(title="recipes")
    for column in ("recipe", "plugin", "schedules", "description"):
        table.add_column(column)
    for name in registry.names("recipe"):
        entry = registry.get("recipe", name)
        table.add_row(name, entry.plugin, ", ".join(sorted(entry.factory.schedules)), entry.description)
    out.print(table)
    if keys:
        key_table = Table(title="configuration keys (--set KEY=VALUE)")
        for column in ("key", "type", "default", "meaning"):
            key_table.add_column(column)
        for row in iter_keys():
            key_table.add_row(*row)
        out.print(key_table)
