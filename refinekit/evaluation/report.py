"""The evaluation's result object and its two written forms: report.json and report.md.

Both carry every number with the image counts and seeds behind it, and the
command that produced them, so a reader can rerun it and check.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from refinekit.evaluation.annotations import AnnotationResult, FidelityResult
from refinekit.evaluation.distance import DistanceResult
from refinekit.evaluation.downstream import DownstreamResult
from refinekit.evaluation.holdout import SetInfo
from refinekit.evaluation.realism import RealismResult
from refinekit.evaluation.statistics import Estimate


@dataclass
class TaskInfo:
    """The evaluation task, how it was chosen, and its fixed training budget."""

    name: str
    chosen_by: str
    label_keys: list[str]
    metric: str
    higher_is_better: bool
    units: str
    steps: int
    batch_size: int
    lr: float


@dataclass
class EvaluationReport:
    """Everything ``refinekit evaluate`` measured about one refiner.

    Args:
        run_dir: the run folder.
        refiner: the refiner file evaluated.
        command: the command (or call) that produced the report.
        seed: the evaluation seed (splits, classifiers, KID subsets).
        task_seeds: seeds of the task models.
        data: every image set used, with counts and how many training saw.
        realism: two-sample tests, synthetic vs real and refined vs real.
        distances: KIDs, including real vs real as the noise floor.
        fidelity: L1 and SSIM between refined and synthetic.
        task: the evaluation task, or None when the domain has none.
        annotations: label preservation (None without a task).
        downstream: task models trained on each set and tested on labelled real data.
        training_log: the ``--eval-every`` lines of the run (eval.jsonl), if any.
        notes: caveats a reader must know (seen images, skipped parts).
        figures: PNG files written next to the report.
        out_dir: where the report was written.
    """

    run_dir: str
    refiner: str
    command: str
    seed: int
    task_seeds: list[int]
    data: list[SetInfo]
    realism: list[RealismResult]
    distances: list[DistanceResult]
    fidelity: FidelityResult
    task: TaskInfo | None = None
    annotations: AnnotationResult | None = None
    downstream: list[DownstreamResult] = field(default_factory=list)
    training_log: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    figures: list[str] = field(default_factory=list)
    out_dir: str = ""

    def realism_of(self, name: str) -> RealismResult:
        return next(r for r in self.realism if r.name == name)

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_dir": self.run_dir,
            "refiner": self.refiner,
            "command": self.command,
            "seed": self.seed,
            "task_seeds": self.task_seeds,
            "data": [d.to_dict() for d in self.data],
            "realism": [r.to_dict() for r in self.realism],
            "distances": [d.to_dict() for d in self.distances],
            "fidelity": self.fidelity.to_dict(),
            "task": None if self.task is None else dict(self.task.__dict__),
            "annotations": None if self.annotations is None else self.annotations.to_dict(),
            "downstream": [d.to_dict() for d in self.downstream],
            "training_log": self.training_log,
            "notes": self.notes,
            "figures": self.figures,
        }


def write_json(report: EvaluationReport, path: Path) -> None:
    path.write_text(json.dumps(report.to_dict(), indent=2, allow_nan=True) + "\n")


def fmt(e: Estimate, share: bool | None = None, digits: int = 3) -> str:
    """``mean [low, high]``; shares as percentages."""
    if share is None:
        share = e.interval == "wilson"
    if share:
        return f"{100 * e.mean:.1f}% [{100 * e.low:.1f}, {100 * e.high:.1f}]"
    return f"{e.mean:.{digits}f} [{e.low:.{digits}f}, {e.high:.{digits}f}]"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines + [""]


def write_markdown(report: EvaluationReport, path: Path) -> None:
    """report.md: every number of report.json in tables, with counts, seeds and the command."""
    lines = [
        f"# Evaluation of {report.refiner}",
        "",
        f"Produced by: `{report.command}`",
        "",
        f"Evaluation seed {report.seed} (splits, realism classifiers, KID subsets); task-model seeds "
        f"{', '.join(map(str, report.task_seeds))}. All intervals are 95%: Wilson for shares, "
        "mean +- 1.96 standard errors for other means.",
        "",
        "## Data",
        "",
    ]
    lines += _table(
        ["set", "images", "seen in training", "source", "how chosen"],
        [
            [d.role, str(d.count), "n/a" if d.seen_in_training is None else str(d.seen_in_training), d.source, d.note]
            for d in report.data
        ],
    )
    lines += ["## Realism: classifier two-sample test", "",
              "A fresh classifier learns to tell each set from real images on one half and is scored on the "
              "other half. 50% = indistinguishable, 100% = trivially told apart.", ""]
    lines += _table(
        ["compared with real", "held-out accuracy [95% CI]", "p (acc > 50%)", "train / test images per side", "seed"],
        [
            [r.name, fmt(r.accuracy), f"{r.p_value:.3g}", f"{r.n_train} / {r.n_test}", str(r.seed)]
            for r in report.realism
        ],
    )
    if report.realism:
        lines += [f"Classifier: {report.realism[0].classifier}.", ""]
    lines += ["## Distribution distance (KID)", ""]
    lines += _table(
        ["sets", "KID x 1000", "std over subsets x 1000", "images", "subsets x size"],
        [
            [d.name, f"{1000 * d.kid:.3f}", f"{1000 * d.kid_std:.3f}", f"{d.n_a} / {d.n_b}", f"{d.subsets} x {d.subset_size}"]
            for d in report.distances
        ],
    )
    if report.distances:
        lines += [f"Feature extractor: {report.distances[0].extractor}. 'real vs real' (two halves of the real "
                  "set) is the floor a perfect refiner would reach. The std over subsets is 0 when a subset is "
                  "the whole set.", ""]
    lines += ["## Annotations kept", "", "### Pixels: refined vs synthetic", ""]
    lines += _table(
        ["L1 (share of intensity range)", "SSIM", "image pairs"],
        [[fmt(report.fidelity.l1, False, 4), fmt(report.fidelity.ssim, False, 4), str(report.fidelity.n)]],
    )
    if report.task is not None:
        t = report.task
        lines += [
            "### Task",
            "",
            f"Task '{t.name}' ({t.chosen_by}): labels {', '.join(t.label_keys)}; headline metric {t.metric} "
            f"({'higher' if t.higher_is_better else 'lower'} is better{f', in {t.units}' if t.units else ''}); "
            f"every task model gets {t.steps} Adam steps of {t.batch_size} images, lr {t.lr}.",
            "",
        ]
    if report.annotations is not None:
        a = report.annotations
        lines += [
            "### Labels through a task model trained on synthetic images",
            "",
            f"Model trained on {a.n_train} synthetic images (seed {a.seed}), tested on {a.n} other synthetic "
            "images and their refined versions.",
            "",
        ]
        keys = list(a.synthetic_vs_labels)
        lines += _table(
            ["metric", "synthetic vs labels", "refined vs labels", "refined vs predictions on synthetic"],
            [
                [k, fmt(a.synthetic_vs_labels[k]), fmt(a.refined_vs_labels[k]), fmt(a.refined_vs_synthetic_predictions[k])]
                for k in keys
            ],
        )
    if report.downstream:
        lines += ["## Downstream: train on each set, test on labelled real images", ""]
        keys = list(report.downstream[0].mean)
        header = ["trained on", "train / test images"] + [f"{k} (mean over seeds, std)" for k in keys]
        header += ["relative change vs synthetic"] + ["95% CI, seed " + str(report.task_seeds[0])]
        rows = []
        for d in report.downstream:
            change = "-" if d.relative_change is None else ", ".join(
                f"{k} {100 * v:+.1f}%" for k, v in d.relative_change.items()
            )
            cis = ", ".join(f"{k} {fmt(v)}" for k, v in d.per_seed[0].items())
            means = [f"{_value(d.per_seed[0][k], d.mean[k])} ({_value(d.per_seed[0][k], d.seed_std[k])})" for k in keys]
            rows.append([d.trained_on, f"{d.n_train} / {d.n_test}", *means, change, cis])
        lines += _table(header, rows)
    if report.training_log:
        lines += ["## During training (--eval-every)", ""]
        keys = [k for k in report.training_log[0] if k not in ("step", "phase")]
        lines += _table(["step", "phase", *keys], [
            [str(r.get("step")), str(r.get("phase", "")), *(_cell(r.get(k)) for k in keys)] for r in report.training_log
        ])
    if report.notes:
        lines += ["## Notes", ""] + [f"- {n}" for n in report.notes] + [""]
    if report.figures:
        lines += ["## Figures", ""] + [f"![{Path(f).stem}]({Path(f).name})" for f in report.figures] + [""]
    path.write_text("\n".join(lines))


def _value(e: Estimate, value: float) -> str:
    return f"{100 * value:.1f}%" if e.interval == "wilson" else f"{value:.3f}"


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "" if value is None else str(value)
