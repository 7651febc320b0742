"""``evaluate(run_dir)``: realism, distance, annotations kept and downstream utility, in one call.

The CLI command ``refinekit evaluate RUN_DIR`` is this function plus printing.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch

from refinekit.config import DatasetConfig, TrainConfig, build_config, deep_merge, parse_set
from refinekit.data.folder_lock import hold_until_return, lock_folder, releases_locks
from refinekit.data.loading import detect_dataset
from refinekit.errors import ConfigError, DataError
from refinekit.evaluation.annotations import image_fidelity, label_preservation
from refinekit.evaluation.distance import extract_features, kid
from refinekit.evaluation.downstream import DownstreamResult, train_and_test, with_relative_change
from refinekit.evaluation.figures import downstream_figure, sample_figure, training_figure
from refinekit.evaluation.holdout import EvaluationSets, SetInfo, halves, labelled_real_sets, load_evaluation_sets
from refinekit.evaluation.realism import RealismSettings, two_sample_test
from refinekit.evaluation.refined import refine_images
from refinekit.evaluation.report import EvaluationReport, TaskInfo, write_json, write_markdown
from refinekit.evaluation.task import Task
from refinekit.evaluation.task_model import train_task_model
from refinekit.plugins.registry import get_registry, get_task
from refinekit.runtime.precision import resolve_device
from refinekit.training.run_figures import read_metrics
from refinekit.weights.files import load_refiner
from refinekit.weights.pretrained import get_pretrained

EVAL_LOG = "eval.jsonl"
"""What ``--eval-every`` writes in the run folder, one line per evaluation point."""


@dataclass(frozen=True)
class EvaluationSettings:
    """Sizes and budgets of an evaluation. Keep the defaults to compare runs.

    Args:
        max_images: at most this many synthetic and this many real images.
        realism: the two-sample classifier's budget.
        kid_subsets: subsets KID is averaged over.
        task_steps: override every task model's budget (tests only; reports say so).
    """

    max_images: int = 2000
    realism: RealismSettings = field(default_factory=RealismSettings)
    kid_subsets: int = 20
    task_steps: int | None = None


QUICK = EvaluationSettings(
    max_images=500, realism=RealismSettings(steps=60, width=16), kid_subsets=5, task_steps=60
)
"""``--quick``: a look in seconds; its numbers do not compare with a default evaluation's."""


def read_run_config(run_dir: Path, path: Path | None = None) -> TrainConfig:
    """The resolved config a run wrote (``config.json``, or ``path`` when given)."""
    path = path or run_dir / "config.json"
    if not path.exists():
        raise ConfigError(
            f"{run_dir} has no config.json; is it a run folder written by 'refinekit run', or the name of a "
            "pretrained refiner ('refinekit pretrained' lists them)?"
        )
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path} is not valid JSON ({exc})") from None
    return build_config(data, origin=str(path))


def resolve_task(config: TrainConfig, task: str | Task | None) -> tuple[Task | None, str | None, str]:
    """The evaluation task: as given, else the task of the recipes this run's datasets point to.

    Returns (task, name, how it was chosen). The run's config does not record
    its recipe, so recipes are matched by dataset, most specific rule first: the
    same synthetic dataset, then the same real dataset, then a synthetic dataset
    the recipe accepts as a path (``path_datasets``). The first rule that some
    recipe meets decides; if its recipes name different tasks, none is guessed.
    """
    if isinstance(task, Task):
        return task, type(task).__name__, "given to evaluate()"
    if isinstance(task, str):
        return get_task(task), task, "--task"
    registry = get_registry()
    recipes = [entry.factory for entry in registry.entries["recipe"].values() if entry.factory.task]
    synthetic, real = config.synthetic.name, config.real.name
    rules = (
        (f"recipes whose synthetic dataset is '{synthetic}'", lambda r: r.config.get("synthetic", {}).get("name") == synthetic),
        (f"recipes whose real dataset is '{real}'", lambda r: r.config.get("real", {}).get("name") == real),
        (f"recipes that accept '{synthetic}' paths", lambda r: synthetic in r.path_datasets),
    )
    known = ", ".join(registry.names("task")) or "none registered"
    for description, matches in rules:
        tasks = sorted({r.task for r in recipes if matches(r)})
        if len(tasks) == 1:
            return get_task(tasks[0]), tasks[0], f"the task of the {description}"
        if tasks:
            return None, None, f"the {description} name several tasks ({', '.join(tasks)}); pass --task NAME"
    return None, None, f"no recipe with a task uses '{synthetic}' or '{real}'; pass --task NAME (tasks: {known})"


