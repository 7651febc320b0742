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
    best = float("inf")
    for repeat in range(args.repeats):
        start = time.perf_counter()
        simulate_eyes(args.count, torch.Generator().manual_seed(repeat))
        best = min(best, time.perf_counter() - start)
    print(f"eyes-sim: {args.count / best:,.0f} img/s at 35x55 ({args.count} images, best of {args.repeats}, "
          f"{torch.get_num_threads()} threads)")


if __name__ == "__main__":
    main()
