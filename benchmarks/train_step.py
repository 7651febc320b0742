"""Benchmark a SimGAN training round: one R update plus one D update, paper networks, 35x55 grey images.

Three loops run in the same process, interleaved round by round so that load
from other jobs on a shared machine hits them alike:

* ``refinekit``: :class:`refinekit.training.loop.Trainer` in fp32 (channels_last,
  uint8 data sampled by index, uint8 history buffer, frozen D in R's update, only
  the needed half batch refined in D's update, the refiner run in cache-sized
  chunks, see :mod:`refinekit.runtime.chunks`).
* ``refinekit <precision>``: the same with ``--precision`` (``auto`` resolves as
  a run would; bf16 is also measured when asked with ``--precision bf16``).
* ``naive``: how public PyTorch ports train: NCHW fp32, every batch decoded
  image by image from PNG files with PIL, a float64 NumPy history buffer, R's
  forward in D's update recorded for autograd then detached, D's weight
  gradients computed in R's update, ``.item()`` after every loss.

Images per second = batch size / seconds per round (the median round). Achieved
GFLOP/s counts the convolutions of one round with ``torch.utils.flop_counter``
and is compared with a dense matmul of the same dtype measured in the same run.

    python benchmarks/train_step.py                       # batch 64 and 512, modest iterations
    python benchmarks/train_step.py --batch 64 --rounds 5 --precision bf16 --compile
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch.utils.flop_counter import FlopCounterMode

from refinekit.components.discriminators import LocalPatchDiscriminator
from refinekit.components.refiners import SimGANResNet
from refinekit.config import build_config
from refinekit.data.image_set import ImageSet
from refinekit.runtime.precision import resolve_precision
from refinekit.training.loop import Trainer

SIZE = (35, 55)
POOL = 2048  # distinct images per side: enough that batches are not cached decodes


def refinekit_round(batch: int, precision: str, compile_: bool, out: Path) -> Callable[[], None]:
    """A callable that runs one refinekit round (R update + D update) on in-memory uint8 data."""
    rng = np.random.default_rng(0)
    synthetic = ImageSet(rng.integers(0, 256, (POOL, 1, *SIZE), dtype=np.uint8))
    real = ImageSet(rng.integers(0, 256, (POOL, 1, *SIZE), dtype=np.uint8))
    config = build_config(
        {
            "synthetic": {"name": "image-folder"},
            "real": {"name": "image-folder"},
            "device": "cpu",
            "precision": precision,
            "batch_size": batch,
            "buffer_size": batch * 10,
            "compile": compile_,
            "optim": {"name": "adam", "lr_refiner": 1e-4, "lr_discriminator": 1e-4},
        }
    )
    trainer = Trainer(config, synthetic, real, out)

    def run() -> None:
        trainer.refiner_step(adversarial=True)
        trainer.discriminator_step()

    return run


class NaiveLoop:
    """A typical public port's round: per-image PNG decoding, float64 NumPy buffer, NCHW fp32."""

    def __init__(self, batch: int, folder: Path) -> None:
        torch.manual_seed(0)
        self.batch = batch
        self.refiner, self.discriminator = SimGANResNet(1), LocalPatchDiscriminator(1)
        self.opt_r = torch.optim.Adam(self.refiner.parameters(), lr=1e-4)
        self.opt_d = torch.optim.Adam(self.discriminator.parameters(), lr=1e-4)
        self.files = {side: sorted((folder / side).glob("*.png")) for side in ("synthetic", "real")}
        self.buffer = np.zeros((batch * 10, 1, *SIZE), dtype=np.float64)
        self.buffer_size = 0
        self.rng = np.random.default_rng(0)

    def load(self, side: str) -> torch.Tensor:
        picks = self.rng.choice(len(self.files[side]), self.batch)
        arrays = [np.asarray(Image.open(self.files[side][i]).convert("L"), dtype=np.float32) for i in picks]
        return torch.from_numpy(np.stack(arrays)[:, None] / 127.5 - 1.0)

    @staticmethod
    def patch_loss(logits: torch.Tensor, target: int) -> torch.Tensor:
        labels = torch.full((logits.shape[0], *logits.shape[2:]), target, dtype=torch.long)
        return F.cross_entropy(logits, labels)

    def __call__(self) -> None:
        # R update: D is not frozen, so its weight gradients are computed and thrown away.
        synthetic = self.load("synthetic")
        refined = self.refiner(synthetic)
        loss_r = (refined - synthetic).abs().mean() + self.patch_loss(self.discriminator(refined), 1)
        self.opt_r.zero_grad()
        loss_r.backward()
        self.opt_r.step()
        loss_r.item()
        # D update: R's forward is recorded for autograd, the whole batch is refined, then detached.
        synthetic, real = self.load("synthetic"), self.load("real")
        refined = self.refiner(synthetic).detach()
        half = self.batch // 2
        if self.buffer_size:
            index = self.rng.integers(0, self.buffer_size, self.batch - half)
            fake = torch.cat([refined[:half], torch.from_numpy(self.buffer[index]).float()])
        else:
            fake = refined
        loss_d = self.patch_loss(self.discriminator(fake), 0) + self.patch_loss(self.discriminator(real), 1)
        self.opt_d.zero_grad()
        loss_d.backward()
        self.opt_d.step()
        loss_d.item()
        new = refined[:half].numpy().astype(np.float64)
        free = min(len(self.buffer) - self.buffer_size, half)
        self.buffer[self.buffer_size : self.buffer_size + free] = new[:free]
        self.buffer_size += free
        if free < half:
            self.buffer[self.rng.choice(len(self.buffer), half - free, replace=False)] = new[free:]


