"""Files refinekit reads are untrusted: each hostile input has one expected, clean outcome.

Every case names what was wrong and where, exits 2 through the CLI, and writes nothing outside its folder.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from refinekit.checkpoint import export_refiner
from refinekit.cli import main
from refinekit.components.refiners import SimGANResNet
from refinekit.errors import ConfigError
from refinekit.refine import refine_to_folder

SIZE = (35, 55)


@pytest.fixture
def refiner_file(tmp_path: Path) -> Path:
    torch.manual_seed(0)
    path = tmp_path / "refiner.safetensors"
    export_refiner(SimGANResNet(1, 8, 1), path, "simgan-resnet", {"features": 8, "blocks": 1}, 1, SIZE)
    return path


@pytest.fixture
def images(tmp_path: Path) -> Path:
    folder = tmp_path / "in"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(4):
        Image.fromarray(rng.integers(0, 256, SIZE, dtype=np.uint8)).save(folder / f"{i}.png")
    return folder


def refine_cli(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["refine", *args, "--quiet"])
    return result.exit_code, result.output


def test_output_records_as_a_symlink_is_refused_and_nothing_is_written_through_it(refiner_file, images, tmp_path):
    out, elsewhere = tmp_path / "out", tmp_path / "elsewhere"
    out.mkdir()
    elsewhere.mkdir()
    (out / "records").symlink_to(elsewhere)
    with pytest.raises(ConfigError, match="'records' is a symlink"):
        refine_to_folder(refiner_file, images, out, progress=False)
    code, text = refine_cli(str(refiner_file), str(images), str(out))
    assert code == 2 and "symlink" in text and "Traceback" not in text
    assert not any(elsewhere.iterdir())
