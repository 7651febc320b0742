"""The plain PyTorch SimGAN loop a competent user writes: the benchmark's baseline peer.

It runs in its own process, driven by ``benchmarks/peers/run.py`` over the same
stdin/stdout protocol as ``keras_simgan.py``, so that it gets the environment a
user's own script gets: refinekit's command line sets ``OMP_WAIT_POLICY`` (see
:mod:`refinekit.runtime.openmp`), a plain script does not.

* Round: NCHW fp32, float tensors in memory, D frozen (``requires_grad_(False)``)
  in R's update, R's forward under ``no_grad`` in D's update; the same algorithm
  as the other sides (one R update, one D update on half current refined images
  and half from a history buffer, against real ones).
* Inference: ``refiner(x)`` under ``no_grad``.

Protocol (one command per line on stdin, one JSON line per answer on stdout)::

    setup BATCH          build networks and data for BATCH; two warm-up rounds
                         -> {"threads": n, "gflop_per_image": f}
    train                one timed round   -> {"seconds": s}
    infer BATCH          one timed forward of BATCH images -> {"seconds": s, "gflop_per_image": f}
    quit
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from refinekit.components.discriminators import LocalPatchDiscriminator
from refinekit.components.refiners import SimGANResNet

SIZE = (35, 55)
POOL = 2048
LEARNING_RATE = 1e-4


def memory_images(seed: int) -> np.ndarray:
    """The same pool of uint8 images as every side draws from."""
    return np.random.default_rng(seed).integers(0, 256, (POOL, 1, *SIZE), dtype=np.uint8)


def gflop_of(work: Callable[[], object], images: int) -> float:
    with FlopCounterMode(display=False) as counter:
        work()
    return counter.get_total_flops() / images / 1e9


class PlainLoop:
    """The plain PyTorch round a competent user writes, with the same algorithm as the other sides."""

    def __init__(self, batch: int) -> None:
        torch.manual_seed(0)
        self.batch = batch
        self.refiner, self.discriminator = SimGANResNet(1), LocalPatchDiscriminator(1)
        self.opt_r = torch.optim.Adam(self.refiner.parameters(), lr=LEARNING_RATE)
        self.opt_d = torch.optim.Adam(self.discriminator.parameters(), lr=LEARNING_RATE)
        self.synthetic = torch.from_numpy(memory_images(0)).float() / 127.5 - 1
        self.real = torch.from_numpy(memory_images(1)).float() / 127.5 - 1
        self.buffer = torch.zeros(batch * 10, 1, *SIZE)
        self.buffer_size = 0
        self.generator = torch.Generator().manual_seed(0)

    def sample(self, images: torch.Tensor) -> torch.Tensor:
        return images[torch.randint(0, len(images), (self.batch,), generator=self.generator)]

    @staticmethod
    def patch_loss(logits: torch.Tensor, target: int) -> torch.Tensor:
        return F.cross_entropy(logits, torch.full((len(logits), *logits.shape[2:]), target))

    def __call__(self) -> None:
        synthetic = self.sample(self.synthetic)
        self.discriminator.requires_grad_(False)
        refined = self.refiner(synthetic)
        loss_r = (refined - synthetic).abs().mean() + self.patch_loss(self.discriminator(refined), 1)
        self.opt_r.zero_grad()
        loss_r.backward()
        self.opt_r.step()
        self.discriminator.requires_grad_(True)

        half = self.batch // 2
        synthetic, real = self.sample(self.synthetic), self.sample(self.real)
        with torch.no_grad():
            current = self.refiner(synthetic[:half] if self.buffer_size else synthetic)[:half]
        if self.buffer_size:
            index = torch.randint(0, self.buffer_size, (self.batch - half,), generator=self.generator)
            shown = torch.cat([current, self.buffer[index]])
        else:
            shown = torch.cat([current, current])[: self.batch]
        loss_d = self.patch_loss(self.discriminator(shown), 0) + self.patch_loss(self.discriminator(real), 1)
        self.opt_d.zero_grad()
        loss_d.backward()
        self.opt_d.step()
        loss_r.item(), loss_d.item()
        free = min(len(self.buffer) - self.buffer_size, half)
        self.buffer[self.buffer_size : self.buffer_size + free] = current[:free]
        self.buffer_size += free
        if free < half:
            slots = torch.randperm(len(self.buffer), generator=self.generator)[: half - free]
            self.buffer[slots] = current[free:]


def serve() -> None:
    """Answer the protocol in the module docstring until ``quit`` or end of input."""
    loop: PlainLoop | None = None
    refiner: SimGANResNet | None = None
    for line in sys.stdin:
        command, *args = line.split()
        reply: dict[str, object] = {}
        if command == "setup":
            loop = PlainLoop(int(args[0]))
            loop(), loop()  # the first fills the history buffer; oneDNN picks its kernels
            reply = {"threads": torch.get_num_threads(), "gflop_per_image": gflop_of(loop, loop.batch)}
        elif command == "train" and loop is not None:
            start = time.perf_counter()
            loop()
            reply = {"seconds": time.perf_counter() - start}
        elif command == "infer":
            batch = int(args[0])
            if refiner is None:
                torch.manual_seed(0)
                refiner = SimGANResNet(1).eval()
            images = torch.from_numpy(memory_images(0)[:batch]).float() / 127.5 - 1

            def forward() -> None:
                with torch.no_grad():
                    refiner(images)

            forward()
            start = time.perf_counter()
            forward()
            reply = {"seconds": time.perf_counter() - start, "gflop_per_image": gflop_of(forward, batch)}
        elif command == "quit":
            return
        else:
            reply = {"error": f"unknown or out-of-order command {command!r}"}
        print(json.dumps(reply), flush=True)


if __name__ == "__main__":
    serve()
