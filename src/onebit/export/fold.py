"""The maths the exporter folds into a ``.onebit`` file (torch-free): integer thresholds of a binarized
affine, their popcount-bound form and its storage type, BiPointNet's EMA-max offset.

The runtime never calls these: it reads what they produced through the format (docs/format.md). Where
the runtime folds the same rule itself (an EMA-max offset for a point count known only at run time),
libonebit's planner evaluates it with the same float32 / float64 operations, so both give the same bits.
"""

from __future__ import annotations

import math
from statistics import NormalDist

import numpy as np

__all__ = ["thresholds", "popcount_bounds", "bound_dtype", "ema_offset"]


def ema_offset(n: int) -> float:
    """δ*(n) = Φ⁻¹(0.5^(1/n)) (BiPointNet EMA-max), via the upper tail for precision at large n."""
    upper = -math.expm1(math.log(0.5) / n)
    return -NormalDist().inv_cdf(upper)


def thresholds(scale, bias, lo, hi, offset, k: int):
    """Integer threshold τ and flip bit per channel for bit = [clamp(s·dot + c, lo, hi) − offset ≥ 0].

    ``dot`` ∈ {−k, −k+2, …, k} is the XNOR product of k ±1 inputs. Every candidate is evaluated in
    float32 (the engine's float epilogue does the same arithmetic), and the set where the bit is 1 is
    written as dot ≥ τ (flip 0) or dot ≤ τ (flip 1); τ = −k (always 1) or k + 1 (never) encode
    constant channels (e.g. sign(ReLU(z)) = +1). Raises ValueError if a channel is not monotone.
    """
    s = np.asarray(scale, np.float32)[:, None]
    c = np.asarray(bias, np.float32)[:, None]
    dots = np.arange(-k, k + 1, 2, dtype=np.float32)[None, :]
    v = s * dots + c
    v = np.minimum(np.maximum(v, np.float32(lo)), np.float32(hi)) - np.float32(offset)
    on = v >= 0
    n = on.shape[0]
    tau = np.empty(n, np.int64)
    flip = np.zeros(n, np.uint8)
    d = np.arange(-k, k + 1, 2)
    for i in range(n):
        row = on[i]
        if row.all():
            tau[i] = -k
        elif not row.any():
            tau[i] = k + 1
        else:
            first, last = int(np.argmax(row)), len(row) - 1 - int(np.argmax(row[::-1]))
            if not row[first:last + 1].all():
                raise ValueError(f"channel {i}: the binarized output is not monotone in the binary product")
            if last == len(row) - 1:
                tau[i] = d[first]
            elif first == 0:
                tau[i], flip[i] = d[last], 1
            else:
                raise ValueError(f"channel {i}: the binarized output is not monotone in the binary product")
    return tau.astype(np.int32), flip


def popcount_bounds(tau, flip, k: int):
    """Engine form of a threshold: bit = (popcount(x xor w) ≤ P) xor flip, with dot = k − 2·popcount."""
    tau = np.asarray(tau, np.int64)
    flip = np.asarray(flip, np.uint8)
    p_up = np.floor_divide(k - tau, 2)             # dot ≥ τ ⇔ pc ≤ ⌊(k−τ)/2⌋
    p_dn = -np.floor_divide(-(k - tau), 2) - 1      # dot ≤ τ ⇔ ¬(pc ≤ ⌈(k−τ)/2⌉ − 1)
    p = np.where(flip.astype(bool), p_dn, p_up)
    return np.clip(p, -1, k).astype(np.int64), flip


def bound_dtype(k: int) -> str:
    """Smallest dtype of a popcount bound in [0, k + 1] (u1 up to k = 254, then i2, then i4)."""
    return "u1" if k + 1 <= 255 else "<i2" if k + 1 <= 32767 else "<i4"
