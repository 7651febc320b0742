"""One writer per output folder: run --out, refine OUTPUT (whole or in parts) and evaluate's report folder."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from refinekit.cli.app import main
from refinekit.data.folder_lock import LOCK_NAME, lock_folder
from refinekit.errors import FolderBusyError
from refinekit.refine.output_locks import lock_output
from refinekit.refine.output_records import verify_output
from refinekit.refine.pipeline import refine_to_folder

SIZE = (35, 55)


@pytest.fixture
def images(tmp_path: Path) -> Path:
    folder = tmp_path / "in"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(8):
        Image.fromarray(rng.integers(0, 256, SIZE, dtype=np.uint8)).save(folder / f"{i}.png")
    return folder


def _holder_process(code: str) -> subprocess.Popen:
    """A python process that runs ``code`` (taking a lock), prints 'held' and waits to be killed."""
    proc = subprocess.Popen(
        [sys.executable, "-c", code + "\nprint('held', flush=True)\nimport time\ntime.sleep(60)\n"],
        stdout=subprocess.PIPE, text=True,
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
    return proc


def test_a_second_writer_is_refused_naming_the_holder_pid_and_host(tmp_path: Path) -> None:
    with lock_folder(tmp_path / "run", "--out"):
        with pytest.raises(FolderBusyError) as caught:
            lock_folder(tmp_path / "run", "--out")
    message = str(caught.value)
    assert f"PID {os.getpid()}" in message and socket.gethostname() in message and "--out" in message
    lock_folder(tmp_path / "run", "--out").release()  # released: free again


def test_a_lock_left_by_a_killed_process_is_taken_over(tmp_path: Path) -> None:
    folder = tmp_path / "run"
    proc = _holder_process(f"from refinekit.data.folder_lock import lock_folder\nlock = lock_folder({str(folder)!r}, '--out')")
    try:
        with pytest.raises(FolderBusyError, match=f"PID {proc.pid} on host"):
            lock_folder(folder, "--out")
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert json.loads((folder / LOCK_NAME).read_text())["pid"] == proc.pid  # the dead holder's file is still there
    with lock_folder(folder, "--out"):
        assert json.loads((folder / LOCK_NAME).read_text())["pid"] == os.getpid()


def test_a_symlinked_lock_file_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / LOCK_NAME).symlink_to(tmp_path / "elsewhere")
    with pytest.raises(FolderBusyError, match="symlink"):
        lock_folder(folder, "--out")
    assert not (tmp_path / "elsewhere").exists()


def test_two_refines_into_one_output_the_second_is_refused_and_nothing_is_lost(refiner_file, images, tmp_path) -> None:
    out = tmp_path / "out"
    proc = _holder_process(
        "from pathlib import Path\nfrom refinekit.refine.output_locks import lock_output\n"
        f"out = Path({str(out)!r})\n(out / 'records').mkdir(parents=True)\nlocks = lock_output(out, None)"
    )
    try:
        result = CliRunner().invoke(main, ["refine", str(refiner_file), str(images), str(out), "--quiet"])
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert result.exit_code == 2, result.output
    assert f"PID {proc.pid}" in result.output and "Traceback" not in result.output
    assert not list(out.glob("shard_*"))  # the refused writer wrote nothing
    # the holder died: its lock is taken over and the refine completes
    manifest = refine_to_folder(refiner_file, images, out, shard_size=3, progress=False)
    assert manifest["complete"] and verify_output(out)["count"] == 8


def test_parts_of_one_split_write_side_by_side_but_overlapping_writers_are_refused(refiner_file, images, tmp_path):
    out = tmp_path / "out"
    (out / "records").mkdir(parents=True)
    other_part = lock_output(out, (0, 2))  # part 0/2 is being written by another writer
    try:
        summary = refine_to_folder(refiner_file, images, out, shard_size=2, shard=(1, 2), progress=False)
        assert summary["shards_done"] == 2 and not summary["complete"]
        with pytest.raises(FolderBusyError, match="part 0/2 .* already being written"):
            refine_to_folder(refiner_file, images, out, shard_size=2, shard=(0, 2), progress=False)
        with pytest.raises(FolderBusyError, match="in 2 parts .*overlap"):
            refine_to_folder(refiner_file, images, out, shard_size=2, shard=(0, 3), progress=False)
        with pytest.raises(FolderBusyError, match="part 0/2: PID"):
            refine_to_folder(refiner_file, images, out, shard_size=2, progress=False)
    finally:
        other_part.release()
    summary = refine_to_folder(refiner_file, images, out, shard_size=2, shard=(0, 2), progress=False)
    assert summary["complete"] and verify_output(out)["count"] == 8


def test_parts_are_refused_while_a_whole_folder_writer_holds_it(refiner_file, images, tmp_path) -> None:
    out = tmp_path / "out"
    (out / "records").mkdir(parents=True)
    with lock_output(out, None):
        with pytest.raises(FolderBusyError, match="as a whole .*PID"):
            refine_to_folder(refiner_file, images, out, shard=(0, 2), progress=False)


def test_a_refine_that_failed_leaves_the_output_unlocked(refiner_file, images, tmp_path) -> None:
    out = tmp_path / "out"
    with pytest.raises(Exception):
        refine_to_folder(refiner_file, images, out, fmt="png", channels=3, progress=False)
    refine_to_folder(refiner_file, images, out, progress=False)


def test_two_runs_with_one_out_the_second_is_refused_before_writing(tiny_domain, tmp_path: Path) -> None:
    from refinekit.training.setup import prepare, resolve_config

    out = tmp_path / "run"
    config = resolve_config("tiny")
    prepare(config, out).fit()  # fit lets the lock go when it ends
    metrics = (out / "metrics.jsonl").read_text()
    first = prepare(config, out, resume=True)  # a writer holds --out from prepare until its fit ends
    result = CliRunner().invoke(main, ["run", "tiny", "--out", str(out), "--quiet", "--resume"])
    assert result.exit_code == 2 and f"PID {os.getpid()}" in result.output, result.output
    assert (out / "metrics.jsonl").read_text() == metrics  # the first run's lines are untouched
    first.fit()
    result = CliRunner().invoke(main, ["run", "tiny", "--out", str(out), "--quiet", "--resume", "--steps", "8"])
    assert result.exit_code == 0, result.output
    result = CliRunner().invoke(main, ["run", "tiny", "--out", str(out), "--quiet", "--resume", "--steps", "9"])
    assert result.exit_code == 0, result.output  # the finished command released its lock


def test_evaluate_refuses_a_report_folder_another_evaluation_writes(tiny_domain, tmp_path: Path) -> None:
    from refinekit.evaluation.api import evaluate
    from refinekit.training.setup import train

    out = tmp_path / "run"
    train("tiny", out)
    with lock_folder(out / "eval", "--out"):
        with pytest.raises(FolderBusyError, match=f"{out / 'eval'} is in use by PID {os.getpid()}"):
            evaluate(out, device="cpu")


def test_a_finished_writer_leaves_no_lock_file(refiner_file, images, tmp_path) -> None:
    with lock_folder(tmp_path / "run", "--out"):
        pass
    assert list((tmp_path / "run").iterdir()) == []
    out = tmp_path / "out"
    refine_to_folder(refiner_file, images, out, progress=False)
    refine_to_folder(refiner_file, images, tmp_path / "parts", shard=(0, 2), progress=False)
    assert not [p.name for p in (out / "records").iterdir() if p.name.startswith(".")]
    assert not list((tmp_path / "parts" / "records").glob(".part-*"))


def test_a_lock_file_removed_by_its_last_holder_is_not_shared_by_two_writers(tmp_path: Path) -> None:
    """A writer that opened the file just before its holder removed it must not lock the orphaned file."""
    from refinekit.data.folder_lock import try_lock

    path = tmp_path / LOCK_NAME
    first = try_lock(path)
    stale_fd = os.open(path, os.O_RDWR)  # a second writer opened the file while the first held it
    first.release()  # removes the file, then unlocks
    assert not path.exists()
    second = try_lock(path)  # creates and locks a new file
    assert second is not None and try_lock(path) is None
    import fcntl

    fcntl.flock(stale_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # the orphan can be locked, but it is not the lock
    assert os.fstat(stale_fd).st_ino != os.stat(path).st_ino
    os.close(stale_fd)
    second.release()


def test_a_run_that_fails_to_start_leaves_no_folder(tiny_domain, tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["run", "tiny", "--out", str(tmp_path / "run"), "--quiet", "--resume"])
    assert result.exit_code == 2 and "no checkpoint.safetensors" in result.output
    assert not (tmp_path / "run").exists()


def test_two_real_refine_processes_the_second_is_refused_and_the_first_finishes(refiner_file, tmp_path) -> None:
    """The reported case, end to end: two 'refinekit refine' processes into one OUTPUT."""
    from tests.test_refine_crash import BLOCKING_HOOK

    folder, out, hooks = tmp_path / "in", tmp_path / "out", tmp_path / "hooks"
    folder.mkdir()
    hooks.mkdir()
    (hooks / "sitecustomize.py").write_text(BLOCKING_HOOK)
    rng = np.random.default_rng(0)
    for i in range(16):
        Image.fromarray(rng.integers(0, 256, SIZE, dtype=np.uint8)).save(folder / f"{i:02d}.png")
    command = [sys.executable, "-m", "refinekit", "refine", str(refiner_file), str(folder), str(out),
               "--shard-size", "4", "--batch-size", "2", "--workers", "2", "--quiet"]
    env = {**os.environ, "REFINEKIT_DISABLE_ENTRY_POINTS": "1"}
    # the first writer stops for good at image 13 (shard 3), with shards 0 to 2 committed
    first = subprocess.Popen(command, env={**env, "PYTHONPATH": str(hooks), "REFINEKIT_TEST_BLOCK": "13.png"},
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while not (out / "records" / "shard_00002.json").exists():
            assert first.poll() is None and time.monotonic() < deadline, "the first refine ended early"
            time.sleep(0.01)
        committed = {p: p.read_bytes() for p in sorted((out / "shard_00000").iterdir())}
        second = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
        assert second.returncode == 2 and f"PID {first.pid}" in second.stderr, second.stderr
        assert "Traceback" not in second.stderr
        assert {p: p.read_bytes() for p in sorted((out / "shard_00000").iterdir())} == committed
        assert first.poll() is None  # the first writer was not disturbed
    finally:
        first.kill()
        first.wait()
    third = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert third.returncode == 0, third.stderr
    assert verify_output(out)["count"] == 16
