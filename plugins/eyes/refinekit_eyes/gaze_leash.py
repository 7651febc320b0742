"""The ``gaze-consistency`` regulariser: R may change an eye's look, but not where a gaze network sees it looking.

The pixel leash of the paper holds every grey level, so it also forbids what a
real eye has and a rendered one lacks: lashes, creases, skin. This leash adds a
frozen gaze network trained on the simulator's eyes alone (CyCADA's semantic
consistency, Hoffman et al. 2018): R pays for any change that moves the gaze the
network reads. With two D steps per R step it keeps the L1 leash's realism at about
half the gaze moved, on every seed (``docs/quality.md``), so ``eyes-simgan`` uses it.

The network is deliberately not the paper's estimator that ``benchmarks/quality.py``
scores labels with: another architecture, trained on other simulator eyes with
another seed, so a refiner cannot learn to fool the judge through its leash.
Its weights ship in ``pretrained/gaze-leash.safetensors``; the card beside them
gives the command that trained them.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import torch
from torch import nn

from refinekit.components.consistency import TaskConsistency
from refinekit.components.regularizers import SelfRegularizer
from refinekit.errors import CheckpointError, ConfigError, PluginError
from refinekit.weights.files import load_encoder_weights

LEASH_WEIGHTS = Path(__file__).with_name("pretrained") / "gaze-leash.safetensors"


class GazeLeashNet(nn.Module):
    """Eye image (B, 1, H, W) in [-1, 1] -> unit gaze vector (B, 3); any H, W of at least 16.

    Four strided 3x3 convolutions, then an adaptive pool to a 4x6 grid, which
    keeps where the iris is, and two linear layers: about 0.63 M weights.
    """

    def __init__(self, channels: int = 1, width: int = 32) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        widths = [channels, width, width * 2, width * 4, width * 4]
        for step, (inputs, outputs) in enumerate(itertools.pairwise(widths)):
            layers += [nn.Conv2d(inputs, outputs, 3, stride=1 if step == 0 else 2, padding=1), nn.ReLU(inplace=True)]
        self.features = nn.Sequential(*layers, nn.AdaptiveAvgPool2d((4, 6)))
        self.head = nn.Sequential(
            nn.Flatten(), nn.Linear(widths[-1] * 24, 128), nn.ReLU(inplace=True), nn.Linear(128, 3)
        )

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return nn.functional.normalize(self.head(self.features(images)), dim=1)


def load_gaze_leash(channels: int = 1, path: Path = LEASH_WEIGHTS) -> GazeLeashNet:
    """The shipped gaze network, frozen, for grayscale eyes (3 channels: the grey repeated, as ``eyes-sim`` does)."""
    network = GazeLeashNet(channels=1)
    try:
        load_encoder_weights(network, path, "the gaze-consistency leash network (GazeLeashNet)")
    except CheckpointError as error:
        raise PluginError(f"{error}; the file ships with refinekit-eyes: reinstall it") from None
    if channels == 1:
        return network
    if channels != 3:
        raise ConfigError(f"regularizer 'gaze-consistency': eyes have 1 or 3 channels, got image.channels={channels}")
    first = network.features[0]
    with torch.no_grad():  # three equal channels summed into the grey weights give the same response
        rgb = nn.Conv2d(3, first.out_channels, 3, padding=1)
        rgb.weight.copy_(first.weight.repeat(1, 3, 1, 1) / 3)
        rgb.bias.copy_(first.bias)
    network.features[0] = rgb
    return network


def gaze_consistency(
    channels: int = 1, gaze_weight: float = 10.0, psi: str = "identity", edge_weight: float = 0.0
) -> TaskConsistency:
    """The pixel leash (``psi``, ``edge_weight``: see ``feature``) plus ``gaze_weight`` x the gaze network's change."""
    return TaskConsistency(
        load_gaze_leash(channels),
        SelfRegularizer(channels, psi=psi, edge_weight=edge_weight),
        gaze_weight,
        name="gaze_weight",
    )
