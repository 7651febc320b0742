"""End-to-end training on the tiny domain through the Python API."""

from __future__ import annotations

import json

import refinekit


def test_train_writes_every_output(tiny_domain, tmp_path) -> None:
    result = refinekit.train("tiny", tmp_path / "run")
    assert result.step == 12
    for name in ("checkpoint.safetensors", "refiner.safetensors", "config.json", "metrics.jsonl", "losses.png"):
        assert (tmp_path / "run" / name).exists(), name
    lines = [json.loads(l) for l in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [l["step"] for l in lines] == list(range(1, 13))
    assert {l["phase"] for l in lines} == {"refiner-pretrain", "discriminator-pretrain", "adversarial"}
    assert sorted(p.name for p in (tmp_path / "run" / "samples").iterdir()) == ["step_0000005.png", "step_0000010.png", "step_0000012.png"]
