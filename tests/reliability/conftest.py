"""Helpers for the reliability tests: tiny image folders and the real CLI, in-process or as a process."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import pytest
from click.testing import CliRunner, Result
from PIL import Image

from refinekit.cli.app import main

SIZE = (16, 20)  # (H, W): small enough that a training step takes milliseconds


def make_folder(folder: Path, count: int = 4, bright: int = 60, seed: int = 0) -> Path:
    """``count`` grayscale noise PNGs around brightness ``bright``."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(count):
        pixels = np.clip(rng.normal(bright, 20, SIZE), 0, 255).astype(np.uint8)
        Image.fromarray(pixels).save(folder / f"{i:03d}.png")
    return folder


def simgan_args(synthetic: Path, real: Path, out: Path, *, steps: int = 2, extra: Sequence[str] = ()) -> list[str]:
    """``run simgan`` on two folders with a schedule that takes seconds."""
    return [
        "run", "simgan", "--synthetic", str(synthetic), "--real", str(real), "--out", str(out),
        "--steps", str(steps), "--quiet",
        "--set", "batch_size=8", "--set", "buffer_size=16",
        "--set", f"image.height={SIZE[0]}", "--set", f"image.width={SIZE[1]}",
        "--set", "schedule.refiner_pretrain_steps=2", "--set", "schedule.discriminator_pretrain_steps=2",
        "--set", 'refiner={name="simgan-resnet", options={features=16, blocks=2}}',
        "--set", 'device="cpu"', "--set", 'precision="fp32"', "--set", "sample_every=1000",
        *extra,
    ]  # fmt: skip


def invoke(args: Sequence[str]) -> Result:
    """The CLI in this process (fast; sees the test's registry)."""
    return CliRunner().invoke(main, list(args), catch_exceptions=True)


@dataclass
class Finished:
    returncode: int
    stdout: str
    stderr: str


def subprocess_env(entry_points: bool = False, **extra: str) -> dict[str, str]:
    """The environment of a ``refinekit`` child process: one thread, so runs are comparable and cheap.

    Installed plugins stay unloaded unless ``entry_points``: the built-in ``simgan``
    recipe needs none, and importing them costs seconds per process.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("REFINEKIT_")}
    env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", COLUMNS="200", **extra)
    if not entry_points:
        env["REFINEKIT_DISABLE_ENTRY_POINTS"] = "1"
    return env


def refinekit_command(args: Sequence[str]) -> list[str]:
    return [sys.executable, "-m", "refinekit", *args]


def run_process(args: Sequence[str], *, env: dict[str, str] | None = None, timeout: float = 120) -> Finished:
    """``python -m refinekit ARGS`` in a child process, to completion."""
    done = subprocess.run(
        refinekit_command(args), env=env or subprocess_env(), capture_output=True, text=True, timeout=timeout
    )
    return Finished(done.returncode, done.stdout, done.stderr)


@dataclass(frozen=True)
class Kit:
    """The helpers above, as one fixture (test modules cannot import conftest under --import-mode=importlib)."""

    make_folder = staticmethod(make_folder)
    simgan_args = staticmethod(simgan_args)
    invoke = staticmethod(invoke)
    subprocess_env = staticmethod(subprocess_env)
    refinekit_command = staticmethod(refinekit_command)
    run_process = staticmethod(run_process)
    size = SIZE


@pytest.fixture
def kit() -> Kit:
    return Kit()


@pytest.fixture
def folders(tmp_path: Path) -> tuple[Path, Path]:
    """A synthetic (dark) and a real (bright) folder of four images each."""
    return make_folder(tmp_path / "synthetic", bright=60, seed=1), make_folder(tmp_path / "real", bright=190, seed=2)
