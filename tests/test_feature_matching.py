"""Feature matching in R's loss: what it measures, what it trains, and the trainer's real batch for it."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from refinekit.components.discriminators import LocalPatchDiscriminator
from refinekit.components.regularizers import l1_regularizer
from refinekit.errors import ConfigError
from refinekit.plugins.hookspecs import hookimpl
from refinekit.plugins.registry import create_discriminator
from refinekit.training import losses, simgan
from tests.test_trainer import make_trainer


class LogitsOnly(nn.Module):
    """A third party's D that gives its logits and nothing else."""

    def __init__(self, channels: int = 1, widths: tuple[int, ...] = (8,)) -> None:
        super().__init__()
        self.conv = nn.Sequential(nn.Conv2d(channels, widths[0], 3, stride=4), nn.ReLU(), nn.Conv2d(widths[0], 2, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class LogitsOnlyParts:
    @staticmethod
    @hookimpl
    def register_discriminators(register) -> None:
        register("logits-only", LogitsOnly, "a D without logits_and_features")


def test_feature_matching_is_the_squared_gap_between_batch_means() -> None:
    refined = [torch.tensor([[1.0, 3.0], [3.0, 5.0]]), torch.zeros(2, 1)]
    real = [torch.tensor([[0.0, 0.0], [2.0, 2.0]]), torch.ones(3, 1)]  # the batches need not be the same size
    # first map: means (2, 4) and (1, 1), squared gaps 1 and 9, mean 5; second map: gap 1; their mean: 3
    assert float(losses.feature_matching_loss(refined, real)) == pytest.approx(3.0)
    same_mean = [torch.tensor([[0.0], [2.0]])]  # each image differs from the real ones, the batch mean does not
    assert float(losses.feature_matching_loss(same_mean, [torch.tensor([[1.0], [1.0]])])) == 0


def test_feature_matching_needs_the_same_maps_on_both_sides() -> None:
    with pytest.raises(ValueError, match="same D feature maps"):
        losses.feature_matching_loss([torch.zeros(2, 1)], [])


@pytest.mark.parametrize("name, maps", [("local-patch", 1), ("global", 1), ("multi-scale", 3)])
def test_each_discriminator_gives_its_logits_with_the_features_they_come_from(name: str, maps: int) -> None:
    torch.manual_seed(0)
    d = create_discriminator(name, channels=1, coordinates=True)
    x = torch.randn(3, 1, 35, 55)
    logits, features = d.logits_and_features(x)
    assert torch.equal(logits, d(x))
    assert len(features) == maps and all(f.shape[:2] == (3, 32) for f in features)


def test_feature_matching_trains_r_through_a_frozen_d() -> None:
    torch.manual_seed(0)
    refiner, d = nn.Conv2d(1, 1, 3, padding=1), LocalPatchDiscriminator(channels=1)
    synthetic, real = torch.rand(4, 1, 35, 55) * 2 - 1, torch.rand(6, 1, 35, 55) * 2 - 1
    plain = simgan.refiner_loss(refiner, l1_regularizer(), synthetic, discriminator=d)
    terms = simgan.refiner_loss(refiner, l1_regularizer(), synthetic, discriminator=d, real=real, feature_matching=3.0)
    assert float(terms["refiner_fm"].detach()) > 0 and "refiner_fm" not in plain
    torch.testing.assert_close(terms["refiner_loss"], plain["refiner_loss"] + 3.0 * terms["refiner_fm"])
    terms["refiner_fm"].backward()
    assert refiner.weight.grad is not None and refiner.weight.grad.abs().sum() > 0
    assert all(p.grad is None for p in d.parameters())  # D is held fixed: R's term never trains it


def test_feature_matching_says_what_it_is_missing() -> None:
    refiner, synthetic = nn.Identity(), torch.zeros(2, 1, 35, 55)
    with pytest.raises(ValueError, match="pass real="):
        simgan.refiner_loss(refiner, l1_regularizer(), synthetic, discriminator=LocalPatchDiscriminator(),
                            feature_matching=1.0)
    with pytest.raises(TypeError, match="LogitsOnly has no logits_and_features"):
        simgan.refiner_loss(refiner, l1_regularizer(), synthetic, discriminator=LogitsOnly(), real=synthetic,
                            feature_matching=1.0)


def test_the_trainer_matches_features_in_adversarial_r_steps_only(tiny_domain, tmp_path) -> None:
    trainer = make_trainer(tmp_path, "adversarial.feature_matching=1.0")
    before = trainer.real.generator.get_state()
    assert "refiner_fm" not in trainer.refiner_step(adversarial=False)  # pre-training has no D to match
    assert torch.equal(trainer.real.generator.get_state(), before)  # nor draws a real batch
    assert trainer.refiner_step(adversarial=True)["refiner_fm"] > 0
    assert not torch.equal(trainer.real.generator.get_state(), before)  # the real batch it matched is a fresh draw
    plain = make_trainer(tmp_path / "plain")
    before = plain.real.generator.get_state()
    plain.refiner_step(adversarial=True)
    assert torch.equal(plain.real.generator.get_state(), before)  # without it, R's steps leave the real stream alone


def test_a_discriminator_without_features_is_refused_before_training(tiny_domain, tmp_path) -> None:
    tiny_domain.register_plugin(LogitsOnlyParts, "logits-only-parts")
    try:
        make_trainer(tmp_path / "plain", "discriminator.name=logits-only")  # without feature matching it trains
        with pytest.raises(ConfigError, match="adversarial.feature_matching.*'logits-only'.*feature_matching=0"):
            make_trainer(tmp_path / "matched", "discriminator.name=logits-only", "adversarial.feature_matching=1")
    finally:
        tiny_domain.unregister_plugin("logits-only-parts")
