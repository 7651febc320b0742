"""Components registered as "module:attribute" load on first use; listing them imports no torch."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest
from torch import nn

from refinekit.errors import PluginError
from refinekit.plugins.hookspecs import hookimpl
from refinekit.plugins.registry import PluginWarning, create_refiner, get_dataset


def test_listing_every_installed_plugin_imports_no_torch() -> None:
    """The point of lazy references: `refinekit recipes` and `refinekit plugins` start without torch."""
    script = textwrap.dedent(
        """
        import sys
        from refinekit.plugins.registry import iter_plugins, list_datasets, list_recipes
        assert list_recipes() and list_datasets()
        assert list(iter_plugins())
        heavy = sorted(m for m in ("torch", "numpy", "kornia", "timm") if m in sys.modules)
        print(",".join(heavy))
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "", f"listing plugins imported {done.stdout.strip()}"


class Lazy:
    @staticmethod
    @hookimpl
    def register_refiners(register) -> None:
        register("lazy-identity", "torch.nn:Identity", "an identity refiner, named not imported")


def test_a_reference_builds_the_component_it_names(isolated_registry) -> None:
    isolated_registry.register_plugin(Lazy, "lazy")
    assert isinstance(create_refiner("lazy-identity"), nn.Identity)
    assert isolated_registry.get("refiner", "lazy-identity").target == "torch.nn:Identity"


class Missing:
    @staticmethod
    @hookimpl
    def register_refiners(register) -> None:
        register("ghost", "no_such_package.nets:Ghost", "names a module that is not installed")


def test_a_reference_that_cannot_load_names_the_plugin_and_the_reference(isolated_registry) -> None:
    isolated_registry.register_plugin(Missing, "missing")
    with pytest.raises(
        PluginError,
        match=r"refiner 'ghost' of plugin 'missing' is registered as "
        r"'no_such_package.nets:Ghost', which cannot be loaded \(ModuleNotFoundError",
    ):
        create_refiner("ghost")


class Malformed:
    @staticmethod
    @hookimpl
    def register_datasets(register) -> None:
        register("half-written", "a_module_without_attribute", "a string that is not module:attribute")


def test_a_malformed_reference_is_refused_when_registered_not_when_used(isolated_registry) -> None:
    isolated_registry.register_plugin(Malformed, "malformed")
    with pytest.warns(
        PluginWarning,
        match=r"dataset 'half-written' of plugin 'malformed' is registered as "
        r"'a_module_without_attribute'; a lazy reference is written 'package.module:attribute'",
    ):
        names = isolated_registry.names("dataset")
    assert "half-written" not in names


def test_a_detector_reference_resolves_to_the_function(isolated_registry) -> None:
    from refinekit.components.datasets import is_image_folder

    assert get_dataset("image-folder").detect is is_image_folder
