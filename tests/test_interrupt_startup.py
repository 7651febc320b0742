"""Ctrl-C in the first seconds of a command (while torch imports) exits 130 quietly, never with a traceback."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from refinekit.cli.app import main


def test_importing_refinekit_or_its_cli_imports_no_torch() -> None:
    code = "import sys, refinekit, refinekit.cli.app; print(sorted(m for m in ('torch', 'numpy') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_the_lazy_exports_still_resolve() -> None:
    import refinekit

    for name in refinekit.__all__:
        assert getattr(refinekit, name) is not None, name
    with pytest.raises(AttributeError):
        refinekit.no_such_name  # noqa: B018


def test_an_interrupt_while_a_command_imports_torch_exits_130_quietly(monkeypatch, tmp_path: Path) -> None:
    import builtins

    real_import = builtins.__import__

    def interrupted(name, *args, **kwargs):
        if name.startswith("refinekit.training.setup"):
            raise KeyboardInterrupt
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", interrupted)
    result = CliRunner().invoke(main, ["run", "simgan", "--out", str(tmp_path / "run")])
    assert result.exit_code == 130 and "Traceback" not in result.output and "Interrupted." in result.output


@pytest.mark.skipif(not Path("/proc/self/maps").exists(), reason="needs /proc to see torch being loaded")
def test_a_real_sigint_during_the_torch_import_exits_130_without_a_traceback(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "refinekit", "run", "simgan", "--out", str(tmp_path / "run"), "--synthetic", "nowhere"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            if "libtorch" in Path(f"/proc/{proc.pid}/maps").read_text():
                break  # torch's shared libraries are being loaded: its import has started
        except OSError:
            pass
        time.sleep(0.002)
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 130, out
    assert "Traceback" not in out and "KeyboardInterrupt" not in out
