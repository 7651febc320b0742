"""Benchmark making a training set: ``refinekit refine REFINER --dataset NAME --set count=N OUTPUT``, refined and raw.

Runs the command as a subprocess, twice (refined, then ``--raw``), on a
generated dataset, and prints images/s and the child's peak RSS. Two times
are given: the whole command (interpreter start-up, plugin imports, rendering
included) and the pipeline alone, from ``records/plan.json`` (written once the
refiner is loaded and the dataset is ready) to ``metadata.jsonl`` (written
last, after every image and the manifest). The refiner has random weights of
the paper's shape by default: speed does not depend on what it learnt.

    python benchmarks/training_set.py                                  # 2,000 eyes, the paper's refiner
    python benchmarks/training_set.py --dataset digits-fonts --height 28 --width 28 --count 10000
    python benchmarks/training_set.py --dataset digits-fonts --height 28 --width 28 --count 40000 --only raw  # blocks
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from refinekit.components.refiners import SimGANResNet
from refinekit.weights.files import export_refiner


def run(command: list[str], out: Path) -> tuple[float, float, int]:
    """(wall seconds, pipeline seconds, peak RSS bytes) of one ``refinekit refine`` subprocess."""
    started = time.perf_counter()
    child = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(child.pid, 0)
    wall = time.perf_counter() - started
    if status != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{child.stderr.read().decode()}")
    child.stderr.close()
    pipeline = (out / "metadata.jsonl").stat().st_mtime - (out / "records" / "plan.json").stat().st_mtime
    return wall, pipeline, usage.ru_maxrss * 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="eyes-sim")
    parser.add_argument("--count", type=int, default=2000)
    parser.add_argument("--height", type=int, default=35)
    parser.add_argument("--width", type=int, default=55)
    parser.add_argument("--features", type=int, default=64, help="refiner width (paper: 64)")
    parser.add_argument("--blocks", type=int, default=4, help="refiner ResNet blocks (paper: 4)")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--only", choices=["refined", "raw"], default=None, help="run one of the two exports")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="refinekit-bench-") as tmp:
        refiner = Path(tmp) / "refiner.safetensors"
        torch.manual_seed(0)
        export_refiner(
            SimGANResNet(1, args.features, args.blocks), refiner, "simgan-resnet",
            {"features": args.features, "blocks": args.blocks}, 1, (args.height, args.width),
        )
        print(
            f"{args.dataset}, {args.count} images at {args.height}x{args.width}, refiner {args.features} features x "
            f"{args.blocks} blocks, batch {args.batch_size}, {torch.get_num_threads()} threads, "
            f"{os.cpu_count()} CPUs; load average {os.getloadavg()[0]:.2f}"
        )
        for label, extra in (("refined", []), ("raw", ["--raw"])):
            if args.only not in (None, label):
                continue
            out = Path(tmp) / label
            command = [
                sys.executable, "-m", "refinekit", "refine", str(refiner), "--dataset", args.dataset,
                "--set", f"count={args.count}", str(out), "--quiet", "--device", "cpu",
                "--batch-size", str(args.batch_size), *extra,
            ]
            wall, pipeline, rss = run(command, out)
            print(
                f"{label:>8}: {args.count / pipeline:8.1f} img/s pipeline ({pipeline:.1f} s), "
                f"{args.count / wall:8.1f} img/s whole command ({wall:.1f} s), peak RSS {rss / 2**20:.0f} MiB"
            )
        print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
