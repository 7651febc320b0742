"""The ``refinekit`` command: a thin layer over the Python API, plus printing.

Every :class:`RefinekitError` becomes one paragraph on stderr and exit code 2;
``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import errno
import functools
import json
import os
import shlex
import sys
import warnings
from typing import Any, Callable

import click
from rich.console import Console
from rich.markup import escape
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
            # escape(): file names and values in messages may contain [brackets] that rich reads as markup
            console.print(f"[bold red]Error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
            sys.exit(EXIT_USAGE)
        except KeyboardInterrupt:  # Ctrl-C outside the training loop, or a second one inside it
            if debug:
                raise
            console.print("Interrupted.", highlight=False)
            sys.exit(EXIT_INTERRUPTED)
        except OSError as exc:
            if debug or exc.errno not in (errno.ENOSPC, errno.EDQUOT):
                raise
            where = f" while writing {exc.filename}" if exc.filename else ""
            message = (
                f"no space left on the device{where} ({exc.strerror}). What was finished is kept (checkpoints, "
                "refined shards); free some space, then rerun the same command (add --resume to continue a run)."
            )
            console.print(f"[bold red]Error:[/] {escape(message)}", highlight=False, soft_wrap=True)
            sys.exit(EXIT_USAGE)

    return wrapper


def _show_warnings(message: Warning | str, category: type[Warning], *args: Any, **kwargs: Any) -> None:
    console.print(f"[yellow]Warning:[/] {escape(str(message))}", highlight=False, soft_wrap=True)


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
@click.option(
    "--eval-every", type=click.IntRange(min=1), default=None, metavar="N",
    help="Every N steps, log held-out realism and label metrics to eval.jsonl and save refiner_step_N.safetensors.",
)
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
    eval_every: int | None,
    quiet: bool,
) -> None:
    """Train RECIPE (see 'refinekit recipes') and write the run folder."""
    from refinekit.training.setup import prepare, resolve_config
    from refinekit.plugins.registry import get_recipe
    from refinekit.training.progress import TrainingDisplay
    from refinekit.training.loop import TrainingInterrupted

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
    try:
        with display:
            result = trainer.fit()
    except TrainingInterrupted as exc:
        console.print(
            f"Interrupted at step {exc.step}; checkpoint saved. Resume with:\n  {escape(_resume_command(out_dir))}",
            highlight=False,
            soft_wrap=True,
        )
        sys.exit(EXIT_INTERRUPTED)
    finally:
        if getattr(trainer, "folder_lock", None) is not None:  # the next writer of --out may start
            trainer.folder_lock.release()
    display.finish(result)


def _resume_command(out_dir: str) -> str:
    """This ``run`` command line with ``--resume``: a resumed run must repeat the data paths and settings."""
    ctx = click.get_current_context()
    words = ["refinekit", "run", ctx.params["recipe"], "--out", out_dir]
    for param in ctx.command.params:
        value = ctx.params.get(param.name)
        unset = value is None or value is False or value == ()
        if isinstance(param, click.Argument) or param.name in ("out", "resume") or unset:
            continue
        flag = param.opts[0]
        if isinstance(param, click.Option) and param.is_flag:
            words.append(flag)
        else:
            for item in value if isinstance(value, tuple) else (value,):
                words += [flag, str(item)]
    return shlex.join([*words, "--resume"])


@main.command()
@click.argument("refiner", metavar="RUN_OR_REFINER")
@click.argument("input_path", metavar="[INPUT]", required=False)
@click.argument("output", metavar="OUTPUT", required=False, type=click.Path(file_okay=False))
@click.option("--batch-size", type=click.IntRange(min=1), default=256, show_default=True)
@click.option("--shard-size", type=click.IntRange(min=1), default=4096, show_default=True, help="Images per output shard.")
@click.option("--shard", default=None, metavar="I/N", help="Process only this part of the input, e.g. 0/4.")
@click.option("--format", "fmt", type=click.Choice(["png", "safetensors"]), default="png", show_default=True)
@click.option(
    "--dataset", default=None,
    help="Dataset to refine, e.g. eyes-sim or digits-fonts, or the loader for INPUT (default: the run's "
    "synthetic dataset, or detected from INPUT).",
)
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="A dataset option, or seed, limit or path (repeatable).")
@click.option("--raw", is_flag=True, help="Write the dataset unrefined (at the refiner's size), to compare.")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto")
@click.option("--precision", type=click.Choice(["auto", "fp32", "bf16", "fp16"]), default="fp32")
@click.option("--skip-bad", is_flag=True, help="Skip unreadable input files, with a count.")
@click.option("--channels", type=click.IntRange(min=1), default=None, help="Channels INPUT must have (default: the refiner's).")
@click.option(
    "--resize", type=click.Choice(["refuse", "stretch", "pad", "crop"]), default="refuse", show_default=True,
    help="Images not at the refiner's size: refuse them, stretch (aspect changes), pad (fit inside) or crop "
    "(cover); pixel coordinates in JSON sidecars are not rescaled (a warning gives the map).",
)
@click.option(
    "--convert-channels", is_flag=True,
    help="Convert colour images to gray for a gray refiner (gray to RGB for a colour one) instead of refusing them.",
)
@click.option("--workers", type=click.IntRange(min=1), default=None, help="Threads decoding and writing images.")
@click.option("--quiet", is_flag=True)
@_friendly_errors
def refine(
    refiner: str,
    input_path: str | None,
    output: str | None,
    batch_size: int,
    shard_size: int,
    shard: str | None,
    fmt: str,
    dataset: str | None,
    overrides: tuple[str, ...],
    raw: bool,
    device: str,
    precision: str,
    skip_bad: bool,
    channels: int | None,
    resize: str,
    convert_channels: bool,
    workers: int | None,
    quiet: bool,
) -> None:
    """Refine a dataset with a refiner into OUTPUT: images plus their labels (metadata.jsonl).

    RUN_OR_REFINER is a run folder, a refiner.safetensors file, or the name of
    a pretrained refiner ('refinekit pretrained' lists them). The dataset is
    INPUT (a folder or any file a loader reads), else --dataset NAME with
    --set options (e.g. --dataset eyes-sim --set count=100000 --set seed=7),
    else the synthetic dataset a run folder trained on.

    Outputs are at the refiner's working size. Rerun the same command after a
    crash to finish without redoing completed shards.
    """
    from refinekit.refine.pipeline import parse_shard
    from refinekit.refine.training_set import make_training_set

    if output is None:  # two arguments: RUN_OR_REFINER OUTPUT, the dataset named by --dataset or the run
        input_path, output = None, input_path
    if output is None:
        raise click.UsageError("Missing argument 'OUTPUT'.")
    try:
        manifest = make_training_set(
            refiner,
            output,
            input_path=input_path,
            options=overrides,
            raw=raw,
            batch_size=batch_size,
            shard_size=shard_size,
            shard=parse_shard(shard),
            fmt=fmt,
            dataset=dataset,
            device=device,
            precision=precision,
            skip_bad=skip_bad,
            progress=not quiet,
            channels=channels,
            workers=workers,
            resize=resize,
            convert_channels=convert_channels,
        )
    except KeyboardInterrupt:
        console.print("Interrupted; finished shards are kept. Rerun the same command to finish the rest.")
        sys.exit(EXIT_INTERRUPTED)
    if manifest["complete"]:
        done = f"Wrote {manifest['count']} unrefined" if raw else f"Refined {manifest['count']}"
        console.print(f"{done} images into {escape(output)} ({len(manifest['shards'])} shards).", highlight=False, soft_wrap=True)
        if manifest["metadata"]:
            labels = escape(manifest["metadata"])
            console.print(
                f"Labels: {labels}, one JSON line per image; refinekit.TrainingSet reads the folder.",
                highlight=False, soft_wrap=True,
            )
    else:
        console.print(
            f"Done with this part: {len(manifest['shards'])} of {manifest['shard_count']} shards of {output} are "
            "finished; the part that finishes last writes manifest.json."
        )


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option(
    "--requirements", is_flag=True,
    help="Print name==version of refinekit and every installed plugin distribution, for a requirements file.",
)
@_friendly_errors
def plugins(as_json: bool, requirements: bool) -> None:
    """List loaded plugins, their versions, hooks and components."""
    from refinekit.plugins.registry import get_registry, iter_plugins, pinned_requirements

    if requirements:
        click.echo("\n".join(pinned_requirements()))
        return
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
    from refinekit.cli.tables import plugins_table

    Console().print(plugins_table(infos))


@main.command()
@_friendly_errors
def pretrained() -> None:
    """List the trained refiners that installed plugins ship, usable wherever a refiner is asked for."""
    from refinekit.weights.pretrained import list_pretrained

    table = Table(title="pretrained refiners", caption="refinekit refine NAME INPUT OUTPUT; refinekit.load_refiner(NAME)")
    for column in ("name", "size", "model card"):
        table.add_column(column)
    for shipped in list_pretrained():
        size = f"{shipped.weights.stat().st_size / 1e6:.1f} MB" if shipped.weights.is_file() else "missing"
        table.add_row(shipped.name, size, str(shipped.card))
    Console().print(table)


@main.command()
@click.argument("recipe", required=False)
@click.option(
    "--keys", is_flag=True,
    help="Also list every configuration key with its type and default; with RECIPE, the values RECIPE runs with.",
)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@_friendly_errors
def recipes(recipe: str | None, keys: bool, as_json: bool) -> None:
    """List recipes with a one-line description each; RECIPE: that recipe alone."""
    from refinekit.cli.tables import key_rows, keys_table, recipe_rows, recipes_table
    from refinekit.plugins.registry import get_recipe, get_registry

    registry = get_registry()
    if recipe is not None:
        get_recipe(recipe)  # an unknown name: the error lists the close matches
    rows = recipe_rows(registry, [recipe] if recipe is not None else registry.names("recipe"))
    key_list = key_rows(recipe) if keys else None
    if as_json:
        click.echo(json.dumps({"recipes": rows, **({"keys": key_list} if keys else {})}, indent=2))
        return
    out = Console()
    out.print(recipes_table(rows))
    if key_list is not None:
        out.print(keys_table(key_list, recipe))


@main.command()
@click.argument("name", required=False)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@_friendly_errors
def datasets(name: str | None, as_json: bool) -> None:
    """List dataset loaders and their options; NAME: that loader's options in full."""
    from refinekit.cli.tables import dataset_rows, datasets_listing
    from refinekit.plugins.registry import get_dataset, get_registry

    registry = get_registry()
    if name is not None:
        get_dataset(name)  # an unknown name: the error lists the close matches
    rows = dataset_rows(registry, [name] if name is not None else registry.names("dataset"))
    if as_json:
        click.echo(json.dumps({"datasets": rows}, indent=2))
        return
    Console().print(datasets_listing(rows, detailed=name is not None))


