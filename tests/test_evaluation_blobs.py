"""Evaluation on a constructed domain where the right answers are known: a bright blob in one of four columns.

Synthetic images are clean blobs on a dark background (a simulator: each seed
gives new images); real images are the same blobs on a brighter, noisier
background (a fixed "file": train and test splits that ignore the seed). The
label is the blob's column, so an identity refiner keeps every label and a
refiner that shifts images by one column (4 px) changes every label.
"""

from __future__ import annotations

import json
import os
import signal
from typing import Iterator, Mapping

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from click.testing import CliRunner
from safetensors.torch import load_file
from torch import nn

import refinekit
from refinekit.cli.app import main
from refinekit.cli.shell import EXIT_INTERRUPTED
from refinekit.config import ImageConfig
from refinekit.data.image_set import ImageSet
from refinekit.evaluation import api as evaluation_api
from refinekit.evaluation import during_training
from refinekit.evaluation.annotations import image_fidelity, label_preservation
from refinekit.evaluation.api import EvaluationSettings
from refinekit.evaluation.realism import RealismSettings
from refinekit.evaluation.task import Task
from refinekit.evaluation.task_model import predict, train_task_model
from refinekit.plugins.hookspecs import hookimpl
from refinekit.plugins.recipe import Recipe
from refinekit.plugins.registry import Registry
from refinekit.training.state import REFINER_NAME

SIZE = (12, 16)
COLUMNS = (2, 6, 10, 14)  # 4 px apart: a 4 px shift moves a blob to the next column
# budgets small enough for seconds on a busy CPU; the blob sets differ so much that they still decide
TEST_SETTINGS = EvaluationSettings(max_images=96, realism=RealismSettings(steps=40, width=8), kid_subsets=3, task_steps=60)


def make_blobs(count: int, seed: int, real: bool) -> ImageSet:
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, len(COLUMNS), count)
    rows = rng.uniform(3, SIZE[0] - 3, count)
    y, x = np.mgrid[0 : SIZE[0], 0 : SIZE[1]]
    centres = np.array(COLUMNS)[labels]
    blobs = np.exp(-((x[None] - centres[:, None, None]) ** 2 + (y[None] - rows[:, None, None]) ** 2) / 3.0)
    background, noise = (90.0, 18.0) if real else (30.0, 3.0)
    images = background + 150 * blobs + rng.normal(0, noise, blobs.shape)
    images = np.clip(np.rint(images), 0, 255).astype(np.uint8)[:, None]
    return ImageSet(images, {"column": labels}, source=f"blobs({'real' if real else 'synthetic'}, seed {seed})")


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tiny networks


