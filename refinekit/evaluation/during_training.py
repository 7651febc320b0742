"""``refinekit run --eval-every N``: realism and annotation metrics during training, to pick a checkpoint.

Adversarial training does not converge to a best point on its own: realism
may keep improving while labels drift. Every N steps this callback measures,
on fixed held-out images and with the fixed budgets of ``refinekit evaluate``,

* held-out realism accuracy (classifier two-sample test, refined vs real),
* KID refined vs real,
* the task model's metric on refined images against their synthetic labels,
* L1 and SSIM refined vs synthetic,

appends one line to ``RUN_DIR/eval.jsonl``, and saves the refiner at that step
as ``refiner_step_XXXXXXX.safetensors`` (the trainer keeps only the latest
refiner; a snapshot lets ``refinekit evaluate RUN --refiner SNAPSHOT`` and
``refinekit refine`` use the step the log points to). Snapshots cost one
refiner's weights each (about 1 MB for the paper's refiner).

A first line (``"phase": "synthetic"``, step 0) holds the unrefined baseline.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from refinekit.evaluation.annotations import image_fidelity, label_preservation
from refinekit.evaluation.api import EVAL_LOG, EvaluationSettings, resolve_task
from refinekit.evaluation.distance import extract_features, kid
from refinekit.evaluation.holdout import EvaluationSets, halves, load_evaluation_sets
from refinekit.evaluation.realism import two_sample_test
from refinekit.evaluation.refined import refine_images
from refinekit.evaluation.task import Task
from refinekit.evaluation.task_model import train_task_model
from refinekit.training.loop import StepReport, StopRequested, Trainer
from refinekit.training.run_figures import read_metrics
from refinekit.weights.files import export_refiner

DURING_TRAINING = EvaluationSettings(max_images=1000)
"""Half the images of a full evaluation: each evaluation point then costs a few seconds on a CPU."""


@dataclass
class _Prepared:
    sets: EvaluationSets
    task: Task | None
    task_model: nn.Module | None
    targets: torch.Tensor | None
    real_features: torch.Tensor
    log_lines: list[dict[str, Any]]
    """What ``eval.jsonl`` holds before this run's first point: earlier lines kept, the baseline added."""


