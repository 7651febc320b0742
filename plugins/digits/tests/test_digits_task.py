"""The ``digits`` evaluation task, as refinekit's evaluation drives it."""

from __future__ import annotations

from typing import Iterator

import numpy as np
import pytest
import torch
from refinekit_digits import plugin
from refinekit_digits.fonts import render_digits

from refinekit.config import ImageConfig
from refinekit.evaluation.task_model import predict, train_task_model
from refinekit.plugins.registry import get_registry, get_task, reset_registry

IMAGE = ImageConfig(channels=1, height=28, width=28)


@pytest.fixture
def task(monkeypatch: pytest.MonkeyPatch) -> Iterator:
    monkeypatch.setenv("REFINEKIT_DISABLE_ENTRY_POINTS", "1")
    reset_registry()
    get_registry().register_plugin(plugin, "digits")
    yield get_task("digits")  # the name digits-simgan's recipe gives as its task
    reset_registry()


def test_default_labelled_real_splits_are_disjoint_and_seed_independent(task) -> None:
    train, test = task.labelled_real("train", None, IMAGE, seed=0), task.labelled_real("test", None, IMAGE, seed=0)
    assert (len(train), len(test)) == (4000, 1000)
    assert train.source.startswith("mnist-sample") and test.source.startswith("mnist-sample")
    rows = {row.tobytes() for row in train.images}
    assert not any(row.tobytes() in rows for row in test.images)
    assert np.array_equal(task.labelled_real("test", None, IMAGE, seed=5).images, test.images)
    assert task.labelled_real("test", "my/digits", IMAGE, seed=0) is None, "a user path is the core's to split"


def test_core_training_loop_runs_the_task(task) -> None:
    images, labels = render_digits(64, seed=0)
    targets = task.targets({"label": labels})
    model = train_task_model(task, images, targets, seed=0, steps=3)
    scores = task.compare(predict(task, model, images[:10]), targets[:10])
    assert scores["accuracy"].dtype == bool and scores["accuracy"].shape == (10,)
    with torch.no_grad():
        assert float(task.loss(model(torch.zeros(2, 1, 28, 28)), targets[:2])) > 0
