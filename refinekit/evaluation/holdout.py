"""Which images an evaluation may use, and which of them the run saw during training.

A number measured on images the refiner or its discriminator trained on
flatters the refiner, so this module rebuilds the run's training sets from
its config, loads evaluation sets, and counts (by exact pixel hash) how many
evaluation images were training images.

Synthetic side: the synthetic loader is called again with a different seed.
A simulator then yields fresh images, none seen in training; a fixed file
yields the same images again, which are then reported as seen.
Real side: the images that ``real_holdout`` kept from training (the
discriminator never saw them), unless the user names other real data
(``--real`` or ``--set real...``). Where a run held nothing out, the real loader
is called again as for the synthetic side; if that yields only training images,
the realism test compares refined images with real images the refiner was
trained to imitate, and the report says so.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass

import numpy as np

from refinekit.config import DatasetConfig, TrainConfig
from refinekit.data.heldout import split_real
from refinekit.data.image_set import ImageSet, resize_uint8
from refinekit.data.loading import detect_dataset, load_dataset
from refinekit.errors import DataError
from refinekit.evaluation.task import Task

MIN_EVALUATION_IMAGES = 4
"""The fewest images per side that the held-out tests can split into training and test halves."""

FRESH_SEED_OFFSET = 7919
"""Added to the run's seed to ask a loader for images other than the training ones."""

MIN_UNSEEN = 32
"""Use only unseen images when at least this many exist; otherwise use all and report them as seen."""


@dataclass(frozen=True)
class SetInfo:
    """One evaluation set: where it came from, its size and how much of it training saw.

    Args:
        role: e.g. ``synthetic``, ``real``, ``labelled real (test)``.
        source: the loader's description of the data.
        count: images used.
        seen_in_training: how many of them were in the run's training set of that
            side (None where the question does not apply).
        note: how the images were chosen.
    """

    role: str
    source: str
    count: int
    seen_in_training: int | None
    note: str

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def image_hashes(images: np.ndarray) -> np.ndarray:
    """One 16-byte digest per image, for exact-duplicate counting."""
    return np.array([hashlib.blake2b(np.ascontiguousarray(img).tobytes(), digest_size=16).digest() for img in images])


def seen_mask(images: np.ndarray, training: np.ndarray) -> np.ndarray:
    """True for each image in ``images`` that also occurs (pixel for pixel) in ``training``."""
    return np.isin(image_hashes(images), image_hashes(training))


def shuffled(images: ImageSet, seed: int, limit: int | None) -> ImageSet:
    """A seeded random order of ``images``, cut to ``limit``."""
    order = np.random.default_rng(seed).permutation(len(images))
    return images.subset(order[:limit] if limit is not None else order)


def evaluation_side(
    role: str,
    configured: DatasetConfig,
    training: ImageSet,
    config: TrainConfig,
    training_seed: int,
    seed: int,
    limit: int,
    override: DatasetConfig | None = None,
) -> tuple[ImageSet, SetInfo]:
    """Evaluation images of one side, preferring ones training did not see.

    Args:
        role: ``synthetic`` or ``real``.
        configured: the run's dataset entry of that side.
        training: the images that side trained on (rebuilt from the config).
        config: the run's config (for the image shape).
        training_seed: the seed the run loaded this side with.
        seed: the evaluation seed (order of images).
        limit: use at most this many images.
        override: other data to evaluate with instead of a reload of ``configured``.
    """
    if override is not None:
        candidates = load_dataset(override, config.image, training_seed)
        how = "the data given for evaluation"
    else:
        candidates = load_dataset(configured, config.image, training_seed + FRESH_SEED_OFFSET)
        how = f"the run's {role} loader called again with seed {training_seed + FRESH_SEED_OFFSET}"
    seen = seen_mask(candidates.images, training.images)
    unseen = int((~seen).sum())
    if unseen >= MIN_UNSEEN:
        candidates = candidates.subset(np.flatnonzero(~seen))
        note = f"{how}; {unseen} images not seen in training, {int(seen.sum())} seen ones dropped"
    else:
        note = f"{how}; only {unseen} of its images were not seen in training (< {MIN_UNSEEN}), so all are used"
    chosen = shuffled(candidates, seed, limit)
    seen_count = int(seen_mask(chosen.images, training.images).sum())
    return chosen, SetInfo(role, chosen.source, len(chosen), seen_count, note)


