"""Realism as an automated visual Turing test: a classifier two-sample test (C2ST).

A fresh classifier learns to tell one image set from real images on a training
split and is scored on a held-out split (Lopez-Paz and Oquab, "Revisiting
Classifier Two-Sample Tests", ICLR 2017). Held-out accuracy near 50% means the
classifier found nothing to tell the sets apart by; near 100% means they are
easy to tell apart. The paper's human Turing test (section 3.1) asks the same
question of people.

The classifier's architecture, budget and seed are fixed (see
:class:`RealismSettings`) so that numbers compare across runs and domains of
the same image size. Both sides are balanced to the same count, so chance is
exactly 50%.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from refinekit.data.image_set import to_float
from refinekit.evaluation.statistics import Estimate, p_value_above_chance, wilson

CLASSIFIER_NAME = "c2st-cnn-v1"


@dataclass(frozen=True)
class RealismSettings:
    """The two-sample classifier's fixed budget. Change it and numbers stop comparing with other runs.

    Args:
        steps: Adam steps (cosine-decayed learning rate).
        batch_size: images per step, half from each side.
        lr: Adam learning rate.
        width: channels of the first convolution (then 2x and 4x).
    """

    steps: int = 300
    batch_size: int = 64
    lr: float = 1e-3
    width: int = 32

    def describe(self) -> str:
        return f"{CLASSIFIER_NAME} (width {self.width}, {self.steps} Adam steps of {self.batch_size}, lr {self.lr})"


class TwoSampleClassifier(nn.Module):
    """Three strided 3x3 convolutions and a linear layer on a 4x4 pooled map: one logit, >0 = real.

    The pooled 4x4 map keeps coarse layout (where things are) as well as texture,
    so the test notices a shifted or misplaced structure, not only noise statistics.
    """

    def __init__(self, channels: int, width: int = 32) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(channels, width, 3, padding=1),
            nn.LeakyReLU(0.2),
            nn.Conv2d(width, 2 * width, 3, stride=2, padding=1),
            nn.LeakyReLU(0.2),
            nn.Conv2d(2 * width, 4 * width, 3, stride=2, padding=1),
            nn.LeakyReLU(0.2),
            nn.AdaptiveAvgPool2d(4),
            nn.Flatten(),
        )
        self.head = nn.Linear(4 * width * 16, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x)).squeeze(1)


@dataclass(frozen=True)
class RealismResult:
    """Held-out accuracy of telling ``name`` images from real ones.

    Args:
        name: what was compared with real images (``synthetic`` or ``refined``).
        accuracy: held-out accuracy with its Wilson 95% interval; ``accuracy.n``
            is the number of test images (half from each side).
        p_value: one-sided binomial p-value of accuracy above 50%.
        n_train: training images per side.
        n_test: held-out test images per side.
        classifier: the classifier and its budget.
        seed: the classifier's seed.
    """

    name: str
    accuracy: Estimate
    p_value: float
    n_train: int
    n_test: int
    classifier: str
    seed: int

    def to_dict(self) -> dict[str, object]:
        data = asdict(self)
        data["accuracy"] = self.accuracy.to_dict()
        return data


def two_sample_test(
    name: str,
    other_train: np.ndarray,
    real_train: np.ndarray,
    other_test: np.ndarray,
    real_test: np.ndarray,
    seed: int,
    settings: RealismSettings = RealismSettings(),
    device: torch.device | str = "cpu",
) -> RealismResult:
    """Train a fresh classifier on the training split, report its accuracy on the held-out split.

    All inputs are uint8 (N, C, H, W). Each split is cut to the same count on both
    sides (keeping the first images, so shuffle beforehand) so chance is 50%.
    """
    n_train, n_test = min(len(other_train), len(real_train)), min(len(other_test), len(real_test))
    if n_train < 1 or n_test < 1:
        raise ValueError(f"two_sample_test({name}): need images on both sides of both splits")
    device = torch.device(device)
    model = train_classifier(other_train[:n_train], real_train[:n_train], seed, settings, device)
    correct = _correct(model, other_test[:n_test], 0.0, device) + _correct(model, real_test[:n_test], 1.0, device)
    return RealismResult(
        name=name,
        accuracy=wilson(correct, 2 * n_test),
        p_value=p_value_above_chance(correct, 2 * n_test),
        n_train=n_train,
        n_test=n_test,
        classifier=settings.describe(),
        seed=seed,
    )


def cross_fitted_accuracy(
    name: str, other_a: np.ndarray, real_a: np.ndarray, other_b: np.ndarray, real_b: np.ndarray, seed: int
) -> float:
    """The two-sample accuracy with each half tested once (train on a, test on b; then the reverse), averaged.

    Every image is then scored by a classifier that never trained on it, and twice
    as many images are tested as in one split: the benchmarks' figures use it.
    """
    folds = [
        two_sample_test(name, other_a, real_a, other_b, real_b, seed),
        two_sample_test(name, other_b, real_b, other_a, real_a, seed),
    ]
    return float(np.mean([fold.accuracy.mean for fold in folds]))


def train_classifier(
    other: np.ndarray,
    real: np.ndarray,
    seed: int,
    settings: RealismSettings = RealismSettings(),
    device: torch.device = torch.device("cpu"),
) -> TwoSampleClassifier:
    """The test's classifier trained on uint8 (N, C, H, W) ``other`` (label 0) and ``real`` (label 1).

    Public so that a diagnosis can read its logits image by image, not only its accuracy.
    """
    images = torch.from_numpy(np.concatenate([other, real])).to(device)
    labels = torch.cat([torch.zeros(len(other)), torch.ones(len(real))]).to(device)
    half = settings.batch_size // 2
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(seed)
        model = TwoSampleClassifier(int(images.shape[1]), settings.width).to(device)
        optimizer = torch.optim.Adam(model.parameters(), lr=settings.lr)
        batches = torch.Generator().manual_seed(seed)
        for step in range(settings.steps):
            for group in optimizer.param_groups:
                group["lr"] = settings.lr * 0.5 * (1 + math.cos(math.pi * step / settings.steps))
            # half from each side in every batch, so class balance never drifts
            index = torch.cat(
                [
                    torch.randint(len(other), (half,), generator=batches),
                    torch.randint(len(real), (half,), generator=batches) + len(other),
                ]
            ).to(device)
            loss = F.binary_cross_entropy_with_logits(model(to_float(images[index])), labels[index])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    return model.eval()


@torch.no_grad()
def _correct(model: nn.Module, images: np.ndarray, label: float, device: torch.device) -> int:
    correct = 0
    for start in range(0, len(images), 512):
        batch = to_float(torch.from_numpy(np.ascontiguousarray(images[start : start + 512])).to(device))
        said_real = model(batch) > 0
        correct += int((said_real == bool(label)).sum())
    return correct
