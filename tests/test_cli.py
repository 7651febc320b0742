"""The CLI, in-process through click's CliRunner on the tiny domain: files, numbers, exit codes, messages."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from refinekit.cli.app import main
from refinekit.errors import ConfigError
from refinekit.plugins.hookspecs import hookimpl
from refinekit.plugins.registry import DEFAULT_PLUGINS

SMALL = ["--set", "refiner.options.features=8", "--set", "refiner.options.blocks=1"]


def cli(*args: str) -> Result:
    return CliRunner().invoke(main, list(args))


def run_tiny(out: Path, *extra: str) -> Result:
    return cli("run", "tiny", "--out", str(out), "--quiet", *SMALL, *extra)


def test_run_writes_the_run_folder_and_its_metrics(tiny_domain, tmp_path) -> None:
    result = run_tiny(tmp_path / "run", "--steps", "3")
    assert result.exit_code == 0, result.output
    assert "Done: 9 steps" in result.stderr  # 4 + 2 pre-training steps, 3 rounds
    for name in ("checkpoint.safetensors", "refiner.safetensors", "config.json", "metrics.jsonl", "losses.png"):
        assert (tmp_path / "run" / name).is_file(), name
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == list(range(1, 10))
    assert all(0 <= r["d_acc_real"] <= 1 for r in rows if r["phase"] != "refiner-pretrain")
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["schedule"]["steps"] == 3 and config["refiner"]["options"] == {"features": 8, "blocks": 1}


def test_bad_set_value_exits_2_naming_the_key_without_traceback(tiny_domain, tmp_path) -> None:
    result = run_tiny(tmp_path / "run", "--set", "batch_size=oops")
    assert result.exit_code == 2
    assert "Error:" in result.stderr and "'batch_size'" in result.stderr and "oops" in result.stderr
    assert "Traceback" not in result.output and isinstance(result.exception, SystemExit)
    assert not (tmp_path / "run").exists()


def test_malformed_set_exits_2(tiny_domain, tmp_path) -> None:
    result = run_tiny(tmp_path / "run", "--set", "nonsense")
    assert result.exit_code == 2 and "--set 'nonsense' does not parse" in result.stderr


def test_unknown_recipe_exits_2_listing_close_matches(tiny_domain, tmp_path) -> None:
    result = cli("run", "tiyn", "--out", str(tmp_path / "run"))
    assert result.exit_code == 2
    assert "Unknown recipe 'tiyn'. Did you mean 'tiny'?" in result.stderr and "Traceback" not in result.output


def test_debug_raises_the_error_with_its_traceback(tiny_domain, tmp_path) -> None:
    result = cli("--debug", "run", "tiyn", "--out", str(tmp_path / "run"))
    # CliRunner catches what a real process would print as a traceback
    assert result.exit_code == 1 and type(result.exception).__name__ == "UnknownNameError"
    assert result.exc_info is not None and result.exc_info[2] is not None
    result = cli("--debug", "run", "tiny", "--out", str(tmp_path / "run"), "--set", "batch_size=oops")
    assert isinstance(result.exception, ConfigError)


def test_resume_without_checkpoint_exits_2(tiny_domain, tmp_path) -> None:
    result = run_tiny(tmp_path / "run", "--resume")
    assert result.exit_code == 2 and "there is no checkpoint.safetensors" in result.stderr


def test_second_run_into_the_same_folder_needs_resume_and_resume_continues(tiny_domain, tmp_path) -> None:
    assert run_tiny(tmp_path / "run", "--steps", "1").exit_code == 0
    again = run_tiny(tmp_path / "run", "--steps", "1")
    assert again.exit_code == 2 and "already holds a run" in again.stderr and "--resume" in again.stderr
    resumed = run_tiny(tmp_path / "run", "--steps", "3", "--resume")
    assert resumed.exit_code == 0, resumed.output
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == list(range(1, 10))


def test_resume_with_changed_settings_exits_2_naming_them(tiny_domain, tmp_path) -> None:
    assert run_tiny(tmp_path / "run", "--steps", "1").exit_code == 0
    result = run_tiny(tmp_path / "run", "--resume", "--set", "batch_size=4", "--set", "seed=9")
    assert result.exit_code == 2 and "batch_size, seed differ from the checkpoint" in result.stderr


def test_plugins_json_lists_built_ins_with_components_and_hooks(tiny_domain) -> None:
    result = cli("plugins", "--json")
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    plugins = {p["name"]: p for p in payload["plugins"]}
    assert set(DEFAULT_PLUGINS) <= set(plugins)
    assert plugins["refiners"]["components"] == {"refiner": ["simgan-resnet", "timm-unet"]}
    assert plugins["refiners"]["hooks"] == ["register_refiners"]
    assert plugins["discriminators"]["components"] == {"discriminator": ["local-patch", "global", "multi-scale"]}
    assert plugins["tiny-domain"]["components"] == {"dataset": ["tiny"], "recipe": ["tiny"]}
    assert payload["problems"] == []


class Clash:
    @staticmethod
    @hookimpl
    def register_recipes(register) -> None:
        raise ImportError("needs h5py")


def test_plugins_shows_a_broken_plugin_as_a_warning_and_still_works(tiny_domain) -> None:
    tiny_domain.register_plugin(Clash, "clash")
    result = cli("plugins", "--json")
    assert result.exit_code == 0
    assert "Warning: plugin 'clash' from in-process - raised in register_recipes: ImportError: needs h5py" in result.stderr
    payload = json.loads(result.stdout)
    assert payload["problems"] == ["plugin 'clash' from in-process - raised in register_recipes: ImportError: needs h5py"]
    assert "tiny" in cli("recipes").stdout  # other commands still work


def test_recipes_lists_tiny_and_keys(tiny_domain) -> None:
    result = cli("recipes", "--keys")
    assert result.exit_code == 0
    assert "tiny" in result.stdout and "simgan" in result.stdout and "tiny-domain" in result.stdout
    assert "schedule.k_g" in result.stdout and "batch_size" in result.stdout


@pytest.mark.parametrize("args", [["--help"], ["run", "--help"], ["plugins", "--help"], ["recipes", "--help"]])
def test_help_works(args) -> None:
    result = cli(*args)
    assert result.exit_code == 0 and "Usage:" in result.stdout
