"""``refinekit refine`` (a dataset through a refiner into a labelled training set) and ``refinekit convert``."""

from __future__ import annotations

import sys
from typing import Any

import click
from rich.markup import escape

from refinekit.cli.shell import EXIT_INTERRUPTED, console, friendly_errors


@click.command()
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
@friendly_errors
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


@click.command()
@click.argument("source", metavar="IN", type=click.Path(dir_okay=False))
@click.argument("target", metavar="OUT", type=click.Path(dir_okay=False))
@click.option("--refiner", "refiner_name", required=True, help="Registered refiner the weights belong to.")
@click.option("--channels", type=click.IntRange(min=1), default=1, show_default=True, help="Image channels.")
@click.option("--height", type=click.IntRange(min=1), default=35, show_default=True, help="Training image height.")
@click.option("--width", type=click.IntRange(min=1), default=55, show_default=True, help="Training image width.")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="A refiner option (repeatable).")
@friendly_errors
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
