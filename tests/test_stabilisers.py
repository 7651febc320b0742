"""The small-data stabilisers: DiffAugment, R1, loss variants, spectral norm, the weight average, held-out reals."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from refinekit.components.discriminators import LocalPatchDiscriminator
from refinekit.config import HoldoutConfig, TrainConfig
from refinekit.data.heldout import split_real
from refinekit.data.loading import load_dataset
from refinekit.errors import ConfigError
from refinekit.evaluation.holdout import image_hashes, load_evaluation_sets
from refinekit.plugins.registry import create_discriminator
from refinekit.training import augment as augment_module
from refinekit.training import losses
from refinekit.training.lecam import LeCam
from refinekit.training.losses import REAL, REFINED
from refinekit.training.setup import resolve_config
from refinekit.weights.files import load_refiner
from tests.test_trainer import SMALL, CrashAt, assert_same_run, make_trainer

ALL_OPS = list(augment_module.AUGMENTATIONS)


# -- augmentation -------------------------------------------------------------------


@pytest.mark.parametrize("op", ALL_OPS)
def test_every_augmentation_is_differentiable(op: str) -> None:
    torch.manual_seed(0)
    x = torch.rand(4, 1, 12, 16, requires_grad=True)
    augment_module.augment(x, [op]).square().sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_translation_only_moves_pixels_and_cutout_blanks_a_rectangle() -> None:
    torch.manual_seed(0)
    x = torch.rand(8, 1, 12, 16)
    shifted = augment_module.translation(x)
    for original, moved in zip(x, shifted):
        assert set(moved.flatten().tolist()) <= set(original.flatten().tolist())  # no new values, only moved ones
    cut = augment_module.cutout(x + 1)  # all pixels nonzero, so the zeros are the cut
    assert torch.all((cut == 0).flatten(1).sum(1) == 6 * 8)  # half of each side


def test_flip_mirrors_some_images_whole_and_leaves_the_others() -> None:
    generator = torch.Generator().manual_seed(0)
    x = torch.rand(64, 1, 12, 16)
    flipped = augment_module.flip(x, generator)
    mirrored = torch.tensor([torch.equal(a, b.flip(-1)) for a, b in zip(flipped, x)])
    kept = torch.tensor([torch.equal(a, b) for a, b in zip(flipped, x)])
    assert torch.all(mirrored ^ kept)  # each image is either mirrored whole or untouched
    assert 16 < int(mirrored.sum()) < 48  # about half of them, drawn per image


def test_the_config_accepts_every_augmentation_there_is(tiny_domain) -> None:
    config = resolve_config_for_tiny(f"adversarial.augment={ALL_OPS}")
    assert list(config.adversarial.augment) == ALL_OPS


def test_unknown_augmentation_is_a_config_error_naming_the_choices(tiny_domain) -> None:
    with pytest.raises(ConfigError, match="'blur'.*brightness"):
        augment_module.check_policy(["translation", "blur"])
    with pytest.raises(ConfigError, match="adversarial.augment"):
        resolve_config_for_tiny("adversarial.augment=['blur']")


def resolve_config_for_tiny(*overrides: str) -> TrainConfig:
    return resolve_config("tiny", overrides=[*SMALL, *overrides])


def test_d_sees_real_and_refined_augmented_alike_and_r_is_trained_through_it(
    tiny_domain, tmp_path, monkeypatch
) -> None:
    seen: list[torch.Tensor] = []

    def spy(x: torch.Tensor, policy, generator=None) -> torch.Tensor:
        seen.append(x)
        assert list(policy) == ["translation", "cutout"]
        return augment_module.augment(x, policy, generator)

    monkeypatch.setattr("refinekit.training.simgan.augment_images", spy)
    trainer = make_trainer(tmp_path, "adversarial.augment=['translation','cutout']")
    real_state = trainer.real.state()
    trainer.discriminator_step()
    trainer.real.load_state(real_state)
    real_batch = trainer.real.next()[1]
    assert len(seen) == 2  # one refined (current + history) batch and one real batch, both augmented
    assert sum(torch.equal(x, real_batch) for x in seen) == 1
    seen.clear()
    trainer.refiner.zero_grad(set_to_none=True)
    trainer.refiner_step(adversarial=True)
    assert seen and all(x.requires_grad for x in seen)  # R's output goes through the augmentation with its graph


# -- losses --------------------------------------------------------------------------


def logits_with_realness(d: float) -> torch.Tensor:
    logits = torch.zeros(2, 2, 3, 4)
    logits[:, REAL] = d / 2
    logits[:, REFINED] = -d / 2
    return logits


@pytest.mark.parametrize("kind", losses.ADVERSARIAL_LOSSES)
def test_every_loss_rewards_d_for_being_right_and_r_for_fooling_it(kind: str) -> None:
    sure, fooled = logits_with_realness(3.0), logits_with_realness(-3.0)
    # D is right when refined patches look refined (d < 0) and real ones real (d > 0)
    assert losses.discriminator_loss(fooled, sure, kind) < losses.discriminator_loss(sure, fooled, kind)
    # R wins when D calls its output real
    assert losses.refiner_adversarial_loss(sure, kind) < losses.refiner_adversarial_loss(fooled, kind)


def test_cross_entropy_is_softplus_of_realness() -> None:
    logits = torch.randn(3, 2, 4, 5)
    d = losses.realness(logits)
    torch.testing.assert_close(losses.refiner_adversarial_loss(logits), torch.nn.functional.softplus(-d).mean())


def test_real_label_smooths_the_real_side_of_the_cross_entropy_only() -> None:
    refined, real = torch.randn(2, 2, 3, 4), torch.randn(2, 2, 3, 4)
    d_real = losses.realness(real)
    # the definition: target 0.9 on "real" and 0.1 on "refined", for real patches only
    soft_real = (0.9 * torch.nn.functional.softplus(-d_real) + 0.1 * torch.nn.functional.softplus(d_real)).mean()
    refined_side = torch.nn.functional.softplus(losses.realness(refined)).mean()
    expected = 0.5 * (refined_side + soft_real)
    torch.testing.assert_close(losses.discriminator_loss(refined, real, real_label=0.9), expected)
    # one-sided: the refined side is the same as without smoothing
    plain = losses.discriminator_loss(refined, real)
    torch.testing.assert_close(plain, 0.5 * (refined_side + torch.nn.functional.softplus(-d_real).mean()))


@pytest.mark.parametrize("kind", ["cross-entropy", "least-squares"])
def test_with_real_label_d_stops_short_of_certainty_on_real_patches(kind: str) -> None:
    """D's loss on real patches is lowest at a finite realness, not at +infinity."""
    refined = logits_with_realness(-3.0)
    levels = torch.linspace(0.0, 12.0, 121)

    def d_loss(real_label: float) -> torch.Tensor:
        return torch.stack(
            [losses.discriminator_loss(refined, logits_with_realness(float(v)), kind, real_label) for v in levels]
        )

    smoothed, sharp = d_loss(0.9), d_loss(1.0)
    best = float(levels[smoothed.argmin()])
    target = 2.1972 if kind == "cross-entropy" else 0.9  # log(0.9 / 0.1), and the least-squares target itself
    assert best == pytest.approx(target, abs=0.1)
    assert float(levels[sharp.argmin()]) > best


