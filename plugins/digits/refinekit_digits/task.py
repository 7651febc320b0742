"""The ``digits`` evaluation task: what ``refinekit evaluate`` trains and scores for this domain.

It reuses :mod:`classifier`'s network and augmentation; the core supplies the
training loop, the budget and the seeds, the same for every training set it
compares.
"""

from __future__ import annotations

from typing import Mapping

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from refinekit.config import ImageConfig
from refinekit.data.image_set import ImageSet
from refinekit.evaluation import Task
from refinekit.evaluation.task import Split
from refinekit_digits.classifier import DigitClassifier, augment_batch
from refinekit_digits.mnist_sample import load_mnist_sample


class DigitsTask(Task):
    """10-way digit classification, scored by accuracy.

    Labelled real data defaults to the ``mnist-sample`` train and test splits
    (4,000 / 1,000 real MNIST digits): disjoint, stratified, and the same
    whatever the run's seed. ``digits-simgan`` refines towards the train split
    only, so the test split measures on real digits the refiner never saw. When
    the user passes ``--real-labelled PATH`` the core reads and splits that instead.
    """

    label_keys = ("label",)
    metric = "accuracy"
    higher_is_better = True
    steps = 500
    batch_size = 64
    lr = 2e-3

    def make_model(self, channels: int, size: tuple[int, int]) -> nn.Module:
        return DigitClassifier(channels=channels)

    def targets(self, annotations: Mapping[str, np.ndarray]) -> torch.Tensor:
        return torch.as_tensor(np.asarray(annotations["label"]), dtype=torch.long)

    def loss(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(outputs, targets)

    def decode(self, outputs: torch.Tensor) -> torch.Tensor:
        return outputs.argmax(dim=1)

    def compare(self, predicted: torch.Tensor, reference: torch.Tensor) -> dict[str, np.ndarray]:
        return {"accuracy": (predicted.cpu() == reference.cpu()).numpy()}

    def augment(self, images: torch.Tensor) -> torch.Tensor:
        return augment_batch(images)

    def labelled_real(self, split: Split, path: str | None, image: ImageConfig, seed: int) -> ImageSet | None:
        if path is not None:
            return None
        size = (image.height, image.width)
        return load_mnist_sample(None, channels=image.channels, size=size, limit=None, seed=seed, split=split)
