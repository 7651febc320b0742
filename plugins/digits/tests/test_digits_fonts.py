"""The rendered synthetic source: exact labels, seeded, fast, and only matplotlib's fonts."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from refinekit_digits import plugin
from refinekit_digits.fonts import DEFAULT_FONTS, font_path, load_digits_fonts, render_digits

from refinekit.errors import DataError
from refinekit.plugins.contracts import DatasetContract


class TestDigitsFontsContract(DatasetContract):
    name = "digits-fonts"
    plugin = plugin
    options = {"count": 40}  # at the contract's 35x55: any working size renders


def nearest_mean_accuracy(train: np.ndarray, train_labels: np.ndarray, test: np.ndarray, test_labels: np.ndarray) -> float:
    """Accuracy of the nearest class-mean image: high only if images of one label look alike."""
    flat = lambda x: x.reshape(len(x), -1).astype(np.float32)  # noqa: E731
    means = np.stack([flat(train)[train_labels == d].mean(0) for d in range(10)])
    distances = ((flat(test)[:, None] - means[None]) ** 2).sum(-1)
    return float((distances.argmin(1) == test_labels).mean())


def test_images_are_uint8_white_on_black_and_classes_balanced() -> None:
    images, labels = render_digits(200, seed=0)
    assert images.shape == (200, 1, 28, 28) and images.dtype == np.uint8
    assert labels.dtype == np.int64 and np.array_equal(np.bincount(labels), np.full(10, 20))
    assert images.max() == 255, "strokes reach full white"
    border = np.concatenate([images[:, 0, :2].ravel(), images[:, 0, -2:].ravel()])
    assert np.median(border) == 0, "the background is black, as in MNIST"


def test_labels_name_the_digit_drawn() -> None:
    # With wrong labels the class means would be blurs of all digits and this would sit near 10 %.
    images, labels = render_digits(1000, seed=0)
    fresh, fresh_labels = render_digits(300, seed=1)
    assert nearest_mean_accuracy(images, labels, fresh, fresh_labels) > 0.6


def test_same_seed_same_images_other_seed_other_images() -> None:
    a, la = render_digits(50, seed=7)
    b, lb = render_digits(50, seed=7)
    c, _ = render_digits(50, seed=8)
    assert np.array_equal(a, b) and np.array_equal(la, lb)
    assert not np.array_equal(a, c)


def test_global_torch_rng_is_left_alone() -> None:
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    render_digits(10, seed=0)
    assert torch.equal(torch.rand(3), expected)


def test_size_elastic_and_channels_options() -> None:
    plain, _ = render_digits(20, size=(32, 24), seed=0)
    wobbly, _ = render_digits(20, size=(32, 24), seed=0, elastic=1.0)
    assert plain.shape == (20, 1, 32, 24)
    assert not np.array_equal(plain, wobbly)
    rgb = load_digits_fonts(None, channels=3, size=(28, 28), limit=5, seed=0, count=100)
    assert rgb.images.shape == (5, 3, 28, 28)
    assert np.array_equal(rgb.images[:, 0], rgb.images[:, 2])


def test_fonts_come_from_matplotlib_not_the_system() -> None:
    import matplotlib

    for name in DEFAULT_FONTS:
        assert str(font_path(name)).startswith(matplotlib.get_data_path())


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"path": "/some/folder"}, "reads no path"),
        ({"rotaton": 5}, "unknown option"),
        ({"fonts": ["NoSuchFont.ttf"]}, "NoSuchFont.ttf"),
    ],
)
def test_bad_arguments_say_what_to_do(kwargs: dict, message: str) -> None:
    kwargs = {"path": None, **kwargs}
    with pytest.raises(DataError, match=message):
        load_digits_fonts(channels=1, size=(28, 28), limit=10, seed=0, **kwargs)
