"""The evaluation's measures on constructed cases with known answers: statistics, realism, KID, fidelity."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from refinekit.evaluation.annotations import image_fidelity
from refinekit.evaluation.distance import extract_features, kid
from refinekit.evaluation.holdout import seen_mask
from refinekit.evaluation.realism import RealismSettings, cross_fitted_accuracy, two_sample_test
from refinekit.evaluation.statistics import estimate, p_value_above_chance, wilson

SMALL = RealismSettings(steps=40, width=8)


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tiny networks


def noise_images(count: int, bright: float, seed: int, size: tuple[int, int] = (12, 12)) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.clip(rng.normal(bright, 25, (count, 1, *size)), 0, 255).astype(np.uint8)


def test_wilson_interval_matches_the_textbook_values() -> None:
    # Wilson (1927) / Newcombe (1998), 95%: 0 of 10 -> [0, 0.2775]; 81 of 263 -> [0.2553, 0.3662]
    zero = wilson(0, 10)
    assert zero.low == 0.0 and zero.high == pytest.approx(0.2775, abs=1e-4)
    e = wilson(81, 263)
    assert (e.low, e.high) == (pytest.approx(0.2553, abs=1e-4), pytest.approx(0.3662, abs=1e-4))


def test_estimate_uses_wilson_for_shares_and_a_normal_interval_for_quantities() -> None:
    assert estimate(np.array([True, False, True, True])).interval == "wilson"
    zeros = estimate(np.zeros(5))  # an angular change that is exactly 0 is still a quantity
    assert zeros.interval == "normal" and zeros.mean == zeros.low == zeros.high == 0.0


def test_binomial_p_value() -> None:
    assert p_value_above_chance(5, 10) == pytest.approx(0.623046875)  # 638/1024
    assert p_value_above_chance(10, 10) == pytest.approx(1 / 1024)


def test_identical_distributions_are_indistinguishable() -> None:
    a, b = noise_images(200, 120, 1), noise_images(200, 120, 2)
    result = two_sample_test("same", a[:100], b[:100], a[100:], b[100:], seed=0, settings=SMALL)
    assert result.accuracy.low < 0.5 < result.accuracy.high
    assert result.p_value > 0.05 and result.n_train == result.n_test == 100 and result.accuracy.n == 200


def test_clearly_different_distributions_are_told_apart() -> None:
    a, b = noise_images(200, 90, 1), noise_images(200, 160, 2)
    result = two_sample_test("different", a[:100], b[:100], a[100:], b[100:], seed=0, settings=SMALL)
    assert result.accuracy.mean > 0.97 and result.p_value < 1e-20


def test_realism_balances_the_two_sides() -> None:
    a, b = noise_images(60, 90, 1), noise_images(200, 160, 2)
    result = two_sample_test("unbalanced", a[:30], b[:100], a[30:], b[100:], seed=0, settings=RealismSettings(steps=2, width=4))
    assert result.n_train == 30 and result.n_test == 30 and result.accuracy.n == 60


def test_kid_is_near_zero_for_identical_distributions_and_large_for_different_ones() -> None:
    a, b, c = (extract_features(noise_images(150, bright, seed)) for bright, seed in ((120, 1), (120, 2), (150, 3)))
    same, different = kid("same", a, b, seed=0, subsets=5), kid("different", a, c, seed=0, subsets=5)
    assert abs(same.kid) < 0.05 * different.kid
    assert different.kid > 5 * different.kid_std and same.subset_size == 150 and "random-conv-v1" in same.extractor


def test_kid_features_do_not_depend_on_the_global_seed() -> None:
    images = noise_images(4, 120, 1)
    torch.manual_seed(1)
    first = extract_features(images)
    torch.manual_seed(2)
    assert torch.equal(first, extract_features(images))


def test_fidelity_of_an_inverted_image_is_the_worst() -> None:
    images = noise_images(8, 120, 1)
    inverted = image_fidelity(images, 255 - images)
    same = image_fidelity(images, images.copy())
    assert same.l1.mean == 0.0 and same.ssim.mean == pytest.approx(1.0)
    assert inverted.l1.mean > 0.1 and inverted.ssim.mean < 0.0


def test_seen_mask_finds_exact_duplicates_only() -> None:
    training = noise_images(10, 120, 1)
    candidates = np.concatenate([training[:3], noise_images(4, 120, 2)])
    candidates[2, 0, 0, 0] ^= 1  # one pixel differs: not seen
    assert seen_mask(candidates, training).tolist() == [True, True, False, False, False, False, False]


def test_cross_fitted_accuracy_averages_both_directions(monkeypatch) -> None:
    import refinekit.evaluation.realism as realism

    fast = lambda *args: two_sample_test(*args, settings=SMALL)  # noqa: E731
    monkeypatch.setattr(realism, "two_sample_test", fast)
    rng = np.random.default_rng(0)
    a = rng.integers(0, 60, (80, 1, 8, 8), dtype=np.uint8)
    b = rng.integers(120, 256, (80, 1, 8, 8), dtype=np.uint8)
    both = cross_fitted_accuracy("x", a[:40], b[:40], a[40:], b[40:], seed=0)
    forward = fast("x", a[:40], b[:40], a[40:], b[40:], 0).accuracy.mean
    backward = fast("x", a[40:], b[40:], a[:40], b[:40], 0).accuracy.mean
    assert both == pytest.approx((forward + backward) / 2) and both > 0.9
