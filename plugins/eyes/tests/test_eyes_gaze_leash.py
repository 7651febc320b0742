"""The gaze-consistency regulariser: its shipped network reads the gaze, and moving the gaze is what it charges."""

from __future__ import annotations

import dataclasses
import hashlib
from typing import ClassVar

import numpy as np
import pytest
import torch
from refinekit_eyes.gaze import angular_error_degrees
from refinekit_eyes.gaze_leash import LEASH_WEIGHTS, load_gaze_leash
from refinekit_eyes.simulator import BATCH_MULTIPLE, equalize_histograms, render, sample_params

from refinekit.errors import ConfigError, PluginError
from refinekit.plugins.contracts import RegularizerContract
from refinekit.plugins.registry import Registry, create_regularizer
from refinekit.weights.pretrained import read_card_fields


class TestGazeConsistencyContract(RegularizerContract):
    name = "gaze-consistency"
    options: ClassVar[dict] = {"gaze_weight": 10.0}

    @pytest.fixture(autouse=True)
    def _plugin(self, eyes_registry: Registry) -> None:
        """The contract builds by name, so the eyes plugin must be registered."""


def eyes_looking(yaw_degrees: float, count: int = 16) -> torch.Tensor:
    """The same ``count`` simulated eyes, all turned to one yaw, as floats in [-1, 1] (N, 1, 35, 55)."""
    scenes = sample_params(torch.Generator().manual_seed(5), count)
    scenes = dataclasses.replace(scenes, yaw=torch.full((count,), float(np.deg2rad(yaw_degrees))))
    images, _ = render(scenes.padded(BATCH_MULTIPLE), (35, 55))
    return equalize_histograms(images[:count])[:, None].float() / 127.5 - 1


def test_the_shipped_network_is_the_file_its_card_describes() -> None:
    card = read_card_fields(LEASH_WEIGHTS.with_suffix(".md"))
    assert card["sha256"] == hashlib.sha256(LEASH_WEIGHTS.read_bytes()).hexdigest()
    assert card["command"].startswith("python plugins/eyes/benchmarks/train_gaze_leash.py")


def test_the_shipped_network_reads_the_gaze_of_eyes_it_never_saw() -> None:
    net = load_gaze_leash().eval()
    left, right = eyes_looking(-15), eyes_looking(15)
    with torch.no_grad():
        turned = angular_error_degrees(net(left).double(), net(right).double())
    assert turned.mean() > 20  # 30 degrees of yaw apart, read as most of that


def test_turning_the_eye_costs_more_than_a_larger_change_of_the_skin(eyes_registry: Registry) -> None:
    leash = create_regularizer("gaze-consistency", channels=1, gaze_weight=10.0)
    pixels = create_regularizer("l1", channels=1)
    synthetic, turned = eyes_looking(-5), eyes_looking(5)
    skin = synthetic.clone()
    skin[..., :6, :] = (skin[..., :6, :] + 0.8).clamp(max=1)  # the brow region brightened, the eye untouched
    assert pixels(skin, synthetic) > pixels(turned, synthetic)  # the pixel leash charges the skin more...
    gaze_part = lambda refined: leash(refined, synthetic) - pixels(refined, synthetic)
    assert gaze_part(turned) > 3 * gaze_part(skin)  # ...the gaze network the turned eye


def test_three_channel_eyes_are_read_as_their_grey(eyes_registry: Registry) -> None:
    grey = eyes_looking(10, count=4)
    with torch.no_grad():
        assert torch.allclose(load_gaze_leash(3)(grey.repeat(1, 3, 1, 1)), load_gaze_leash(1)(grey), atol=1e-5)


def test_other_channel_counts_are_a_config_error(eyes_registry: Registry) -> None:
    with pytest.raises(ConfigError, match="gaze-consistency.*1 or 3 channels"):
        create_regularizer("gaze-consistency", channels=2)


def test_a_negative_gaze_weight_is_a_config_error_naming_the_option(eyes_registry: Registry) -> None:
    with pytest.raises(ConfigError, match=r"regularizer\.options\.gaze_weight must be a finite number >= 0"):
        create_regularizer("gaze-consistency", channels=1, gaze_weight=-1)


@pytest.mark.parametrize("content", [None, b"not a safetensors file"])
def test_a_missing_or_damaged_network_file_is_an_error_that_says_to_reinstall(tmp_path, content) -> None:
    path = tmp_path / "gaze-leash.safetensors"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(PluginError, match=r"gaze-leash\.safetensors.*reinstall"):
        load_gaze_leash(path=path)
