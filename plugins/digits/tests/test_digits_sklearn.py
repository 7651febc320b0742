"""scikit-learn's digits as the real side: framed like MNIST, split once and for all."""

from __future__ import annotations

import numpy as np
import pytest
from refinekit_digits import plugin
from refinekit_digits.sklearn_digits import load_sklearn_digits, split_indices
from sklearn.datasets import load_digits

from refinekit.errors import DataError
from refinekit.plugins.contracts import DatasetContract


class TestSklearnDigitsContract(DatasetContract):
    name = "sklearn-digits"
    plugin = plugin
    size = (28, 28)


def load(**options) -> np.ndarray:
    return load_sklearn_digits(None, channels=1, size=(28, 28), limit=None, seed=0, **options)


def test_train_and_test_are_disjoint_and_cover_everything() -> None:
    labels = load_digits().target
    train, test = split_indices(labels, "train"), split_indices(labels, "test")
    assert not set(train) & set(test)
    assert np.array_equal(np.sort(np.concatenate([train, test])), np.arange(len(labels)))
    assert len(test) == 450


def test_split_is_stratified() -> None:
    labels = load_digits().target
    share = np.bincount(labels[split_indices(labels, "test")], minlength=10) / np.bincount(labels)
    assert np.all(np.abs(share - 0.25) < 0.01)


def test_the_run_seed_never_moves_the_split() -> None:
    # A refiner trained with seed 1 must not see images that a seed-0 evaluation holds out.
    a = load_sklearn_digits(None, channels=1, size=(28, 28), limit=None, seed=0, split="train")
    b = load_sklearn_digits(None, channels=1, size=(28, 28), limit=None, seed=1, split="train")
    assert np.array_equal(a.images, b.images)


def test_images_are_framed_like_mnist() -> None:
    images = load(split="all")
    assert images.images.shape == (1797, 1, 28, 28) and images.images.dtype == np.uint8
    assert images.images.max() == 255, "16 of 16 maps to full white"
    outside = images.images.copy()
    outside[:, :, 4:24, 4:24] = 0
    assert outside.max() == 0, "nothing outside the centred 20x20 box"
    assert np.array_equal(images.annotations["label"], load_digits().target)


def test_limit_takes_a_seeded_subset_of_the_split() -> None:
    full = load(split="test")
    part = load_sklearn_digits(None, channels=1, size=(28, 28), limit=30, seed=5, split="test")
    assert len(part) == 30
    assert len(np.unique(part.annotations["label"])) > 3, "not just the first class"
    rows = {row.tobytes() for row in full.images}
    assert all(row.tobytes() in rows for row in part.images)


@pytest.mark.parametrize(("kwargs", "message"), [({"split": "validation"}, "split must be"), ({"test_fraction": 1.5}, "test_fraction")])
def test_bad_options(kwargs: dict, message: str) -> None:
    with pytest.raises(DataError, match=message):
        load(**kwargs)


def test_a_path_is_refused_with_a_pointer_to_the_file_loaders() -> None:
    with pytest.raises(DataError, match="mnist-idx"):
        load_sklearn_digits("digits.csv", channels=1, size=(28, 28), limit=None, seed=0)
