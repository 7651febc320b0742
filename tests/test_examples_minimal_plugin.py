"""examples/minimal_plugin installs with pip, is found through its entry point, and its recipe runs.

pip installs into a temporary ``--target`` folder (no network, no build
isolation) that the subprocesses get on PYTHONPATH, so the test environment
itself is never changed.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from refinekit import load_refiner

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "minimal_plugin"
TINY = [
    "--steps", "2", "--quiet",
    "--set", "schedule.refiner_pretrain_steps=1",
    "--set", "schedule.discriminator_pretrain_steps=1",
    "--set", "batch_size=4",
    "--set", "buffer_size=8",
    "--set", "synthetic.limit=8",
    "--set", "real.limit=8",
    "--set", "log_every=1",
]


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(a copy of the example's source, the folder pip installed it into)."""
    root = tmp_path_factory.mktemp("minimal_plugin")
    source = shutil.copytree(EXAMPLE, root / "src", ignore=shutil.ignore_patterns("__pycache__", "build", "*.egg-info"))
    site = root / "site"
    pip = [sys.executable, "-m", "pip", "install", "--no-deps", "--no-build-isolation", "--no-index", "--quiet"]
    done = subprocess.run([*pip, "--target", str(site), str(source)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return source, site


def environment(site: Path) -> dict[str, str]:
    """Plugins load from entry points, as for a user; only the built-ins and this one, so no other plugin's imports."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("REFINEKIT_")}
    env["REFINEKIT_LOAD_PLUGINS"] = "minimal"
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(site), env.get("PYTHONPATH")]))
    return env


def test_pip_installs_the_entry_point(installed) -> None:
    _, site = installed
    entry_points = (site / "refinekit_minimal-0.1.0.dist-info" / "entry_points.txt").read_text()
    assert "[refinekit]\nminimal = refinekit_minimal" in entry_points


def test_recipe_runs_through_the_cli(installed, tmp_path) -> None:
    _, site = installed
    out = tmp_path / "run"
    done = subprocess.run(
        [sys.executable, "-m", "refinekit", "run", "disks-simgan", "--out", str(out), *TINY],
        capture_output=True, text=True, env=environment(site), cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert "disks (8 generated, blur 0.0, noise 0.0, seed 0)" in done.stderr
    assert "disks (8 generated, blur 1.5, noise 12.0, seed 1)" in done.stderr
    config = json.loads((out / "config.json").read_text())
    assert config["synthetic"]["name"] == "disks" and config["real"]["options"] == {"blur": 1.5, "noise": 12.0}
    steps = [json.loads(line)["step"] for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3, 4]
    refiner = load_refiner(out / "refiner.safetensors")  # simgan-resnet: a built-in, so no plugin needed here
    assert refiner(torch.zeros(1, 1, 32, 32)).shape == (1, 1, 32, 32)


class Outcomes:
    """A pytest plugin that records each test's outcome, for a pytest run inside this one."""

    def __init__(self) -> None:
        self.outcomes: dict[str, str] = {}

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.when == "call" or report.outcome != "passed":
            self.outcomes[report.nodeid] = report.outcome


def test_the_plugins_own_tests_pass_against_the_installed_copy(installed, monkeypatch) -> None:
    # In-process (as pytester does) rather than a second subprocess: importing torch again costs more
    # than the tests themselves.
    source, site = installed
    monkeypatch.syspath_prepend(str(site))
    outcomes = Outcomes()
    code = pytest.main(
        ["-p", "no:cacheprovider", "-q", "--rootdir", str(source), "-c", str(source / "pyproject.toml"), str(source / "tests")],
        plugins=[outcomes],
    )
    import refinekit_minimal

    assert Path(refinekit_minimal.__file__).is_relative_to(site)
    assert code == 0 and len(outcomes.outcomes) == 10, outcomes.outcomes
    assert set(outcomes.outcomes.values()) == {"passed"}
