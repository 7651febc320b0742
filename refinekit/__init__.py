"""refinekit: make synthetic images look real while keeping their annotations (SimGAN).

Importing refinekit loads no plugin and starts nothing; plugins load on first use.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("refinekit")
except PackageNotFoundError:  # running from a source tree without installing
    __version__ = "0+unknown"

from refinekit.api import resolve_config, train
from refinekit.checkpoint import load_refiner
from refinekit.data import ImageSet
from refinekit.errors import (
    CheckpointError,
    ConfigError,
    DataError,
    NonFiniteLossError,
    PluginError,
    RefinekitError,
    UnknownNameError,
)
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