def _dataset_override(config: TrainConfig, side: str, path: str | None, overrides: Sequence[str]) -> DatasetConfig | None:
    """The evaluation's own data for ``side``: a path (format detected) and/or ``--set side.KEY=VALUE``."""
    mine = [o for o in overrides if o.split("=", 1)[0].strip().startswith(f"{side}.")]
    if path is None and not mine:
        return None
    data: dict[str, Any] = config.model_dump(mode="json")[side]
    if path is not None:
        data = {"name": detect_dataset(path, (config.model_dump()[side]["name"],)), "path": path}
    for expression in mine:
        data = deep_merge(data, parse_set(expression)[side])
    try:
        return DatasetConfig.model_validate(data)
    except ValueError as exc:
        raise ConfigError(f"evaluation data for '{side}' is invalid: {exc}") from None


@releases_locks
def evaluate(
    run_dir: str | Path,
    *,
    refiner: str | Path | None = None,
    task: str | Task | None = None,
    real: str | None = None,
    real_labelled: str | None = None,
    overrides: Sequence[str] = (),
    seed: int = 0,
    task_seeds: int = 1,
    device: str = "auto",
    settings: EvaluationSettings = EvaluationSettings(),
    out: str | Path | None = None,
    command: str | None = None,
    progress: Callable[[str], None] | None = None,
) -> EvaluationReport:
    """Evaluate a run's refiner and write ``report.md``, ``report.json`` and figures to ``RUN_DIR/eval``.

    Args:
        run_dir: a folder written by ``refinekit run`` (config.json + refiner.safetensors), or the name
            of a pretrained refiner (evaluated on the data its shipped config names; reports go to
            ``./eval-NAME`` unless ``out`` says otherwise).
        refiner: another refiner file to evaluate (e.g. a ``refiner_step_*.safetensors`` snapshot).
        task: a registered task name or a :class:`Task`; default: the task of the run's recipe.
        real: real images held out from training, for the realism and distance tests.
        real_labelled: labelled real data for the downstream test (e.g. MPIIGaze).
        overrides: ``synthetic.KEY=VALUE`` / ``real.KEY=VALUE`` changes to the evaluation data.
        seed: seeds the splits, classifiers and KID subsets.
        task_seeds: task models per training set (seeds 0..task_seeds-1); >1 reports the seed spread.
        device: auto, cpu or cuda.
        settings: sizes and budgets.
        out: where to write (default ``RUN_DIR/eval``).
        command: the command line to record (default: this call).
        progress: called with a short line as each stage starts (the CLI prints them).

    Examples:
        >>> report = refinekit.evaluate("runs/digits")  # doctest: +SKIP
        >>> report.realism_of("refined").accuracy.mean  # doctest: +SKIP
        0.71
    """
    shipped = None if Path(run_dir).is_dir() else get_pretrained(str(run_dir))
    run_dir = Path(run_dir)
    bad = [o for o in overrides if not o.split("=", 1)[0].strip().startswith(("synthetic.", "real."))]
    if bad:
        raise ConfigError(f"evaluate --set {bad[0]!r}: only synthetic.* and real.* keys choose evaluation data")
    if task_seeds < 1:
        raise ConfigError(f"task_seeds must be at least 1, got {task_seeds}")
    config = read_run_config(run_dir, shipped.config if shipped else None)
    if shipped is not None:
        refiner = refiner or shipped.weights
        out = out or Path(f"eval-{shipped.name}")
    # one evaluation per report folder at a time: two would interleave their figures and reports
    hold_until_return(lock_folder(Path(out) if out is not None else run_dir / "eval", "--out"))
    torch_device = resolve_device(device)
    refiner_path = Path(refiner) if refiner is not None else run_dir / "refiner.safetensors"
    model = load_refiner(refiner_path, torch_device)
    expected = (config.image.height, config.image.width)
    if tuple(model.refinekit_image_size) != expected or model.refinekit_channels != config.image.channels:
        raise DataError(
            f"{refiner_path} was trained on {model.refinekit_channels}x{model.refinekit_image_size} images but "
            f"{run_dir / 'config.json'} says {config.image.channels}x{list(expected)}; pass the refiner of this run"
        )
    task_obj, task_name, task_how = resolve_task(config, task)
    say = progress or (lambda message: None)
    say(f"Rebuilding the run's data from {shipped.config if shipped else run_dir / 'config.json'} and choosing held-out images")
    sets = load_evaluation_sets(
        config, seed, settings.max_images,
        _dataset_override(config, "synthetic", None, overrides),
        _dataset_override(config, "real", real, overrides),
    )
    synthetic, real_images = sets.synthetic.images, sets.real.images
    refined = refine_images(model, synthetic, torch_device)
    a, b = halves(len(synthetic))
    ra, rb = halves(len(real_images))
    notes = _seen_notes(sets.infos)

    say(f"Realism: two-sample classifiers on {len(synthetic)} synthetic/refined and {len(real_images)} real images")
    realism = [
        two_sample_test(name, images[a], real_images[ra], images[b], real_images[rb], seed, settings.realism, torch_device)
        for name, images in (("synthetic", synthetic), ("refined", refined))
    ]
    features = {k: extract_features(v, torch_device) for k, v in (("synthetic", synthetic), ("refined", refined), ("real", real_images))}
    distances = [
        kid("synthetic vs real", features["synthetic"], features["real"], seed, settings.kid_subsets),
        kid("refined vs real", features["refined"], features["real"], seed, settings.kid_subsets),
        kid("real vs real", features["real"][ra], features["real"][rb], seed, settings.kid_subsets),
    ]
    report = EvaluationReport(
        run_dir=str(run_dir),
        refiner=str(refiner_path),
        command=command or f"refinekit.evaluate({str(run_dir)!r}, seed={seed}, task_seeds={task_seeds})",
        seed=seed,
        task_seeds=list(range(task_seeds)),
        data=list(sets.infos),
        realism=realism,
        distances=distances,
        fidelity=image_fidelity(synthetic, refined),
        notes=notes,
    )
    if settings.realism != RealismSettings() or settings.kid_subsets != EvaluationSettings().kid_subsets:
        report.notes.append(
            f"Non-default budgets ({settings.realism.describe()}, {settings.kid_subsets} KID subsets): these numbers "
            "do not compare with evaluations run with the defaults."
        )
    if task_obj is None:
        report.notes.append(f"No evaluation task: {task_how}. Annotation and downstream checks were skipped.")
    else:
        _task_checks(report, task_obj, task_name or "", task_how, config, sets, refined, real_labelled, task_seeds,
                     settings, torch_device, say)
    report.training_log = read_metrics(run_dir / EVAL_LOG)
    report.notes.extend(_training_log_notes(report.training_log))
    _write_outputs(report, Path(out) if out is not None else run_dir / "eval", synthetic[b], refined[b], real_images[rb])
    return report


