"""Host memory allocator settings for training (config ``allocator: auto | reuse | system``).

A training step allocates and frees the same large activation buffers every time. glibc's
malloc serves blocks above its mmap threshold (128 KiB to 32 MiB) with fresh ``mmap`` calls and
returns them with ``munmap`` when freed, so every step page-faults its activations back in and
the kernel zeroes each page again. ``reuse`` tells malloc to keep freed memory for reuse (no
``mmap`` for large blocks, no trimming of the heap top): the process keeps its peak footprint,
and PointNet train steps (batch 32 x 256 points, bf16, one thread, AMD EPYC) ran 1.15-1.48x
faster (``benchmarks/train_step_ab.py --ab allocator``). The maths is untouched.

The setting is process-wide and lasts for the process (it changes how later allocations are
served, not what they hold); ``system`` leaves malloc as it is. Peers get the same effect by
preloading tcmalloc or jemalloc (``LD_PRELOAD``), which this needs no package for.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import platform

__all__ = ["ALLOCATOR_MODES", "keep_freed_memory", "resolve_allocator"]

ALLOCATOR_MODES = ("auto", "reuse", "system")
"""Values of config ``allocator``: ``auto`` (reuse when training on the CPU with glibc), ``reuse``, ``system``."""

# mallopt parameters (glibc <malloc.h>)
_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4
_TRIM_NEVER = 2**31 - 1


@functools.lru_cache(maxsize=1)
def _glibc():
    """glibc's C library handle, or None where malloc is not glibc's (macOS, musl, Windows)."""
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return None
    try:
        lib = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        lib.mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
        lib.mallopt.restype = ctypes.c_int
        return lib
    except (OSError, AttributeError):
        return None


@functools.lru_cache(maxsize=1)
def keep_freed_memory() -> bool:
    """Make glibc malloc keep freed memory for reuse (once per process); False where it cannot."""
    lib = _glibc()
    if lib is None:
        return False
    # both calls return 1 on success; 0 leaves malloc unchanged for that parameter
    return bool(lib.mallopt(_M_MMAP_MAX, 0)) & bool(lib.mallopt(_M_TRIM_THRESHOLD, _TRIM_NEVER))


def resolve_allocator(mode: str, device) -> bool:
    """Apply config ``allocator`` = ``mode`` for training on ``device``; True if malloc now reuses.

    ``auto`` means ``reuse`` when training on the CPU with glibc; ``reuse`` asks for it anywhere
    (False where malloc is not glibc's); ``system`` changes nothing.
    """
    if mode not in ALLOCATOR_MODES:
        raise ValueError(f"allocator must be one of {', '.join(ALLOCATOR_MODES)}, got {mode!r}")
    if mode == "system":
        return False
    if mode == "auto" and getattr(device, "type", str(device)) != "cpu":
        return False
    return keep_freed_memory()
