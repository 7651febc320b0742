"""The digits task: a small CNN classifier, trained with cross-entropy and scored by accuracy.

It answers the question a refiner is for: does a classifier trained on
(refined) synthetic digits read real digits? Training is seeded end to end
(weights, batches, augmentation) so that two training sets can be compared
with everything else held equal.
"""

from __future__ import annotations

import math

import kornia.augmentation as K
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from refinekit_digits.digit_sets import NUM_CLASSES


class DigitClassifier(nn.Module):
    """Three conv-ReLU stages (16, 32, 64 wide) with pooling, then two linear layers: about 0.16M parameters.

    Pooling early keeps a training step at a few milliseconds on two CPU
    cores, so evaluations can train several classifiers per run. The final
    adaptive pool lets it take any image size the recipes use.
    Input: float (B, C, H, W) in [-1, 1], refinekit's image range. Output: (B, 10) logits.

    Examples:
        >>> DigitClassifier(channels=1)(torch.zeros(2, 1, 28, 28)).shape
        torch.Size([2, 10])
    """

    def __init__(self, channels: int = 1, width: int = 16) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(channels, width, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(width, 2 * width, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(2 * width, 4 * width, 3, padding=1),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(4),
        )
        self.classify = nn.Sequential(
            nn.Flatten(), nn.Linear(4 * width * 16, 128), nn.ReLU(), nn.Dropout(0.25), nn.Linear(128, NUM_CLASSES)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classify(self.features(x))


def _to_float(images: np.ndarray | torch.Tensor) -> torch.Tensor:
    """uint8 images -> float in [-1, 1], the range refiners work in."""
    return torch.as_tensor(np.asarray(images)).float().div(127.5).sub(1.0)


_JITTER = K.RandomAffine(degrees=10.0, translate=(0.1, 0.1), scale=(0.9, 1.1), p=1.0)


def augment_batch(images: torch.Tensor) -> torch.Tensor:
    """Small random affine jitter of a float batch in [-1, 1], the usual MNIST training augmentation.

    The batch is shifted to [0, 1] for the warp so that the zeros it pads
    with are the black background, not mid-grey. Draws from torch's global RNG.
    """
    with torch.no_grad():
        return _JITTER(images.add(1.0)).sub(1.0)


def train_classifier(
    images: np.ndarray,
    labels: np.ndarray,
    steps: int = 500,
    seed: int = 0,
    augment: bool = True,
    *,
    batch_size: int = 64,
    lr: float = 2e-3,
) -> DigitClassifier:
    """A :class:`DigitClassifier` trained on uint8 (N, C, H, W) ``images`` with int ``labels``, in eval mode.

    The loop is the one refinekit's evaluation runs for every task (Adam,
    cosine decay to zero, batches drawn with replacement), so numbers from here
    and from ``refinekit evaluate`` with the ``digits`` task are comparable.

    Args:
        images: uint8 (N, C, H, W), e.g. ``ImageSet.images``.
        labels: (N,) digit classes.
        steps: Adam steps (any set size gets the same budget).
        seed: seeds weights, batches and augmentation; the global RNG is left as it was.
        augment: apply :func:`augment_batch` to every batch.
        batch_size: images per step.
        lr: Adam's starting learning rate.

    Examples:
        >>> x = np.zeros((4, 1, 28, 28), np.uint8); y = np.array([0, 1, 2, 3])
        >>> train_classifier(x, y, steps=1).training
        False
    """
    data = torch.as_tensor(np.asarray(images))
    target = torch.as_tensor(np.asarray(labels), dtype=torch.long)
    with torch.random.fork_rng(devices=[]):  # kornia and nn.init draw from the global RNG
        torch.manual_seed(seed)
        model = DigitClassifier(channels=data.shape[1])
        optimizer = torch.optim.Adam(model.parameters(), lr=lr)
        batches = torch.Generator().manual_seed(seed)
        model.train()
        for step in range(steps):
            for group in optimizer.param_groups:
                group["lr"] = lr * 0.5 * (1 + math.cos(math.pi * step / steps))
            index = torch.randint(len(data), (batch_size,), generator=batches)
            batch = _to_float(data[index])
            if augment:
                batch = augment_batch(batch)
            loss = F.cross_entropy(model(batch), target[index])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    return model.eval()


@torch.no_grad()
def predict(model: nn.Module, images: np.ndarray, batch_size: int = 1024) -> np.ndarray:
    """Predicted digit classes (N,) int64 for uint8 (N, C, H, W) ``images``."""
    model.eval()
    out = [model(_to_float(images[i : i + batch_size])).argmax(1) for i in range(0, len(images), batch_size)]
    return torch.cat(out).numpy().astype(np.int64) if out else np.zeros(0, dtype=np.int64)


def accuracy(model: nn.Module, images: np.ndarray, labels: np.ndarray) -> float:
    """The fraction of ``images`` whose predicted class equals ``labels``."""
    labels = np.asarray(labels)
    if len(labels) == 0:
        raise ValueError("accuracy of an empty set is undefined; pass at least one image")
    return float((predict(model, images) == labels).mean())
