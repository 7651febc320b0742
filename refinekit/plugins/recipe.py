"""Recipes: named bundles of components, datasets and hyperparameters."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Recipe:
    """A named, ready-to-run configuration that a plugin registers.

    Args:
        name: what users type, e.g. ``refinekit run eyes-simgan``.
        description: one line for ``refinekit recipes``.
        config: a partial :class:`refinekit.config.TrainConfig` as a nested dict.
        schedules: named overrides selected with ``--schedule NAME`` (e.g. ``paper``).
        default_schedule: the schedule used when none is named.
        path_datasets: dataset loaders tried, in order, when the user passes
            ``--synthetic PATH`` or ``--real PATH``; the first whose ``detect``
            accepts the path is used.
        task: the evaluation task (``register_tasks``) for ``refinekit evaluate``.
        pretrained: the refiner this recipe ships, trained, as a package resource
            ``package:path/name.safetensors``; ``name.json`` (the run's config) and
            ``name.md`` (its model card) lie beside it. See :mod:`refinekit.weights.pretrained`.
    """

    name: str
    description: str
    config: dict[str, Any]
    schedules: dict[str, dict[str, Any]] = field(default_factory=dict)
    default_schedule: str | None = None
    path_datasets: tuple[str, ...] = ("image-folder",)
    task: str | None = None
    pretrained: str | None = None
