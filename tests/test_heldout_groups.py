"""``real_holdout.group_by``: whole groups of real images (one person's, say) held out together."""

from __future__ import annotations

import numpy as np
import pytest

from refinekit.config import HoldoutConfig
from refinekit.data.heldout import split_real
from refinekit.data.image_set import ImageSet
from refinekit.data.loading import load_dataset
from refinekit.errors import DataError
from refinekit.evaluation.holdout import image_hashes, load_evaluation_sets
from tests.conftest import make_tiny_images
from tests.test_trainer import make_trainer

BY_LABEL = HoldoutConfig(fraction=0.25, seed=3, group_by="label")


def test_each_group_lands_whole_on_one_side() -> None:
    images = make_tiny_images(40, (8, 8), 0, 120)  # labels 0-9, four images each
    train, held = split_real(images, BY_LABEL)
    held_labels, train_labels = set(held.annotations["label"]), set(train.annotations["label"])
    assert held_labels and not held_labels & train_labels
    assert len(held) == 4 * len(held_labels) >= 10  # whole groups, until at least a quarter is held out
    assert len(held) + len(train) == 40


def test_the_groups_held_out_depend_on_the_key_not_the_order() -> None:
    images = make_tiny_images(40, (8, 8), 0, 120)
    _, held = split_real(images, BY_LABEL)
    _, held_reversed = split_real(images.subset(np.arange(40)[::-1]), BY_LABEL)
    assert set(held.annotations["label"]) == set(held_reversed.annotations["label"])
    other_keys = [split_real(images, BY_LABEL.model_copy(update={"seed": seed}))[1] for seed in range(4, 8)]
    assert any(set(other.annotations["label"]) != set(held.annotations["label"]) for other in other_keys)


def test_a_large_share_still_leaves_one_group_to_train_on() -> None:
    images = make_tiny_images(40, (8, 8), 0, 120)
    train, held = split_real(images, BY_LABEL.model_copy(update={"fraction": 0.95}))
    assert len(set(train.annotations["label"])) == 1 and len(held) == 36


def test_groups_named_by_python_objects_split_like_any_other() -> None:
    """A plugin may hand over names as an object array (the cache refuses those, a direct load does not)."""
    names = np.array([f"p{i % 5:02d}" for i in range(20)], dtype=object)
    images = ImageSet(np.arange(20, dtype=np.uint8).reshape(20, 1, 1, 1), {"person": names}, source="objects")
    train, held = split_real(images, BY_LABEL.model_copy(update={"group_by": "person"}))
    assert held.annotations["person"].size and not set(held.annotations["person"]) & set(train.annotations["person"])


def test_a_missing_annotation_names_the_field_and_what_the_images_carry() -> None:
    images = make_tiny_images(40, (8, 8), 0, 120)
    with pytest.raises(DataError, match=r"real_holdout.group_by is 'person'.*carry: label.*remove it"):
        split_real(images, BY_LABEL.model_copy(update={"group_by": "person"}))


def test_a_single_group_cannot_be_held_out() -> None:
    images = ImageSet(np.zeros((6, 1, 4, 4), np.uint8), {"person": np.full(6, 7)}, source="one person")
    with pytest.raises(DataError, match=r"all 6 real images \(one person\) share one value.*several groups"):
        split_real(images, BY_LABEL.model_copy(update={"group_by": "person"}))


def test_held_out_groups_never_enter_d_batches_and_are_what_evaluation_uses(tiny_domain, tmp_path) -> None:
    trainer = make_trainer(tmp_path, "real_holdout.fraction=0.25", "real_holdout.group_by='label'")
    config = trainer.config
    everything = load_dataset(config.real, config.image, config.seed + 1)
    _, held = split_real(everything, config.real_holdout)
    held_labels = set(held.annotations["label"])
    seen_labels = set()
    for _ in range(50):
        seen_labels |= set(trainer.real.image_set.annotations["label"][trainer.real.indices().numpy()])
    assert held_labels and seen_labels and not seen_labels & held_labels
    sets = load_evaluation_sets(config, seed=0, limit=1000)
    assert set(image_hashes(sets.real.images)) == set(image_hashes(held.images))
    assert "whole groups by 'label'" in sets.infos[1].note