class EvalDuringTraining:
    """A trainer callback evaluating the refiner every ``every`` steps (and at the last step).

    Ctrl-C during an evaluation ends it at once (:meth:`Trainer.interruptible`) and the run
    stops with a checkpoint at that step: the point is not logged, and a resumed run
    evaluates again at the next multiple of ``every``.

    Args:
        every: steps between evaluation points.
        task: the task name (the recipe's), a :class:`Task`, or None to infer it.
        seed: evaluation seed; keep it fixed across runs so their logs compare.
        settings: sizes and budgets (default :data:`DURING_TRAINING`).
        snapshots: save ``refiner_step_XXXXXXX.safetensors`` at each point.
    """

    def __init__(
        self,
        every: int,
        task: str | Task | None = None,
        *,
        seed: int = 0,
        settings: EvaluationSettings | None = None,
        snapshots: bool = True,
    ) -> None:
        if every < 1:
            raise ValueError("--eval-every must be at least 1")
        self.every = every
        self.task = task
        self.seed = seed
        self.settings = settings if settings is not None else DURING_TRAINING
        self.snapshots = snapshots
        self._prepared: _Prepared | None = None

    def __call__(self, trainer: Trainer, report: StepReport) -> None:
        if report.step % self.every and report.step != report.total:
            return
        try:
            with trainer.interruptible():  # the files are written below, after the work that Ctrl-C may end
                prepared = self._prepared or self._prepare(trainer)
                line = self._measure(trainer, prepared, report)
        except StopRequested:
            return
        if self._prepared is None:
            self._prepared = prepared
            log = trainer.out_dir / EVAL_LOG
            log.parent.mkdir(parents=True, exist_ok=True)
            log.write_text("".join(json.dumps(row) + "\n" for row in prepared.log_lines))
        if self.snapshots:
            c = trainer.config
            export_refiner(trainer.exported_refiner, trainer.out_dir / line["snapshot"], c.refiner.name,
                           c.refiner.options, c.image.channels, (c.image.height, c.image.width))
        self._append(trainer.out_dir, line)

    def _prepare(self, trainer: Trainer) -> _Prepared:
        config = trainer.config
        sets = load_evaluation_sets(config, self.seed, self.settings.max_images)
        task, _, _ = resolve_task(config, self.task)
        model = targets = None
        if task is not None:
            task.check_labels(sets.synthetic, "synthetic evaluation data")
            targets = task.targets(sets.synthetic.annotations)
            a, _ = halves(len(sets.synthetic))
            model = train_task_model(task, sets.synthetic.images[a], targets[a], 0, trainer.device, self.settings.task_steps)
        # a resumed run repeats the steps after its checkpoint: drop their old lines
        kept = [row for row in read_metrics(trainer.out_dir / EVAL_LOG) if row.get("step", 0) < trainer.step]
        prepared = _Prepared(sets, task, model, targets, extract_features(sets.real.images, trainer.device), kept)
        if not any(row.get("phase") == "synthetic" for row in kept):
            baseline = self._scores(prepared, sets.synthetic.images, trainer.device)
            kept.append({"step": 0, "phase": "synthetic", **baseline})
        return prepared

    def _measure(self, trainer: Trainer, prepared: _Prepared, report: StepReport) -> dict[str, Any]:
        """The step's line for ``eval.jsonl``; the snapshot it names is written by the caller."""
        refined = refine_images(trainer.refine, prepared.sets.synthetic.images, trainer.device)
        scores = self._scores(prepared, refined, trainer.device)
        line: dict[str, Any] = {"step": report.step, "phase": report.phase, **scores}
        if self.snapshots:
            line["snapshot"] = f"refiner_step_{report.step:07d}.safetensors"
        return line

    def _scores(self, prepared: _Prepared, images: np.ndarray, device: torch.device) -> dict[str, Any]:
        """Realism, KID, pixel change and labels of ``images`` (refined, or the synthetic ones as the baseline)."""
        synthetic, real = prepared.sets.synthetic.images, prepared.sets.real.images
        a, b = halves(len(images))
        ra, rb = halves(len(real))
        realism = two_sample_test("refined", images[a], real[ra], images[b], real[rb], self.seed, self.settings.realism, device)
        distance = kid("refined vs real", extract_features(images, device), prepared.real_features, self.seed,
                       self.settings.kid_subsets)
        fidelity = image_fidelity(synthetic, images)
        scores: dict[str, Any] = {
            "realism_accuracy": realism.accuracy.mean,
            "realism_low": realism.accuracy.low,
            "realism_high": realism.accuracy.high,
            "realism_n_test": realism.n_test,
            "kid": distance.kid,
            "l1": fidelity.l1.mean,
            "ssim": fidelity.ssim.mean,
        }
        if prepared.task is not None and prepared.task_model is not None and prepared.targets is not None:
            labels = label_preservation(prepared.task, prepared.task_model, synthetic[b], images[b], prepared.targets[b],
                                        len(synthetic[a]), 0)
            scores.update({f"labels_{k}": v.mean for k, v in labels.refined_vs_labels.items()})
            scores.update({f"change_{k}": v.mean for k, v in labels.refined_vs_synthetic_predictions.items()})
        return {k: round(v, 6) if isinstance(v, float) else v for k, v in scores.items()}

    @staticmethod
    def _append(out_dir: Path, line: dict[str, Any]) -> None:
        out_dir.mkdir(parents=True, exist_ok=True)
        with open(out_dir / EVAL_LOG, "a") as f:
            f.write(json.dumps(line) + "\n")
