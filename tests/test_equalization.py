"""The refiner's equalisation stage: real images' histogram step, exact forward, straight-through gradient."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from refinekit.components.equalization import Equalize, equalize_histograms, equalize_like_camera
from refinekit.components.refiners import SimGANResNet
from refinekit.errors import ConfigError
from refinekit.weights.files import export_refiner, load_refiner


def _frames(seed: int, count: int = 3, size: tuple[int, int] = (12, 20)) -> torch.Tensor:
    """Low-contrast [-1, 1] images on exact 8-bit levels, as a dim camera frame."""
    levels = torch.randint(60, 140, (count, 1, *size), generator=torch.Generator().manual_seed(seed))
    return levels.float() / 127.5 - 1


def _extremes(images: torch.Tensor) -> int:
    """Pixels at pure black or pure white."""
    return int(((images == -1) | (images == 1)).sum())


def test_equalize_histograms_flattens_the_histogram() -> None:
    ramp = torch.linspace(0.2, 0.4, 55).expand(35, 55)[None]
    out = equalize_histograms(ramp, levels=4096)
    assert int(out.min()) == 0 and int(out.max()) == 255
    assert np.histogram(out.numpy(), bins=4, range=(0, 256))[0].min() > 0.15 * out.numel()


def test_brightness_and_contrast_do_not_survive_equalisation() -> None:
    """Any strictly increasing remapping of a frame's levels equalises to the same image."""
    images = _frames(0)
    brighter = ((images + 1) * 127.5 * 1.5 - 50) / 127.5 - 1  # levels 60..139 -> 40..158.5, still distinct
    assert torch.equal(equalize_like_camera(images, (12, 20)), equalize_like_camera(brighter, (12, 20)))
    out = equalize_like_camera(images, (12, 20))
    assert float(out.min()) == -1.0 and float(out.max()) == 1.0  # the range is used end to end


def test_each_image_is_equalised_on_its_own() -> None:
    images = _frames(1, count=4)
    together = equalize_like_camera(images, (14, 24))
    alone = torch.cat([equalize_like_camera(image[None], (14, 24)) for image in images])
    assert torch.equal(together, alone)


def test_equalising_at_a_larger_size_and_shrinking_leaves_a_histogram_with_fewer_extremes() -> None:
    """As the real patches: equalised at the camera's size, then area-resized, so not perfectly flat."""
    images = _frames(2, count=8, size=(35, 55))
    at_size, resized = equalize_like_camera(images, (35, 55)), equalize_like_camera(images, (36, 60))
    assert resized.shape == images.shape
    assert _extremes(resized) < _extremes(at_size)


def test_the_gradient_passes_straight_through() -> None:
    images = _frames(3).requires_grad_()
    weights = torch.randn(images.shape, generator=torch.Generator().manual_seed(0))
    (Equalize((12, 20))(images) * weights).sum().backward()
    assert torch.equal(images.grad, weights)


@pytest.mark.parametrize("bad", [[36], [36, 0], [36.0, 60], "36x60", [True, 60], 36])
def test_a_bad_size_is_a_config_error_naming_the_option(bad: object) -> None:
    with pytest.raises(ConfigError, match=r"refiner\.options\.equalize must be \[height, width\]"):
        SimGANResNet(channels=1, equalize=bad)  # type: ignore[arg-type]


def test_an_exported_refiner_keeps_its_equalisation(tmp_path) -> None:
    torch.manual_seed(0)
    refiner = SimGANResNet(channels=1, features=8, blocks=1, equalize=[36, 60]).eval()
    export_refiner(
        refiner,
        tmp_path / "r.safetensors",
        "simgan-resnet",
        {"features": 8, "blocks": 1, "equalize": [36, 60]},
        1,
        (35, 55),
    )
    images = _frames(4, size=(35, 55))
    loaded = load_refiner(tmp_path / "r.safetensors")
    with torch.no_grad():
        out = loaded(images)
        assert torch.equal(out, refiner(images))
        plain = SimGANResNet(channels=1, features=8, blocks=1)
        plain.load_state_dict(refiner.state_dict())  # the stage has no weights
        assert torch.equal(out, equalize_like_camera(plain(images), (36, 60)))