@main.command()
@click.argument("source", metavar="IN", type=click.Path(dir_okay=False))
@click.argument("target", metavar="OUT", type=click.Path(dir_okay=False))
@click.option("--refiner", "refiner_name", required=True, help="Registered refiner the weights belong to.")
@click.option("--channels", type=click.IntRange(min=1), default=1, show_default=True, help="Image channels.")
@click.option("--height", type=click.IntRange(min=1), default=35, show_default=True, help="Training image height.")
@click.option("--width", type=click.IntRange(min=1), default=55, show_default=True, help="Training image width.")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="A refiner option (repeatable).")
@_friendly_errors
def convert(
    source: str, target: str, refiner_name: str, channels: int, height: int, width: int, overrides: tuple[str, ...]
) -> None:
    """Convert refiner weights IN (.pt/.pth state dict, read with weights_only=True) to OUT (.safetensors)."""
    from refinekit.config import deep_merge, parse_set
    from refinekit.weights.convert import convert_refiner

    options: dict[str, Any] = {}
    for expression in overrides:
        options = deep_merge(options, parse_set(expression))
    written = convert_refiner(
        source, target, refiner_name, options=options, channels=channels, image_size=(height, width)
    )
    console.print(f"Wrote {written}; load it with refinekit.load_refiner or 'refinekit refine {written} ...'.")


