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

from refinekit.errors import (
    CheckpointError,
    ConfigError,
    DataError,
    NonFiniteLossError,
    PluginError,
    RefinekitError,
    UnknownNameError,
)

# Re-exported lazily (PEP 562): ``import refinekit`` must not import torch, which takes seconds; a
# Ctrl-C during that import would otherwise end every command with a traceback instead of exit 130.
_LAZY = {
    "resolve_config": "refinekit.api",
    "train": "refinekit.api",
    "load_refiner": "refinekit.checkpoint",
    "ImageSet": "refinekit.data",
    "evaluate": "refinekit.evaluation",
    "create_discriminator": "refinekit.plugins",
    "create_refiner": "refinekit.plugins",
    "create_regularizer": "refinekit.plugins",
    "list_datasets": "refinekit.plugins",
    "list_discriminators": "refinekit.plugins",
    "list_recipes": "refinekit.plugins",
    "list_refiners": "refinekit.plugins",
    "list_regularizers": "refinekit.plugins",
    "Recipe": "refinekit.recipes",
    "RefinedBatches": "refinekit.refined_dataset",
    "RefinedDataset": "refinekit.refined_dataset",
    "TrainingSet": "refinekit.training_set",
    "make_training_set": "refinekit.training_set",
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
    from refinekit.api import resolve_config, train
    from refinekit.checkpoint import load_refiner
    from refinekit.data import ImageSet
    from refinekit.evaluation import evaluate
    from refinekit.plugins import (
        create_discriminator,
        create_refiner,
        create_regularizer,
        list_datasets,
        list_discriminators,
        list_recipes,
        list_refiners,
        list_regularizers,
    )
    from refinekit.recipes import Recipe
    from refinekit.refined_dataset import RefinedBatches, RefinedDataset
    from refinekit.training_set import TrainingSet, make_training_set

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
