"""Kernel Inception Distance (KID) on features of a fixed, randomly initialised conv net.

KID (Binkowski et al., "Demystifying MMD GANs", ICLR 2018) is the unbiased
squared MMD between two feature sets under the kernel k(x, y) = (x.y / d + 1)^3.
It is unbiased (its expectation is 0 for identical distributions, so small sets
give honest numbers, unlike FID) and needs no Gaussian assumption.

The usual extractor, Inception-v3, needs a weight download and was trained on
natural RGB photos, not 35x55 grey eyes. Here the extractor is a conv net with
fixed random weights (seed 0, whatever the run): it needs nothing downloaded,
works on any channel count and size, and is the same network in every run, so
KIDs of runs with the same image shape compare. Random conv features are
sensitive to low-level statistics (texture, noise, contrast, edges), which is
what a refiner changes. The extractor's name is written into every report.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import nn

from refinekit.data.image_set import to_float

EXTRACTOR_SEED = 0
EXTRACTOR_NAME = f"random-conv-v1 (fixed random weights, seed {EXTRACTOR_SEED}; mean+std of 3 conv stages, 896 features)"


class RandomConvFeatures(nn.Module):
    """Three conv-ReLU stages (64, 128, 256 channels; the last two strided) with Kaiming-normal random weights.

    Features are each stage's per-channel spatial mean and standard deviation
    (2 x 448 = 896 values), which capture texture statistics at three scales.
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        generator = torch.Generator().manual_seed(EXTRACTOR_SEED)
        widths = (64, 128, 256)
        self.stages = nn.ModuleList()
        previous = channels
        for i, width in enumerate(widths):
            conv = nn.Conv2d(previous, width, 3, stride=1 if i == 0 else 2, padding=1)
            with torch.no_grad():
                fan_in = previous * 9
                conv.weight.copy_(torch.randn(conv.weight.shape, generator=generator) * (2.0 / fan_in) ** 0.5)
                conv.bias.zero_()
            self.stages.append(conv)
            previous = width
        self.requires_grad_(False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        parts = []
        for conv in self.stages:
            x = torch.relu(conv(x))
            parts += [x.mean(dim=(2, 3)), x.std(dim=(2, 3))]
        return torch.cat(parts, dim=1)


@torch.no_grad()
def extract_features(images: np.ndarray, device: torch.device | str = "cpu", batch_size: int = 512) -> torch.Tensor:
    """(N, 896) float64 features of uint8 (N, C, H, W) ``images``, on the CPU."""
    device = torch.device(device)
    net = RandomConvFeatures(int(images.shape[1])).to(device).eval()
    out = []
    for start in range(0, len(images), batch_size):
        batch = to_float(torch.from_numpy(np.ascontiguousarray(images[start : start + batch_size])).to(device))
        out.append(net(batch).double().cpu())
    return torch.cat(out)


@dataclass(frozen=True)
class DistanceResult:
    """KID between two image sets: the mean and spread over random equal-size subsets.

    Args:
        name: which two sets, e.g. ``refined vs real``.
        kid: mean unbiased squared MMD over the subsets (can be slightly negative
            for identical distributions; that is the estimator being unbiased).
        kid_std: standard deviation over the subsets.
        n_a: images in the first set.
        n_b: images in the second set.
        subsets: how many subsets were drawn.
        subset_size: images per side in each subset.
        extractor: the feature extractor.
        seed: seed of the subset draws.
    """

    name: str
    kid: float
    kid_std: float
    n_a: int
    n_b: int
    subsets: int
    subset_size: int
    extractor: str
    seed: int

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def polynomial_mmd2(x: torch.Tensor, y: torch.Tensor) -> float:
    """Unbiased squared MMD between feature sets ``x`` and ``y`` (same size) under (x.y/d + 1)^3."""
    d = x.shape[1]
    m = x.shape[0]
    k_xx = (x @ x.T / d + 1) ** 3
    k_yy = (y @ y.T / d + 1) ** 3
    k_xy = (x @ y.T / d + 1) ** 3
    within = (k_xx.sum() - k_xx.diagonal().sum() + k_yy.sum() - k_yy.diagonal().sum()) / (m * (m - 1))
    return float(within - 2 * k_xy.mean())


def kid(
    name: str,
    features_a: torch.Tensor,
    features_b: torch.Tensor,
    seed: int,
    subsets: int = 20,
    max_subset_size: int = 1000,
) -> DistanceResult:
    """KID between two feature sets, averaged over ``subsets`` seeded random subsets of equal size."""
    size = min(len(features_a), len(features_b), max_subset_size)
    if size < 2:
        raise ValueError(f"kid({name}): need at least 2 images on each side")
    rng = np.random.default_rng(seed)
    values = [
        polynomial_mmd2(
            features_a[rng.choice(len(features_a), size, replace=False)],
            features_b[rng.choice(len(features_b), size, replace=False)],
        )
        for _ in range(subsets)
    ]
    return DistanceResult(
        name=name,
        kid=float(np.mean(values)),
        kid_std=float(np.std(values)),
        n_a=len(features_a),
        n_b=len(features_b),
        subsets=subsets,
        subset_size=size,
        extractor=EXTRACTOR_NAME,
        seed=seed,
    )
