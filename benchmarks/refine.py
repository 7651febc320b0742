"""Benchmark ``refinekit refine``: images/s from PNGs on disk to written outputs, and peak memory.

For each size it generates that many 35x55 grayscale PNGs (noise, so they do
not compress to nothing), runs ``python -m refinekit refine`` on them as a
subprocess and reads the child's peak RSS from ``os.wait4``. For comparison it
times pure refiner inference (uint8 batches already in memory, same batch size,
same threads) in this process. Issue 6's targets: disk->disk at >= 50% of pure
inference, and peak RSS at 100k images within 10% of that at 10k.

    python benchmarks/refine.py --sizes 10000 100000
    python benchmarks/refine.py --sizes 10000 --features 64 --blocks 4   # the paper's refiner
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from refinekit.components.refiners import SimGANResNet
from refinekit.refine.pipeline import open_refiner, refine_batch
from refinekit.weights.files import export_refiner

SIZE = (35, 55)


def make_pngs(folder: Path, count: int, pool: Path) -> None:
    """``count`` PNGs in ``folder``, hard-linked from a growing ``pool`` so each is encoded once."""
    pool.mkdir(parents=True, exist_ok=True)
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(count):
        name = f"{i:07d}.png"
        source = pool / name
        if not source.exists():
            Image.fromarray(rng.integers(0, 256, SIZE, dtype=np.uint8)).save(source)
        os.link(source, folder / name)


def run_refine(refiner: Path, folder: Path, out: Path, args: argparse.Namespace) -> tuple[float, float, int]:
    """(wall seconds, pipeline seconds, peak RSS in bytes) of one ``refinekit refine`` subprocess.

    The pipeline time runs from ``records/plan.json`` (written once the refiner
    is loaded and the input listed) to ``manifest.json`` (written last): disk to
    disk, without interpreter start-up and plugin imports, which vary by tens
    of seconds on a loaded machine.
    """
    command = [
        sys.executable, "-m", "refinekit", "refine", str(refiner), str(folder), str(out), "--quiet",
        "--batch-size", str(args.batch_size), "--shard-size", str(args.shard_size), "--format", args.format,
        "--precision", args.precision, "--device", "cpu",
    ]
    if args.workers:
        command += ["--workers", str(args.workers)]
    start = time.perf_counter()
    process = subprocess.Popen(command)
    _, status, usage = os.wait4(process.pid, 0)  # this child's own rusage, not the max over all children
    seconds = time.perf_counter() - start
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise SystemExit(f"refinekit refine failed with exit code {process.returncode}: {' '.join(command)}")
    pipeline = (out / "manifest.json").stat().st_mtime - (out / "records" / "plan.json").stat().st_mtime
    return seconds, pipeline, usage.ru_maxrss * 1024  # Linux reports KiB


def inference_rate(refiner_path: Path, batch_size: int, precision: str, seconds: float = 10.0) -> float:
    """Images/s of the refiner alone on uint8 batches already in memory."""
    refiner = open_refiner(refiner_path, "cpu")
    batch = torch.randint(0, 256, (batch_size, 1, *SIZE), dtype=torch.uint8)
    refine_batch(refiner, batch, precision=precision)  # first call pays one-off allocation costs
    done, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        refine_batch(refiner, batch, precision=precision)
        done += batch_size
    return done / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000])
    parser.add_argument("--features", type=int, default=8, help="refiner width (the paper: 64)")
    parser.add_argument("--blocks", type=int, default=1, help="refiner ResNet blocks (the paper: 4)")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--shard-size", type=int, default=4096)
    parser.add_argument("--format", choices=["png", "safetensors"], default="png")
    parser.add_argument("--precision", default="fp32")
    parser.add_argument("--workers", type=int, default=None, help="refine's --workers (default: its own)")
    parser.add_argument("--tmp", type=Path, default=None, help="scratch folder (default: a new temporary one)")
    args = parser.parse_args()

    scratch = Path(tempfile.mkdtemp(prefix="refinekit-bench-", dir=args.tmp))
    try:
        refiner = scratch / "refiner.safetensors"
        torch.manual_seed(0)
        export_refiner(
            SimGANResNet(1, args.features, args.blocks), refiner, "simgan-resnet",
            {"features": args.features, "blocks": args.blocks}, 1, SIZE,
        )
        print(f"refiner simgan-resnet features={args.features} blocks={args.blocks}, {SIZE[1]}x{SIZE[0]} gray, "
              f"batch {args.batch_size}, shard {args.shard_size}, format {args.format}, "
              f"torch threads {torch.get_num_threads()}, {os.cpu_count()} CPUs")
        make_pngs(scratch / "one", 1, scratch / "pool")
        startup, _, startup_rss = run_refine(refiner, scratch / "one", scratch / "out-one", args)
        print(f"refine of 1 image (start-up): {startup:.1f} s, peak RSS {startup_rss / 2**20:,.0f} MiB")
        for count in args.sizes:
            folder = scratch / f"in-{count}"
            make_pngs(folder, count, scratch / "pool")
            # Other work on a shared machine changes the speed from minute to minute: time pure
            # inference just before and just after, and compare with their mean.
            before = inference_rate(refiner, args.batch_size, args.precision)
            seconds, pipeline, rss = run_refine(refiner, folder, scratch / f"out-{count}", args)
            after = inference_rate(refiner, args.batch_size, args.precision)
            pure = (before + after) / 2
            print(f"pure inference: {before:,.0f} img/s before, {after:,.0f} img/s after")
            print(
                f"{count:>8,} images: {seconds:7.1f} s wall = {count / seconds:,.0f} img/s end to end; "
                f"pipeline {pipeline:.1f} s = {count / pipeline:,.0f} img/s disk to disk "
                f"({count / pipeline / pure:.0%} of pure inference); peak RSS {rss / 2**20:,.0f} MiB"
            )
            shutil.rmtree(scratch / f"out-{count}")
            shutil.rmtree(folder)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