def write_pngs(folder: Path) -> None:
    rng = np.random.default_rng(1)
    for side in ("synthetic", "real"):
        (folder / side).mkdir(parents=True)
        for i in range(POOL):
            Image.fromarray(rng.integers(0, 256, SIZE, dtype=np.uint8)).save(folder / side / f"{i:05d}.png")


def round_flops(run: Callable[[], None]) -> int:
    """FLOPs of one steady-state round: a first round fills the history buffer (until then D's
    update refines the whole batch, not half), the second is counted."""
    run()
    with FlopCounterMode(display=False) as counter:
        run()
    return counter.get_total_flops()


def matmul_gflops(dtype: torch.dtype, n: int = 2048, repeats: int = 5) -> float:
    """Best-of GFLOP/s of an n x n matmul: what this machine's cores give a dense kernel right now."""
    a, b = torch.randn(n, n).to(dtype), torch.randn(n, n).to(dtype)
    a @ b
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - start)
    return 2 * n**3 / best / 1e9


def forward_rate(batch: int, memory_format: torch.memory_format, precision: str) -> tuple[float, float]:
    """A plain refiner forward of the whole batch, as public ports run it: images/s and GFLOP/s.
    (``refinekit refine`` splits batches into cache-sized chunks; ``benchmarks/refine.py`` measures it.)"""
    refiner = SimGANResNet(1).eval().to(memory_format=memory_format)
    x = torch.randn(batch, 1, *SIZE).contiguous(memory_format=memory_format)
    chosen = resolve_precision(precision, torch.device("cpu"))
    times = []
    with torch.no_grad(), chosen.autocast():
        with FlopCounterMode(display=False) as counter:
            refiner(x)
        for _ in range(3):
            start = time.perf_counter()
            refiner(x)
            times.append(time.perf_counter() - start)
    seconds = min(times)
    return batch / seconds, counter.get_total_flops() / seconds / 1e9


def measure(rounds: int, loops: dict[str, Callable[[], None]]) -> dict[str, float]:
    """Median seconds per round of each (warmed-up) loop, run round-robin."""
    times: dict[str, list[float]] = {name: [] for name in loops}
    for _ in range(rounds):
        for name, run in loops.items():
            start = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, nargs="+", default=[64, 512])
    parser.add_argument("--rounds", type=int, default=3, help="timed rounds per loop at batch 64 (fewer above)")
    parser.add_argument("--precision", default="auto", help="the precision compared with fp32 (auto|bf16|fp16)")
    parser.add_argument("--compile", action="store_true", help="also time refinekit fp32 with torch.compile")
    args = parser.parse_args()

    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")), "?")
    print(f"# {cpu}, {os.cpu_count()} cores, torch {torch.__version__} ({torch.get_num_threads()} threads), "
          f"{platform.python_version()}, load average at start {os.getloadavg()[0]:.1f}")
    chosen = resolve_precision(args.precision, torch.device("cpu"))
    print(f"# --precision {args.precision} -> {chosen.name} ({chosen.reason})")
    peak = {"fp32": matmul_gflops(torch.float32)}
    if chosen.dtype is not None:
        peak[chosen.name] = matmul_gflops(chosen.dtype)
    print("# dense 2048x2048 matmul GFLOP/s: " + ", ".join(f"{k} {v:.1f}" for k, v in peak.items()))

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        write_pngs(Path(tmp) / "png")
        for batch in args.batch:
            rounds = max(1, args.rounds if batch <= 64 else args.rounds * 64 // batch + 1)
            loops: dict[str, Callable[[], None]] = {}
            dtypes: dict[str, str] = {}
            loops["refinekit fp32"] = refinekit_round(batch, "fp32", False, Path(tmp) / "run")
            dtypes["refinekit fp32"] = "fp32"
            if chosen.dtype is not None:
                name = f"refinekit {chosen.name}"
                loops[name], dtypes[name] = refinekit_round(batch, chosen.name, False, Path(tmp) / "run"), chosen.name
            if args.compile:
                loops["refinekit fp32 compiled"] = refinekit_round(batch, "fp32", True, Path(tmp) / "run")
                dtypes["refinekit fp32 compiled"] = "fp32"
            naive = NaiveLoop(batch, Path(tmp) / "png")
            loops["naive"], dtypes["naive"] = naive, "fp32"
            flops = {name: round_flops(run) for name, run in loops.items()}  # also each loop's warm-up round
            seconds = measure(rounds, loops)
            for name, sec in seconds.items():
                achieved = flops[name] / sec / 1e9
                rows.append((batch, name, batch / sec, sec, achieved, achieved / peak[dtypes[name]], rounds))
    print(f"# load average at end {os.getloadavg()[0]:.1f}\n")
    print("| batch | loop | img/s | s/round | GFLOP/s | of matmul | x naive | rounds |")
    print("| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    naive_rate = {b: r for b, name, r, *_ in rows if name == "naive"}
    for batch, name, rate, sec, achieved, ratio, rounds in rows:
        print(f"| {batch} | {name} | {rate:.1f} | {sec:.2f} | {achieved:.1f} | {ratio:.0%} | "
              f"{rate / naive_rate[batch]:.2f} | {rounds} |")
    print("\n| refiner forward (inference), batch 256 | img/s | GFLOP/s | of matmul |\n| --- | ---: | ---: | ---: |")
    variants = [("NCHW fp32", torch.contiguous_format, "fp32"), ("channels_last fp32", torch.channels_last, "fp32")]
    if chosen.dtype is not None:
        variants.append((f"channels_last {chosen.name}", torch.channels_last, chosen.name))
    for label, memory_format, precision in variants:
        rate, achieved = forward_rate(256, memory_format, precision)
        print(f"| {label} | {rate:.1f} | {achieved:.1f} | {achieved / peak[precision]:.0%} |")


if __name__ == "__main__":
    main()
