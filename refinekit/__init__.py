"""refinekit: make synthetic images look real while keeping their annotations (SimGAN).

Importing refinekit loads no plugin and starts nothing; plugins load on first use.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING

try:
    __version__ = version("refinekit")
except PackageNotFoundError:  # running from a source tree without installing
    __version__ = "0+unknown"

from refinekit import moved
from refinekit.errors import (
    CheckpointError,
    ConfigError,
    DataError,
    NonFiniteLossError,
    PluginError,
    RefinekitError,
    UnknownNameError,
)

moved.install()  # the 0.x module paths (refinekit.trainer, ...) still import, with a DeprecationWarning

# Re-exported lazily (PEP 562): ``import refinekit`` must not import torch, which takes seconds; a
# Ctrl-C during that import would otherwise end every command with a traceback instead of exit 130.
_LAZY = {
    "resolve_config": "refinekit.training.setup",
    "train": "refinekit.training.setup",
    "load_refiner": "refinekit.weights.files",
    "ImageSet": "refinekit.data.image_set",
    "evaluate": "refinekit.evaluation",
    "create_discriminator": "refinekit.plugins.registry",
    "create_refiner": "refinekit.plugins.registry",
    "create_regularizer": "refinekit.plugins.registry",
    "list_datasets": "refinekit.plugins.registry",
    "list_discriminators": "refinekit.plugins.registry",
    "list_recipes": "refinekit.plugins.registry",
    "list_refiners": "refinekit.plugins.registry",
    "list_regularizers": "refinekit.plugins.registry",
    "Recipe": "refinekit.plugins.recipe",
    "RefinedBatches": "refinekit.refine.dataset",
    "RefinedDataset": "refinekit.refine.dataset",
    "TrainingSet": "refinekit.refine.labelled_set",
    "make_training_set": "refinekit.refine.training_set",
}


def __getattr__(name: str) -> object:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'refinekit' has no attribute {name!r}")
    from importlib import import_module

    # Not cached in globals(): refinekit.X stays whatever refinekit.<module>.X is, so a test that patches
    # the module (and undoes it) never leaves a stale patched object behind here.
    return getattr(import_module(module), name)


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})


if TYPE_CHECKING:  # what type checkers and IDEs see
    from refinekit.data.image_set import ImageSet
    from refinekit.evaluation import evaluate
    from refinekit.plugins.recipe import Recipe
    from refinekit.plugins.registry import (
        create_discriminator,
        create_refiner,
        create_regularizer,
        list_datasets,
        list_discriminators,
        list_recipes,
        list_refiners,
        list_regularizers,
    )
    from refinekit.refine.dataset import RefinedBatches, RefinedDataset
    from refinekit.refine.labelled_set import TrainingSet
    from refinekit.refine.training_set import make_training_set
    from refinekit.training.setup import resolve_config, train
    from refinekit.weights.files import load_refiner

__all__ = [
    "CheckpointError",
    "ConfigError",
    "DataError",
    "ImageSet",
    "NonFiniteLossError",
    "PluginError",
    "Recipe",
    "RefinedBatches",
    "RefinedDataset",
    "RefinekitError",
    "TrainingSet",
    "UnknownNameError",
    "__version__",
    "create_discriminator",
    "create_refiner",
    "create_regularizer",
    "evaluate",
    "list_datasets",
    "list_discriminators",
    "list_recipes",
    "list_refiners",
    "list_regularizers",
    "load_refiner",
    "make_training_set",
    "resolve_config",
    "train",
]
