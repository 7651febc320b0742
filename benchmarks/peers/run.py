"""refinekit against the loops a user would otherwise run: a plain PyTorch loop and the seed's Keras port.

Three sides train the paper's networks (refiner 296,129 parameters, local-patch
discriminator) on 1x35x55 images held in memory, with Adam at 1e-4:

* ``refinekit``: :class:`refinekit.training.loop.Trainer`'s own updates
  (``refiner_step`` + ``discriminator_step``), configured as a run would be.
  Inference is :func:`refinekit.refine.pipeline.refine_batch` on a refiner
  opened with :func:`~refinekit.refine.pipeline.open_refiner`, uint8 in and out.
* ``plain``: ``plain_torch.py``, the best plain PyTorch loop a competent user
  writes (NCHW fp32, data in memory, D frozen in R's update, ``no_grad`` for R in
  D's update; inference ``refiner(x)`` under ``no_grad``), in its own process
  with the environment this script started with.
* ``keras``: ``keras_simgan.py``, TF 2 / Keras 3 in its own interpreter
  (``--tf-python``; see README.md). Inference: ``predict_on_batch``.

The refinekit side runs in this process as ``refinekit``'s commands run: with
``OMP_WAIT_POLICY=PASSIVE`` unless the environment already sets it
(:mod:`refinekit.runtime.openmp`); the peers run with the environment as given.
``OMP_WAIT_POLICY=ACTIVE python benchmarks/peers/run.py`` takes the choice away.

All three run the same algorithm (one R update, one D update on half current
refined images and half from a history buffer, against real ones), so they do
the same arithmetic. Every timed round runs the sides one after the other
(refinekit, plain, keras, and a 2048x2048 fp32 matmul), so that load from other
jobs hits them alike; medians are taken per side. "Of matmul" is a side's median
GFLOP/s over the matmul's median GFLOP/s in the same run.

    python benchmarks/peers/run.py                       # batch 64 and 512, inference 256
    python benchmarks/peers/run.py --batch 64 --rounds 5 --infer-rounds 7 --threads 1
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from refinekit.runtime.openmp import wait_passively

USER_ENVIRONMENT = dict(os.environ)
"""What the peers run with: the environment a user's own script would have."""
wait_passively()  # the refinekit side runs as the CLI runs; before torch loads libgomp

import torch  # noqa: E402

# the same images, sizes and learning rate as the plain peer (this folder is on sys.path when run as a script)
from plain_torch import LEARNING_RATE, SIZE, memory_images  # noqa: E402

from refinekit.components.refiners import SimGANResNet  # noqa: E402
from refinekit.config import build_config  # noqa: E402
from refinekit.data.image_set import ImageSet  # noqa: E402
from refinekit.refine.pipeline import open_refiner, refine_batch  # noqa: E402
from refinekit.training.loop import Trainer  # noqa: E402
from refinekit.weights.files import export_refiner  # noqa: E402

KERAS_PEER = Path(__file__).with_name("keras_simgan.py")
PLAIN_PEER = Path(__file__).with_name("plain_torch.py")
DEFAULT_TF_PYTHON = "/work/tfvenv/bin/python"

Timed = Callable[[], float]
"""Runs one unit of work and returns its seconds (a side may time itself, as the Keras peer does)."""


def timed(work: Callable[[], object]) -> Timed:
    def run() -> float:
        start = time.perf_counter()
        work()
        return time.perf_counter() - start

    return run


def refinekit_round(batch: int, out: Path, micro_batch: int | None) -> Callable[[], None]:
    """One refinekit round through the Trainer's own update methods."""
    options = {"micro_batch": micro_batch} if micro_batch else {}
    config = build_config(
        {
            "synthetic": {"name": "image-folder"},
            "real": {"name": "image-folder"},
            "device": "cpu",
            "precision": "fp32",
            "batch_size": batch,
            "buffer_size": batch * 10,
            "optim": {"name": "adam", "lr_refiner": LEARNING_RATE, "lr_discriminator": LEARNING_RATE},
            **options,
        }
    )
    trainer = Trainer(config, ImageSet(memory_images(0)), ImageSet(memory_images(1)), out)

    def run() -> None:
        trainer.refiner_step(adversarial=True)
        trainer.discriminator_step()

    return run


