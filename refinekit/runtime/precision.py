"""Device and numeric precision choices, made once and reported to the user.

``auto`` must be fast *and* safe. bf16 keeps fp32's exponent range, so it needs
no loss scaling; fp16 does, so ``auto`` never picks it. On CPUs bf16 is only
fast with native bf16 matrix units (AMX, AVX-512 BF16): elsewhere oneDNN
emulates it, and on an AVX2-only AMD EPYC the paper's refiner trained about 7x
*slower* in bf16 than in fp32 (benchmarks/README.md). So on CPU ``auto`` first
checks the CPU flags, then times one refiner-sized convolution in both dtypes
and keeps bf16 only when it is clearly faster.
"""

from __future__ import annotations

import functools
import time
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Callable, ContextManager

import torch
import torch.nn.functional as F

from refinekit.errors import ConfigError

_DTYPES = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}
# bf16 must beat fp32 by this factor in the probe: a small win is not worth the rounding.
MIN_BF16_SPEEDUP = 1.2


@dataclass(frozen=True)
class Precision:
    """An autocast setting: ``name`` is what the run prints, ``reason`` why it was picked."""

    name: str
    dtype: torch.dtype | None
    device_type: str
    reason: str = ""

    @property
    def needs_scaler(self) -> bool:
        return self.dtype == torch.float16 and self.device_type == "cuda"

    def autocast(self) -> ContextManager[object]:
        if self.dtype is None:
            return nullcontext()
        return torch.autocast(self.device_type, dtype=self.dtype)


def resolve_device(name: str) -> torch.device:
    """``auto`` -> cuda when available, else cpu. Asking for cuda without one is an error, not a fallback."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device 'cuda' was requested but no CUDA GPU is visible; use --device cpu or auto")
    return torch.device(name)


def cpu_has_fast_bf16() -> bool:
    """True on CPUs with native bf16 matrix units (AMX or AVX-512 BF16) that oneDNN can use."""
    try:
        with open("/proc/cpuinfo") as f:
            flags = f.read()
    except OSError:
        return False
    native = "amx_bf16" in flags or "avx512_bf16" in flags
    return native and torch.backends.mkldnn.is_available() and bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())


@functools.cache
def cpu_bf16_speedup(batch: int = 8, repeats: int = 3) -> float:
    """fp32 time / bf16 time of a 64-channel 3x3 convolution forward and backward at 35x55, channels_last.

    That layer is nearly all of the paper refiner's work, so its ratio predicts a
    whole step's. Measured once per process (about a tenth of a second).
    """
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(batch, 64, 35, 55, generator=generator).contiguous(memory_format=torch.channels_last)
    weight = torch.randn(64, 64, 3, 3, generator=generator).contiguous(memory_format=torch.channels_last)
    weight.requires_grad_(True)

    def best_time(dtype: torch.dtype | None) -> float:
        times = []
        for _ in range(repeats + 1):
            start = time.perf_counter()
            with torch.autocast("cpu", dtype=dtype or torch.bfloat16, enabled=dtype is not None):
                out = F.conv2d(x, weight, padding=1)
            out.float().sum().backward()
            times.append(time.perf_counter() - start)
        return min(times[1:])  # the first call pays oneDNN's one-off kernel selection

    return best_time(None) / best_time(torch.bfloat16)


def resolve_precision(
    name: str, device: torch.device, bf16_speedup: Callable[[], float] = cpu_bf16_speedup
) -> Precision:
    """Pick the autocast dtype; ``auto`` picks bf16 only where it is native and, on CPU, measured faster.

    Args:
        name: ``auto``, ``fp32``, ``bf16`` or ``fp16``.
        device: the training or inference device.
        bf16_speedup: the CPU probe (a parameter so tests can stand in for the hardware).
    """
    if name == "auto":
        if device.type == "cuda" and torch.cuda.is_bf16_supported():
            return Precision("bf16", torch.bfloat16, "cuda", "auto: the GPU supports bf16")
        if device.type == "cpu" and cpu_has_fast_bf16():
            speedup = bf16_speedup()
            if speedup >= MIN_BF16_SPEEDUP:
                reason = f"auto: CPU has AMX/AVX-512 BF16, bf16 measured {speedup:.2f}x fp32"
                return Precision("bf16", torch.bfloat16, "cpu", reason)
            reason = f"auto: CPU has bf16 units but bf16 measured only {speedup:.2f}x fp32"
            return Precision("fp32", None, "cpu", reason)
        return Precision("fp32", None, device.type, "auto: no native bf16 on this device")
    if name not in _DTYPES:
        raise ConfigError(f"precision {name!r} is not one of auto, fp32, bf16, fp16")
    return Precision(name, _DTYPES[name], device.type, "requested")


def precision_named(name: str, device: torch.device, reason: str) -> Precision:
    """The :class:`Precision` called ``name`` (as a checkpoint records it), without probing again."""
    if name not in _DTYPES:
        raise ConfigError(f"precision {name!r} is not one of fp32, bf16, fp16")
    return Precision(name, _DTYPES[name], device.type, reason)
