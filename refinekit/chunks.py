"""How many images a network runs at once on a CPU: few enough that the activations stay in cache.

SimGAN's refiner keeps full-resolution activations of 64 channels. A whole batch
of a few hundred eye images makes every one of them tens of megabytes, which
spill out of the CPU's last-level cache, and each convolution then waits on
memory. Running the same batch in chunks of about 64,000 pixels (33 images of
35x55) measured, on a 2-core AMD EPYC in fp32: refiner inference at batch 512,
68 -> 131 img/s; refiner forward and backward at batch 512, 19 -> 26 img/s.
GPUs have no such cliff and take the whole batch.
"""

from __future__ import annotations

from typing import Callable

import torch

CPU_CHUNK_PIXELS = 64_000
"""Pixels per chunk on a CPU: one 64-channel float32 activation of a chunk is about 16 MB."""


def images_per_chunk(device: torch.device, height: int, width: int, batch: int) -> int:
    """The chunk size for ``batch`` images of ``height`` x ``width`` on ``device``: the whole batch off the CPU.

    Examples:
        >>> images_per_chunk(torch.device("cpu"), 35, 55, 512)
        33
        >>> images_per_chunk(torch.device("cpu"), 224, 224, 8)
        1
        >>> images_per_chunk(torch.device("cuda"), 35, 55, 512)
        512
    """
    if device.type != "cpu":
        return batch
    return max(1, min(batch, CPU_CHUNK_PIXELS // (height * width)))


def forward_in_chunks(module: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, chunk: int) -> torch.Tensor:
    """``module(x)`` computed ``chunk`` images at a time, for modules that treat images independently."""
    if len(x) <= chunk:
        return module(x)
    return torch.cat([module(part) for part in x.split(chunk)])
