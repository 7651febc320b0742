"""Components named as ``"module:attribute"`` and imported on first use.

A plugin that registers ``register("my-net", "my_plugin.nets:MyNet", ...)``
instead of the class itself costs nothing until the component is used:
``refinekit recipes`` and ``refinekit plugins`` then never import torch. It is the
syntax of entry points (``module:attribute``), which plugin authors already know.
"""

from __future__ import annotations

import importlib
import re
from typing import Any

from refinekit.errors import PluginError

_REFERENCE = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")


def is_reference(value: Any) -> bool:
    """Whether ``value`` is a ``"module:attribute"`` string."""
    return isinstance(value, str) and _REFERENCE.match(value) is not None


def check_reference(value: Any, what: str) -> None:
    """Refuse a string that is not ``"module:attribute"`` when it is registered, not when it is first used."""
    if isinstance(value, str) and not is_reference(value):
        raise PluginError(f"{what} is registered as {value!r}; a lazy reference is written 'package.module:attribute'")


def resolve(value: Any, what: str) -> Any:
    """The object ``value`` names if it is a reference, else ``value`` itself."""
    if not is_reference(value):
        return value
    module_name, _, attribute = value.partition(":")
    try:
        target: Any = importlib.import_module(module_name)
        for part in attribute.split("."):
            target = getattr(target, part)
    except (ImportError, AttributeError) as exc:
        raise PluginError(
            f"{what} is registered as {value!r}, which cannot be loaded ({type(exc).__name__}: {exc}). "
            "Reinstall the plugin, or report this to its author"
        ) from exc
    return target
