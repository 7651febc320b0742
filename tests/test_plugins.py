"""The plugin registry: built-ins, in-process plugins, real entry points, isolation of broken plugins."""

from __future__ import annotations

import textwrap
import warnings
from pathlib import Path

import pytest
import torch
from torch import nn

import refinekit
from refinekit.errors import ConfigError, PluginError, UnknownNameError
from refinekit.plugins.hookspecs import hookimpl
from refinekit.plugins.registry import (
    DEFAULT_PLUGINS,
    PluginWarning,
    Registry,
    create_refiner,
    get_registry,
    list_refiners,
    reset_registry,
)

BUILT_IN_COMPONENTS = {
    "refiners": {"refiner": ["simgan-resnet", "timm-unet"]},
    "discriminators": {"discriminator": ["local-patch", "global", "multi-scale"]},
    "regularizers": {"regularizer": ["l1", "feature"]},
    "datasets": {"dataset": ["image-folder"]},
    "recipes": {"recipe": ["simgan"]},
}


def test_built_ins_load_through_the_same_hooks_as_plugins(isolated_registry) -> None:
    assert list(DEFAULT_PLUGINS) == list(isolated_registry.infos)
    _ = isolated_registry.entries
    for name, info in isolated_registry.infos.items():
        assert info.distribution == "refinekit"
        assert info.components == BUILT_IN_COMPONENTS[name]
        assert info.hooks == [f"register_{name}"]
    assert isolated_registry.problems == []


def test_unknown_name_lists_close_matches() -> None:
    with pytest.raises(UnknownNameError, match="Unknown refiner 'simgan-resnt'. Did you mean 'simgan-resnet'") as err:
        create_refiner("simgan-resnt")
    assert "timm-unet" in str(err.value)  # and every registered name
    assert not str(err.value).startswith("'")  # not KeyError's quoted repr


def test_list_refiners_filters_by_glob() -> None:
    assert list_refiners("*resnet*") == ["simgan-resnet"]
    assert list_refiners() == ["simgan-resnet", "timm-unet"]
    assert refinekit.list_discriminators("*patch") == ["local-patch"]


class HalfRefiner(nn.Module):
    """Halves its input: a refiner whose effect a test can see in the exported weights."""

    built = 0

    def __init__(self, channels: int = 1) -> None:
        super().__init__()
        HalfRefiner.built += 1
        self.scale = nn.Parameter(torch.tensor(0.5))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(x * self.scale)


class HalfPlugin:
    @staticmethod
    @hookimpl
    def register_refiners(register) -> None:
        register("half", HalfRefiner, "halves the image")


def test_in_process_plugin_is_used_by_train(tiny_domain, tmp_path) -> None:
    tiny_domain.register_plugin(HalfPlugin, "half-plugin")
    HalfRefiner.built = 0
    result = refinekit.train(
        "tiny", tmp_path / "run", refiner__name="half", schedule__steps=1, discriminator__options={"widths": [8, 8, 8, 8]}
    )
    assert HalfRefiner.built == 1
    loaded = refinekit.load_refiner(result.refiner_path)  # rebuilt through the same plugin
    assert isinstance(loaded, HalfRefiner) and loaded.scale.item() != 0.5  # and it was trained
    assert tiny_domain.infos["half-plugin"].distribution == "in-process"


# -- real entry points ---------------------------------------------------------


def make_distribution(site: Path, dist: str, version: str, plugins: dict[str, str]) -> None:
    """A minimal installed distribution: a dist-info folder whose entry points name modules in ``site``."""
    package = dist.replace("-", "_")
    info = site / f"{package}-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
    lines = [f"{name} = {package}_{name}" for name in plugins]
    (info / "entry_points.txt").write_text("[refinekit]\n" + "\n".join(lines) + "\n")
    for name, source in plugins.items():
        (site / f"{package}_{name}.py").write_text(textwrap.dedent(source))


GOOD_PLUGIN = """
    from torch import nn
    from refinekit.plugins.hookspecs import hookimpl

    @hookimpl
    def register_refiners(register):
        register("entry-identity", lambda channels=1: nn.Identity(), "returns its input")
"""

