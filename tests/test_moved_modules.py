"""The 0.x module paths still import for one release: the same module, with a warning naming the new path."""

from __future__ import annotations

import importlib
import sys

import pytest

from refinekit.moved import MOVED_MODULES


@pytest.mark.parametrize(("old", "new"), sorted(MOVED_MODULES.items()))
def test_an_old_module_path_is_the_new_module_with_a_warning(old: str, new: str, monkeypatch) -> None:
    monkeypatch.delitem(sys.modules, old, raising=False)
    with pytest.warns(DeprecationWarning, match=rf"{old} moved to {new}; .* Import {new} instead"):
        module = importlib.import_module(old)
    assert module is importlib.import_module(new)  # patching either path patches both
    assert module.__spec__.name == new  # the alias leaves the module's own identity alone


def test_an_old_import_statement_still_works(monkeypatch) -> None:
    monkeypatch.delitem(sys.modules, "refinekit.checkpoint", raising=False)
    with pytest.warns(DeprecationWarning, match="refinekit.checkpoint moved to refinekit.weights.files"):
        from refinekit.checkpoint import load_refiner
    from refinekit.weights.files import load_refiner as new_load_refiner

    assert load_refiner is new_load_refiner


@pytest.mark.parametrize(
    ("package", "name", "home"),
    [
        ("refinekit.data", "ImageSet", "refinekit.data.image_set"),
        ("refinekit.plugins", "get_registry", "refinekit.plugins.registry"),
        ("refinekit.refine", "refine_batch", "refinekit.refine.pipeline"),
        ("refinekit.cli", "main", "refinekit.cli.app"),
    ],
)
def test_a_module_that_became_a_package_forwards_its_old_names(package: str, name: str, home: str) -> None:
    with pytest.warns(DeprecationWarning, match=rf"{package}.{name} moved to {home}.{name}"):
        value = getattr(importlib.import_module(package), name)
    assert value is getattr(importlib.import_module(home), name)


def test_a_name_the_old_module_never_had_is_still_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="module 'refinekit.data' has no attribute 'no_such_name'"):
        importlib.import_module("refinekit.data").no_such_name  # noqa: B018


def test_the_label_constants_still_import_from_the_discriminators() -> None:
    from refinekit.training.losses import REAL, REFINED

    with pytest.warns(DeprecationWarning, match="discriminators.REAL moved to refinekit.training.losses.REAL"):
        from refinekit.components.discriminators import REAL as old_real
    assert (old_real, REFINED) == (REAL, 0)


@pytest.mark.parametrize(
    ("name", "home"),
    [("verify_output", "refinekit.refine.output_records"), ("lock_output", "refinekit.refine.output_locks")],
)
def test_names_split_off_the_old_refine_outputs_still_resolve(name: str, home: str, monkeypatch) -> None:
    monkeypatch.delitem(sys.modules, "refinekit.refine_outputs", raising=False)
    with pytest.warns(DeprecationWarning):
        old = importlib.import_module("refinekit.refine_outputs")
    with pytest.warns(DeprecationWarning, match=rf"outputs.{name} moved to {home}.{name}"):
        value = getattr(old, name)
    assert value is getattr(importlib.import_module(home), name)
