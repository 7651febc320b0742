"""Precision choice: explicit names, what ``auto`` picks and why, and that a run keeps its choice on resume."""

from __future__ import annotations

import math

import pytest
import torch
from safetensors import safe_open

import refinekit.runtime.precision as precision
from refinekit.errors import ConfigError
from refinekit.runtime.precision import Precision, resolve_precision
from refinekit.training.setup import prepare, resolve_config

CPU = torch.device("cpu")
SMALL = ["refiner.options.features=8", "refiner.options.blocks=1", "discriminator.options.widths=[8, 8, 8, 8]"]


@pytest.mark.parametrize(("name", "dtype"), [("fp32", None), ("bf16", torch.bfloat16), ("fp16", torch.float16)])
def test_explicit_precisions_are_taken_as_asked(name, dtype) -> None:
    chosen = resolve_precision(name, CPU, bf16_speedup=lambda: pytest.fail("an explicit choice must not probe"))
    assert (chosen.name, chosen.dtype, chosen.reason) == (name, dtype, "requested")
    assert not chosen.needs_scaler  # loss scaling is for fp16 on CUDA only


def test_unknown_precision_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="'fp8' is not one of auto, fp32, bf16, fp16"):
        resolve_precision("fp8", CPU)


def test_auto_without_native_bf16_picks_fp32_without_probing(monkeypatch) -> None:
    monkeypatch.setattr(precision, "cpu_has_fast_bf16", lambda: False)
    chosen = resolve_precision("auto", CPU, bf16_speedup=lambda: pytest.fail("no bf16 units: nothing to measure"))
    assert chosen.name == "fp32" and chosen.dtype is None and "no native bf16" in chosen.reason


@pytest.mark.parametrize(("speedup", "expected"), [(2.7, "bf16"), (1.05, "fp32")])
def test_auto_with_bf16_units_keeps_bf16_only_when_measured_faster(monkeypatch, speedup, expected) -> None:
    monkeypatch.setattr(precision, "cpu_has_fast_bf16", lambda: True)
    chosen = resolve_precision("auto", CPU, bf16_speedup=lambda: speedup)
    assert chosen.name == expected
    assert f"{speedup:.2f}x" in chosen.reason  # the run says what it measured


def test_the_bf16_probe_measures_a_ratio() -> None:
    ratio = precision.cpu_bf16_speedup(batch=1, repeats=1)
    assert math.isfinite(ratio) and ratio > 0


def test_a_bf16_step_keeps_fp32_weights_and_finite_losses(tiny_domain, tmp_path) -> None:
    trainer = prepare(resolve_config("tiny", overrides=[*SMALL, 'precision="bf16"']), tmp_path)
    before = [p.detach().clone() for p in trainer.refiner.parameters()]
    metrics = trainer.refiner_step(adversarial=False)
    assert trainer.precision.dtype == torch.bfloat16
    assert all(math.isfinite(v) for v in metrics.values())
    assert all(p.dtype == torch.float32 for p in trainer.refiner.parameters())  # autocast, not a cast of the weights
    assert any(not torch.equal(b, p) for b, p in zip(before, trainer.refiner.parameters()))


def test_auto_is_recorded_and_a_resumed_run_keeps_its_first_choice(tiny_domain, tmp_path, monkeypatch) -> None:
    overrides = [*SMALL, 'precision="auto"', "schedule.steps=0"]
    monkeypatch.setattr("refinekit.training.loop.plot_losses", lambda metrics, out: None)  # slow, and not under test
    monkeypatch.setattr("refinekit.training.loop.resolve_precision", lambda name, device: Precision("fp32", None, "cpu", "x"))
    prepare(resolve_config("tiny", overrides=overrides), tmp_path).fit()
    with safe_open(str(tmp_path / "checkpoint.safetensors"), "pt") as f:
        assert f.metadata()["precision"] == "fp32"
    # Today auto would pick bf16 (another machine, another measurement); the run continues in fp32.
    monkeypatch.setattr(
        "refinekit.training.loop.resolve_precision", lambda name, device: Precision("bf16", torch.bfloat16, "cpu", "x")
    )
    resumed = prepare(resolve_config("tiny", overrides=overrides), tmp_path, resume=True)
    assert resumed.precision.name == "fp32" and resumed.precision.dtype is None
