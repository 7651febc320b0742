"""The digits task: the classifier is seeded, and rendered labels carry over to real handwriting."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from refinekit_digits.classifier import DigitClassifier, accuracy, predict, train_classifier
from refinekit_digits.fonts import render_digits
from refinekit_digits.mnist_sample import load_mnist_sample


def test_same_seed_same_weights_other_seed_other_weights() -> None:
    images, labels = render_digits(64, seed=0)
    a, b, c = (train_classifier(images, labels, steps=3, seed=s) for s in (0, 0, 1))
    for (name, pa), pb in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(pa, pb), name
    assert not torch.equal(a.classify[-1].weight, c.classify[-1].weight)


def test_trained_on_rendered_digits_it_reads_held_out_handwriting() -> None:
    # Label exactness across domains: wrong or shuffled rendered labels would leave real accuracy near 10 %.
    images, labels = render_digits(2000, seed=0)
    model = train_classifier(images, labels, steps=150, seed=0)
    fresh, fresh_labels = render_digits(500, seed=1)
    real = load_mnist_sample(None, channels=1, size=(28, 28), limit=None, seed=0, split="test")
    assert accuracy(model, fresh, fresh_labels) > 0.7
    assert accuracy(model, real.images, real.annotations["label"]) > 0.25


def test_predict_shapes_and_empty_accuracy() -> None:
    model = DigitClassifier(channels=3).eval()
    assert predict(model, np.zeros((5, 3, 20, 24), np.uint8)).shape == (5,)
    with pytest.raises(ValueError, match="empty"):
        accuracy(model, np.zeros((0, 3, 20, 24), np.uint8), np.zeros(0, np.int64))
