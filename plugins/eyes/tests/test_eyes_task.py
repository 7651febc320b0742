"""The ``gaze`` evaluation task: its registration, metric, MPIIGaze splits and the core's training loop."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from refinekit_eyes.gaze import pitch_yaw_to_vector
from refinekit_eyes.task import GazeTask, _split_index

from refinekit.config import ImageConfig
from refinekit.evaluation.api import resolve_task
from refinekit.evaluation.task_model import predict, train_task_model
from refinekit.plugins.registry import get_task

IMAGE = ImageConfig(channels=1, height=35, width=55)
MPIIGAZE_MAT = Path(__file__).parent / "fixtures" / "mpiigaze_day01_layout_fixture.mat"


def test_recipe_task_is_registered(eyes_registry) -> None:
    from refinekit.training.setup import resolve_config

    task, name, how = resolve_task(resolve_config("eyes-simgan"), None)
    assert name == "gaze" and isinstance(task, GazeTask) and isinstance(get_task("gaze"), GazeTask)


def test_compare_reports_degrees_and_the_share_within_seven() -> None:
    angles = torch.tensor([[0.0, 0.0], [0.0, np.deg2rad(5.0)], [0.0, np.deg2rad(90.0)]])
    reference = pitch_yaw_to_vector(torch.zeros(3, 2))
    scores = GazeTask().compare(pitch_yaw_to_vector(angles), reference)
    assert scores["angular_error_deg"] == pytest.approx([0.0, 5.0, 90.0], abs=1e-6)
    assert scores["angular_error_deg"].dtype == np.float64  # a quantity, not a share
    assert scores["within_7deg"].tolist() == [True, True, False]


def test_mpiigaze_splits_by_person_every_third_person_tests() -> None:
    person = np.repeat([0, 1, 2, 3, 4, 5], 2)
    test, test_how = _split_index(person, "test")
    train, _ = _split_index(person, "train")
    assert sorted(set(person[test])) == [0, 3] and sorted(set(person[train])) == [1, 2, 4, 5]
    assert "p00, p03" in test_how


def test_one_mpiigaze_file_is_split_in_fixed_disjoint_halves(eyes_registry) -> None:
    task = GazeTask()
    train = task.labelled_real("train", str(MPIIGAZE_MAT), IMAGE, seed=0)
    test = task.labelled_real("test", str(MPIIGAZE_MAT), IMAGE, seed=0)
    assert train.shape == test.shape == (1, 35, 55) and abs(len(train) - len(test)) <= 1
    assert not {row.tobytes() for row in train.images} & {row.tobytes() for row in test.images}
    assert np.array_equal(task.labelled_real("test", str(MPIIGAZE_MAT), IMAGE, seed=9).images, test.images)
    assert "fixed-seed half" in test.source


def test_no_labelled_real_eyes_without_an_mpiigaze_path(tmp_path) -> None:
    assert GazeTask().labelled_real("test", None, IMAGE, seed=0) is None
    assert GazeTask().labelled_real("test", str(tmp_path), IMAGE, seed=0) is None  # the core's to read


def test_core_training_loop_fits_the_gaze_estimator() -> None:
    task = GazeTask()
    generator = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (16, 1, 35, 55), generator=generator, dtype=torch.uint8).numpy()
    targets = task.targets({"gaze": pitch_yaw_to_vector(torch.rand(16, 2, generator=generator) - 0.5).numpy()})
    model = train_task_model(task, images, targets, seed=0, steps=2)
    predicted = predict(task, model, images)
    assert predicted.shape == (16, 3) and torch.allclose(predicted.norm(dim=1), torch.ones(16), atol=1e-5)
    assert float(task.loss(predicted, targets)) == pytest.approx(
        float((predicted - targets).square().sum(1).mean()))
