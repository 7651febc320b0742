"""The paper's gaze estimator: its documented feature size, shapes, and that it can learn gaze."""

from __future__ import annotations

import pytest
import torch
from refinekit_eyes.gaze import angular_error_degrees
from refinekit_eyes.gaze_estimator import GazeEstimator
from refinekit_eyes.simulator import simulate_eyes

from refinekit.data.image_set import to_float


def test_paper_feature_size_and_output_shape() -> None:
    net = GazeEstimator()
    assert net.flat_features == 9600  # 192 x 5 x 10 at 35x55, the paper's FC9600
    out = net(torch.zeros(4, 1, 35, 55))
    assert out.shape == (4, 3)
    torch.testing.assert_close(torch.linalg.vector_norm(out, dim=1), torch.ones(4))


def test_other_sizes_and_bad_input() -> None:
    assert GazeEstimator(image_size=(36, 60)).flat_features == 192 * 5 * 11
    with pytest.raises(ValueError, match=r"expects \(B, C, 35, 55\)"):
        GazeEstimator()(torch.zeros(1, 1, 36, 60))
    with pytest.raises(ValueError, match="too small"):
        GazeEstimator(image_size=(16, 16))


def test_overfits_32_simulated_eyes() -> None:
    torch.manual_seed(0)
    images, labels = simulate_eyes(32, torch.Generator().manual_seed(0))
    x, target = to_float(images[:, None]), labels["gaze"]
    # The bar is the best constant answer (the mean gaze), which an untrained net reaches in a few steps.
    mean_gaze = torch.nn.functional.normalize(target.mean(0, keepdim=True), dim=1)
    baseline = angular_error_degrees(mean_gaze, target).mean()
    net = GazeEstimator()
    optimiser = torch.optim.Adam(net.parameters(), lr=1e-3)
    for _ in range(30):
        loss = ((net(x) - target) ** 2).sum(1).mean()  # the paper's Euclidean loss
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    with torch.no_grad():
        after = angular_error_degrees(net(x), target).mean()
    assert after < 0.6 * baseline, f"mean angular error {after:.1f} degrees; the mean gaze alone gets {baseline:.1f}"