def test_real_label_with_the_hinge_loss_is_refused() -> None:
    with pytest.raises(ValueError, match="hinge"):
        losses.discriminator_loss(torch.randn(1, 2, 2, 2), torch.randn(1, 2, 2, 2), "hinge", 0.9)


def test_real_label_is_a_config_error_with_hinge_and_reaches_d_steps(tiny_domain, tmp_path) -> None:
    with pytest.raises(ConfigError, match=r"adversarial.*real_label.*hinge"):
        resolve_config("tiny", overrides=["adversarial.loss='hinge'", "adversarial.real_label=0.9"])
    torch.manual_seed(0)
    sharp = make_trainer(tmp_path / "sharp").discriminator_step()["discriminator_loss"]
    torch.manual_seed(0)
    smoothed = make_trainer(tmp_path / "smoothed", "adversarial.real_label=0.9").discriminator_step()
    assert smoothed["discriminator_loss"] != pytest.approx(sharp)


def test_lecam_penalises_only_the_overshoot_past_the_other_side_running_mean() -> None:
    lecam = LeCam(weight=0.5, decay=0.5)
    lecam.anchor_real.fill_(1.0)
    lecam.anchor_refined.fill_(-1.0)
    real = torch.tensor([[[3.0, -2.0]]])  # one patch past the refined anchor, one short of it
    refined = torch.tensor([[[0.0, 2.0]]])  # one patch below the real anchor, one above it
    penalty = lecam(real, refined)
    # the anchors move halfway to this batch's means first: real (3 - 2) / 2 = 0.5, refined 1.0
    assert float(lecam.anchor_real) == pytest.approx(0.75)
    assert float(lecam.anchor_refined) == pytest.approx(0.0)
    expected = 0.5 * ((3.0 - 0.0) ** 2 / 2 + (0.75 - 0.0) ** 2 / 2)
    assert float(penalty) == pytest.approx(expected)
    real_with_grad = torch.tensor([[[3.0, -2.0]]], requires_grad=True)
    lecam(real_with_grad, refined).backward()
    assert real_with_grad.grad[0, 0, 1] == 0 and real_with_grad.grad[0, 0, 0] > 0  # only the overshoot is pushed back


