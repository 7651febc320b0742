"""`refinekit plugins --requirements`: pins refinekit and every installed plugin distribution."""

from __future__ import annotations

import importlib.metadata
import json
import re
from pathlib import Path

from click.testing import CliRunner

from refinekit.cli.app import main


def fake_distribution(site: Path, name: str, version: str, entry_points: str, direct_url: dict | None = None) -> None:
    """An installed distribution as importlib.metadata sees it: just a .dist-info folder on sys.path."""
    info = site / f"{name.replace('-', '_')}-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    (info / "entry_points.txt").write_text(entry_points)
    if direct_url is not None:
        (info / "direct_url.json").write_text(json.dumps(direct_url))


def test_requirements_pin_refinekit_and_each_plugin_distribution(tmp_path, monkeypatch) -> None:
    fake_distribution(tmp_path, "refinekit-fake", "1.2.3", "[refinekit]\nfake = refinekit_fake.plugin\n")
    fake_distribution(
        tmp_path, "refinekit-local", "0.4.0", "[refinekit]\nlocal = refinekit_local\n",
        direct_url={"url": "file:///src/local", "dir_info": {"editable": True}},
    )
    fake_distribution(tmp_path, "not-a-plugin", "9.9", "[console_scripts]\nnap = nap:main\n")
    monkeypatch.syspath_prepend(str(tmp_path))

    result = CliRunner().invoke(main, ["plugins", "--requirements"])

    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].startswith(f"refinekit=={importlib.metadata.version('refinekit')}")
    assert "refinekit-fake==1.2.3" in lines
    assert "refinekit-local==0.4.0  # editable install from file:///src/local" in lines
    assert not any(line.startswith("not-a-plugin") for line in lines)
    # Every line is a valid requirements.txt line: a pin, optionally followed by a comment.
    assert all(re.fullmatch(r"[A-Za-z0-9._-]+==[^\s#]+(  # .+)?", line) for line in lines), lines


def test_requirements_include_a_plugin_that_fails_to_import(tmp_path, monkeypatch) -> None:
    # Reproducing an environment must not depend on whether each plugin imports today.
    fake_distribution(tmp_path, "refinekit-broken", "0.1", "[refinekit]\nbroken = no_such_module_anywhere\n")
    monkeypatch.syspath_prepend(str(tmp_path))

    result = CliRunner().invoke(main, ["plugins", "--requirements"])

    assert result.exit_code == 0 and "refinekit-broken==0.1" in result.output.splitlines()
