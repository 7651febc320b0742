"""OpenMP threads that sleep while they wait, so that a shared CPU does not stall torch.

torch's CPU operators run on OpenMP threads (libgomp in the PyPI wheels) and end
in a barrier. By default a thread that reaches the barrier first spins for a
while; when other jobs share the cores, the spinning threads take time slices
from the thread everyone waits for. On a 2-core AMD EPYC with three other
single-thread jobs running, the paper's refiner ran inference at 25-30 img/s on
two spinning threads and 43-48 img/s on two sleeping ones (one thread: 25-30);
with the machine idle the two policies were within the run-to-run spread
(``benchmarks/README.md``). So ``refinekit``'s commands ask for sleeping
threads unless the user chose.

libgomp reads the setting once, when torch loads it, so it has to be in the
environment before ``import torch``: the CLI sets it before any command imports
torch. Programs that import torch themselves set ``OMP_WAIT_POLICY=PASSIVE`` in
their environment to get the same. The policy changes no result: the threads
split the work as before.
"""

from __future__ import annotations

import os
import sys

WAIT_POLICY = "OMP_WAIT_POLICY"


def wait_passively() -> bool:
    """Ask OpenMP threads to sleep at barriers unless the user chose; True when it will take effect.

    It cannot take effect once torch is imported: libgomp has read its settings by then.
    """
    if WAIT_POLICY in os.environ or "torch" in sys.modules:
        return False
    os.environ[WAIT_POLICY] = "PASSIVE"
    return True
