"""examples/train_gaze_with_refiner.py trains a gaze estimator on refined simulated eyes, on tiny settings."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from refinekit.plugins.registry import create_refiner
from refinekit.weights.files import export_refiner

refinekit_eyes = pytest.importorskip("refinekit_eyes", reason="the example needs the eyes plugin (pip install -e plugins/eyes)")
from refinekit_eyes import plugin as eyes_plugin  # noqa: E402
from refinekit_eyes.gaze_estimator import GazeEstimator  # noqa: E402

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "train_gaze_with_refiner.py"


def load_example():
    spec = importlib.util.spec_from_file_location("train_gaze_with_refiner", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_trains_on_refined_batches_and_saves_the_estimator(isolated_registry, tmp_path, monkeypatch) -> None:
    isolated_registry.register_plugin(eyes_plugin, "eyes")
    refiner_path = tmp_path / "refiner.safetensors"
    export_refiner(create_refiner("simgan-resnet", features=8, blocks=1), refiner_path, "simgan-resnet",
                   {"features": 8, "blocks": 1}, 1, (35, 55))
    example = load_example()
    refined_batches: list[tuple[int, ...]] = []

    def open_spied_refiner(path, device):
        refiner = real_open_refiner(path, device)
        refiner.register_forward_hook(lambda module, inputs, output: refined_batches.append(tuple(output.shape)))
        return refiner

    real_open_refiner = example.open_refiner
    monkeypatch.setattr(example, "open_refiner", open_spied_refiner)
    out = tmp_path / "gaze.safetensors"

    result = example.main([
        "--refiner", str(refiner_path), "--steps", "3", "--batch-size", "8", "--images", "40",
        "--hidden", "16", "--device", "cpu", "--out", str(out),
    ])

    # Three training batches of 8, then the 8 held-out images: every batch went through the refiner.
    assert refined_batches == [(8, 1, 35, 55)] * 4
    assert result["held_out_images"] == 8 and 0 <= result["held_out_error_deg"] <= 180
    assert torch.isfinite(torch.tensor(result["loss"]))
    estimator = GazeEstimator(channels=1, image_size=(35, 55), hidden=16)
    estimator.load_state_dict(load_file(str(out)))  # the saved weights are a complete GazeEstimator
