"""examples/train_refiner_in_your_loop.py trains a refiner and a task model together, on tiny settings."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import pytest
from safetensors.torch import load_file

from refinekit.plugins.registry import create_refiner
from refinekit.training import simgan

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "train_refiner_in_your_loop.py"


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tiny networks


def load_example():
    spec = importlib.util.spec_from_file_location("train_refiner_in_your_loop", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("task_weight", [0.0, 0.1])
def test_trains_r_d_and_the_task_model_in_one_loop_and_saves_both(tmp_path, monkeypatch, task_weight) -> None:
    calls = {"refiner_loss": 0, "discriminator_step": 0}

    def counted(name):
        original = getattr(simgan, name)

        def wrapper(*args, **kwargs):
            calls[name] += 1
            return original(*args, **kwargs)

        monkeypatch.setattr(simgan, name, wrapper)

    counted("refiner_loss")
    counted("discriminator_step")
    out = tmp_path / "out"

    result = load_example().main([
        "--steps", "3", "--pretrain-steps", "5", "--batch-size", "4", "--images", "16", "--features", "4",
        "--task-weight", str(task_weight), "--device", "cpu", "--out", str(out),
    ])

    # 5 R pre-training steps and 3 rounds; 1 D pre-training step and 3 rounds (refiner_step calls refiner_loss)
    assert calls == {"refiner_loss": 5 + 3, "discriminator_step": 1 + 3}
    assert {"refiner_loss", "refiner_adv", "discriminator_loss", "task_loss"} <= set(result)
    assert all(math.isfinite(value) for value in result.values())
    assert result["synthetic_gap"] > 0.3  # the toy domains differ, so the gap a refiner closes is there
    refiner = create_refiner("simgan-resnet", channels=1, features=4, blocks=1)
    refiner.load_state_dict(load_file(str(out / "refiner.safetensors")))
    load_example().TaskModel().load_state_dict(load_file(str(out / "task.safetensors")))
