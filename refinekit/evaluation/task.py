"""The interface a domain implements so that ``refinekit evaluate`` can judge its refiners.

A refiner is worth using only if refined images still carry their labels and
train models that do better on real data. Both questions need a model that
reads the domain's annotations (a gaze estimator, a digit classifier). A
:class:`Task` describes that model and its metric; the core trains it with the
same loop, budget and seed on every training set it compares, so a difference
in the numbers comes from the data and nothing else.

A plugin registers a task through the ``register_tasks`` hook and names it in
its recipe (``Recipe(task="digits-classify", ...)``)::

    @hookimpl
    def register_tasks(register):
        register("digits-classify", DigitsTask, "10-way digit classifier, scored by accuracy")
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar, Literal, Mapping

import numpy as np
import torch
from torch import nn

from refinekit.config import ImageConfig
from refinekit.data.image_set import ImageSet
from refinekit.errors import DataError

Split = Literal["train", "test"]


class Task(ABC):
    """What a domain's annotations are for: a trainable model, its loss, and a per-image metric.

    Subclasses set the class attributes and implement the four abstract
    methods; the other methods have working defaults.

    Attributes:
        label_keys: the annotation keys :meth:`targets` reads (e.g. ``("label",)``
            or ``("gaze",)``). The evaluation checks that every labelled set has them.
        metric: the headline key of :meth:`compare` (e.g. ``"accuracy"``,
            ``"angular_error_deg"``), used for the bar chart and relative changes.
        higher_is_better: whether a larger ``metric`` is better (accuracy: True;
            angular error: False).
        units: shown after values of ``metric`` in reports (``"%"`` is implied
            for shares; e.g. ``"deg"`` for angles).
        steps: the training budget: optimiser steps per task model. Every model
            an evaluation compares gets exactly this budget.
        batch_size: images per step, drawn with replacement (so set size does
            not change the budget).
        lr: Adam learning rate (with cosine decay to zero over ``steps``).
    """

    label_keys: ClassVar[tuple[str, ...]] = ()
    metric: ClassVar[str] = ""
    higher_is_better: ClassVar[bool] = True
    units: ClassVar[str] = ""
    steps: ClassVar[int] = 500
    batch_size: ClassVar[int] = 64
    lr: ClassVar[float] = 1e-3

    @abstractmethod
    def make_model(self, channels: int, size: tuple[int, int]) -> nn.Module:
        """A freshly initialised task model for (B, channels, H, W) float images in [-1, 1].

        Called under a seeded RNG, so initialise with torch's global RNG as usual.
        """

    @abstractmethod
    def targets(self, annotations: Mapping[str, np.ndarray]) -> torch.Tensor:
        """The training targets (N, ...) built from an image set's annotations (reads :attr:`label_keys`)."""

    @abstractmethod
    def loss(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """The scalar training loss of model ``outputs`` against ``targets``."""

    @abstractmethod
    def compare(self, predicted: torch.Tensor, reference: torch.Tensor) -> dict[str, np.ndarray]:
        """Per-image comparison of predictions with reference labels, both in :meth:`targets` form.

        This is both the task metric and the label-comparison rule: it scores a
        model's predictions on labelled real images against their labels, a
        model's predictions on refined images against the synthetic labels, and
        predictions on refined against predictions on synthetic images. Return
        one (N,) array per metric whose mean is the metric, including
        :attr:`metric`: a bool array for a share (it gets a Wilson interval), a
        float array for a quantity (a normal interval).
        Example: ``{"accuracy": (predicted == reference).numpy()}``.
        """

    def decode(self, outputs: torch.Tensor) -> torch.Tensor:
        """Model outputs -> predictions in :meth:`targets` form (a classifier: argmax). Default: unchanged."""
        return outputs

    def augment(self, images: torch.Tensor) -> torch.Tensor:
        """Training-time augmentation of a float batch in [-1, 1]. Default: none.

        Runs under the training seed; draw randomness from torch's global RNG.
        """
        return images

    def labelled_real(self, split: Split, path: str | None, image: ImageConfig, seed: int) -> ImageSet | None:
        """Labelled real images for training (``"train"``) or testing (``"test"``) task models, or None.

        ``path`` is what the user passed as ``--real-labelled`` (None if nothing);
        a task with an embedded labelled real set may ignore it when None. The two
        splits must be disjoint and must not change with ``seed`` (which only
        picks a subset when the data is large), or different runs would test on
        different images. Return None when the domain has no labelled real data:
        the evaluation then skips the real-trained model (and, with no test split,
        the downstream comparison) and says so. The default returns None, which
        makes the core load ``path`` with any registered dataset loader and split
        it itself.
        """
        return None

    # -- checks shared by every task ---------------------------------------
    def check_labels(self, images: ImageSet, role: str) -> None:
        """Raise a :class:`DataError` naming ``role`` if ``images`` lacks one of :attr:`label_keys`."""
        missing = [key for key in self.label_keys if key not in images.annotations]
        if missing:
            have = ", ".join(sorted(images.annotations)) or "none"
            raise DataError(
                f"{role} ({images.source or 'dataset'}) has no annotation {missing[0]!r}, which the evaluation "
                f"task {type(self).__name__} needs (it reads {', '.join(self.label_keys)}; the set has: {have}). "
                "Use a dataset that carries these labels, or pass --task to choose another task."
            )
