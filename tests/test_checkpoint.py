"""Checkpoints and exported refiners: atomic writes, no pickle, clear errors, a loadable refiner."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors import SafetensorError
from safetensors.torch import save_file

import refinekit.weights.files as checkpoint
from refinekit.config import build_config
from refinekit.errors import CheckpointError
from refinekit.plugins.registry import create_refiner
from refinekit.training.setup import prepare, resolve_config
from refinekit.weights.files import (
    CHECKPOINT_FORMAT,
    REFINER_FORMAT,
    export_refiner,
    load_refiner,
    read_file,
)

SMALL = {"features": 8, "blocks": 1}


def refiner_file(tmp_path: Path, seed: int = 0) -> tuple[torch.nn.Module, Path]:
    torch.manual_seed(seed)
    refiner = create_refiner("simgan-resnet", channels=1, **SMALL)
    path = tmp_path / "refiner.safetensors"
    export_refiner(refiner, path, "simgan-resnet", SMALL, 1, (35, 55))
    return refiner, path


def failing_save(error: BaseException):
    """A save_file that writes half a file, then fails as a full disk (or Ctrl-C) would."""

    def save(tensors, filename, metadata=None):
        Path(filename).write_bytes(b"half a checkpoint")
        raise error

    return save


@pytest.mark.parametrize(
    "error",
    [
        OSError(errno.ENOSPC, "No space left on device"),
        # what safetensors really raises on a full disk (checked on a 256 KiB tmpfs)
        SafetensorError("Error while serializing: I/O error: No space left on device (os error 28)"),
    ],
    ids=["oserror", "safetensors-error"],
)
def test_full_disk_keeps_the_previous_file_byte_for_byte(tmp_path, monkeypatch, error) -> None:
    _, path = refiner_file(tmp_path)
    before = path.read_bytes()
    monkeypatch.setattr(checkpoint, "save_file", failing_save(error))
    with pytest.raises(CheckpointError, match="no space left on the device while writing .*refiner.safetensors; "
                       "the previous file is intact. Free some space, then rerun with --resume"):
        refiner_file(tmp_path, seed=1)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["refiner.safetensors"]  # no temporary file left behind


def test_other_write_errors_are_checkpoint_errors_too(tmp_path, monkeypatch) -> None:
    _, path = refiner_file(tmp_path)
    before = path.read_bytes()

    def fsync_fails(fd):
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(checkpoint.os, "fsync", fsync_fails)
    with pytest.raises(CheckpointError, match="cannot write .*refiner.safetensors: Input/output error; the previous file is intact"):
        refiner_file(tmp_path, seed=1)
    assert path.read_bytes() == before


def test_interrupted_write_keeps_the_previous_file_and_reraises(tmp_path, monkeypatch) -> None:
    _, path = refiner_file(tmp_path)
    before = path.read_bytes()
    monkeypatch.setattr(checkpoint, "save_file", failing_save(KeyboardInterrupt()))
    with pytest.raises(KeyboardInterrupt):
        refiner_file(tmp_path, seed=1)
    assert path.read_bytes() == before and len(list(tmp_path.iterdir())) == 1


def test_temporaries_of_killed_writers_are_removed_and_live_ones_kept(tmp_path) -> None:
    _, path = refiner_file(tmp_path)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()  # its PID now belongs to no process (reuse within this test is vanishingly unlikely)
    orphan = tmp_path / f".refiner.safetensors.tmp-{dead.pid}"
    live = tmp_path / f".refiner.safetensors.tmp-{os.getppid()}"  # e.g. another rank still writing
    orphan.write_bytes(b"half a checkpoint from a killed run")
    live.write_bytes(b"being written")
    refiner_file(tmp_path, seed=1)  # the next save cleans up
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([path.name, live.name])


@pytest.mark.parametrize("suffix", [".pt", ".pth", ".ckpt", ".bin"])
def test_pickle_files_are_refused_with_conversion_advice(tmp_path, suffix) -> None:
    path = tmp_path / f"refiner{suffix}"
    torch.save({"stem.weight": torch.zeros(1)}, path)
    with pytest.raises(CheckpointError) as err:
        load_refiner(path)
    message = str(err.value)
    assert "unpickling can run arbitrary code" in message
    assert f"refinekit convert {path} {path.with_suffix('.safetensors')} --refiner NAME" in message
    assert "weights_only=True" in message


def test_load_refiner_rebuilds_an_eval_module_that_reproduces_outputs(tmp_path) -> None:
    refiner, path = refiner_file(tmp_path)
    refiner.eval()
    torch.manual_seed(123)  # other random weights, so equal outputs prove the weights were loaded
    loaded = load_refiner(path)
    assert not loaded.training and type(loaded) is type(refiner)
    assert loaded.refinekit_channels == 1 and loaded.refinekit_image_size == (35, 55)
    x = torch.rand(2, 1, 35, 55) * 2 - 1
    with torch.no_grad():
        assert torch.equal(refiner(x), loaded(x))
    _, metadata = read_file(path, REFINER_FORMAT)
    assert metadata["component"] == "simgan-resnet" and json.loads(metadata["options"]) == SMALL


def rewrite_metadata(path: Path, **changes: str) -> None:
    tensors, metadata = read_file(path, REFINER_FORMAT)
    save_file(tensors, str(path), metadata={**metadata, **changes})


def test_wrong_format_version_says_which_and_what_to_do(tmp_path) -> None:
    _, path = refiner_file(tmp_path)
    rewrite_metadata(path, format_version="99")
    with pytest.raises(CheckpointError, match=r"incompatible refinekit \(format_version '99', this one reads '1'\); use the refinekit version that wrote it"):
        load_refiner(path)


def test_a_checkpoint_is_not_a_refiner_and_other_files_are_named(tmp_path) -> None:
    _, path = refiner_file(tmp_path)
    rewrite_metadata(path, format=CHECKPOINT_FORMAT)
    with pytest.raises(CheckpointError, match="metadata 'format' is 'refinekit.weights.files', expected 'refinekit.refiner'"):
        load_refiner(path)
    plain = tmp_path / "plain.safetensors"
    save_file({"x": torch.zeros(1)}, str(plain))
    with pytest.raises(CheckpointError, match="plain.safetensors: metadata 'format' is None"):
        load_refiner(plain)
    with pytest.raises(CheckpointError, match="missing.safetensors does not exist"):
        load_refiner(tmp_path / "missing.safetensors")


def test_truncated_file_is_reported_as_truncated(tmp_path) -> None:
    _, path = refiner_file(tmp_path)
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(CheckpointError, match="not a readable safetensors file .* it may be truncated"):
        load_refiner(path)


def test_weights_that_do_not_fit_the_component(tmp_path) -> None:
    _, path = refiner_file(tmp_path)
    rewrite_metadata(path, options=json.dumps({"features": 16, "blocks": 1}))
    with pytest.raises(CheckpointError, match="weights do not fit refiner 'simgan-resnet' with {'features': 16, 'blocks': 1}"):
        load_refiner(path)


def test_checkpoint_metadata_holds_the_resolved_config(tiny_domain, tmp_path) -> None:
    config = resolve_config("tiny", overrides=["refiner.options.features=8", "refiner.options.blocks=1", "seed=7"])
    trainer = prepare(config, tmp_path)
    trainer.save_checkpoint()
    tensors, metadata = read_file(tmp_path / "checkpoint.safetensors", CHECKPOINT_FORMAT)
    assert build_config(json.loads(metadata["config"])) == config
    assert metadata["step"] == "0"
    assert {"rng.torch", "rng.synthetic", "rng.real", "rng.buffer", "buffer.size"} <= set(tensors)
    assert any(k.startswith("refiner.") for k in tensors) and any(k.startswith("discriminator.") for k in tensors)
