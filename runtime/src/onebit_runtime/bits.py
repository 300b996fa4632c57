"""The bit-packing convention of the ``.onebit`` format (docs/format.md, "Bit packing"), shared by the
exporter and the runtime: channel c of a row is bit c mod 64 of 64-bit word c div 64, +1 ↔ 1, −1 ↔ 0,
sign(0) = +1, padding bits 0."""

from __future__ import annotations

import numpy as np


def pack_signs(x: np.ndarray) -> np.ndarray:
    """(R, k) array → (R, ⌈k/64⌉) uint64 with bit = (x ≥ 0) (sign(0) = +1); padding bits 0."""
    x = np.asarray(x)
    r, k = x.shape
    w = (k + 63) // 64
    b = np.zeros((r, w * 64), np.uint8)
    b[:, :k] = x >= 0
    return np.packbits(b, axis=1, bitorder="little").view("<u8").reshape(r, w)


def unpack_signs(bits: np.ndarray, k: int) -> np.ndarray:
    """(N, W) uint64 packed rows → (N, k) float32 ±1 (bit 1 ↔ +1)."""
    b = np.unpackbits(np.ascontiguousarray(bits).view(np.uint8), axis=1, bitorder="little")[:, :k]
    return b.astype(np.float32) * 2 - 1


def pack_flags(flags: np.ndarray) -> np.ndarray:
    """Per-channel 0/1 flags → ⌈n/8⌉ bytes, bit c mod 8 of byte c div 8 (a ``flip`` or ``invert`` tensor)."""
    return np.packbits(np.asarray(flags, np.uint8), bitorder="little")
