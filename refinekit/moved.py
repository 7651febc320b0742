"""The module paths of refinekit 0.x before its folders were drawn: still importable, with a warning.

Version 0.x kept 28 modules side by side in ``refinekit/``. They now live in the
folder of what they serve (``training/``, ``refine/``, ``data/``, ...). Code written
against the old paths keeps working for one release: importing an old module
returns the new one (the same object, so patching either patches both) and
raises a :class:`DeprecationWarning` that names the new path. Four old modules
became packages of the same name (``refinekit.data``, ``refinekit.plugins``,
``refinekit.refine``, and ``refinekit.cli``); their old attributes are forwarded
the same way by :func:`forward_attributes`.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys
import warnings
from collections.abc import Callable
from types import ModuleType

MOVED_MODULES = {
    "refinekit.api": "refinekit.training.setup",
    "refinekit.augment": "refinekit.training.augment",
    "refinekit.buffer": "refinekit.training.history_buffer",
    "refinekit.losses": "refinekit.training.losses",
    "refinekit.trainer": "refinekit.training.loop",
    "refinekit.progress": "refinekit.training.progress",
    "refinekit.report": "refinekit.training.run_figures",
    "refinekit.cache": "refinekit.data.cache",
    "refinekit.file_tree": "refinekit.data.file_tree",
    "refinekit.folder_lock": "refinekit.data.folder_lock",
    "refinekit.heldout": "refinekit.data.heldout",
    "refinekit.imageio": "refinekit.data.image_files",
    "refinekit.loading": "refinekit.data.loading",
    "refinekit.chunks": "refinekit.runtime.chunks",
    "refinekit.distributed": "refinekit.runtime.distributed",
    "refinekit.precision": "refinekit.runtime.precision",
    "refinekit.checkpoint": "refinekit.weights.files",
    "refinekit.convert": "refinekit.weights.convert",
    "refinekit.pretrained": "refinekit.weights.pretrained",
    "refinekit.component_probe": "refinekit.plugins.probe",
    "refinekit.hookspecs": "refinekit.plugins.hookspecs",
    "refinekit.recipes": "refinekit.plugins.recipe",
    "refinekit.testing": "refinekit.plugins.contracts",
    "refinekit.refine_inputs": "refinekit.refine.inputs",
    "refinekit.refine_outputs": "refinekit.refine.outputs",
    "refinekit.input_fit": "refinekit.refine.input_fit",
    "refinekit.refined_dataset": "refinekit.refine.dataset",
    "refinekit.training_set": "refinekit.refine.training_set",
    "refinekit.listing": "refinekit.cli.tables",
}


def _warn(old: str, new: str) -> None:
    warnings.warn(
        f"{old} moved to {new}; the old path stops working in the next release. Import {new} instead.",
        DeprecationWarning,
        stacklevel=4,
    )


class _AliasLoader(importlib.abc.Loader):
    """Loads an old module name as the new module itself, leaving the new module's own spec intact."""

    def __init__(self, new: str) -> None:
        self.new = new
        self._spec: importlib.machinery.ModuleSpec | None = None

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType:
        module = importlib.import_module(self.new)
        self._spec = module.__spec__
        return module

    def exec_module(self, module: ModuleType) -> None:
        module.__spec__ = self._spec  # the import system set the alias's spec; the module stays the new one


class _MovedModuleFinder(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname: str, path: object, target: object = None) -> importlib.machinery.ModuleSpec | None:
        new = MOVED_MODULES.get(fullname)
        if new is None:
            return None
        _warn(fullname, new)
        return importlib.machinery.ModuleSpec(fullname, _AliasLoader(new))


def install() -> None:
    """Make the old module paths importable (once per process)."""
    if not any(isinstance(finder, _MovedModuleFinder) for finder in sys.meta_path):
        sys.meta_path.insert(0, _MovedModuleFinder())


def forward_attributes(
    module: str, *homes: str, names: frozenset[str] | None = None
) -> tuple[Callable[[str], object], Callable[[], list[str]]]:
    """``__getattr__`` and ``__dir__`` for a module whose 0.x attributes now live in ``homes``.

    An attribute the old module had (``refinekit.data.ImageSet``) is looked up, lazily
    and with a warning, in the first of ``homes`` that holds it; ``names`` limits the
    forwarding to those attributes.
    """

    def __getattr__(name: str) -> object:
        if not name.startswith("_") and (names is None or name in names):
            for home in homes:
                target = importlib.import_module(home)
                if hasattr(target, name):
                    _warn(f"{module}.{name}", f"{home}.{name}")
                    return getattr(target, name)
        raise AttributeError(f"module {module!r} has no attribute {name!r}")

    def __dir__() -> list[str]:
        return sorted(sys.modules[module].__dict__)

    return __getattr__, __dir__