def test_lecam_weight_adds_the_penalty_to_d_steps_and_its_anchors_are_checkpointed(tiny_domain, tmp_path) -> None:
    torch.manual_seed(0)
    without = make_trainer(tmp_path / "without")
    plain = without.discriminator_step()
    torch.manual_seed(0)
    trainer = make_trainer(tmp_path / "with", "adversarial.lecam_weight=0.3")
    metrics = trainer.discriminator_step()
    # the same networks and batch: D's loss is the plain one plus the penalty, which is not zero
    assert metrics["d_lecam"] > 0
    assert metrics["discriminator_loss"] == pytest.approx(plain["discriminator_loss"] + metrics["d_lecam"], rel=1e-5)
    assert float(trainer.lecam.anchor_real) != 0 and without.lecam is None
    tensors, _ = trainer.state_tensors()
    assert torch.equal(tensors["lecam.anchor_real"], trainer.lecam.anchor_real)


def test_r1_penalty_is_the_squared_input_gradient() -> None:
    class Linear(nn.Module):
        """realness = sum(w * x) over each image: its input gradient is w for every image."""

        def __init__(self) -> None:
            super().__init__()
            self.w = nn.Parameter(torch.randn(1, 1, 4, 5))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            score = (x * self.w).sum((1, 2, 3))[:, None, None, None]
            return torch.cat([torch.zeros_like(score), score], dim=1)  # channel REFINED = 0, REAL = score

    d = Linear()
    _, penalty = losses.r1_penalty(d, torch.randn(6, 1, 4, 5))
    torch.testing.assert_close(penalty, d.w.square().sum())
    penalty.backward()  # the penalty trains D: its gradient reaches the weights
    torch.testing.assert_close(d.w.grad, 2 * d.w.detach())


def test_r1_weight_adds_the_penalty_to_d_steps(tiny_domain, tmp_path) -> None:
    metrics = make_trainer(tmp_path, "adversarial.r1_weight=10").discriminator_step()
    assert metrics["d_r1"] > 0


@pytest.mark.parametrize("name", ["local-patch", "multi-scale"])
def test_d_dropout_drops_patch_features_while_training_only(name: str) -> None:
    torch.manual_seed(0)
    d = create_discriminator(name, channels=1, dropout=0.5)
    x = torch.randn(4, 1, 35, 55)
    _, dropped = d.logits_and_features(x)
    d.eval()
    _, kept = d.logits_and_features(x)
    assert torch.equal(d(x), d(x))  # no dropout outside training
    for train, whole in zip(dropped, kept):  # each feature the ReLU let through is zeroed or doubled, about half each
        alive = whole > 0
        zeroed = float((train[alive] == 0).float().mean())
        assert 0.4 < zeroed < 0.6
        torch.testing.assert_close(train[alive & (train != 0)], 2 * whole[alive & (train != 0)])
    assert not any(isinstance(m, nn.Dropout) for m in create_discriminator(name, channels=1).modules())


@pytest.mark.parametrize("value", [1.0, -0.1, True, "half"])
def test_d_dropout_out_of_range_is_a_config_error(value: object) -> None:
    with pytest.raises(ConfigError, match=r"discriminator.options.dropout must be a number in \[0, 1\)"):
        LocalPatchDiscriminator(channels=1, dropout=value)


def test_d_first_stride_1_keeps_the_full_resolution_through_the_first_layer() -> None:
    x = torch.randn(2, 1, 35, 55)
    paper, full = LocalPatchDiscriminator(channels=1), LocalPatchDiscriminator(channels=1, first_stride=1)
    assert paper(x).shape[-2:] == (9, 14) and full(x).shape[-2:] == (18, 28)
    assert full.features[0](x).shape[-2:] == (35, 55)  # the first convolution sees every pixel position
    with pytest.raises(ConfigError, match="discriminator.options.first_stride must be 1 or 2, got 3"):
        LocalPatchDiscriminator(channels=1, first_stride=3)


def test_spectral_norm_bounds_every_convolution() -> None:
    d = LocalPatchDiscriminator(channels=1, spectral_norm=True)
    for _ in range(20):  # power iterations run in training-mode forwards
        d(torch.randn(2, 1, 35, 55))
    for module in d.modules():
        if isinstance(module, nn.Conv2d):
            top = torch.linalg.matrix_norm(module.weight.detach().flatten(1), ord=2)
            assert top <= 1.05


# -- the weight average --------------------------------------------------------------


def test_the_exported_refiner_is_the_weight_average(tiny_domain, tmp_path) -> None:
    trainer = make_trainer(tmp_path, "refiner_ema=0.5")
    result = trainer.fit()
    exported = load_refiner(result.refiner_path).state_dict()
    for key, value in trainer.refiner_ema.state_dict().items():
        assert torch.equal(exported[key], value), key
    live = trainer.refiner.state_dict()
    assert any(not torch.equal(exported[k], live[k]) for k in live)  # the average is not the live refiner


