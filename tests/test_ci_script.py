"""CI checks the big claims: .ci/run runs the slow tests and the strict docs build; the README's pytest stays fast."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _commands() -> list[str]:
    lines = (ROOT / ".ci" / "run").read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]


def test_ci_runs_the_default_suite_the_slow_tests_and_the_strict_docs_build() -> None:
    commands = _commands()
    assert "python -m pytest" in commands  # the README's command, as it is
    assert any(re.fullmatch(r"python -m pytest -m slow\b.*", c) for c in commands)
    assert any("mkdocs build --strict" in c for c in commands)
    install = next(c for c in commands if "pip install" in c and "-e" in c)
    assert ".[test,docs]" in install  # else the docs tests would be skipped
    assert commands[0].startswith("set -e")


def test_the_readme_suite_stays_fast_by_deselecting_slow_tests() -> None:
    options = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["pytest"]["ini_options"]
    assert "-m 'not slow'" in options["addopts"]
    assert "python -m pytest\n" in (ROOT / "README.md").read_text()


def test_the_slow_docs_variant_has_pages_to_run() -> None:
    from tests.test_docs_code_blocks import SLOW_PAGES

    assert SLOW_PAGES, "no docs page has a '<!-- doc: slow -->' block, so the slow docs test would run nothing"
