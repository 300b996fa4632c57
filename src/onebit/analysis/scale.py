"""Scale distortion of binary layers (BiPointNet Sec. 3.3.1, Fig. 3, Eq. 9).

The scale of a tensor is its standard deviation σ. For a binary layer with input A and weight W,

    ratio = σ(binary layer output) / σ(A ⊛ W),

where A ⊛ W is the same layer in full precision (same weights and bias, quantizers and scales
bypassed) on the same input. Without scaling, Theorem 2 gives σ(B_a ⊙ B_w) ≈ √m for m input
channels, so the ratio is far from 1; LSR's α₀ is exactly 1/ratio of the unscaled product.
"""

from __future__ import annotations

import torch
from torch import nn

from .layers import float_forward

__all__ = ["layer_scale", "std_ratio"]


def std_ratio(binary_out: torch.Tensor, float_out: torch.Tensor) -> dict[str, float]:
    """``{"std_binary", "std_float", "ratio"}`` with ratio = σ(binary_out)/σ(float_out) (population σ).

    The ratio is NaN when σ(float_out) is 0 (nothing to compare with).
    """
    sb = float(binary_out.detach().to(torch.float64).std(unbiased=False))
    sf = float(float_out.detach().to(torch.float64).std(unbiased=False))
    return {"std_binary": sb, "std_float": sf, "ratio": sb / sf if sf > 0 else float("nan")}


def _subsample(layer: nn.Module, x: torch.Tensor, y: torch.Tensor, max_rows: int, gen: torch.Generator):
    """Matching slices of a layer's input and output, bounded in size so the float re-run stays cheap.

    Linear layers act row-wise on (..., C), so random rows are taken; convolutions mix neighbours,
    so whole samples (leading items of the batch) are kept instead.
    """
    if isinstance(layer, nn.Linear):
        xr = x.reshape(-1, x.shape[-1])
        yr = y.reshape(-1, y.shape[-1])
        if xr.shape[0] > max_rows:
            idx = torch.randperm(xr.shape[0], generator=gen)[:max_rows].to(xr.device)
            xr, yr = xr[idx], yr[idx]
        return xr, yr
    per_sample = max(1, x[0].numel())
    k = max(1, min(x.shape[0], (max_rows * 64) // per_sample))
    return x[:k], y[:k]


@torch.no_grad()
def layer_scale(layer: nn.Module, x: torch.Tensor, y: torch.Tensor, max_rows: int = 4096,
                generator: torch.Generator | None = None) -> dict[str, float]:
    """Scale distortion of one binary layer given its input ``x`` and actual output ``y``."""
    gen = generator if generator is not None else torch.Generator().manual_seed(0)
    xs, ys = _subsample(layer, x.detach(), y.detach(), int(max_rows), gen)
    return std_ratio(ys, float_forward(layer, xs.to(layer.weight.dtype)))
