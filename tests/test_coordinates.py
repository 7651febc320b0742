"""Coordinate channels: what lets a fully convolutional refiner or discriminator treat places differently."""

from __future__ import annotations

import pytest
import torch

from refinekit.components.coordinates import with_coordinates
from refinekit.components.discriminators import GlobalDiscriminator, LocalPatchDiscriminator, MultiScaleDiscriminator
from refinekit.components.refiners import SimGANResNet, TimmUNetRefiner
from refinekit.weights.files import load_refiner
from tests.test_trainer import make_trainer

REACH = 9  # the refiner's receptive-field radius: a 3x3 stem and 4 blocks of two 3x3 convolutions


def test_the_channels_hold_x_then_y_from_minus_one_to_one() -> None:
    images = torch.rand(2, 3, 5, 7)
    out = with_coordinates(images)
    assert out.shape == (2, 5, 5, 7) and torch.equal(out[:, :3], images)
    x, y = out[:, 3], out[:, 4]
    torch.testing.assert_close(x, torch.linspace(-1, 1, 7).expand(2, 5, 7), rtol=0, atol=1e-6)
    torch.testing.assert_close(y, torch.linspace(-1, 1, 5)[:, None].expand(2, 5, 7), rtol=0, atol=1e-6)


@pytest.mark.parametrize("coordinates", [False, True])
def test_only_a_refiner_with_coordinates_treats_places_differently(coordinates: bool) -> None:
    """On a flat grey image a plain refiner's output is the same wherever its view misses the border."""
    torch.manual_seed(0)
    refiner = SimGANResNet(channels=1, coordinates=coordinates)
    with torch.no_grad():
        interior = refiner(torch.full((1, 1, 35, 55), 0.3))[0, 0, REACH:-REACH, REACH:-REACH]
    assert (float(interior.std()) > 1e-3) == coordinates


@pytest.mark.parametrize("coordinates", [False, True])
def test_only_a_discriminator_with_coordinates_judges_places_differently(coordinates: bool) -> None:
    torch.manual_seed(0)
    logits = LocalPatchDiscriminator(channels=1, coordinates=coordinates)(torch.full((1, 1, 35, 55), 0.3))
    interior = logits.detach()[0, :, 3:-3, 3:-3]  # patches whose view (23 px wide) misses the border
    assert (float(interior.std(dim=(1, 2)).max()) > 1e-4) == coordinates


def test_every_built_in_network_takes_the_option() -> None:
    images = torch.zeros(2, 1, 35, 55)
    assert GlobalDiscriminator(channels=1, coordinates=True)(images).shape == (2, 2, 1, 1)
    assert MultiScaleDiscriminator(channels=1, coordinates=True)(images).shape == (2, 2, 27, 14)
    unet = TimmUNetRefiner(channels=1, coordinates=True)
    assert unet(images).shape == (2, 1, 35, 55) and unet.input_skip.in_channels == 3
    assert unet.encoder.conv1.in_channels == 1  # the encoder, and so any encoder weights, unchanged


def test_a_trained_refiner_with_coordinates_exports_and_loads_back(tiny_domain, tmp_path) -> None:
    trainer = make_trainer(tmp_path, "refiner.options.coordinates=true", "discriminator.options.coordinates=true")
    result = trainer.fit()
    loaded = load_refiner(result.refiner_path)
    assert loaded.stem.in_channels == trainer.config.image.channels + 2
    images = torch.rand(3, trainer.config.image.channels, trainer.config.image.height, trainer.config.image.width)
    with torch.no_grad():
        torch.testing.assert_close(loaded(images), trainer.refiner(images), rtol=0, atol=1e-6)
