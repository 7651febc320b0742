"""benchmarks/transfer.py's validation digits: the recipe's held-out real digits, never a classifier's training data."""

from __future__ import annotations

import runpy
from pathlib import Path
from types import SimpleNamespace

import numpy as np

from refinekit.data.heldout import split_real
from refinekit.data.loading import load_dataset
from refinekit.evaluation.holdout import image_hashes
from refinekit.training.setup import resolve_config

TRANSFER_SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "transfer.py"

transfer = SimpleNamespace(**runpy.run_path(str(TRANSFER_SCRIPT)))


def test_validation_digits_are_the_ones_the_recipes_discriminator_never_sees() -> None:
    config = resolve_config("digits-simgan")
    _, never_seen = split_real(load_dataset(config.real, config.image, config.seed + 1), config.real_holdout)
    train, scored = transfer.real_splits("mnist-sample", "validation")
    assert sorted(image_hashes(scored.images)) == sorted(image_hashes(never_seen.images))
    assert not np.isin(image_hashes(scored.images), image_hashes(train.images)).any()
    assert "label" in scored.annotations and len(scored) == len(scored.annotations["label"])


def test_test_digits_are_outside_the_whole_train_split() -> None:
    train, scored = transfer.real_splits("mnist-sample", "test")
    assert len(train) == 4000 and len(scored) == 1000
    assert not np.isin(image_hashes(scored.images), image_hashes(train.images)).any()