class Peer:
    """A peer script in its own interpreter, driven over stdin/stdout; each call is timed by the peer itself."""

    def __init__(self, python: str, script: Path) -> None:
        self.script = script
        env = {**USER_ENVIRONMENT, "TF_CPP_MIN_LOG_LEVEL": "2"}
        self.process = subprocess.Popen(
            [python, str(script)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env
        )

    def ask(self, line: str) -> dict[str, object]:
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(line + "\n")
        self.process.stdin.flush()
        answer = self.process.stdout.readline()
        if not answer:
            raise RuntimeError(f"{self.script.name} exited (code {self.process.wait()}); run it by hand to see why")
        reply = json.loads(answer)
        if "error" in reply:
            raise RuntimeError(f"{self.script.name}: {reply['error']}")
        return reply

    def seconds(self, line: str) -> Timed:
        return lambda: float(self.ask(line)["seconds"])

    def close(self) -> None:
        assert self.process.stdin is not None  # "quit" has no answer to read
        self.process.stdin.write("quit\n")
        self.process.stdin.close()
        self.process.wait()


def matmul(n: int = 2048) -> Timed:
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    return timed(lambda: a @ b)


@dataclass
class Row:
    """One benchmark row: seconds per unit of work of each side, and the work's size."""

    label: str
    images: int
    flops_per_image: float
    seconds: dict[str, list[float]] = field(default_factory=dict)

    def rate(self, side: str) -> float:
        return self.images / statistics.median(self.seconds[side])

    def spread(self, side: str) -> str:
        return f"{self.images / max(self.seconds[side]):.1f}–{self.images / min(self.seconds[side]):.1f}"


def interleave(sides: dict[str, Timed], rounds: int, matmul_seconds: list[float]) -> dict[str, list[float]]:
    """``rounds`` passes over every side in turn, a matmul between passes; each side's seconds."""
    seconds: dict[str, list[float]] = {name: [] for name in sides}
    reference = matmul()
    for _ in range(rounds):
        for name, run in sides.items():
            seconds[name].append(run())
        matmul_seconds.append(reference())
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, nargs="+", default=[64, 512])
    parser.add_argument("--rounds", type=int, nargs="+", default=[5, 3], help="timed rounds per batch size")
    parser.add_argument("--infer-batch", type=int, default=256)
    parser.add_argument("--infer-rounds", type=int, default=7)
    parser.add_argument("--tf-python", default=os.environ.get("REFINEKIT_TF_PYTHON", DEFAULT_TF_PYTHON),
                        help="the interpreter with TensorFlow (see README.md); missing: no Keras column")
    parser.add_argument("--micro-batch", type=int, default=None, help="refinekit's micro_batch (default: its own)")
    parser.add_argument("--also-micro-batch", type=int, nargs="*", default=[],
                        help="also time refinekit with these micro_batch settings, as extra training columns")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    rounds = dict(zip(args.batch, args.rounds + args.rounds[-1:] * len(args.batch)))

    cpuinfo = Path("/proc/cpuinfo").read_text().splitlines() if Path("/proc/cpuinfo").exists() else []
    cpu = next((line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name")), "?")
    print(f"# {cpu}, {os.cpu_count()} cores, torch {torch.__version__} ({torch.get_num_threads()} threads), "
          f"Python {platform.python_version()}, load average at start {os.getloadavg()[0]:.1f}", flush=True)
    print(f"# OMP_WAIT_POLICY: refinekit {os.environ.get('OMP_WAIT_POLICY', 'unset')}, "
          f"peers {USER_ENVIRONMENT.get('OMP_WAIT_POLICY', 'unset')}", flush=True)
    if args.threads:  # the plain peer gets the same count, so that the comparison is about the code
        USER_ENVIRONMENT["OMP_NUM_THREADS"] = str(args.threads)
    keras_python = args.tf_python if Path(args.tf_python).exists() else None
    if keras_python is None:
        print(f"# no TensorFlow interpreter at {args.tf_python}: the Keras column is left out (see README.md)")

    rows: list[Row] = []
    matmul_seconds: list[float] = []
    peers = {"plain": Peer(sys.executable, PLAIN_PEER)}
    if keras_python:
        peers["keras"] = Peer(keras_python, KERAS_PEER)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for batch in args.batch:
                refinekit = refinekit_round(batch, Path(tmp) / "run", args.micro_batch)
                refinekit()  # the first round fills the history buffer; count a steady one
                sides: dict[str, Timed] = {"refinekit": timed(refinekit)}
                for micro_batch in args.also_micro_batch:
                    sides[f"refinekit micro_batch={micro_batch}"] = timed(
                        refinekit_round(batch, Path(tmp) / "run", micro_batch)
                    )
                setup = {name: peer.ask(f"setup {batch}") for name, peer in peers.items()}
                for name, reply in setup.items():
                    print(f"# {name} peer, batch {batch}: {json.dumps(reply)}", flush=True)
                    sides[name] = peers[name].seconds("train")
                row = Row(f"training round (1 R + 1 D update), batch {batch}", batch,
                          float(setup["plain"]["gflop_per_image"]) * 1e9)
                for run in sides.values():
                    run()  # warm-up: oneDNN picks its kernels on the first call of each shape
                row.seconds = interleave(sides, rounds[batch], matmul_seconds)
                rows.append(row)
            rows.append(inference_row(args, Path(tmp), peers, matmul_seconds))
    finally:
        for peer in peers.values():
            peer.close()
    print_table(rows, matmul_seconds)
    print(f"\n# load average at end {os.getloadavg()[0]:.1f}")


def inference_row(args: argparse.Namespace, folder: Path, peers: dict[str, Peer], matmul_seconds: list[float]) -> Row:
    """Refiner inference on ``--infer-batch`` images: refine_batch, a plain forward, predict_on_batch."""
    batch = args.infer_batch
    torch.manual_seed(0)
    path = folder / "refiner.safetensors"
    export_refiner(SimGANResNet(1), path, "simgan-resnet", {"features": 64, "blocks": 4}, 1, SIZE)
    refiner = open_refiner(path)
    images = torch.from_numpy(memory_images(0)[:batch])
    sides = {"refinekit": timed(lambda: refine_batch(refiner, images))}
    replies = {name: peer.ask(f"infer {batch}") for name, peer in peers.items()}  # also the peers' warm-up
    for name, peer in peers.items():
        sides[name] = peer.seconds(f"infer {batch}")
    row = Row(f"refiner inference, batch {batch}", batch, float(replies["plain"]["gflop_per_image"]) * 1e9)
    for run in sides.values():
        run()
    row.seconds = interleave(sides, args.infer_rounds, matmul_seconds)
    return row


def print_table(rows: list[Row], matmul_seconds: list[float]) -> None:
    peak = 2 * 2048**3 / statistics.median(matmul_seconds) / 1e9
    sides = list(dict.fromkeys(side for row in rows for side in row.seconds))
    print(f"\n# 2048x2048 fp32 matmul: median {peak:.1f} GFLOP/s over {len(matmul_seconds)} runs, "
          "one after each pass over the sides")
    ratios = [side for side in ("keras", "plain") if side in sides]
    print("\n| img/s, median of n rounds (min–max) | n | GFLOP/img | " + " | ".join(sides) + " | "
          + " | ".join(f"refinekit / {side}" for side in ratios) + " | "
          + " | ".join(f"{side} of matmul" for side in sides) + " |")
    print("| --- | ---: | ---: | " + " | ".join("---:" for _ in sides + ratios + sides) + " |")
    for row in rows:
        rates = {side: row.rate(side) for side in row.seconds}
        cells = [f"{rates[side]:.1f} ({row.spread(side)})" if side in rates else "—" for side in sides]
        cells += [f"**{rates['refinekit'] / rates[side]:.2f}x**" for side in ratios]
        cells += [f"{rates[side] * row.flops_per_image / 1e9 / peak:.0%}" if side in rates else "—" for side in sides]
        print(f"| {row.label} | {len(row.seconds['refinekit'])} | {row.flops_per_image / 1e9:.3f} | "
              + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
