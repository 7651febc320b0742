"""``refinekit evaluate``: score a run's (or a pretrained) refiner and write its report."""

from __future__ import annotations

import json

import click
from rich.console import Console
from rich.markup import escape

from refinekit.cli.shell import command_line, console, friendly_errors


@click.command()
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
@friendly_errors
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

    from refinekit.evaluation.api import QUICK, EvaluationSettings
    from refinekit.evaluation.api import evaluate as run_evaluation
    from refinekit.evaluation.terminal import print_report

    settings = QUICK if quick else EvaluationSettings()
    if images is not None:
        settings = dataclasses.replace(settings, max_images=images)
    report = run_evaluation(
        run_dir, refiner=refiner, task=task, real=real, real_labelled=real_labelled, overrides=overrides,
        seed=seed, task_seeds=task_seeds, device=device, settings=settings, out=out, command=command_line(["refinekit", "evaluate"]),
        progress=lambda line: console.print(f"[dim]{escape(line)}[/]", highlight=False, soft_wrap=True),
    )
    if as_json:
        click.echo(json.dumps(report.to_dict(), indent=2))
        return
    print_report(Console(), report)
