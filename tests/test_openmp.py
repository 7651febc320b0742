"""The CLI asks OpenMP threads to sleep at barriers, before torch loads, unless the user chose."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest


def run_python(code: str, **env: str) -> str:
    environment = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"} | env
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=environment, check=True)
    return done.stdout.strip()


SHOW = (
    "import os; from refinekit.runtime.openmp import wait_passively; {before}"
    "print(wait_passively(), os.environ.get('OMP_WAIT_POLICY'))"
)


@pytest.mark.parametrize(
    ("before", "env", "expected"),
    [
        ("", {}, "True PASSIVE"),
        ("", {"OMP_WAIT_POLICY": "ACTIVE"}, "False ACTIVE"),  # the user's choice stands
        ("import torch; ", {}, "False None"),  # too late: libgomp has read its settings
    ],
)
def test_wait_passively(before: str, env: dict[str, str], expected: str) -> None:
    assert run_python(SHOW.format(before=before), **env) == expected


def test_the_cli_sets_it_before_any_command_imports_torch() -> None:
    code = (
        "import os, sys; from refinekit.cli.app import main; main(['recipes'], standalone_mode=False); "
        "print('torch' in sys.modules, os.environ.get('OMP_WAIT_POLICY'))"
    )
    assert run_python(code, REFINEKIT_LOAD_PLUGINS="").splitlines()[-1] == "False PASSIVE"
