"""Downstream utility: does a model trained on refined images do better on real ones? (paper, Tables 2 and 3)

The same task model, with the same budget and seeds, is trained on synthetic,
on refined and (where the domain has labelled real training data) on real
images, and each is tested on the same held-out labelled real images. Only
the training images differ, so the difference in the metric is the
refiner's doing.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Sequence

import numpy as np
import torch
from torch import nn

from refinekit.evaluation.statistics import Estimate, estimate
from refinekit.evaluation.task import Task
from refinekit.evaluation.task_model import predict, train_task_model


@dataclass(frozen=True)
class DownstreamResult:
    """One training set's task models, tested on labelled real images.

    Args:
        trained_on: ``synthetic``, ``refined`` or ``real``.
        n_train: training images.
        n_test: labelled real test images.
        seeds: one task model was trained per seed.
        per_seed: each seed's metrics over the test images, with 95% intervals.
        mean: each metric averaged over seeds.
        seed_std: each metric's standard deviation over seeds (0 with one seed).
        relative_change: (this - synthetic) / |synthetic| of each seed-mean metric;
            None for the synthetic row itself.
    """

    trained_on: str
    n_train: int
    n_test: int
    seeds: list[int]
    per_seed: list[dict[str, Estimate]]
    mean: dict[str, float]
    seed_std: dict[str, float]
    relative_change: dict[str, float] | None = field(default=None)

    def to_dict(self) -> dict[str, object]:
        return {
            "trained_on": self.trained_on,
            "n_train": self.n_train,
            "n_test": self.n_test,
            "seeds": list(self.seeds),
            "per_seed": [{k: v.to_dict() for k, v in row.items()} for row in self.per_seed],
            "mean": dict(self.mean),
            "seed_std": dict(self.seed_std),
            "relative_change": self.relative_change,
        }


def train_and_test(
    task: Task,
    trained_on: str,
    train_images: np.ndarray,
    train_targets: torch.Tensor,
    test_images: np.ndarray,
    test_targets: torch.Tensor,
    seeds: Sequence[int],
    device: torch.device | str = "cpu",
    steps: int | None = None,
) -> tuple[DownstreamResult, list[nn.Module]]:
    """Train one task model per seed on the training set and score each on the test set.

    Returns the result and the trained models (in seed order), so a caller can
    reuse the synthetic-trained model for the annotation check.
    """
    models, per_seed = [], []
    for seed in seeds:
        model = train_task_model(task, train_images, train_targets, seed, device, steps)
        values = task.compare(predict(task, model, test_images), test_targets)
        per_seed.append({k: estimate(v) for k, v in values.items()})
        models.append(model)
    keys = list(per_seed[0])
    mean = {k: float(np.mean([row[k].mean for row in per_seed])) for k in keys}
    spread = {k: float(np.std([row[k].mean for row in per_seed])) for k in keys}
    result = DownstreamResult(trained_on, len(train_images), len(test_images), list(seeds), per_seed, mean, spread)
    return result, models


def with_relative_change(result: DownstreamResult, baseline: DownstreamResult) -> DownstreamResult:
    """``result`` with its relative change against ``baseline`` (the synthetic-trained row) filled in."""
    change = {
        k: (v - baseline.mean[k]) / abs(baseline.mean[k]) if baseline.mean.get(k) else float("nan")
        for k, v in result.mean.items()
    }
    return replace(result, relative_change=change)
