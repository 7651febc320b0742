"""Kill ``refinekit refine`` with SIGKILL mid-run, rerun the same command, and check the result is exact.

The first run blocks for good when it opens one input image (a
``sitecustomize`` hook on its path stands in for input that never arrives; a
named pipe used to, but refinekit no longer opens those): by then the shards
before it are committed and the shard holding it is half-written. The kill
therefore always lands mid-run, with no timing race. The rerun, without the
hook, finishes.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from refinekit.components.refiners import SimGANResNet
from refinekit.weights.files import export_refiner

COUNT, SHARD, BATCH, BLOCKED_AT = 300, 20, 10, 150  # input 150 (in shard 7) blocks the first run


def write_png(path: Path, seed: int) -> None:
    Image.fromarray(np.random.default_rng(seed).integers(0, 256, (35, 55), dtype=np.uint8)).save(path)


def wait_for(condition, process: subprocess.Popen, what: str, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if process.poll() is not None:
            pytest.fail(f"refine exited with {process.returncode} before {what}: {process.stderr.read().decode()}")
        if time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.02)


def file_states(out: Path, shards: range) -> dict[str, tuple[int, int, bytes]]:
    """(inode, mtime_ns, content) of every file of ``shards`` and of their done-records."""
    paths = [p for k in shards for p in [*(out / f"shard_{k:05d}").iterdir(), out / "records" / f"shard_{k:05d}.json"]]
    return {str(p.relative_to(out)): (p.stat().st_ino, p.stat().st_mtime_ns, p.read_bytes()) for p in paths}


BLOCKING_HOOK = """
import os, time
from refinekit.data import image_files as imageio

_open_regular = imageio.open_regular


def open_regular(path):
    if os.path.basename(path) == os.environ.get("REFINEKIT_TEST_BLOCK"):
        while True:  # input that never arrives: the test kills this process here
            time.sleep(1)
    return _open_regular(path)


imageio.open_regular = open_regular
"""


def test_killed_refine_resumes_without_redoing_missing_or_duplicating(tmp_path: Path) -> None:
    torch.manual_seed(0)
    refiner = tmp_path / "refiner.safetensors"
    export_refiner(SimGANResNet(1, 8, 1), refiner, "simgan-resnet", {"features": 8, "blocks": 1}, 1, (35, 55))
    inputs, out = tmp_path / "in", tmp_path / "out"
    inputs.mkdir()
    for i in range(COUNT):
        write_png(inputs / f"{i:03d}.png", i)
    hooks = tmp_path / "hooks"
    hooks.mkdir()
    (hooks / "sitecustomize.py").write_text(BLOCKING_HOOK)
    command = [
        sys.executable, "-m", "refinekit", "refine", str(refiner), str(inputs), str(out),
        "--shard-size", str(SHARD), "--batch-size", str(BATCH), "--workers", "2", "--quiet",
    ]
    env = {**os.environ, "REFINEKIT_DISABLE_ENTRY_POINTS": "1"}
    done_before = range(BLOCKED_AT // SHARD)  # shards 0..6 end before the blocked input

    blocked_env = {**env, "PYTHONPATH": str(hooks), "REFINEKIT_TEST_BLOCK": f"{BLOCKED_AT:03d}.png"}
    first = subprocess.Popen(command, env=blocked_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    last_done = out / "records" / f"shard_{done_before[-1]:05d}.json"

    def half_way() -> bool:
        partial = [p for d in out.glob(f".shard_{len(done_before):05d}.tmp-*") for p in d.glob("*.png")]
        return last_done.exists() and len(partial) == BATCH

    wait_for(half_way, first, "shard 6 committed and shard 7 half-written")
    first.send_signal(signal.SIGKILL)
    first.wait()
    first.stdout.close()
    first.stderr.close()
    assert not (out / "manifest.json").exists()
    assert not (out / "records" / f"shard_{len(done_before):05d}.json").exists()
    before = file_states(out, done_before)

    second = subprocess.run(command, env=env, capture_output=True, timeout=120)
    assert second.returncode == 0, second.stderr.decode()

    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["count"] == COUNT and manifest["complete"]
    indices = [i for record in manifest["shards"] for i in record["indices"]]
    assert sorted(indices) == list(range(COUNT)), "every input exactly once"
    listed = {entry["name"]: entry["sha256"] for record in manifest["shards"] for entry in record["files"]}
    on_disk = {str(p.relative_to(out)) for p in out.glob("shard_*/*")}
    assert on_disk == set(listed), "no missing, extra or duplicated output files"
    assert len(listed) == COUNT
    for name, digest in listed.items():
        assert hashlib.sha256((out / name).read_bytes()).hexdigest() == digest, name
    assert not [p.name for p in out.iterdir() if p.name.startswith(".")], "no temporary files left"
    assert file_states(out, done_before) == before, "shards finished by the killed run were not rewritten"
