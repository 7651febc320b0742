"""Multi-process training under ``torchrun``: who this process is, and the few collectives training needs.

``torchrun --nproc_per_node=N -m refinekit run RECIPE ...`` starts N copies of
the command with ``RANK``/``WORLD_SIZE``/``LOCAL_RANK`` set. :func:`setup` joins
them into one process group (NCCL on GPUs, gloo on CPUs); the trainer then wraps
R and D in DistributedDataParallel. Without those variables everything here is a
no-op for a single process, so no code path needs a distributed special case
just to run alone.
"""

from __future__ import annotations

import atexit
import os
import sys
from dataclasses import dataclass
from typing import Any, NoReturn

import torch
import torch.distributed as dist

from refinekit.errors import ConfigError

# Spaces the per-rank seed streams apart, so rank r's batches never replay rank 0's.
RANK_SEED_STRIDE = 1_000_003


@dataclass(frozen=True)
class Topology:
    """This process's place among the training processes."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        """Rank 0 alone writes checkpoints, samples, metrics and prints."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    def seed(self, base: int) -> int:
        """A per-rank seed: rank 0 keeps ``base``, so a single-process run is unchanged."""
        return base + RANK_SEED_STRIDE * self.rank


def topology() -> Topology:
    """The current process's :class:`Topology` (a single process when no group is initialised)."""
    if not (dist.is_available() and dist.is_initialized()):
        return Topology()
    return Topology(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))


def setup(device: torch.device) -> Topology:
    """Join the torchrun process group if this process was started by torchrun; idempotent.

    Args:
        device: the training device type; picks NCCL (cuda) or gloo (cpu).
    """
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1 or (dist.is_available() and dist.is_initialized()):
        return topology()
    if not dist.is_available():
        raise ConfigError("WORLD_SIZE is set (torchrun?) but this PyTorch build has no torch.distributed")
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if device.type == "cuda":
        if local_rank >= torch.cuda.device_count():
            raise ConfigError(
                f"torchrun started local rank {local_rank} but only {torch.cuda.device_count()} GPUs are visible; "
                "use --nproc_per_node no larger than the number of GPUs"
            )
        torch.cuda.set_device(local_rank)
        dist.init_process_group("nccl", device_id=torch.device("cuda", local_rank))
    else:
        dist.init_process_group("gloo")
    atexit.register(_teardown)
    return topology()


def _teardown() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def exit_rank(code: int) -> NoReturn:
    """End this torchrun process with ``code`` once every rank gets here, without the interpreter's teardown.

    Gloo's worker threads free the tensors of the last collectives after those
    return, and freeing a tensor that Python has seen takes the GIL. Once the
    interpreter's teardown has begun, a thread asking for the GIL is ended on the
    spot, which aborts the process ("terminate called without an active
    exception"; 1 of 10 two-rank CPU runs, see pytorch/pytorch#179291). So
    a rank waits for the others (none leaves while rank 0 still writes the run
    folder), closes the process group, flushes its output and exits directly.
    """
    barrier()
    _teardown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def barrier() -> None:
    """Wait for every rank (no-op alone)."""
    if topology().distributed:
        dist.barrier()


def all_reduce_sum(tensor: torch.Tensor) -> torch.Tensor:
    """Sum ``tensor`` over ranks in place (no-op alone)."""
    if topology().distributed:
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def gather_to_main(value: Any) -> list[Any] | None:
    """Every rank's ``value`` on rank 0, in rank order; None on the other ranks. Alone: ``[value]``."""
    topo = topology()
    if not topo.distributed:
        return [value]
    gathered: list[Any] | None = [None] * topo.world_size if topo.is_main else None
    dist.gather_object(value, gathered, dst=0)
    return gathered
