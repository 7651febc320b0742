"""Training survives being killed, interrupted, running out of disk and diverging.

The kill tests start real ``refinekit run`` processes and SIGKILL them, some at
random moments and some while a checkpoint is being written (the moment the
temporary file appears), then ``--resume`` each time. The resumed run must end
with exactly the weights, optimiser states, RNG states and history buffer of an
uninterrupted run (CPU, fp32, same seed).
"""

from __future__ import annotations

import errno
import json
import random
import shlex
import signal
import subprocess
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file

from refinekit.weights import files as checkpoint_module
from refinekit.weights.files import CHECKPOINT_FORMAT, read_file

PRETRAIN_STEPS = 2 + 2  # R then D pre-training, as kit.simgan_args sets them
EVERY_STEP = ["--set", "checkpoint_every=1", "--set", "log_every=1", "--set", "seed=7"]


def _checkpoint_step(out: Path) -> int:
    """The step of ``out``'s checkpoint, after checking that it is complete and readable (0 if none)."""
    path = out / "checkpoint.safetensors"
    if not path.exists():
        return 0
    _, metadata = read_file(path, CHECKPOINT_FORMAT)  # raises on a half-written file
    return int(metadata["step"])


def _logged_steps(out: Path) -> list[int]:
    path = out / "metrics.jsonl"
    if not path.exists():
        return []
    steps = []
    for line in path.read_text().splitlines():
        try:
            steps.append(json.loads(line)["step"])
        except (json.JSONDecodeError, KeyError):
            continue  # the last line of a killed run may be cut short
    return steps


def _temporary_files(out: Path) -> list[Path]:
    return sorted(out.glob(".*.tmp-*"))


def _saved_step(out: Path) -> int:
    """The step in the checkpoint's metadata, without reading its tensors (cheap enough to poll)."""
    try:
        with safe_open(str(out / "checkpoint.safetensors"), framework="pt") as f:
            return int(f.metadata()["step"])
    except Exception:  # not written yet
        return -1


def _wait_for_progress(process: subprocess.Popen, out: Path, after_step: int, timeout: float = 180) -> bool:
    """Wait until this process has saved a checkpoint beyond ``after_step``; False if it ended first.

    A new checkpoint (not a metrics line, which a killed predecessor may have logged
    past its last checkpoint) proves the process is inside the training loop.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return False
        if _saved_step(out) > after_step and (out / "refiner.safetensors").exists():
            return True
        time.sleep(0.02)
    raise AssertionError(f"no training progress in {timeout} s")


def _kill_during_write(process: subprocess.Popen, out: Path, timeout: float = 60) -> bool:
    """SIGKILL as soon as this process's temporary checkpoint file exists; True if the kill hit that window."""
    pattern = f".*.tmp-{process.pid}"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        if any(out.glob(pattern)):
            process.send_signal(signal.SIGKILL)
            return True
        time.sleep(0.0005)
    process.send_signal(signal.SIGKILL)
    return False


def _kill_at_random(process: subprocess.Popen, out: Path, rng: random.Random) -> None:
    """SIGKILL at a random moment within the next few steps.

    The moment is drawn in steps, then in time within a step, so that a fast machine
    cannot run through the whole schedule before the plan's later interruptions.
    """
    target = _saved_step(out) + rng.randint(0, 2)
    deadline = time.monotonic() + 60
    while _saved_step(out) < target and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.002)
    time.sleep(rng.uniform(0.0, 0.02))
    process.send_signal(signal.SIGKILL)


def _interrupt_and_resume(tmp_path: Path, kit, folders, plan: list[str], rounds: int, seed: int) -> dict[str, int]:
    """Run ``plan`` (a list of 'sigint', 'kill-write', 'kill-random'), resuming after each; then finish.

    Returns counts of what happened, and asserts after every interruption that the
    checkpoint on disk is complete and never went backwards.
    """
    rng = random.Random(seed)
    synthetic, real = folders
    out = tmp_path / "interrupted"
    args = kit.simgan_args(synthetic, real, out, steps=rounds, extra=EVERY_STEP)
    total = PRETRAIN_STEPS + rounds
    env = kit.subprocess_env()
    counts = {"kills": 0, "kills_during_write": 0, "sigints": 0, "resumes": 0}
    command = kit.refinekit_command(args)
    last_step = 0
    for action in plan:
        process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        if last_step:
            counts["resumes"] += 1
        if not _wait_for_progress(process, out, last_step):
            pytest.fail(f"the run ended before it could be interrupted: {process.communicate()}")
        if action == "sigint":
            process.send_signal(signal.SIGINT)
            stdout, stderr = process.communicate(timeout=120)
            assert process.returncode == 130, stderr
            said = " ".join((stdout + stderr).split())
            step = _checkpoint_step(out)
            assert f"Interrupted at step {step}; checkpoint saved. Resume with:" in said
            # The printed command is the one that resumes: same data, same settings, plus --resume.
            hint = said.split("Resume with: ", 1)[1]
            assert hint.startswith("refinekit run simgan") and hint.endswith("--resume")
            command = kit.refinekit_command(shlex.split(hint)[1:])
            counts["sigints"] += 1
        else:
            if action == "kill-write":
                counts["kills_during_write"] += _kill_during_write(process, out)
            else:
                _kill_at_random(process, out, rng)
            process.communicate(timeout=60)
            assert process.returncode == -signal.SIGKILL
            counts["kills"] += 1
            step = _checkpoint_step(out)  # a killed write never replaces the good checkpoint
        assert step >= last_step, f"checkpoint went back from step {last_step} to {step}"
        assert (out / "refiner.safetensors").exists()
        last_step = step
        if "--resume" not in command:
            command = [*command, "--resume"]
    # The last resume runs to the end in this process: the same CLI, without paying another interpreter start.
    with _one_thread():
        finished = kit.invoke(command[3:])
    counts["resumes"] += 1
    assert finished.exit_code == 0, finished.output
    assert f"resuming at step {last_step} of {total}" in " ".join(finished.output.split())
    assert _checkpoint_step(out) == total
    # Every step was logged exactly once: nothing repeated, nothing lost across the resumes.
    assert _logged_steps(out) == list(range(1, total + 1))
    counts["stale_temporary_files"] = len(_temporary_files(out))
    return counts


