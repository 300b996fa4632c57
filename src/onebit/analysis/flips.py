"""Weight flip ratio: fraction of binarized weight signs that changed between two records.

Like Larq's FlipRatio metric: with S_t the sign tensor of a layer's binarized weight at record t,

    flip(t) = mean(S_t ≠ S_{t−1}).

A ratio near 0 means the binary weights have settled; the latent weights may still move.
"""

from __future__ import annotations

import torch
from torch import nn

from .layers import binary_layers, weight_factors

__all__ = ["FlipTracker", "flip_ratio"]


def flip_ratio(previous: torch.Tensor, current: torch.Tensor) -> float:
    """Fraction of positions whose sign differs; inputs are sign (±1) or bool (True = +1) tensors."""
    if previous.shape != current.shape:
        raise ValueError(f"flip_ratio: shapes differ: {tuple(previous.shape)} vs {tuple(current.shape)}")
    if previous.numel() == 0:
        raise ValueError("flip_ratio: empty tensors")
    p = previous if previous.dtype == torch.bool else previous >= 0
    c = current if current.dtype == torch.bool else current >= 0
    return float((p != c).to(torch.float64).mean())


class FlipTracker:
    """Keeps the last binarized weight signs of every weight-binarized layer (as bool, 1 byte each)."""

    def __init__(self) -> None:
        self._last: dict[str, torch.Tensor] = {}

    @torch.no_grad()
    def update(self, model: nn.Module, signs: dict[str, torch.Tensor] | None = None) -> dict[str, float]:
        """Record the current signs and return layer name → flip ratio since the previous update.

        Layers seen for the first time (or whose shape changed) get no entry. ``signs`` may give
        precomputed sign tensors per layer name (avoids a second ``factorize``).
        """
        if signs is None:
            signs = {}
            for name, layer in binary_layers(model):
                if getattr(layer, "kernel_quantizer", None) is not None:
                    signs[name] = weight_factors(layer, name)[0]
        out: dict[str, float] = {}
        for name, s in signs.items():
            cur = (s >= 0).detach().cpu()
            prev = self._last.get(name)
            if prev is not None and prev.shape == cur.shape:
                out[name] = flip_ratio(prev, cur)
            self._last[name] = cur
        return out
