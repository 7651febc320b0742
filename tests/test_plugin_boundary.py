"""The plugin boundary at load time: what one plugin gets wrong stays that plugin's problem, named as such."""

from __future__ import annotations

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image
from torch import nn

from refinekit.cli.app import main
from refinekit.errors import ConfigError, DataError, PluginError
from refinekit.plugins.hookspecs import hookimpl
from refinekit.plugins.recipe import Recipe
from refinekit.plugins.registry import PluginWarning, create_refiner, get_recipe, get_registry, reset_registry
from tests.test_plugins import make_distribution


def test_sys_exit_in_a_plugin_import_is_a_warning_and_every_command_still_works(tmp_path, monkeypatch) -> None:
    site = tmp_path / "site"
    make_distribution(site, "refinekit-quitter", "0.3", {"quitter": "import sys\nsys.exit(3)\n"})
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.delenv("REFINEKIT_DISABLE_ENTRY_POINTS")
    monkeypatch.setenv("REFINEKIT_LOAD_PLUGINS", "quitter")
    reset_registry()
    with pytest.warns(PluginWarning, match=r"'quitter' from refinekit-quitter 0.3 failed to import: SystemExit\(3\)"):
        registry = get_registry()
    assert "simgan-resnet" in registry.names("refiner")
    result = CliRunner().invoke(main, ["plugins", "--json"])
    assert result.exit_code == 0 and "refinekit-quitter" in result.output


class HalfHook:
    @staticmethod
    @hookimpl
    def register_refiners(register) -> None:
        register("half-first", nn.Identity, "registered before the crash")
        raise RuntimeError("table is corrupt")


def test_a_hook_that_raises_half_way_keeps_none_of_its_components(isolated_registry) -> None:
    isolated_registry.register_plugin(HalfHook, "half")
    with pytest.warns(PluginWarning, match="'half' .*raised in register_refiners: RuntimeError: table is corrupt; none"):
        names = isolated_registry.names("refiner")
    assert "half-first" not in names and "simgan-resnet" in names


def _recipe_plugin(description: str):
    class Plugin:
        @staticmethod
        @hookimpl
        def register_recipes(register) -> None:
            register(Recipe(name="eyes-simgan", description=description, config={}))

    return Plugin


def test_a_third_party_cannot_silently_take_over_a_name_its_owner_registers(isolated_registry) -> None:
    isolated_registry.register_plugin(_recipe_plugin("impostor"), "evil")  # loaded first: order must not decide
    isolated_registry.register_plugin(_recipe_plugin("official"), "eyes")
    with pytest.warns(PluginWarning, match=r"keeping the one from 'eyes' \('eyes-simgan' belongs to 'eyes'\).*'evil:eyes-simgan'"):
        assert get_recipe("eyes-simgan").description == "official"
    assert get_recipe("evil:eyes-simgan").description == "impostor"  # chosen explicitly
    assert get_recipe("eyes:eyes-simgan").description == "official"


def test_a_built_in_name_stays_refinekits_and_the_other_is_reachable_by_plugin_name(isolated_registry) -> None:
    class Clash:
        @staticmethod
        @hookimpl
        def register_refiners(register) -> None:
            register("simgan-resnet", lambda channels=1: nn.Identity(), "a clash")

    isolated_registry.register_plugin(Clash, "clash")
    with pytest.warns(PluginWarning, match="keeping the one from 'refiners'"):
        assert not isinstance(create_refiner("simgan-resnet"), nn.Identity)
    assert isinstance(create_refiner("clash:simgan-resnet"), nn.Identity)


class Components:
    @staticmethod
    @hookimpl
    def register_refiners(register) -> None:
        def buggy(channels=1, features=8):
            return undefined_helper(features)  # noqa: F821 - the plugin's bug

        def strict(channels=1, features=8):
            if features > 64:
                raise ValueError("features above 64 are not supported")
            return nn.Identity()

        register("buggy", buggy, "")
        register("strict", strict, "")

    @staticmethod
    @hookimpl
    def register_datasets(register) -> None:
        def crashing(path, *, channels, size, limit, seed):
            return {}["images"]  # the plugin's bug

        def detect_crashes(path):
            raise OSError("truncated file")

        register("crashing", crashing, "", detect=detect_crashes)


def test_a_plugin_bug_is_told_apart_from_an_option_error(isolated_registry) -> None:
    isolated_registry.register_plugin(Components, "comp")
    with pytest.raises(PluginError, match=r"refiner 'buggy' of plugin 'comp' .*NameError.*bug in that plugin"):
        create_refiner("buggy", features=16)
    with pytest.raises(ConfigError, match=r"refiner 'strict' cannot be built with refiner.options \{'features': 99\}"):
        create_refiner("strict", features=99)


def test_a_crashing_loader_is_a_plugin_error_not_an_options_error(isolated_registry, tmp_path) -> None:
    from refinekit.data.loading import call_loader

    isolated_registry.register_plugin(Components, "comp")
    with pytest.raises(PluginError, match=r"dataset 'crashing' of plugin 'comp' .*crashed reading x.*KeyError"):
        call_loader("crashing", "x", channels=1, size=(8, 8), limit=None, seed=0, options={})
    with pytest.raises(DataError, match="rejected its options"):
        call_loader("crashing", "x", channels=1, size=(8, 8), limit=None, seed=0, options={"colour": 1})


def test_a_crashing_format_detector_does_not_break_another_plugins_run(isolated_registry, tmp_path) -> None:
    from refinekit.data.loading import detect_dataset

    isolated_registry.register_plugin(Components, "comp")
    folder = tmp_path / "images"
    folder.mkdir()
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(folder / "a.png")
    with pytest.warns(PluginWarning, match=r"dataset 'crashing' of plugin 'comp' .*crashed while checking .*OSError"):
        assert detect_dataset(str(folder), ("crashing",)) == "image-folder"
