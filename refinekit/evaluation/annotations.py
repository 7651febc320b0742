"""Are the annotations still right? Label preservation through a task model, and image fidelity.

A refiner may change appearance but must not change what the labels describe
(the paper's self-regularisation exists for this, section 2.2). Two checks:

* A task model trained on synthetic images reads the refined images. Its
  predictions are compared with the synthetic labels and with its own
  predictions on the unrefined images, using the task's comparison rule
  (degrees of gaze, label agreement). A refiner that moves an eye's iris or a
  digit's stroke is caught here even if it looks perfectly real.
* L1 and SSIM between refined and synthetic images: how much the refiner
  changed the pixels at all.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from refinekit.evaluation.statistics import Estimate, estimate, mean_interval
from refinekit.evaluation.task import Task
from refinekit.evaluation.task_model import predict

SSIM_WINDOW = 11
"""Gaussian window of SSIM (sigma 1.5), as in Wang et al. 2004; narrowed for images smaller than it."""


@dataclass(frozen=True)
class FidelityResult:
    """Pixel-level change from synthetic to refined, per image, averaged.

    Args:
        l1: mean absolute difference as a share of the intensity range (0 = unchanged, 1 = inverted).
        ssim: mean structural similarity (1 = identical structure).
        n: image pairs.
    """

    l1: Estimate
    ssim: Estimate
    n: int

    def to_dict(self) -> dict[str, object]:
        return {"l1": self.l1.to_dict(), "ssim": self.ssim.to_dict(), "n": self.n}


@dataclass(frozen=True)
class AnnotationResult:
    """How well labels survive refinement, through a task model trained on synthetic images.

    Args:
        synthetic_vs_labels: the model's predictions on the unrefined test images
            against their labels: the baseline (how well the model reads synthetic images).
        refined_vs_labels: its predictions on the refined test images against the
            same synthetic labels. The annotation check: ideally equal to the baseline.
        refined_vs_synthetic_predictions: predictions on refined images against
            predictions on the unrefined ones: the change refinement causes, free of
            the model's own error.
        n: test images.
        n_train: synthetic images the task model was trained on (disjoint from the test images).
        seed: the task model's seed.
    """

    synthetic_vs_labels: dict[str, Estimate]
    refined_vs_labels: dict[str, Estimate]
    refined_vs_synthetic_predictions: dict[str, Estimate]
    n: int
    n_train: int
    seed: int

    def to_dict(self) -> dict[str, object]:
        def block(values: dict[str, Estimate]) -> dict[str, object]:
            return {k: v.to_dict() for k, v in values.items()}

        return {
            "synthetic_vs_labels": block(self.synthetic_vs_labels),
            "refined_vs_labels": block(self.refined_vs_labels),
            "refined_vs_synthetic_predictions": block(self.refined_vs_synthetic_predictions),
            "n": self.n,
            "n_train": self.n_train,
            "seed": self.seed,
        }


def image_fidelity(synthetic: np.ndarray, refined: np.ndarray) -> FidelityResult:
    """L1 and SSIM between uint8 (N, C, H, W) synthetic images and their refined versions."""
    if synthetic.shape != refined.shape:
        raise ValueError(f"image_fidelity: shapes differ, {synthetic.shape} vs {refined.shape}")
    from kornia.metrics import ssim  # imported here: kornia takes a second to import, and only this needs it

    a = torch.from_numpy(np.ascontiguousarray(synthetic)).double() / 255.0
    b = torch.from_numpy(np.ascontiguousarray(refined)).double() / 255.0
    l1 = (a - b).abs().mean(dim=(1, 2, 3))
    window = min(SSIM_WINDOW, _largest_odd(min(a.shape[2], a.shape[3])))
    similarity = torch.cat(
        [ssim(a[i : i + 256], b[i : i + 256], window).mean(dim=(1, 2, 3)) for i in range(0, len(a), 256)]
    )
    return FidelityResult(mean_interval(l1.numpy()), mean_interval(similarity.numpy()), len(a))


def _largest_odd(limit: int) -> int:
    return limit if limit % 2 else limit - 1


def label_preservation(
    task: Task,
    model: nn.Module,
    synthetic: np.ndarray,
    refined: np.ndarray,
    labels: torch.Tensor,
    n_train: int,
    seed: int,
) -> AnnotationResult:
    """Score ``model`` (trained on other synthetic images) on ``synthetic`` test images and their ``refined`` versions.

    Args:
        task: supplies the comparison rule.
        model: the task model, trained on synthetic images disjoint from these.
        synthetic: uint8 test images.
        refined: the same images after refinement, in the same order.
        labels: ``task.targets`` of the synthetic test images.
        n_train: how many images the model was trained on (for the report).
        seed: the model's seed (for the report).
    """
    on_synthetic = predict(task, model, synthetic)
    on_refined = predict(task, model, refined)

    def summarise(predicted: torch.Tensor, reference: torch.Tensor) -> dict[str, Estimate]:
        return {k: estimate(v) for k, v in task.compare(predicted, reference).items()}

    return AnnotationResult(
        synthetic_vs_labels=summarise(on_synthetic, labels),
        refined_vs_labels=summarise(on_refined, labels),
        refined_vs_synthetic_predictions=summarise(on_refined, on_synthetic),
        n=len(synthetic),
        n_train=n_train,
        seed=seed,
    )