class BlobColumnTask(Task):
    """Which of four columns holds the blob: a 4-way classifier scored by accuracy."""

    label_keys = ("column",)
    metric = "accuracy"
    steps = 60
    batch_size = 32
    lr = 3e-2

    def make_model(self, channels: int, size: tuple[int, int]) -> nn.Module:
        # averaging over rows leaves a column profile, which is all this task needs
        return nn.Sequential(nn.Conv2d(channels, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d((1, size[1])),
                             nn.Flatten(), nn.Linear(4 * size[1], len(COLUMNS)))

    def targets(self, annotations: Mapping[str, np.ndarray]) -> torch.Tensor:
        return torch.as_tensor(annotations["column"], dtype=torch.long)

    def loss(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(outputs, targets)

    def decode(self, outputs: torch.Tensor) -> torch.Tensor:
        return outputs.argmax(1)

    def compare(self, predicted: torch.Tensor, reference: torch.Tensor) -> dict[str, np.ndarray]:
        return {"accuracy": (predicted == reference).numpy()}

    def labelled_real(self, split, path, image: ImageConfig, seed: int) -> ImageSet | None:
        return make_blobs(96, {"train": 1000, "test": 2000}[split], real=True)


class BlobDomain:
    @staticmethod
    @hookimpl
    def register_datasets(register) -> None:
        def load_blobs(path, *, channels, size, limit, seed, real=False, count=96):
            # real blobs are a fixed "file" (the seed is ignored); synthetic ones a simulator
            return make_blobs(limit or count, 1000 if real else seed, real)

        register("blobs", load_blobs, "blobs in four columns")

    @staticmethod
    @hookimpl
    def register_tasks(register) -> None:
        register("blob-column", BlobColumnTask, "which column holds the blob")

    @staticmethod
    @hookimpl
    def register_recipes(register) -> None:
        register(
            Recipe(
                name="blobs",
                description="blob columns, for evaluation tests",
                config={
                    "synthetic": {"name": "blobs"},
                    "real": {"name": "blobs", "options": {"real": True}},
                    "image": {"channels": 1, "height": SIZE[0], "width": SIZE[1]},
                    "refiner": {"name": "simgan-resnet", "options": {"blocks": 1, "features": 8}},
                    "batch_size": 8,
                    "buffer_size": 16,
                    "discriminator": {"name": "local-patch", "options": {"widths": [8, 8, 8, 8]}},
                    "optim": {"name": "adam", "lr_refiner": 1e-3, "lr_discriminator": 1e-3},
                    "schedule": {"refiner_pretrain_steps": 2, "discriminator_pretrain_steps": 2, "steps": 4},
                    "log_every": 1,
                    "sample_every": 100,
                    "checkpoint_every": 100,
                },
                task="blob-column",
            )
        )


@pytest.fixture
def blobs(isolated_registry: Registry) -> Iterator[Registry]:
    isolated_registry.register_plugin(BlobDomain, "blob-domain")
    yield isolated_registry
    isolated_registry.unregister_plugin("blob-domain")


@pytest.fixture(scope="module")
def column_model() -> nn.Module:
    task = BlobColumnTask()
    train = make_blobs(160, 1, real=False)
    return train_task_model(task, train.images, task.targets(train.annotations), seed=0)


def test_task_model_training_is_seeded_and_learns(column_model: nn.Module) -> None:
    task = BlobColumnTask()
    train, test = make_blobs(160, 1, real=False), make_blobs(64, 2, real=False)
    again = train_task_model(task, train.images, task.targets(train.annotations), seed=0)
    assert all(torch.equal(p, q) for p, q in zip(column_model.parameters(), again.parameters()))
    accuracy = (predict(task, column_model, test.images) == task.targets(test.annotations)).float().mean()
    assert accuracy > 0.9


def test_identity_refiner_keeps_annotations_perfectly(column_model: nn.Module) -> None:
    task, test = BlobColumnTask(), make_blobs(64, 2, real=False)
    labels = task.targets(test.annotations)
    result = label_preservation(task, column_model, test.images, test.images.copy(), labels, 160, 0)
    assert result.refined_vs_synthetic_predictions["accuracy"].mean == 1.0
    assert result.refined_vs_labels["accuracy"].mean == result.synthetic_vs_labels["accuracy"].mean > 0.9
    fidelity = image_fidelity(test.images, test.images.copy())
    assert fidelity.l1.mean == 0.0 and fidelity.ssim.mean == pytest.approx(1.0)


def test_refiner_shifting_by_four_pixels_is_caught(column_model: nn.Module) -> None:
    task, test = BlobColumnTask(), make_blobs(64, 2, real=False)
    labels = task.targets(test.annotations)
    shifted = np.roll(test.images, 4, axis=3)  # every blob moves one column to the right
    result = label_preservation(task, column_model, test.images, shifted, labels, 160, 0)
    assert result.synthetic_vs_labels["accuracy"].mean > 0.9
    assert result.refined_vs_labels["accuracy"].high < 0.3
    assert result.refined_vs_synthetic_predictions["accuracy"].high < 0.3
    # the pixels say the same: a shift is a large change, though every pixel value is kept
    assert image_fidelity(test.images, shifted).ssim.mean < 0.7


def test_missing_label_key_is_a_data_error(column_model: nn.Module) -> None:
    unlabelled = ImageSet(make_blobs(8, 0, False).images, {}, source="blobs without labels")
    with pytest.raises(refinekit.DataError, match="no annotation 'column'.*--task"):
        BlobColumnTask().check_labels(unlabelled, "synthetic evaluation data")


def test_run_with_eval_every_then_evaluate_from_the_cli(blobs: Registry, tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(during_training, "DURING_TRAINING", TEST_SETTINGS)
    monkeypatch.setattr(evaluation_api, "QUICK", TEST_SETTINGS)
    run_dir = tmp_path / "run"
    runner = CliRunner()
    trained = runner.invoke(main, ["run", "blobs", "--out", str(run_dir), "--eval-every", "4", "--quiet",
                                   "--device", "cpu"])
    assert trained.exit_code == 0, trained.output
    log = [json.loads(line) for line in (run_dir / "eval.jsonl").read_text().splitlines()]
    assert [(row["step"], row["phase"]) for row in log] == [(0, "synthetic"), (4, "discriminator-pretrain"),
                                                            (8, "adversarial")]
    assert log[0]["realism_accuracy"] > 0.9  # clean synthetic blobs vs noisy real ones
    assert log[0]["l1"] == 0.0 and log[0]["labels_accuracy"] > 0.9
    assert {row.get("snapshot") for row in log[1:]} == {"refiner_step_0000004.safetensors",
                                                       "refiner_step_0000008.safetensors"}
    assert (run_dir / "refiner_step_0000004.safetensors").exists()

    result = runner.invoke(main, ["evaluate", str(run_dir), "--quick", "--device", "cpu", "--task-seeds", "2"])
    assert result.exit_code == 0, result.output
    report = json.loads((run_dir / "eval" / "report.json").read_text())
    data = {d["role"]: d for d in report["data"]}
    assert data["synthetic"]["seen_in_training"] == 0  # a simulator: fresh images
    # real_holdout kept 19 of the 96 real images away from D: realism is scored on those alone
    assert data["real"]["count"] == 19 and data["real"]["seen_in_training"] == 0
    assert data["labelled real (test)"]["count"] == 96
    assert not any("seen by the discriminator" in note for note in report["notes"])
    realism = {r["name"]: r for r in report["realism"]}
    assert realism["synthetic"]["accuracy"]["mean"] > 0.9
    kid = {d["name"]: d["kid"] for d in report["distances"]}
    assert kid["synthetic vs real"] > 10 * abs(kid["real vs real"])
    rows = {d["trained_on"]: d for d in report["downstream"]}
    assert list(rows) == ["synthetic", "refined", "real"]
    assert rows["synthetic"]["n_train"] == 48 and rows["real"]["n_train"] == 96 and rows["real"]["n_test"] == 96
    assert rows["real"]["mean"]["accuracy"] > 0.9 and len(rows["real"]["per_seed"]) == 2
    assert rows["refined"]["relative_change"]["accuracy"] == pytest.approx(
        rows["refined"]["mean"]["accuracy"] / rows["synthetic"]["mean"]["accuracy"] - 1)
    assert report["task"]["name"] == "blob-column" and report["task"]["steps"] == TEST_SETTINGS.task_steps
    assert [row["step"] for row in report["training_log"]] == [0, 4, 8]
    best = min(log[1:], key=lambda row: (row["realism_accuracy"], -row["step"]))
    assert any(f"lowest at step {best['step']}" in note and best["snapshot"] in note for note in report["notes"])
    figures = sorted(p.name for p in (run_dir / "eval").glob("*.png"))
    assert figures == ["downstream.png", "realism_over_training.png", "samples.png"]
    markdown = (run_dir / "eval" / "report.md").read_text()
    assert "refinekit evaluate" in markdown and "--task-seeds 2" in markdown
    assert f"{100 * realism['refined']['accuracy']['mean']:.1f}%" in markdown


def test_eval_snapshots_are_the_exported_refiner_that_was_scored(blobs: Registry, tmp_path, monkeypatch) -> None:
    """With a weight average the snapshot is the average, which ``trainer.refine`` scored, as ``refiner.safetensors`` is."""
    monkeypatch.setattr(during_training, "DURING_TRAINING", TEST_SETTINGS)
    run_dir = tmp_path / "run"
    trained = CliRunner().invoke(main, ["run", "blobs", "--out", str(run_dir), "--eval-every", "8", "--quiet",
                                        "--device", "cpu", "--set", "refiner_ema=0.5"])
    assert trained.exit_code == 0, trained.output
    snapshot, final = (load_file(run_dir / name) for name in ("refiner_step_0000008.safetensors", REFINER_NAME))
    assert snapshot.keys() == final.keys() and all(torch.equal(snapshot[k], final[k]) for k in final)


def test_ctrl_c_during_an_evaluation_ends_it_at_once(blobs: Registry, tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(during_training, "DURING_TRAINING", TEST_SETTINGS)
    stages: list[str] = []
    train_task_model_of = during_training.train_task_model

    def ctrl_c_while_training_the_task_model(*args, **kwargs):
        stages.append("task model")
        if len(stages) == 1:
            os.kill(os.getpid(), signal.SIGINT)  # the handler raises here, before the model trains
        return train_task_model_of(*args, **kwargs)

    monkeypatch.setattr(during_training, "train_task_model", ctrl_c_while_training_the_task_model)
    monkeypatch.setattr(during_training, "two_sample_test", lambda *a, **k: stages.append("realism") or pytest.fail())
    run_dir = tmp_path / "run"
    command = ["run", "blobs", "--out", str(run_dir), "--eval-every", "4", "--quiet", "--device", "cpu"]
    stopped = CliRunner().invoke(main, command)
    assert stopped.exit_code == EXIT_INTERRUPTED, stopped.output
    assert "Interrupted at step 4" in stopped.output and stages == ["task model"]
    assert not (run_dir / "eval.jsonl").exists() and not list(run_dir.glob("refiner_step_*"))

    monkeypatch.undo()
    monkeypatch.setattr(during_training, "DURING_TRAINING", TEST_SETTINGS)
    resumed = CliRunner().invoke(main, [*command, "--resume"])
    assert resumed.exit_code == 0, resumed.output
    log = [json.loads(line) for line in (run_dir / "eval.jsonl").read_text().splitlines()]
    assert [row["step"] for row in log] == [0, 8]  # step 4's point was given up; the next one is measured


def test_evaluate_api_without_labelled_real_data(blobs: Registry, tmp_path, monkeypatch) -> None:
    refinekit.train("blobs", tmp_path / "run")
    monkeypatch.setattr(BlobColumnTask, "labelled_real", lambda self, split, path, image, seed: None)
    report = refinekit.evaluate(tmp_path / "run", settings=TEST_SETTINGS, device="cpu", out=tmp_path / "out")
    assert report.downstream == [] and report.annotations is not None
    assert any("downstream utility was not measured" in note for note in report.notes)
    assert (tmp_path / "out" / "report.md").exists()


def test_evaluate_rejects_a_folder_that_is_not_a_run(tmp_path) -> None:
    result = CliRunner().invoke(main, ["evaluate", str(tmp_path)])
    assert result.exit_code == 2 and "no config.json" in result.output


def test_task_is_inferred_from_the_recipes_and_never_guessed_between_two(blobs: Registry) -> None:
    from refinekit.config import build_config
    from refinekit.evaluation.api import resolve_task

    config = build_config({"synthetic": {"name": "blobs"}, "real": {"name": "image-folder"}})
    task, name, how = resolve_task(config, None)
    assert isinstance(task, BlobColumnTask) and name == "blob-column" and "synthetic dataset is 'blobs'" in how

    class Rival:
        @staticmethod
        @hookimpl
        def register_recipes(register) -> None:
            register(Recipe(name="rival", description="", config={"synthetic": {"name": "blobs"}}, task="other"))

    blobs.register_plugin(Rival, "rival")
    try:
        task, name, how = resolve_task(config, None)
        assert task is None and "several tasks (blob-column, other)" in how and "--task" in how
    finally:
        blobs.unregister_plugin("rival")
