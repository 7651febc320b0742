"""The embedded MNIST sample as the real side: shipped with the plugin, split once and for all."""

from __future__ import annotations

import tomllib
from pathlib import Path

import numpy as np
import pytest
from refinekit_digits import plugin
from refinekit_digits.mnist_sample import load_mnist_sample, read_embedded_digits

from refinekit.config import DatasetConfig, ImageConfig
from refinekit.data.loading import load_dataset
from refinekit.errors import DataError
from refinekit.plugins.contracts import DatasetContract
from refinekit.plugins.registry import get_registry, reset_registry

PLUGIN_ROOT = Path(__file__).resolve().parents[1]


class TestMnistSampleContract(DatasetContract):
    name = "mnist-sample"
    plugin = plugin
    size = (28, 28)


def load(**options):
    return load_mnist_sample(None, **{"channels": 1, "size": (28, 28), "limit": None, "seed": 0, **options})


def rows(images: np.ndarray) -> set[bytes]:
    return {row.tobytes() for row in images}


def test_embedded_file_holds_5000_native_mnist_digits() -> None:
    images, labels, test = read_embedded_digits()
    assert images.shape == (5000, 28, 28) and images.dtype == np.uint8
    assert images.max() == 255 and images.min() == 0
    assert np.bincount(labels).tolist() == [500] * 10
    assert len(rows(images)) == 5000, "no duplicate images, so content checks below are meaningful"
    assert int(test.sum()) == 1000
    # Stored shuffled: a run's sample grid shows a set's first images, and they should not all be one digit.
    assert len(np.unique(labels[:8])) > 3


@pytest.mark.parametrize(("split", "count"), [("train", 4000), ("test", 1000), ("all", 5000)])
def test_splits_have_their_size_and_balanced_labels(split: str, count: int) -> None:
    digits = load(split=split)
    assert digits.images.shape == (count, 1, 28, 28) and digits.images.dtype == np.uint8
    assert np.bincount(digits.annotations["label"], minlength=10).tolist() == [count // 10] * 10
    assert digits.annotations["label"].dtype == np.int64


def test_train_and_test_are_disjoint_and_cover_all() -> None:
    train, test, everything = load(split="train"), load(split="test"), load(split="all")
    assert not rows(train.images) & rows(test.images)
    assert rows(train.images) | rows(test.images) == rows(everything.images)


def test_the_run_seed_never_moves_the_split() -> None:
    # A refiner trained with seed 1 must not see images that a seed-0 evaluation holds out.
    assert np.array_equal(load(split="test", seed=0).images, load(split="test", seed=1).images)
    assert np.array_equal(load(split="train", seed=0).images, load(split="train", seed=7).images)


def test_limit_takes_a_seeded_subset_of_the_split() -> None:
    part = load(split="test", limit=30, seed=5)
    assert len(part) == 30
    assert len(np.unique(part.annotations["label"])) > 3, "not just the first class"
    assert rows(part.images) <= rows(load(split="test").images)
    assert np.array_equal(part.images, load(split="test", limit=30, seed=5).images)
    assert not np.array_equal(part.images, load(split="test", limit=30, seed=6).images)


def test_channels_and_size() -> None:
    digits = load(split="test", channels=3, size=(32, 40), limit=4)
    assert digits.images.shape == (4, 3, 32, 40)
    assert np.array_equal(digits.images[:, 0], digits.images[:, 2]), "gray repeated into RGB"


def test_labels_name_the_digit_drawn() -> None:
    # The mean 1 has far less ink than the mean 0 or 8: a shuffled label column would erase that.
    digits = load(split="all")
    ink = np.array([digits.images[digits.annotations["label"] == d].mean() for d in range(10)])
    assert ink.argmin() == 1 and ink[1] < 0.6 * ink[0]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"split": "validation"}, "options.split must be 'train', 'test' or 'all', got 'validation'")],
)
def test_bad_options(kwargs: dict, message: str) -> None:
    with pytest.raises(DataError, match=message):
        load(**kwargs)


def test_an_unknown_option_is_reported_by_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REFINEKIT_DISABLE_ENTRY_POINTS", "1")
    reset_registry()
    get_registry().register_plugin(plugin, "digits")
    try:
        config = DatasetConfig(name="mnist-sample", options={"test_fraction": 0.5})
        with pytest.raises(DataError, match="mnist-sample.*test_fraction"):
            load_dataset(config, ImageConfig(channels=1, height=28, width=28), seed=0)
    finally:
        reset_registry()


def test_a_path_is_refused_with_a_pointer_to_the_file_loaders() -> None:
    with pytest.raises(DataError, match="mnist-sample.*mnist-idx"):
        load_mnist_sample("digits.csv", channels=1, size=(28, 28), limit=None, seed=0)


def test_the_data_file_and_its_licence_ship_in_the_package() -> None:
    project = tomllib.loads((PLUGIN_ROOT / "pyproject.toml").read_text())
    shipped = project["tool"]["setuptools"]["package-data"]["refinekit_digits"]
    assert {"data/*.npz", "data/*.md"} <= set(shipped)
    data = PLUGIN_ROOT / "refinekit_digits" / "data"
    assert (data / "mnist-5k.npz").is_file()
    notice = (data / "LICENSE-DATA.md").read_text()
    assert "BSD" in notice and "Raschka" in notice and "LeCun" in notice and "convert_mnist_5k.py" in notice
