"""The plugin as refinekit sees it: registered names, a valid recipe, path detection, and a real run."""

from __future__ import annotations

import json
import subprocess
import sys
import tomllib
from importlib import import_module
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image
from refinekit_digits import plugin

from refinekit import load_refiner, resolve_config
from refinekit.cli.app import main
from refinekit.plugins.registry import Registry

PLUGIN_ROOT = Path(__file__).resolve().parents[1]


def test_entry_point_names_the_hooks_module() -> None:
    project = tomllib.loads((PLUGIN_ROOT / "pyproject.toml").read_text())
    target = project["project"]["entry-points"]["refinekit"]["digits"]
    assert import_module(target) is plugin
    assert project["project"]["version"] == "0.1.0"


def test_registers_its_datasets_and_recipe(registry: Registry) -> None:
    assert {"digits-fonts", "mnist-sample", "sklearn-digits", "mnist-idx", "usps-h5", "digit-class-folders"} <= set(
        registry.names("dataset")
    )
    assert registry.names("recipe", "digits-*") == ["digits-simgan"]
    assert not registry.problems


@pytest.mark.parametrize("schedule", ["smoke", "quick"])
def test_recipe_resolves_to_a_valid_config_that_holds_out_the_test_split(registry: Registry, schedule: str) -> None:
    config = resolve_config("digits-simgan", schedule=schedule)
    assert (config.image.channels, config.image.height, config.image.width) == (1, 28, 28)
    assert config.synthetic.name == "digits-fonts"
    assert config.real.name == "mnist-sample" and config.real.options["split"] == "train"
    for name in registry.get("recipe", "digits-simgan").factory.path_datasets:
        registry.get("dataset", name)  # every path dataset the recipe names exists


def write_examples(root: Path) -> dict[str, Path]:
    """One tiny input of each format the recipe detects, keyed by the loader that should claim it."""
    mnist = root / "mnist"
    mnist.mkdir()
    for kind, magic, shape in (("images-idx3", 2051, (2, 28, 28)), ("labels-idx1", 2049, (2,))):
        header = magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in shape)
        (mnist / f"train-{kind}-ubyte").write_bytes(header + bytes(int(np.prod(shape))))
    with h5py.File(root / "usps.h5", "w") as f:
        f["train/data"], f["train/target"] = np.zeros((2, 256)), np.zeros(2, int)
    (root / "tree" / "4").mkdir(parents=True)
    (root / "plain").mkdir()
    for folder in (root / "tree" / "4", root / "plain"):
        Image.fromarray(np.zeros((8, 8), np.uint8)).save(folder / "a.png")
    return {
        "mnist-idx": mnist,
        "usps-h5": root / "usps.h5",
        "digit-class-folders": root / "tree",
        "image-folder": root / "plain",
    }


def test_paths_are_detected_in_the_recipe_order(registry: Registry, tmp_path: Path) -> None:
    for expected, path in write_examples(tmp_path).items():
        assert resolve_config("digits-simgan", real=str(path)).real.name == expected, path


def test_cli_run_trains_and_writes_a_refiner(registry: Registry, tmp_path: Path) -> None:
    out = tmp_path / "run"
    tiny_run = ["--set", "synthetic.options.count=300", "--set", "batch_size=8", "--set", "buffer_size=64"]
    result = CliRunner().invoke(
        main, ["run", "digits-simgan", "--schedule", "smoke", "--out", str(out), "--quiet", *tiny_run]
    )
    assert result.exit_code == 0, result.output
    config = json.loads((out / "config.json").read_text())
    assert config["real"]["options"]["split"] == "train"
    lines = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert lines[-1]["phase"] == "adversarial" and np.isfinite(lines[-1]["refiner_loss"])
    assert sorted(p.name for p in (out / "samples").iterdir())
    refiner = load_refiner(out / "refiner.safetensors")
    with torch.no_grad():
        assert refiner(torch.zeros(2, 1, 28, 28)).shape == (2, 1, 28, 28)


def test_loading_the_plugin_does_not_import_scikit_learn() -> None:
    # Every refinekit command loads every plugin; scikit-learn costs seconds and is only needed for its digits.
    code = "import sys, refinekit_digits.plugin; print('sklearn' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"
