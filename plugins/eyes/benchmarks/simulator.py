"""How many eye images per second the simulator renders on this machine.

Usage: python plugins/eyes/benchmarks/simulator.py [--count 20000] [--threads N]
"""

from __future__ import annotations

import argparse
import time

import torch
from refinekit_eyes.simulator import simulate_eyes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=20_000, help="images per timed run")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    simulate_eyes(256, torch.Generator().manual_seed(0))  # warm-up
    best_wall, best_cpu = float("inf"), float("inf")
    for repeat in range(args.repeats):
        wall, cpu = time.perf_counter(), time.process_time()
        simulate_eyes(args.count, torch.Generator().manual_seed(repeat))
        best_wall = min(best_wall, time.perf_counter() - wall)
        best_cpu = min(best_cpu, time.process_time() - cpu)
    # img per CPU-second shows the speed on an idle machine even when this one is busy.
    print(
        f"eyes-sim: {args.count / best_wall:,.0f} img/s wall, {args.count / best_cpu:,.0f} img per CPU-second "
        f"at 35x55 ({args.count} images, best of {args.repeats}, {torch.get_num_threads()} threads)"
    )


if __name__ == "__main__":
    main()
