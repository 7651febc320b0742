"""Device and numeric precision choices, made once and reported to the user."""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass
from typing import ContextManager

import torch

from refinekit.errors import ConfigError

_DTYPES = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


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
    """True on CPUs with native bf16 matrix units (AMX or AVX-512 BF16), where bf16 autocast is faster."""
    try:
        with open("/proc/cpuinfo") as f:
            flags = f.read()
    except OSError:
        return False
    return "amx_bf16" in flags or "avx512_bf16" in flags


def resolve_precision(name: str, device: torch.device) -> Precision:
    """Pick the autocast dtype. ``auto`` chooses bf16 only where it is native: fast and without loss scaling."""
    if name == "auto":
        if device.type == "cuda" and torch.cuda.is_bf16_supported():
            return Precision("bf16", torch.bfloat16, "cuda", "auto: the GPU supports bf16")
        if device.type == "cpu" and cpu_has_fast_bf16():
            return Precision("bf16", torch.bfloat16, "cpu", "auto: the CPU has AMX/AVX-512 BF16")
        return Precision("fp32", None, device.type, "auto: no native bf16 on this device")
    if name not in _DTYPES:
        raise ConfigError(f"precision {name!r} is not one of auto, fp32, bf16, fp16")
    return Precision(name, _DTYPES[name], device.type, "requested")