def test_pretraining_copies_r_into_the_average(tiny_domain, tmp_path) -> None:
    trainer = make_trainer(tmp_path, "refiner_ema=0.999")
    trainer.refiner_step(adversarial=False)
    for key, value in trainer.refiner.state_dict().items():
        assert torch.equal(trainer.refiner_ema.state_dict()[key], value)
    before = {k: v.clone() for k, v in trainer.refiner_ema.state_dict().items()}
    trainer.refiner_step(adversarial=True)
    ema, live = trainer.refiner_ema.state_dict(), trainer.refiner.state_dict()
    key = next(iter(before))
    torch.testing.assert_close(ema[key], 0.999 * before[key] + 0.001 * live[key])


def test_resume_with_every_stabiliser_is_bit_for_bit(tiny_domain, tmp_path) -> None:
    options = ("refiner_ema=0.9", "adversarial.r1_weight=1", "adversarial.augment=['translation','cutout','flip']",
               "discriminator.options.spectral_norm=true", "adversarial.loss='hinge'", "optim.decay_from=0.5",
               "adversarial.lecam_weight=0.3", "adversarial.feature_matching=1", "discriminator.options.dropout=0.5")
    make_trainer(tmp_path / "whole", *options).fit()
    crashed = make_trainer(tmp_path / "resumed", *options)
    crashed.callbacks.append(CrashAt(10))
    with pytest.raises(RuntimeError, match="simulated crash"):
        crashed.fit()
    make_trainer(tmp_path / "resumed", *options, resume=True).fit()
    assert_same_run(tmp_path / "whole", tmp_path / "resumed")


# -- the learning-rate decay ---------------------------------------------------------


def test_learning_rates_hold_then_fall_linearly_over_the_last_rounds(tiny_domain, tmp_path) -> None:
    trainer = make_trainer(tmp_path, "optim.decay_from=0.5", "optim.lr_refiner=1e-3", "optim.lr_discriminator=4e-3")
    taken: list[float] = []
    trainer.callbacks.append(lambda t, report: taken.extend(
        (t.opt_refiner.param_groups[0]["lr"], t.opt_discriminator.param_groups[0]["lr"])
    ))
    trainer.fit()
    # 4 R and 2 D pre-training steps, then 6 rounds: the first 3 at the full rate, the last 3 at 3/3, 2/3, 1/3 of it
    scales = [1.0] * 6 + [1.0] * 3 + [1.0, 2 / 3, 1 / 3]
    assert taken == pytest.approx([lr * scale for scale in scales for lr in (1e-3, 4e-3)])


def test_without_decay_the_learning_rates_never_change(tiny_domain, tmp_path) -> None:
    trainer = make_trainer(tmp_path, "optim.lr_refiner=1e-3")
    assert {trainer.learning_rate_scale(step) for step in range(trainer.total_steps)} == {1.0}


# -- held-out real images ------------------------------------------------------------


def test_the_split_depends_on_content_not_order() -> None:
    images = load_dataset_tiny(40)
    train, held = split_real(images, HoldoutConfig(fraction=0.25, seed=3))
    reversed_images = images.subset(list(range(len(images)))[::-1])
    _, held_again = split_real(reversed_images, HoldoutConfig(fraction=0.25, seed=3))
    assert len(held) == 10 and len(train) == 30
    assert set(image_hashes(held.images)) == set(image_hashes(held_again.images))
    _, other_key = split_real(images, HoldoutConfig(fraction=0.25, seed=4))
    assert set(image_hashes(held.images)) != set(image_hashes(other_key.images))


def load_dataset_tiny(count: int):
    from tests.conftest import make_tiny_images

    return make_tiny_images(count, (8, 8), 0, 120)


def test_held_out_real_images_never_enter_d_batches_and_are_what_evaluation_uses(tiny_domain, tmp_path) -> None:
    trainer = make_trainer(tmp_path, "real_holdout.fraction=0.25")
    config = trainer.config
    everything = load_dataset(config.real, config.image, config.seed + 1)
    _, held = split_real(everything, config.real_holdout)
    held_hashes = set(image_hashes(held.images))
    assert len(held_hashes) == 16
    seen = set()
    for _ in range(50):
        batch = trainer.real.image_set.images[trainer.real.indices().numpy()]
        seen |= set(image_hashes(batch))
    assert seen and not seen & held_hashes
    sets = load_evaluation_sets(config, seed=0, limit=1000)
    assert set(image_hashes(sets.real.images)) == held_hashes
    assert sets.infos[1].seen_in_training == 0

