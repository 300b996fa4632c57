"""Information entropy of binarized aggregated features (BiPointNet Sec. 3.2, Fig. 4(a), Fig. 7).

For a binarized feature B = sign(Y) ∈ {−1, +1} (sign(0) = +1) the entropy is (Eq. 5)

    H(B) = −p log₂ p − (1 − p) log₂(1 − p),   p = P(B = +1),

at most 1 bit, reached when P(Y ≥ 0) = ½ (Proposition 1). Here p is estimated per channel over
all samples (clouds, or groups of a grouped pool) and H is averaged over channels. Max pooling of
batch-norm output gives p → 1 and H → 0 as the number of pooled points grows (Theorem 1);
EMA-max shifts the pool by δ*(n) so that p ≈ ½ and H ≈ 1.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .layers import eval_mode, pool_modules

__all__ = ["PoolCapture", "binary_entropy", "pooled_entropy", "sign_entropy"]


def binary_entropy(p):
    """H(p) = −p log₂ p − (1−p) log₂(1−p) in bits, with 0 log 0 = 0; float or tensor."""
    if isinstance(p, torch.Tensor):
        if p.numel() and (bool((p < 0).any()) or bool((p > 1).any())):
            raise ValueError("binary_entropy: probabilities must lie in [0, 1]")
        p = p.to(torch.float64)
        q = 1.0 - p
        return -(torch.special.xlogy(p, p) + torch.special.xlogy(q, q)) / math.log(2.0)
    p = float(p)
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"binary_entropy: probability must lie in [0, 1], got {p}")
    return -sum(v * math.log2(v) for v in (p, 1.0 - p) if v > 0.0)


def sign_entropy(y: torch.Tensor, per_channel: bool = False):
    """Mean over channels (last dim) of H(sign(y)), p estimated over all other dims.

    ``y`` is (..., C), e.g. pooled (B, C) or grouped (B, S, C) features; returns a float, or the
    (C,) float64 tensor of per-channel entropies with ``per_channel=True``.
    """
    if not isinstance(y, torch.Tensor) or y.dim() < 1 or y.numel() == 0:
        raise ValueError(f"sign_entropy: expected a non-empty (..., C) tensor, got {getattr(y, 'shape', y)!r}")
    rows = y.detach().reshape(-1, y.shape[-1])
    p = (rows >= 0).to(torch.float64).mean(dim=0)  # sign(0) = +1
    h = binary_entropy(p)
    return h if per_channel else float(h.mean())


class PoolCapture:
    """Context manager recording H(sign(output)) of every pooling module during forwards.

    ``entropies`` maps module name → list of entropies (one per call); ``order`` lists names in
    call order. Only the statistic is kept, never the tensors.
    """

    def __init__(self, model: nn.Module):
        self.model = model
        self.entropies: dict[str, list[float]] = {}
        self.positive: dict[str, list[float]] = {}
        self.order: list[str] = []
        self._handles = []

    def __enter__(self) -> PoolCapture:
        for name, m in pool_modules(self.model):
            self._handles.append(m.register_forward_hook(self._hook(name or type(m).__name__)))
        return self

    def _hook(self, name: str):
        def fn(module, inputs, output):
            y = output[0] if isinstance(output, (tuple, list)) else output
            if not isinstance(y, torch.Tensor) or y.numel() == 0:
                return
            self.entropies.setdefault(name, []).append(sign_entropy(y))
            self.positive.setdefault(name, []).append(float((y.detach() >= 0).float().mean()))
            if name in self.order:
                self.order.remove(name)
            self.order.append(name)

        return fn

    def __exit__(self, *exc) -> None:
        for h in self._handles:
            h.remove()
        self._handles.clear()

    def summary(self) -> dict[str, float]:
        """name → mean entropy over the calls, in call order."""
        return {n: sum(self.entropies[n]) / len(self.entropies[n]) for n in self.order}

    @property
    def global_name(self) -> str | None:
        """The pool called last in the forward: the global feature of PointNet-style models."""
        return self.order[-1] if self.order else None


@torch.no_grad()
def pooled_entropy(model: nn.Module, *inputs) -> dict[str, float]:
    """Run ``model(*inputs)`` once (eval mode, restored after) and return pool name → H(sign(pooled)).

    The dict is in call order; its last entry is the global (aggregated) feature. Empty when the
    model has no pooling module.
    """
    with eval_mode(model), PoolCapture(model) as cap:
        model(*inputs)
    return cap.summary()