def halves(count: int) -> tuple[slice, slice]:
    """The first and second half of ``count`` shuffled items: training and held-out parts."""
    return slice(0, count // 2), slice(count // 2, count)


LABELLED_SPLIT_SEED = 0
"""Fixed seed of the train/test split of labelled real data the core splits itself: the same in every run."""


def labelled_real_sets(
    task: Task, path: str | None, config: TrainConfig, training_real: ImageSet
) -> tuple[ImageSet | None, ImageSet | None, list[SetInfo]]:
    """Labelled real (train, test) sets for the downstream comparison, each possibly None.

    The task provides them (``Task.labelled_real``); when it has none and the
    user gave ``path``, any registered loader that recognises the path reads it
    and it is split in half with a fixed seed. Train and test must not share an
    image: a real-trained model tested on its own training images would look
    better than it is.
    """
    train = task.labelled_real("train", path, config.image, config.seed)
    test = task.labelled_real("test", path, config.image, config.seed)
    how = f"the task's labelled real data{f' from {path}' if path else ''}"
    if train is None and test is None and path is not None:
        entry = DatasetConfig(name=detect_dataset(path, ()), path=path)
        everything = shuffled(load_dataset(entry, config.image, config.seed), LABELLED_SPLIT_SEED, None)
        index = np.arange(len(everything))
        first, second = halves(len(everything))
        train, test = everything.subset(index[first]), everything.subset(index[second])
        how = f"{path} read by '{entry.name}', split in half with fixed seed {LABELLED_SPLIT_SEED}"
    infos = []
    for split, images in (("train", train), ("test", test)):
        if images is None:
            continue
        task.check_labels(images, f"labelled real {split} data")
        images = _fit_shape(images, config)
        if split == "train":
            train = images
        else:
            test = images
        seen = int(seen_mask(images.images, training_real.images).sum())
        infos.append(SetInfo(f"labelled real ({split})", images.source, len(images), seen, how))
    if train is not None and test is not None:
        shared = int(seen_mask(test.images, train.images).sum())
        if shared:
            raise DataError(
                f"{how}: {shared} of {len(test)} test images also occur in the training split; the task's "
                "labelled_real must return disjoint splits"
            )
    return train, test, infos


def _fit_shape(images: ImageSet, config: TrainConfig) -> ImageSet:
    size = (config.image.height, config.image.width)
    if images.shape[0] != config.image.channels:
        raise DataError(
            f"{images.source}: labelled real images have {images.shape[0]} channels, the run uses {config.image.channels}"
        )
    if images.shape[1:] != size:
        return ImageSet(resize_uint8(images.images, size), images.annotations, images.source)
    return images


@dataclass
class EvaluationSets:
    """The held-out synthetic and real images of one evaluation, shuffled, with their provenance.

    The first half of each (:func:`halves`) trains the realism classifier and the
    synthetic-trained task model; the second half tests them.
    """

    synthetic: ImageSet
    real: ImageSet
    training_real: ImageSet
    infos: list[SetInfo]


def load_evaluation_sets(
    config: TrainConfig,
    seed: int,
    limit: int,
    synthetic: DatasetConfig | None = None,
    real: DatasetConfig | None = None,
) -> EvaluationSets:
    """Rebuild the run's training sets from ``config`` and choose evaluation images next to them.

    Args:
        config: the run's resolved config (``config.json``).
        seed: the evaluation seed (image order).
        limit: at most this many images per side.
        synthetic: other synthetic data to evaluate with (default: reload the run's).
        real: other real data, ideally never shown to the discriminator.
    """
    # the seeds api.prepare loads each side with, so these are the exact training images
    training_synthetic = load_dataset(config.synthetic, config.image, config.seed)
    training_real, held_out = split_real(load_dataset(config.real, config.image, config.seed + 1), config.real_holdout)
    syn, syn_info = evaluation_side("synthetic", config.synthetic, training_synthetic, config, config.seed, seed, limit, synthetic)
    if real is None and len(held_out) >= MIN_EVALUATION_IMAGES:
        rea = shuffled(held_out, seed, limit)
        holdout = config.real_holdout
        grouped = f", whole groups by {holdout.group_by!r}" if holdout.group_by else ""
        how = (
            f"the real images held out from training (real_holdout: fraction {holdout.fraction}, seed {holdout.seed}"
            f"{grouped})"
        )
        real_info = SetInfo("real", rea.source, len(rea), int(seen_mask(rea.images, training_real.images).sum()), how)
    else:
        rea, real_info = evaluation_side("real", config.real, training_real, config, config.seed + 1, seed, limit, real)
    for images, role in ((syn, "synthetic"), (rea, "real")):
        if len(images) < MIN_EVALUATION_IMAGES:
            raise DataError(
                f"evaluation: only {len(images)} {role} images ({images.source}); the held-out tests need at least "
                f"{MIN_EVALUATION_IMAGES}"
            )
    return EvaluationSets(syn, rea, training_real, [syn_info, real_info])
