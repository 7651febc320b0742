"""The run-time probe: a component that breaks its contract is named before step 1, and the probe changes nothing."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from torch import nn

from refinekit.cli.app import main
from refinekit.plugins.hookspecs import hookimpl
from refinekit.plugins.probe import probe_components
from refinekit.training.setup import prepare, resolve_config


class TwoChannels(nn.Module):
    """Returns 2 channels for 1-channel images: the L1 would broadcast through all of R's pre-training."""

    def __init__(self, channels: int = 1) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, 2, 3, padding=1)

    def forward(self, x):
        return torch.tanh(self.conv(x))


class NoTanh(nn.Module):
    def __init__(self, channels: int = 1) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.tensor(10.0))

    def forward(self, x):
        return x * self.scale + 3


class OneLogit(nn.Module):
    def __init__(self, channels: int = 1) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, 1, 3)

    def forward(self, x):
        return self.conv(x)


class PerImage(nn.Module):
    def __init__(self, channels: int = 1) -> None:
        super().__init__()

    def forward(self, refined, synthetic):
        return (refined - synthetic).abs().mean(dim=(1, 2, 3))


class BrokenComponents:
    @staticmethod
    @hookimpl
    def register_refiners(register) -> None:
        register("two-channels", TwoChannels, "")
        register("no-tanh", NoTanh, "")

    @staticmethod
    @hookimpl
    def register_discriminators(register) -> None:
        register("one-logit", OneLogit, "")

    @staticmethod
    @hookimpl
    def register_regularizers(register) -> None:
        register("per-image", PerImage, "")


@pytest.fixture
def broken(tiny_domain):
    tiny_domain.register_plugin(BrokenComponents, "broken-parts")
    yield
    tiny_domain.unregister_plugin("broken-parts")


@pytest.mark.parametrize(
    ("setting", "expected"),
    [
        ("refiner.name=two-channels", r"refiner 'two-channels' of plugin 'broken-parts' \(in-process -\) returned shape \(2, 2, 16, 20\) for images of shape \(2, 1, 16, 20\)"),
        ("refiner.name=no-tanh", r"refiner 'no-tanh' .* returned pixels in \[.*\]; refined images must be in \[-1, 1\]"),
        ("discriminator.name=one-logit", r"discriminator 'one-logit' .* returned shape \(2, 1, 14, 18\) for 2 images"),
        ("regularizer.name=per-image", r"regularizer 'per-image' .* returned \(2,\); a regulariser returns a scalar"),
    ],
)
def test_a_component_breaking_its_contract_is_named_before_step_1(broken, tmp_path: Path, setting, expected) -> None:
    out = tmp_path / "run"
    result = CliRunner().invoke(main, ["run", "tiny", "--out", str(out), "--quiet", "--set", setting])
    said = " ".join(result.output.split())
    assert result.exit_code == 2 and "Traceback" not in result.output, result.output
    import re

    assert re.search(expected, said), said
    assert "before training started" in said
    assert not (out / "metrics.jsonl").exists() and not (out / "checkpoint.safetensors").exists()


def test_the_probe_changes_no_state_batch_norm_statistics_rng_or_modes(tiny_domain, tmp_path: Path) -> None:
    refiner = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.Dropout(0.5), nn.Conv2d(4, 1, 1), nn.Tanh())
    refiner.train()
    before = {k: v.clone() for k, v in refiner.state_dict().items()}
    images = torch.rand(2, 1, 8, 8) * 2 - 1
    rng = torch.get_rng_state()
    probe_components(refiner, None, None, images, {"refiner": "bn"})
    assert all(torch.equal(before[k], v) for k, v in refiner.state_dict().items())
    assert torch.equal(rng, torch.get_rng_state()) and refiner.training and refiner[1].training


def test_a_run_with_good_components_is_unchanged_by_the_probe(tiny_domain, tmp_path: Path, monkeypatch) -> None:
    config = resolve_config("tiny")
    first = prepare(config, tmp_path / "a").fit()
    monkeypatch.setattr("refinekit.training.loop.Trainer.probe_components", lambda self: None)
    second = prepare(config, tmp_path / "b").fit()
    assert first.metrics == second.metrics
