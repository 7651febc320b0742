"""Training under torchrun: identical replicas, per-rank state in one checkpoint, rank 0 alone writes, exact resume."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from refinekit.errors import CheckpointError
from refinekit.plugins.registry import create_discriminator, create_refiner
from refinekit.runtime.distributed import RANK_SEED_STRIDE, Topology, topology
from refinekit.training.setup import prepare, resolve_config

TORCHRUN = Path(sys.executable).with_name("torchrun")
CONFIG = """
batch_size = 8
buffer_size = 16
device = "cpu"
precision = "fp32"
log_every = 1
sample_every = 100
checkpoint_every = 3
micro_batch = 3  # R's update runs each rank's 4 images as 3 + 1: gradients sync once, in the last chunk
[image]
height = 16
width = 20
[schedule]
refiner_pretrain_steps = 2
discriminator_pretrain_steps = 2
[refiner]
name = "simgan-resnet"
options = { features = 8, blocks = 1 }
[discriminator]
name = "local-patch"
options = { widths = [8, 8, 8, 8] }
"""


def test_a_single_process_is_rank_zero_of_one() -> None:
    alone = topology()
    assert alone == Topology() and alone.is_main and not alone.distributed
    assert alone.seed(5) == 5  # a single-process run keeps its seeds
    assert Topology(rank=1, world_size=2).seed(5) == 5 + RANK_SEED_STRIDE


def test_a_checkpoint_resumes_only_with_its_world_size(tiny_domain, tmp_path, monkeypatch) -> None:
    monkeypatch.setattr("refinekit.training.loop.plot_losses", lambda metrics, out: None)
    small = ["refiner.options.features=8", "refiner.options.blocks=1", "schedule.steps=0"]
    prepare(resolve_config("tiny", overrides=small), tmp_path).fit()
    path = tmp_path / "checkpoint.safetensors"
    with safe_open(str(path), "pt") as f:
        metadata = f.metadata()
    assert metadata["world_size"] == "1" and "replica_digests" not in metadata
    save_file(load_file(str(path)), str(path), metadata={**metadata, "world_size": "2"})
    with pytest.raises(CheckpointError, match="written by 2 training process.*--nproc_per_node \\(2\\)"):
        prepare(resolve_config("tiny", overrides=small), tmp_path, resume=True)


# -- real torchrun jobs --------------------------------------------------------------


@pytest.fixture
def job(tmp_path: Path) -> Path:
    """Two image folders and a config with small networks, in ``tmp_path``."""
    rng = np.random.default_rng(0)
    for side, level in (("syn", 60), ("real", 190)):
        (tmp_path / side).mkdir()
        for i in range(16):
            image = np.clip(rng.normal(level, 20, (16, 20)), 0, 255).astype(np.uint8)
            Image.fromarray(image).save(tmp_path / side / f"{i:02d}.png")
    (tmp_path / "config.toml").write_text(CONFIG)
    return tmp_path


def torchrun(job: Path, out: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("REFINEKIT_", "TORCHELASTIC_"))}
    env.update(REFINEKIT_DISABLE_ENTRY_POINTS="1", REFINEKIT_CACHE_DIR=str(job / "cache"), OMP_NUM_THREADS="1")
    command = [
        str(TORCHRUN), "--standalone", "--nproc_per_node=2", "-m", "refinekit", "run", "simgan",
        "--config", "config.toml", "--synthetic", "syn", "--real", "real", "--out", out, "--quiet", *args,
    ]
    done = subprocess.run(command, check=False, cwd=job, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done


def test_two_gloo_ranks_keep_identical_replicas_and_rank_zero_writes(job) -> None:
    torchrun(job, "out", "--steps", "2")  # 2 + 2 pre-training steps + 2 rounds
    out = job / "out"
    with safe_open(str(out / "checkpoint.safetensors"), "pt") as f:
        metadata = f.metadata()
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    assert metadata["world_size"] == "2" and metadata["step"] == "6"
    # The parameters are bit-identical on both ranks, and they are the ones saved.
    replicas = json.loads(metadata["replica_digests"])
    refiner = create_refiner("simgan-resnet", channels=1, features=8, blocks=1)
    discriminator = create_discriminator("local-patch", channels=1, widths=(8, 8, 8, 8))
    saved = hashlib.sha256()
    for prefix, module in (("refiner", refiner), ("discriminator", discriminator)):
        module.load_state_dict({k[len(prefix) + 1 :]: v for k, v in tensors.items() if k.startswith(prefix + ".")})
        for param in module.parameters():
            saved.update(param.detach().reshape(-1).view(torch.uint8).numpy().tobytes())
    assert replicas == [saved.hexdigest()] * 2
    # Each rank drew its own batches and kept its own history buffer: both are saved.
    for key in ("rng.synthetic", "rng.buffer", "buffer.images"):
        assert not torch.equal(tensors[key], tensors[f"rank1.{key}"]), key
    assert int(tensors["buffer.size"]) == int(tensors["rank1.buffer.size"]) == 8  # buffer_size 16 split in two
    # Rank 0 alone wrote metrics and samples: one line per step, not one per rank.
    steps = [json.loads(line)["step"] for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3, 4, 5, 6]
    assert sorted(p.name for p in (out / "samples").iterdir()) == ["step_0000006.png"]


@pytest.mark.slow
def test_a_two_rank_run_resumed_with_two_ranks_continues_bit_for_bit(job) -> None:
    torchrun(job, "straight", "--steps", "3")
    torchrun(job, "resumed", "--steps", "1")  # stops at step 5, checkpoint at 3 and 5
    torchrun(job, "resumed", "--steps", "3", "--resume")
    straight = load_file(str(job / "straight" / "checkpoint.safetensors"))
    resumed = load_file(str(job / "resumed" / "checkpoint.safetensors"))
    assert sorted(straight) == sorted(resumed)
    assert [k for k in straight if not torch.equal(straight[k], resumed[k])] == []


@pytest.mark.slow
def test_two_rank_runs_exit_cleanly_every_time(job) -> None:
    """Python's teardown could abort a rank while gloo's workers freed the last collectives' tensors.

    Before ranks left through ``exit_rank``, a rank sometimes died with SIGABRT ("terminate called without
    an active exception") after training had finished: 1 of 10 runs on an idle 2-core machine, 1 of the 4
    of a CI run. Twelve runs would most likely have hit it.
    """
    for attempt in range(12):
        torchrun(job, f"out{attempt}", "--steps", "1")  # 2 + 2 pre-training steps + 1 round
        # rank 1 waited for rank 0: the run folder is whole when both have exited
        with safe_open(str(job / f"out{attempt}" / "checkpoint.safetensors"), "pt") as f:
            assert f.metadata()["step"] == "5"
        assert (job / f"out{attempt}" / "refiner.safetensors").is_file()
