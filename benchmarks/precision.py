"""Seconds per adversarial round of a recipe in fp32 and in bf16 autocast, interleaved: what ``precision`` buys here.

Both trainers are built from the recipe as it ships (pre-training skipped: the
rounds are what a run spends its time on) and take turns, ``--rounds`` rounds at
a time, so a change in the machine's load hits both alike. It prints each
turn's seconds per round, the medians, the ratio, the CPU's bf16 units and the
load average, which a figure means nothing without on a shared machine.

    python benchmarks/precision.py
    python benchmarks/precision.py --threads 2 --repeats 6 --recipe digits-simgan
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

from refinekit.runtime.openmp import wait_passively

wait_passively()  # as refinekit's commands run; before torch loads libgomp

import torch  # noqa: E402

from refinekit.runtime.precision import cpu_has_fast_bf16  # noqa: E402
from refinekit.training.loop import Trainer  # noqa: E402
from refinekit.training.setup import prepare, resolve_config  # noqa: E402

PRECISIONS = ("fp32", "bf16")


def trainer_for(recipe: str, precision: str, out: Path) -> Trainer:
    config = resolve_config(recipe, overrides=[
        f"precision='{precision}'", "device='cpu'",
        "schedule.refiner_pretrain_steps=0", "schedule.discriminator_pretrain_steps=0",
    ])
    return prepare(config, out / precision)


def seconds_per_round(trainer: Trainer, rounds: int) -> float:
    start = time.perf_counter()
    for _ in range(rounds):
        trainer.run_step()
        trainer.step += 1
    return (time.perf_counter() - start) / rounds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--recipe", default="eyes-simgan")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (a quality run uses 1)")
    parser.add_argument("--rounds", type=int, default=15, help="rounds per turn")
    parser.add_argument("--repeats", type=int, default=4, help="turns per precision, the first one a warm-up")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"CPU bf16 units (AMX or AVX-512 BF16) usable by oneDNN: {cpu_has_fast_bf16()}; "
          f"{args.threads} torch thread(s); load average at start {os.getloadavg()[0]:.2f}")
    with tempfile.TemporaryDirectory() as folder:
        trainers = {name: trainer_for(args.recipe, name, Path(folder)) for name in PRECISIONS}
        times: dict[str, list[float]] = {name: [] for name in PRECISIONS}
        for turn in range(args.repeats):
            for name, trainer in trainers.items():
                seconds = seconds_per_round(trainer, args.rounds)
                print(f"turn {turn} {name}: {seconds:.3f} s/round" + (" (warm-up)" if turn == 0 else ""), flush=True)
                if turn:
                    times[name].append(seconds)
    medians = {name: statistics.median(values) for name, values in times.items()}
    for name, values in times.items():
        print(f"{name}: median {medians[name]:.3f} s/round (min {min(values):.3f}, max {max(values):.3f})")
    print(f"bf16 rounds per second / fp32's: {medians['fp32'] / medians['bf16']:.2f}x; "
          f"load average at end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