def _write_outputs(
    report: EvaluationReport, out_dir: Path, synthetic: np.ndarray, refined: np.ndarray, real: np.ndarray
) -> None:
    """Figures, report.json and report.md in ``out_dir``; the sample grid shows held-out images."""
    out_dir.mkdir(parents=True, exist_ok=True)
    report.out_dir = str(out_dir)
    report.figures.append(str(sample_figure(out_dir / "samples.png", synthetic, refined, real)))
    if report.downstream and report.task is not None:
        report.figures.append(
            str(downstream_figure(out_dir / "downstream.png", report.downstream, report.task.metric, report.task.units))
        )
    if sum(1 for r in report.training_log if r.get("phase") != "synthetic") >= 2:
        metric_key = f"labels_{report.task.metric}" if report.task is not None else None
        report.figures.append(str(training_figure(out_dir / "realism_over_training.png", report.training_log, metric_key)))
    write_json(report, out_dir / "report.json")
    write_markdown(report, out_dir / "report.md")


def _training_log_notes(log: Sequence[dict[str, Any]]) -> list[str]:
    """Point at the evaluation point with the lowest realism accuracy, and at its label numbers."""
    points = [row for row in log if row.get("phase") != "synthetic" and "realism_accuracy" in row]
    if not points:
        return []
    best = min(points, key=lambda row: (row["realism_accuracy"], -row["step"]))
    labels = ", ".join(f"{k} {v:.3g}" for k, v in best.items() if k.startswith("labels_"))
    return [
        f"During training, held-out realism accuracy was lowest at step {best['step']} "
        f"({100 * best['realism_accuracy']:.1f}%{f'; {labels}' if labels else ''}); its refiner is "
        f"{best.get('snapshot', 'not saved')}. Check that its labels held before choosing it."
    ]