@main.command()
@click.argument("run_dir")
@click.option("--refiner", default=None, type=click.Path(dir_okay=False), help="Evaluate this refiner file instead, e.g. a refiner_step_N snapshot.")
@click.option("--task", default=None, help="Evaluation task (default: the task of the run's recipe).")
@click.option("--real", default=None, help="Real images held out from training, for realism and KID (format detected).")
@click.option("--real-labelled", default=None, help="Labelled real data for the downstream test, e.g. MPIIGaze.")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Change evaluation data: synthetic.KEY or real.KEY.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seeds splits, realism classifiers, KID subsets.")
@click.option("--task-seeds", type=click.IntRange(min=1), default=1, show_default=True, help="Task models per training set.")
@click.option("--images", type=click.IntRange(min=8), default=None, help="At most this many images per side [default: 2000].")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True)
@click.option("--out", default=None, type=click.Path(file_okay=False), help="Report folder (default: RUN_DIR/eval).")
@click.option("--quick", is_flag=True, help="Small budgets for a first look; numbers do not compare with full runs.")
@click.option("--json", "as_json", is_flag=True, help="Print report.json to stdout instead of tables.")
@_friendly_errors
def evaluate(
    run_dir: str,
    refiner: str | None,
    task: str | None,
    real: str | None,
    real_labelled: str | None,
    overrides: tuple[str, ...],
    seed: int,
    task_seeds: int,
    images: int | None,
    device: str,
    out: str | None,
    quick: bool,
    as_json: bool,
) -> None:
    """Measure RUN_DIR's refiner: realism, KID, annotations kept, downstream utility; write RUN_DIR/eval.

    RUN_DIR may also be the name of a pretrained refiner; its report goes to ./eval-NAME.
    """
    import dataclasses

    from refinekit.evaluation.api import QUICK, EvaluationSettings, evaluate as run_evaluation
    from refinekit.evaluation.terminal import print_report

    settings = QUICK if quick else EvaluationSettings()
    if images is not None:
        settings = dataclasses.replace(settings, max_images=images)
    report = run_evaluation(
        run_dir, refiner=refiner, task=task, real=real, real_labelled=real_labelled, overrides=overrides,
        seed=seed, task_seeds=task_seeds, device=device, settings=settings, out=out, command=_command_line("evaluate"),
        progress=lambda line: console.print(f"[dim]{escape(line)}[/]", highlight=False, soft_wrap=True),
    )
    if as_json:
        click.echo(json.dumps(report.to_dict(), indent=2))
        return
    print_report(Console(), report)


def _command_line(command: str) -> str:
    """The current command as a shell line rebuilt from its parsed parameters (for reports)."""
    ctx = click.get_current_context()
    words = ["refinekit", command]
    for param in ctx.command.params:
        value = ctx.params.get(param.name)
        if value is None or value is False or value == ():
            continue
        if isinstance(param, click.Argument):
            words.append(str(value))
        elif isinstance(param, click.Option) and param.is_flag:
            words.append(param.opts[0])
        else:
            for item in value if isinstance(value, tuple) else (value,):
                words += [param.opts[0], str(item)]
    return shlex.join(words)