BROKEN_PLUGIN = """
    import refinekit_dependency_that_is_not_installed
"""


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A folder on sys.path holding two fake distributions; entry points enabled, other installed plugins not."""
    folder = tmp_path / "site"
    make_distribution(folder, "refinekit-good", "1.2.3", {"goodplugin": GOOD_PLUGIN})
    make_distribution(folder, "refinekit-broken", "0.0.7", {"brokenplugin": BROKEN_PLUGIN})
    monkeypatch.syspath_prepend(str(folder))
    monkeypatch.delenv("REFINEKIT_DISABLE_ENTRY_POINTS")
    monkeypatch.setenv("REFINEKIT_LOAD_PLUGINS", "goodplugin,brokenplugin")
    reset_registry()
    return folder


def test_entry_point_plugin_is_found_and_named(site) -> None:
    with pytest.warns(PluginWarning):
        registry = get_registry()
    info = registry.infos["goodplugin"]
    assert (info.distribution, info.version, info.hooks) == ("refinekit-good", "1.2.3", ["register_refiners"])
    assert isinstance(create_refiner("entry-identity"), nn.Identity)
    assert registry.entries["refiner"]["entry-identity"].plugin == "goodplugin"


def test_plugin_that_fails_to_import_is_a_warning_naming_distribution_version_and_error(site) -> None:
    with pytest.warns(PluginWarning) as caught:
        registry = get_registry()
    (message,) = [str(w.message) for w in caught]
    assert "'brokenplugin'" in message and "refinekit-broken 0.0.7" in message
    assert "ModuleNotFoundError" in message and "refinekit_dependency_that_is_not_installed" in message
    assert registry.problems == [message]
    # everything else still works
    assert "entry-identity" in list_refiners() and "simgan-resnet" in list_refiners()


def test_strict_plugins_makes_a_broken_plugin_fatal(site, monkeypatch) -> None:
    monkeypatch.setenv("REFINEKIT_STRICT_PLUGINS", "1")
    with pytest.raises(PluginError, match="refinekit-broken 0.0.7.*REFINEKIT_STRICT_PLUGINS"):
        get_registry()


def test_load_plugins_restricts_entry_points_but_keeps_built_ins(site, monkeypatch) -> None:
    monkeypatch.setenv("REFINEKIT_LOAD_PLUGINS", "goodplugin")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the broken plugin is not even imported
        registry = get_registry()
    assert set(registry.infos) == {*DEFAULT_PLUGINS, "goodplugin"}

    monkeypatch.setenv("REFINEKIT_LOAD_PLUGINS", "")
    reset_registry()
    assert list(get_registry().infos) == list(DEFAULT_PLUGINS)
    assert list_refiners() == ["simgan-resnet", "timm-unet"]


def test_two_distributions_with_one_plugin_name_keep_the_first(tmp_path, monkeypatch) -> None:
    for i, dist in enumerate(("refinekit-first", "refinekit-second")):
        make_distribution(tmp_path / "site", dist, "1.0", {"samename": GOOD_PLUGIN.replace("entry-identity", dist)})
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    monkeypatch.setenv("REFINEKIT_LOAD_PLUGINS", "samename")
    with pytest.warns(PluginWarning) as caught:
        registry = Registry(load_entry_points=True)
    (message,) = [str(w.message) for w in caught]
    first, second = sorted(("refinekit-first", "refinekit-second"), key=lambda d: registry.infos["samename"].distribution != d)
    assert f"plugin name 'samename' from {second} 1.0 is already taken by {first} 1.0" in message
    assert first in registry.names("refiner") and second not in registry.names("refiner")


# -- what a plugin can get wrong ------------------------------------------------


class Duplicate:
    @staticmethod
    @hookimpl
    def register_refiners(register) -> None:
        register("simgan-resnet", HalfRefiner, "claims a built-in name")


def test_duplicate_component_name_warns_naming_both_plugins_and_keeps_the_first(isolated_registry) -> None:
    isolated_registry.register_plugin(Duplicate, "dupe")
    with pytest.warns(PluginWarning, match="plugin 'dupe' registers refiner 'simgan-resnet', already registered by 'refiners'"):
        entry = isolated_registry.get("refiner", "simgan-resnet")
    assert entry.plugin == "refiners"
    assert not isinstance(create_refiner("simgan-resnet"), HalfRefiner)


class Misspelt:
    @staticmethod
    @hookimpl
    def register_refiner(register) -> None:  # singular: no such hook
        register("never", HalfRefiner, "")

    @staticmethod
    @hookimpl
    def register_discriminators(register) -> None:
        register("still-works", HalfRefiner, "")


def test_misspelt_hook_is_reported_with_the_plugin_name(isolated_registry) -> None:
    with pytest.warns(PluginWarning) as caught:
        isolated_registry.register_plugin(Misspelt, "typo-plugin")
    (message,) = [str(w.message) for w in caught]
    assert "plugin 'typo-plugin'" in message and "'register_refiner', which does not exist" in message
    assert "did you mean 'register_refiners'" in message
    assert "still-works" in refinekit.list_discriminators() and "never" not in list_refiners()
    # registering another plugin does not repeat the report
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        isolated_registry.register_plugin(HalfPlugin, "half-plugin")


def test_misspelt_hook_is_fatal_when_strict(isolated_registry, monkeypatch) -> None:
    monkeypatch.setenv("REFINEKIT_STRICT_PLUGINS", "1")
    with pytest.raises(PluginError, match="typo-plugin"):
        isolated_registry.register_plugin(Misspelt, "typo-plugin")


class Raising:
    @staticmethod
    @hookimpl
    def register_regularizers(register) -> None:
        raise RuntimeError("cannot find my config")


def test_hook_that_raises_is_a_warning_naming_the_plugin(isolated_registry) -> None:
    isolated_registry.register_plugin(Raising, "raiser")
    with pytest.warns(PluginWarning, match="plugin 'raiser' from in-process - raised in register_regularizers: RuntimeError: cannot find my config"):
        names = refinekit.list_regularizers()
    assert names == ["feature", "l1"]


class BadSignature:
    @staticmethod
    @hookimpl
    def register_datasets(register) -> None:
        register("half-registered", lambda *a, **k: None, "")

    @staticmethod
    @hookimpl
    def register_recipes(reg, extra) -> None:  # arguments the hookspec does not have
        pass


def test_plugin_with_a_bad_hook_signature_is_not_half_registered(isolated_registry) -> None:
    with pytest.warns(PluginWarning, match="plugin 'bad-signature' from in-process - is invalid"):
        isolated_registry.register_plugin(BadSignature, "bad-signature")
    assert "half-registered" not in refinekit.list_datasets()
    assert "bad-signature" not in isolated_registry.infos


def test_unregister_plugin_forgets_its_components(isolated_registry) -> None:
    isolated_registry.register_plugin(HalfPlugin, "half-plugin")
    assert "half" in list_refiners()
    isolated_registry.unregister_plugin("half-plugin")
    assert "half" not in list_refiners()


def test_options_a_component_does_not_take_are_config_errors_listing_those_it_does() -> None:
    with pytest.raises(ConfigError, match=r"refiner.options \{'featurs': 8\} do not fit refiner 'simgan-resnet' .*it takes: features, blocks"):
        create_refiner("simgan-resnet", featurs=8)
    with pytest.raises(ConfigError, match=r"regularizer 'l1' .*it takes: no options"):
        refinekit.create_regularizer("l1", psi="sobel")
    with pytest.raises(ConfigError, match=r"refiner 'simgan-resnet' cannot be built with refiner.options \{'features': 'wide'\}"):
        create_refiner("simgan-resnet", features="wide")
    with pytest.raises(ConfigError, match=r"refiner 'timm-unet' cannot be built with .*'resnt18'.*Unknown model"):
        create_refiner("timm-unet", channels=3, encoder="resnt18")