def _seen_notes(infos: Sequence[SetInfo]) -> list[str]:
    notes = []
    for info in infos:
        if info.seen_in_training:
            who = "the refiner" if info.role == "synthetic" else "the discriminator"
            notes.append(
                f"{info.seen_in_training} of {info.count} {info.role} evaluation images were seen by {who} during "
                f"training ({info.note}). Realism and distance numbers then flatter the refiner; "
                + ("pass held-out real images with --real PATH or --set real.KEY=VALUE." if info.role == "real"
                   else "a simulator dataset gives fresh images; a fixed file cannot.")
            )
    return notes


def _task_checks(
    report: EvaluationReport,
    task: Task,
    name: str,
    how: str,
    config: TrainConfig,
    sets: EvaluationSets,
    refined: np.ndarray,
    real_labelled: str | None,
    task_seeds: int,
    settings: EvaluationSettings,
    device: torch.device,
    say: Callable[[str], None],
) -> None:
    """Annotation preservation and downstream utility, appended to ``report``."""
    steps = settings.task_steps if settings.task_steps is not None else task.steps
    report.task = TaskInfo(name, how, list(task.label_keys), task.metric, task.higher_is_better, task.units,
                           steps, task.batch_size, task.lr)
    if steps != task.steps:
        report.notes.append(f"Task models were trained for {steps} steps instead of the task's {task.steps}.")
    task.check_labels(sets.synthetic, "synthetic evaluation data")
    synthetic = sets.synthetic.images
    targets = task.targets(sets.synthetic.annotations)
    a, b = halves(len(synthetic))
    seeds = report.task_seeds
    say(f"Task '{name}': training task models ({steps} steps each, {task_seeds} seed(s) per training set)")
    real_train, real_test, infos = labelled_real_sets(task, real_labelled, config, sets.training_real)
    report.data.extend(infos)
    if real_test is None:
        model = train_task_model(task, synthetic[a], targets[a], seeds[0], device, steps)
        report.notes.append(
            "No labelled real test data (the task has none; pass --real-labelled PATH): downstream utility was not measured."
        )
    else:
        real_targets = task.targets(real_test.annotations)
        runs: list[DownstreamResult] = []
        syn_result, models = train_and_test(task, "synthetic", synthetic[a], targets[a], real_test.images, real_targets,
                                            seeds, device, steps)
        model = models[0]
        runs.append(syn_result)
        ref_result, _ = train_and_test(task, "refined", refined[a], targets[a], real_test.images, real_targets,
                                       seeds, device, steps)
        runs.append(with_relative_change(ref_result, syn_result))
        if real_train is not None:
            real_result, _ = train_and_test(task, "real", real_train.images, task.targets(real_train.annotations),
                                            real_test.images, real_targets, seeds, device, steps)
            runs.append(with_relative_change(real_result, syn_result))
        else:
            report.notes.append("No labelled real training data: the real-trained reference model was skipped.")
        report.downstream = runs
    report.annotations = label_preservation(task, model, synthetic[b], refined[b], targets[b], len(synthetic[a]), seeds[0])
