"""Start-up time of the commands people type most, and of ``import refinekit``.

Each command runs in a fresh interpreter, ``--rounds`` times, interleaved
(A, B, C, A, B, C, ...) so that every command sees the same load. The machine's
load average is printed with the figures: on a shared machine they move by 20%
or more from minute to minute.

    python benchmarks/startup.py                      # this checkout
    python benchmarks/startup.py --importtime recipes # also: the 12 slowest imports of one command

To compare with another checkout, run the same script with that checkout first
on ``PYTHONPATH`` (the commands run as ``python -m refinekit``, which works for both).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time

COMMANDS = {
    "import refinekit": [sys.executable, "-c", "import refinekit"],
    "refinekit --help": [sys.executable, "-m", "refinekit", "--help"],
    "refinekit recipes": [sys.executable, "-m", "refinekit", "recipes"],
    "refinekit plugins": [sys.executable, "-m", "refinekit", "plugins"],
    "refinekit datasets": [sys.executable, "-m", "refinekit", "datasets"],
    "python (bare interpreter)": [sys.executable, "-c", "pass"],
}


def wall(command: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(
        command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={**os.environ, "COLUMNS": "100"}
    )
    return time.perf_counter() - start


def slowest_imports(command: list[str], count: int = 12) -> list[tuple[int, str]]:
    """(cumulative microseconds, module) of the slowest top-level imports, from ``python -X importtime``."""
    done = subprocess.run([command[0], "-X", "importtime", *command[1:]], capture_output=True, text=True, check=True)
    rows = []
    for line in done.stderr.splitlines():
        if line.startswith("import time:") and "|" in line and "cumulative" not in line:
            _, cumulative, name = (part.strip() for part in line.split("|"))
            if not name.startswith(" "):
                rows.append((int(cumulative), line.split("|")[2].rstrip()))
    return sorted(rows, reverse=True)[:count]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument(
        "--importtime", choices=[c.split()[-1] for c in COMMANDS if c.startswith("refinekit ")], default=None
    )
    args = parser.parse_args()
    for command in COMMANDS.values():  # warm the file cache: the first start of anything reads from disk
        wall(command)
    times: dict[str, list[float]] = {name: [] for name in COMMANDS}
    load_before = os.getloadavg()[0]
    for _ in range(args.rounds):
        for name, command in COMMANDS.items():
            times[name].append(wall(command))
    load_after = os.getloadavg()[0]
    print(f"{'command':<28} {'median s':>9} {'min s':>7} {'max s':>7}   ({args.rounds} interleaved rounds)")
    for name, values in times.items():
        print(f"{name:<28} {statistics.median(values):>9.3f} {min(values):>7.3f} {max(values):>7.3f}")
    print(f"load average (1 min): {load_before:.2f} before, {load_after:.2f} after; {os.cpu_count()} CPUs")
    torch_loaded = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, refinekit.cli.app as a; from refinekit.plugins.registry import list_recipes; "
            "list_recipes(); print('torch' in sys.modules)",
        ],
        capture_output=True,
        text=True,
    ).stdout.strip()
    print(f"torch imported by the CLI and the recipe listing: {torch_loaded or 'n/a (older layout)'}")
    if args.importtime:
        print(f"\nslowest imports of 'refinekit {args.importtime}' (cumulative ms):")
        for micros, name in slowest_imports([sys.executable, "-m", "refinekit", args.importtime]):
            print(f"  {micros / 1000:8.1f}  {name.strip()}")


if __name__ == "__main__":
    main()
