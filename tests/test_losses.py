"""SimGAN's losses: the two logits of one patch are paired, and every loss is a mean."""

from __future__ import annotations

import re

import pytest
import torch
import torch.nn.functional as F

from refinekit.plugins.registry import create_regularizer
from refinekit.training import losses
from refinekit.training.losses import REAL, REFINED


def confident_real_logits(batch: int = 2, h: int = 9, w: int = 14) -> torch.Tensor:
    """D is sure every patch is real: channel REAL far above channel REFINED everywhere."""
    logits = torch.empty(batch, 2, h, w)
    logits[:, REAL] = 10.0
    logits[:, REFINED] = -10.0
    return logits


def per_patch_cross_entropy(logits: torch.Tensor, target: int) -> torch.Tensor:
    """The definition, one patch at a time: -log softmax over the two channels of that patch."""
    b, _, h, w = logits.shape
    total = sum(-torch.log_softmax(logits[n, :, i, j], dim=0)[target] for n in range(b) for i in range(h) for j in range(w))
    return total / (b * h * w)


def wrong_view_pairing(logits: torch.Tensor, target: int) -> torch.Tensor:
    """What some public SimGAN ports do: view NCHW logits as (-1, 2), pairing neighbours of one channel."""
    flat = logits.reshape(-1, 2)
    return F.cross_entropy(flat, torch.full((len(flat),), target))


def test_confident_real_patches_give_the_refiner_no_loss_and_d_a_large_one() -> None:
    logits = confident_real_logits()
    assert float(losses.refiner_adversarial_loss(logits)) == pytest.approx(0.0, abs=1e-6)
    assert float(losses.patch_cross_entropy(logits, REFINED)) == pytest.approx(20.0, abs=1e-4)
    # the view(-1, 2) pairing compares REFINED with REFINED and REAL with REAL: always log 2
    assert float(wrong_view_pairing(logits, REAL)) == pytest.approx(torch.log(torch.tensor(2.0)).item())


def test_patch_cross_entropy_matches_the_per_patch_definition() -> None:
    # patches that lean real, by varying amounts, so the right pairing is not a coin flip
    margin = torch.rand(3, 4, 5, generator=torch.Generator().manual_seed(0)) * 4 - 1
    logits = torch.stack([-margin, margin], dim=1) if REAL == 1 else torch.stack([margin, -margin], dim=1)
    for target in (REAL, REFINED):
        expected = per_patch_cross_entropy(logits, target)
        assert float(losses.patch_cross_entropy(logits, target)) == pytest.approx(float(expected), rel=1e-5)
        assert abs(float(wrong_view_pairing(logits, target)) - float(expected)) > 0.1
        channels_last = logits.permute(0, 2, 3, 1).reshape(-1, 2)  # the correct flat form
        assert float(F.cross_entropy(channels_last, torch.full((60,), target))) == pytest.approx(float(expected), rel=1e-5)


def test_discriminator_loss_averages_both_sides() -> None:
    refined, real = torch.randn(2, 2, 3, 3), torch.randn(2, 2, 3, 3)
    expected = 0.5 * (per_patch_cross_entropy(refined, REFINED) + per_patch_cross_entropy(real, REAL))
    assert float(losses.discriminator_loss(refined, real)) == pytest.approx(float(expected), rel=1e-5)
    perfect = losses.discriminator_loss(-confident_real_logits(), confident_real_logits())
    assert float(perfect) == pytest.approx(0.0, abs=1e-6)


def test_refiner_gradient_pushes_patches_towards_real() -> None:
    logits = torch.zeros(1, 2, 2, 2, requires_grad=True)
    losses.refiner_adversarial_loss(logits).backward()
    assert (logits.grad[:, REAL] < 0).all() and (logits.grad[:, REFINED] > 0).all()


@pytest.mark.parametrize("shape", [(2, 1, 9, 14), (2, 3, 9, 14), (2, 2, 9), (18, 2)])
def test_logits_of_the_wrong_shape_are_refused(shape) -> None:
    with pytest.raises(ValueError, match=re.escape(f"must be (B, 2, h, w), got {shape}")):
        losses.patch_cross_entropy(torch.zeros(shape), REAL)


def test_adversarial_losses_are_means_over_batch_and_patches() -> None:
    logits = torch.randn(2, 2, 9, 14, generator=torch.Generator().manual_seed(1))
    real = torch.randn(2, 2, 9, 14, generator=torch.Generator().manual_seed(2))
    bigger_batch, bigger_image = logits.repeat(2, 1, 1, 1), logits.repeat(1, 1, 2, 2)
    for other in (bigger_batch, bigger_image):
        assert float(losses.refiner_adversarial_loss(other)) == pytest.approx(float(losses.refiner_adversarial_loss(logits)))
    assert float(losses.discriminator_loss(bigger_image, real.repeat(1, 1, 2, 2))) == pytest.approx(
        float(losses.discriminator_loss(logits, real))
    )


@pytest.mark.parametrize("psi", ["identity", "low-pass", "sobel"])
def test_self_regularisation_is_a_mean_over_batch_and_pixels(psi) -> None:
    g = torch.Generator().manual_seed(0)
    synthetic, refined = torch.rand(2, 1, 40, 40, generator=g), torch.rand(2, 1, 40, 40, generator=g)
    reg = create_regularizer("feature", psi=psi)
    small = float(reg(refined, synthetic))
    assert float(reg(refined.repeat(2, 1, 1, 1), synthetic.repeat(2, 1, 1, 1))) == pytest.approx(small, rel=1e-6)
    # twice the image size of the same iid content: the same per-pixel mean, up to border effects of psi
    big_g = torch.Generator().manual_seed(1)
    big = float(reg(torch.rand(2, 1, 80, 80, generator=big_g), torch.rand(2, 1, 80, 80, generator=big_g)))
    assert big == pytest.approx(small, rel=0.1)


def test_patch_accuracy_is_the_share_of_patches() -> None:
    logits = confident_real_logits(1, 2, 2)
    logits[0, :, 0, 0] = torch.tensor([1.0, -1.0])  # one of four patches says refined
    assert losses.patch_accuracy(logits, REAL) == 0.75
    assert losses.patch_accuracy(logits, REFINED) == 0.25
