"""The ``gaze`` evaluation task: the paper's gaze estimator, scored by angular error (section 3.1, Table 2).

``refinekit evaluate`` trains :class:`~refinekit_eyes.gaze_estimator.GazeEstimator`
on synthetic, refined and (given labelled MPIIGaze) real eyes with the same
budget and seeds, and tests each on held-out real eyes. The embedded MPIIGaze
sample has no gaze labels, so the downstream test needs ``--real-labelled PATH``
(an MPIIGaze ``Data/Normalized`` tree, a ``pXX`` folder or a ``.mat`` file).
"""

from __future__ import annotations

from typing import Mapping

import numpy as np
import torch
from torch import nn

from refinekit.config import ImageConfig
from refinekit.data.image_set import ImageSet
from refinekit.evaluation import Task
from refinekit.evaluation.task import Split
from refinekit_eyes.gaze import angular_error_degrees
from refinekit_eyes.gaze_estimator import GazeEstimator
from refinekit_eyes.mpiigaze import is_mpiigaze, load_mpiigaze

WITHIN_DEGREES = 7.0
"""The d of "share of images within d degrees" (the paper's Table 2 reports d = 7, as we read it)."""

SPLIT_SEED = 0
"""Fixed: the MPIIGaze split must be the same in every run, or runs would test on different eyes."""


class GazeTask(Task):
    """3-d gaze regression, scored by mean angular error in degrees and the share within 7 degrees.

    Labelled real data: MPIIGaze split person-independently (every third person,
    p00, p03, ..., is the test split; the others train), which is how gaze
    estimators are usually tested. A single person's data is split in half by a
    fixed seed instead, and the source line says so. The test split is capped at
    :attr:`max_test` eyes, chosen with a fixed seed, to keep testing affordable on a CPU.
    """

    label_keys = ("gaze",)
    metric = "angular_error_deg"
    higher_is_better = False
    units = "deg"
    steps = 600
    batch_size = 64
    lr = 3e-4
    max_test = 10_000

    def make_model(self, channels: int, size: tuple[int, int]) -> nn.Module:
        return GazeEstimator(channels=channels, image_size=size)

    def targets(self, annotations: Mapping[str, np.ndarray]) -> torch.Tensor:
        gaze = torch.as_tensor(np.asarray(annotations["gaze"], dtype=np.float32))
        return nn.functional.normalize(gaze, dim=1)

    def loss(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        # the paper's Euclidean loss on unit gaze vectors (a monotone function of the angle)
        return (outputs - targets).square().sum(dim=1).mean()

    def compare(self, predicted: torch.Tensor, reference: torch.Tensor) -> dict[str, np.ndarray]:
        errors = angular_error_degrees(predicted.double().cpu(), reference.double().cpu()).numpy()
        return {self.metric: errors, f"within_{WITHIN_DEGREES:g}deg": errors <= WITHIN_DEGREES}

    def labelled_real(self, split: Split, path: str | None, image: ImageConfig, seed: int) -> ImageSet | None:
        if path is None or not is_mpiigaze(path):
            return None  # no labelled real eyes built in; other formats are the core's to read and split
        everything = load_mpiigaze(path, channels=image.channels, size=(image.height, image.width), limit=None, seed=0)
        index, how = _split_index(everything.annotations["person"], split)
        if split == "test" and len(index) > self.max_test:
            index = np.sort(np.random.default_rng(SPLIT_SEED).choice(index, self.max_test, replace=False))
            how += f", {self.max_test} chosen with seed {SPLIT_SEED}"
        chosen = everything.subset(index)
        return ImageSet(chosen.images, chosen.annotations, source=f"{everything.source}, {split} split: {how}")


def _split_index(person: np.ndarray, split: Split) -> tuple[np.ndarray, str]:
    """Indices of ``split``: by person when there are several, else a fixed-seed half."""
    people = np.unique(person)
    if len(people) >= 2:
        test_people = people[::3]
        in_test = np.isin(person, test_people)
        chosen = np.flatnonzero(in_test if split == "test" else ~in_test)
        names = ", ".join(f"p{int(p):02d}" for p in (test_people if split == "test" else people[~np.isin(people, test_people)]))
        return chosen, f"persons {names}"
    order = np.random.default_rng(SPLIT_SEED).permutation(len(person))
    half = len(order) // 2
    chosen = np.sort(order[half:] if split == "test" else order[:half])
    return chosen, f"one person only, so a fixed-seed half ({'second' if split == 'test' else 'first'})"
