"""The hooks a refinekit plugin may implement.

Every hook receives a ``register`` callback instead of returning a list, so a
plugin can register any number of components and the core can attribute each
one to the plugin that registered it.
"""

from __future__ import annotations

from typing import Callable

import pluggy

hookspec = pluggy.HookspecMarker("refinekit")
hookimpl = pluggy.HookimplMarker("refinekit")

Register = Callable[..., None]


@hookspec
def register_refiners(register: Register) -> None:
    """Register refiner factories: ``register(name, factory, description)``; factory(channels, **options) -> nn.Module."""


@hookspec
def register_discriminators(register: Register) -> None:
    """Register discriminator factories: ``register(name, factory, description)``; output is (B, 2, h, w) logits."""


@hookspec
def register_regularizers(register: Register) -> None:
    """Register self-regularisers: ``register(name, factory, description)``; module(refined, synthetic) -> scalar loss."""


@hookspec
def register_datasets(register: Register) -> None:
    """Register dataset loaders: ``register(name, loader, description, detect=None)``; loader(path, **kw) -> ImageSet."""


@hookspec
def register_recipes(register: Register) -> None:
    """Register recipes: ``register(Recipe(...))``, a named bundle of components, datasets and hyperparameters."""


@hookspec
def register_tasks(register: Register) -> None:
    """Register evaluation tasks: ``register(name, factory, description)``; factory() -> refinekit.evaluation.Task."""


