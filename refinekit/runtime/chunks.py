"""How many images a network runs at once on a CPU: few enough that the activations stay in cache.

SimGAN's refiner keeps full-resolution activations of 64 channels. A whole batch
of a few hundred eye images makes every one of them tens of megabytes, which
spill out of the CPU's last-level cache, and each convolution then waits on
memory. Chunks of a power of two images (oneDNN's blocked kernels handle 32
faster than 33) of about 32,000 pixels, 16 images of 35x55, measured on a
2-core AMD EPYC in fp32: refiner inference at batch 512, 70 -> 115 img/s;
refiner forward and backward at batch 256, 19 (whole batch) -> 29 img/s.
GPUs have no such cliff and take the whole batch.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Callable, Iterator

import torch
from torch import nn

CPU_CHUNK_PIXELS = 32_768
"""Most pixels per chunk on a CPU: one 64-channel float32 activation of a chunk is at most 8 MiB."""


def images_per_chunk(device: torch.device, height: int, width: int, batch: int) -> int:
    """The chunk size for ``batch`` images of ``height`` x ``width`` on ``device``: the whole batch off the CPU.

    Examples:
        >>> images_per_chunk(torch.device("cpu"), 35, 55, 512)
        16
        >>> images_per_chunk(torch.device("cpu"), 28, 28, 64)
        32
        >>> images_per_chunk(torch.device("cpu"), 224, 224, 8)
        1
        >>> images_per_chunk(torch.device("cuda"), 35, 55, 512)
        512
    """
    if device.type != "cpu":
        return batch
    fits = CPU_CHUNK_PIXELS // (height * width)
    return min(batch, 1 << max(fits.bit_length() - 1, 0))  # the largest power of two that fits, at least 1


def forward_in_chunks(module: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, chunk: int) -> torch.Tensor:
    """``module(x)`` computed ``chunk`` images at a time, for modules that treat images independently."""
    if len(x) <= chunk:
        return module(x)
    return torch.cat([module(part) for part in x.split(chunk)])


def batch_independent(module: nn.Module) -> bool:
    """Whether ``module`` in training mode computes each image's output from that image alone.

    Batch norm does not: its statistics are the batch's, so running a batch in
    chunks changes every output and gradient (relative difference 2.6 measured
    with ``timm-unet``). A component can say for itself with an attribute
    ``refinekit_batch_independent = True`` or ``False``.

    Examples:
        >>> batch_independent(nn.Conv2d(1, 4, 3)), batch_independent(nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4)))
        (True, False)
    """
    declared = getattr(module, "refinekit_batch_independent", None)
    if declared is not None:
        return bool(declared)
    return not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in module.modules())


@contextmanager
def frozen_batch_statistics(module: nn.Module) -> Iterator[None]:
    """Run ``module`` as in training (batch statistics) without moving its running statistics.

    For the network that is not being updated in the other's step (D in R's
    update, R in D's): its running mean and variance must only follow its own
    updates, or eval-mode outputs (exports, samples) drift with the other's training.
    """
    norms = [m for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats]
    for norm in norms:
        norm.track_running_stats = False  # train mode: normalise by the batch, leave the buffers alone
    try:
        yield
    finally:
        for norm in norms:
            norm.track_running_stats = True
