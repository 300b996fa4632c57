"""Mixed precision: which hosts train faster under bf16 autocast (``amp: auto | bf16 | off``).

bf16 autocast pays where the matrix units take bf16 natively: CUDA GPUs with bf16 support, and
x86 CPUs with AMX-BF16 (Intel Sapphire Rapids and later) or AVX512-BF16 (AMD Zen 4 and later).
Elsewhere oneDNN emulates bf16 and autocast is slower than FP32, so ``auto`` keeps FP32.
Latent weights and optimizer state stay FP32 in every mode (autocast casts inside the ops only).
"""

from __future__ import annotations

import functools
import platform
from pathlib import Path

__all__ = ["cpu_flags", "cpu_native_bf16", "cpu_model", "resolve_amp"]

_BF16_FLAGS = ("amx_bf16", "avx512_bf16")


@functools.lru_cache(maxsize=1)
def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags (``/proc/cpuinfo``'s ``flags``, or ``Features`` on ARM); empty if unreadable."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return frozenset()
    for line in text.splitlines():
        if line.startswith(("flags", "Features")):
            return frozenset(line.split(":", 1)[1].split())
    return frozenset()


def cpu_native_bf16() -> bool:
    """True if this CPU has a native bf16 matrix/dot-product unit (AMX-BF16 or AVX512-BF16)."""
    return any(f in cpu_flags() for f in _BF16_FLAGS)


@functools.lru_cache(maxsize=1)
def cpu_model() -> str:
    """The CPU model string (``/proc/cpuinfo``'s ``model name``), for recording next to timings."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def resolve_amp(mode: str, device) -> bool:
    """Whether to train under bf16 autocast for config ``amp`` = ``mode`` on ``device``."""
    if mode == "off":
        return False
    if mode == "bf16":
        return True
    if mode != "auto":
        raise ValueError(f"amp must be one of auto, bf16, off, got {mode!r}")
    import torch

    dev = torch.device(device)
    if dev.type == "cuda":
        return bool(torch.cuda.is_bf16_supported())
    if dev.type == "cpu":
        return cpu_native_bf16()
    return False
