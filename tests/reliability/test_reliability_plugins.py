"""Broken third-party plugins, installed as real distributions with entry points, seen through the CLI.

Each broken plugin must be reported with its distribution name while every other
command keeps working; ``REFINEKIT_STRICT_PLUGINS=1`` turns each report into exit
code 2 with the same message. (tests/test_plugins.py covers the Registry itself.)
"""

from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path

import pytest

from refinekit.plugins.registry import reset_registry

GOOD_PLUGIN = '''
from refinekit.plugins.hookspecs import hookimpl
from refinekit.plugins.recipe import Recipe
from refinekit.components.refiners import SimGANResNet


@hookimpl
def register_refiners(register):
    register("good-refiner", SimGANResNet, "a working third-party refiner")


@hookimpl
def register_recipes(register):
    register(Recipe(name="good-recipe", description="a working third-party recipe", config={}))
'''

# plugin name -> (distribution, module source, what the report must say)
BROKEN = {
    "rk_import_error": (
        "refinekit-import-error",
        "import refinekit_does_not_exist\n",
        ("failed to import", "ModuleNotFoundError", "refinekit_does_not_exist"),
    ),
    "rk_duplicate": (
        "refinekit-duplicate",
        "from refinekit.plugins.hookspecs import hookimpl\n"
        "from refinekit.components.refiners import SimGANResNet\n\n"
        "@hookimpl\ndef register_refiners(register):\n    register('simgan-resnet', SimGANResNet, 'a clash')\n",
        ("registers refiner 'simgan-resnet', already registered by 'refiners'", "keeping the one from 'refiners'"),
    ),
    "rk_misspelt": (
        "refinekit-misspelt",
        "from refinekit.plugins.hookspecs import hookimpl\n\n@hookimpl\ndef register_refiner(register):\n    pass\n",
        ("implements hook 'register_refiner', which does not exist", "did you mean 'register_refiners'?"),
    ),
    "rk_raises": (
        "refinekit-raises",
        "from refinekit.plugins.hookspecs import hookimpl\n\n"
        "@hookimpl\ndef register_recipes(register):\n    raise RuntimeError('recipe table is corrupt')\n",
        ("raised in register_recipes", "RuntimeError: recipe table is corrupt"),
    ),
}
NAMES = ["rk_good", *BROKEN]


def _install(site: Path, module: str, distribution: str, source: str) -> None:
    """What pip leaves behind: the module, and a dist-info folder whose entry point names it."""
    (site / f"{module}.py").write_text(textwrap.dedent(source))
    info = site / f"{distribution.replace('-', '_')}-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {distribution}\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(f"[refinekit]\n{module} = {module}\n")


@pytest.fixture
def site(tmp_path: Path) -> Path:
    """A site folder with one working plugin and the four broken ones."""
    folder = tmp_path / "site"
    folder.mkdir()
    _install(folder, "rk_good", "refinekit-good", GOOD_PLUGIN)
    for module, (distribution, source, _) in BROKEN.items():
        _install(folder, module, distribution, source)
    return folder


@pytest.fixture
def in_process_site(site: Path, monkeypatch: pytest.MonkeyPatch):
    """The site folder on this process's path with entry points enabled; its modules forgotten afterwards."""
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.setenv("REFINEKIT_DISABLE_ENTRY_POINTS", "0")
    reset_registry()
    yield site
    for name in NAMES:
        sys.modules.pop(name, None)
    reset_registry()


def _env(kit, site: Path, **extra: str) -> dict[str, str]:
    # Only these plugins: the installed domain plugins are not under test and cost seconds to import.
    settings = {"PYTHONPATH": str(site), "REFINEKIT_LOAD_PLUGINS": ",".join(NAMES), **extra}
    return kit.subprocess_env(entry_points=True, **settings)


def _reported(text: str, module: str) -> bool:
    distribution, _, fragments = BROKEN[module]
    said = " ".join(text.split())
    return f"{distribution} 1.0" in said and all(f in said for f in fragments)


def test_plugins_command_reports_each_broken_plugin_by_distribution(kit, site) -> None:
    done = kit.run_process(["plugins", "--json"], env=_env(kit, site))
    assert done.returncode == 0, done.stderr
    listing = json.loads(done.stdout)
    problems = "\n".join(listing["problems"])
    assert len(listing["problems"]) == len(BROKEN), problems
    for module in BROKEN:
        assert _reported(problems, module), (module, problems)
        assert _reported(done.stderr, module), (module, done.stderr)  # also shown as a warning
    plugins = {p["name"]: p for p in listing["plugins"]}
    assert plugins["rk_good"]["distribution"] == "refinekit-good"
    assert plugins["rk_good"]["components"] == {"refiner": ["good-refiner"], "recipe": ["good-recipe"]}
    assert "simgan-resnet" in plugins["refiners"]["components"]["refiner"]
    assert "Traceback" not in done.stderr


def test_recipes_command_keeps_working_with_broken_plugins(in_process_site, kit, monkeypatch) -> None:
    monkeypatch.setenv("REFINEKIT_LOAD_PLUGINS", ",".join(NAMES))
    result = kit.invoke(["recipes"])
    assert result.exit_code == 0, result.output
    assert "simgan" in result.output and "good-recipe" in result.output
    assert all(_reported(result.output, module) for module in BROKEN), result.output


def test_training_keeps_working_with_broken_plugins(in_process_site, kit, folders, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("REFINEKIT_LOAD_PLUGINS", ",".join(NAMES))
    synthetic, real = folders
    args = kit.simgan_args(synthetic, real, tmp_path / "out", steps=0, extra=["--set", 'refiner.name="good-refiner"'])
    result = kit.invoke(args)
    assert result.exit_code == 0, result.output
    assert all(_reported(result.output, module) for module in BROKEN), result.output
    assert json.loads((tmp_path / "out" / "config.json").read_text())["refiner"]["name"] == "good-refiner"


@pytest.mark.parametrize("module", list(BROKEN))
def test_strict_mode_makes_each_problem_fatal(in_process_site, kit, monkeypatch, module) -> None:
    monkeypatch.setenv("REFINEKIT_STRICT_PLUGINS", "1")
    monkeypatch.setenv("REFINEKIT_LOAD_PLUGINS", module)
    for command in (["plugins"], ["recipes"]):
        result = kit.invoke(command)
        assert isinstance(result.exception, SystemExit) and result.exit_code == 2, result.output
        assert _reported(result.output, module), result.output
        assert "REFINEKIT_STRICT_PLUGINS is set, so this is fatal" in " ".join(result.output.split())
        reset_registry()