@contextmanager
def _one_thread() -> Iterator[None]:
    """Run in-process training with one thread, as the child processes do, so the float sums match."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def _uninterrupted(tmp_path: Path, kit, folders, rounds: int) -> dict[str, torch.Tensor]:
    """The same run in one go, in this process."""
    synthetic, real = folders
    out = tmp_path / "uninterrupted"
    with _one_thread():
        result = kit.invoke(kit.simgan_args(synthetic, real, out, steps=rounds, extra=EVERY_STEP))
    assert result.exit_code == 0, result.output
    return load_file(out / "checkpoint.safetensors")


def _assert_same_state(resumed_dir: Path, reference: dict[str, torch.Tensor]) -> None:
    resumed = load_file(resumed_dir / "checkpoint.safetensors")
    assert sorted(resumed) == sorted(reference)
    different = [key for key in reference if not torch.equal(resumed[key], reference[key])]
    assert not different, f"resumed run differs from the uninterrupted one in {different[:5]}"
    for name in ("refiner.", "discriminator.", "opt_refiner.", "buffer.", "rng."):
        assert any(key.startswith(name) for key in reference), name  # the comparison covered each part


def test_sigint_then_kill_during_write_resumes_bit_for_bit(tmp_path, kit, folders) -> None:
    counts = _interrupt_and_resume(tmp_path, kit, folders, ["sigint", "kill-write"], rounds=10, seed=0)
    assert counts["sigints"] == 1 and counts["kills"] == 1 and counts["resumes"] == 2
    _assert_same_state(tmp_path / "interrupted", _uninterrupted(tmp_path, kit, folders, rounds=10))


@pytest.mark.slow
def test_many_kills_resume_bit_for_bit(tmp_path, kit, folders) -> None:
    plan = ["kill-write", "kill-random"] * 4 + ["sigint"]
    # Each action uses at most a few steps (see _kill_at_random), so 60 rounds leave room for all nine.
    counts = _interrupt_and_resume(tmp_path, kit, folders, plan, rounds=60, seed=1)
    print(f"kill test: {counts}")  # shown with -s: how many kills landed inside a checkpoint write
    assert counts["kills"] == 8 and counts["resumes"] == len(plan)
    assert counts["kills_during_write"] >= 1
    _assert_same_state(tmp_path / "interrupted", _uninterrupted(tmp_path, kit, folders, rounds=60))


# -- failures inside the checkpoint write, in process ----------------------------
def _failing_save_file(monkeypatch: pytest.MonkeyPatch, fail_on_call: int, error: BaseException) -> dict[str, bytes]:
    """Make the ``fail_on_call``-th safetensors write fail after writing half its bytes.

    Returns the bytes every finished ``.safetensors`` file in that folder had just before the failing write.
    """
    real_save_file = checkpoint_module.save_file
    calls = [0]
    before: dict[str, bytes] = {}

    def save_file(tensors, filename, metadata=None):
        calls[0] += 1
        if calls[0] == fail_on_call:
            before.update({p.name: p.read_bytes() for p in Path(filename).parent.glob("*.safetensors")})
            real_save_file(tensors, filename, metadata=metadata)
            data = Path(filename).read_bytes()
            Path(filename).write_bytes(data[: len(data) // 2])  # what a full disk leaves behind
            raise error
        return real_save_file(tensors, filename, metadata=metadata)

    monkeypatch.setattr(checkpoint_module, "save_file", save_file)
    return before


def _tiny_run(kit, folders, out: Path, extra: list[str]) -> list[str]:
    synthetic, real = folders
    return kit.simgan_args(synthetic, real, out, steps=2, extra=["--set", "seed=3", *extra])


def test_full_disk_keeps_previous_checkpoint_and_says_so(tmp_path, kit, folders, monkeypatch) -> None:
    out = tmp_path / "run"
    # Checkpoints at steps 2 and 4 (two files each); the disk fills up while writing the second checkpoint.
    before = _failing_save_file(monkeypatch, 3, OSError(errno.ENOSPC, "No space left on device"))
    result = kit.invoke(_tiny_run(kit, folders, out, ["--set", "checkpoint_every=2"]))
    assert result.exit_code == 2, result.output
    message = " ".join(result.output.split())
    assert "no space left on the device while writing" in message and "checkpoint.safetensors" in message
    assert "the previous file is intact" in message and "--resume" in message
    assert "Traceback" not in result.output
    assert (out / "checkpoint.safetensors").read_bytes() == before["checkpoint.safetensors"]
    assert _checkpoint_step(out) == 2 and not _temporary_files(out)
    monkeypatch.undo()  # space is free again: the printed advice works
    resumed = kit.invoke([*_tiny_run(kit, folders, out, ["--set", "checkpoint_every=2"]), "--resume"])
    assert resumed.exit_code == 0, resumed.output
    assert _checkpoint_step(out) == 6


@pytest.mark.parametrize("error", [RuntimeError("disk controller fault"), KeyboardInterrupt()], ids=repr)
def test_any_failure_inside_save_file_leaves_old_checkpoint(tmp_path, monkeypatch, error) -> None:
    path = tmp_path / "checkpoint.safetensors"
    checkpoint_module.atomic_save({"w": torch.arange(4.0)}, {"format": "old"}, path)
    saved = path.read_bytes()
    _failing_save_file(monkeypatch, 1, error)
    with pytest.raises(type(error)):
        checkpoint_module.atomic_save({"w": torch.zeros(4)}, {"format": "new"}, path)
    assert path.read_bytes() == saved
    assert not _temporary_files(tmp_path)


# -- NaN / Inf losses ---------------------------------------------------------
BLOW_UP = ["--set", "optim.lr_discriminator=1e30", "--set", "checkpoint_every=1", "--set", "log_every=1"]


def test_nonfinite_loss_stops_naming_step_and_loss(tmp_path, kit, folders) -> None:
    out = tmp_path / "run"
    # D's first step (step 3) moves its weights by ~1e30; its next loss (step 4) is NaN.
    result = kit.invoke(_tiny_run(kit, folders, out, BLOW_UP))
    assert result.exit_code == 2, result.output
    message = " ".join(result.output.split())
    assert "step 4 (discriminator-pretrain): loss 'discriminator_loss' is nan" in message
    assert "on_nonfinite=skip" in message and "Traceback" not in result.output
    assert _checkpoint_step(out) == 3  # the last good checkpoint, not overwritten
    assert _logged_steps(out) == [1, 2, 3]


def test_nonfinite_loss_skip_option_finishes_with_finite_weights(tmp_path, kit, folders) -> None:
    out = tmp_path / "run"
    result = kit.invoke([*_tiny_run(kit, folders, out, BLOW_UP), "--set", 'on_nonfinite="skip"'])
    assert result.exit_code == 0, result.output
    tensors, metadata = read_file(out / "checkpoint.safetensors", CHECKPOINT_FORMAT)
    skipped = int(metadata["skipped_steps"])
    assert skipped >= 1 and f"skipped {skipped} updates with non-finite losses" in result.output
    assert int(metadata["step"]) == 6
    # Skipping means no NaN ever reached the weights.
    assert all(torch.isfinite(t).all() for k, t in tensors.items() if t.is_floating_point() and not k.startswith("rng"))


def test_rerun_after_a_kill_before_the_first_checkpoint_starts_clean(tmp_path, kit, folders) -> None:
    out = tmp_path / "run"
    out.mkdir()
    # What a process killed before its first checkpoint leaves: metrics lines, the last one cut short.
    (out / "metrics.jsonl").write_text('{"step": 1, "phase": "refiner-pretrain"}\n{"step": 2, "ph')
    result = kit.invoke(_tiny_run(kit, folders, out, ["--set", "log_every=1"]))
    assert result.exit_code == 0, result.output
    assert _logged_steps(out) == [1, 2, 3, 4, 5, 6]


def test_ctrl_c_before_training_exits_130_without_a_traceback(tmp_path, kit, folders, monkeypatch) -> None:
    import refinekit.components.datasets

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    # Ctrl-C while the data folders are being looked at (the registry picks the function up when it loads)
    monkeypatch.setattr(refinekit.components.datasets, "is_image_folder", interrupted)
    result = kit.invoke(_tiny_run(kit, folders, tmp_path / "run", []))
    assert result.exit_code == 130 and isinstance(result.exception, SystemExit)
    assert result.output.strip() == "Interrupted." and not (tmp_path / "run" / "checkpoint.safetensors").exists()
