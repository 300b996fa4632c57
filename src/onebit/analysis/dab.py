"""DAB-Net's per-filter K, α, β (Mishra et al., WACV 2018, Sec. 4, Figs. 3-5).

DAB approximates a filter W (n values) by two levels: W̃ = α·e + β·(1 − e) with e ∈ {0, 1}ⁿ
holding K ones. From the quantizer contract (design.md) W̃ = a·signs + b per output channel with
a = (α − β)/2, b = (α + β)/2 and e = (signs + 1)/2, hence

    α = a + b,   β = b − a,   K = #{signs = +1},   normalized K = K/n.

For a sign-type binarizer (XNOR, BWN, ...) b = 0, so α = −β = a and K is the number of
non-negative weights: the XNOR-Net reference of DAB Fig. 4-5 (K/n ≈ ½).
"""

from __future__ import annotations

import torch
from torch import nn

from .layers import weight_factors

__all__ = ["filter_histogram", "filter_stats", "levels_from_factors"]


def levels_from_factors(signs: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> dict[str, torch.Tensor]:
    """Per-filter ``K`` (int64), ``n``, ``k_norm`` = K/n, ``alpha`` = a+b, ``beta`` = b−a from a factorization."""
    if signs.dim() < 1 or signs.shape[0] != a.numel() or a.shape != b.shape:
        raise ValueError(f"levels_from_factors: need signs (C_out, ...) and a, b of C_out values, got "
                         f"{tuple(signs.shape)}, {tuple(a.shape)}, {tuple(b.shape)}")
    flat = signs.reshape(signs.shape[0], -1)
    k = (flat > 0).sum(dim=1)
    n = flat.shape[1]
    a = a.detach().to(torch.float64).reshape(-1)
    b = b.detach().to(torch.float64).reshape(-1)
    return {"K": k, "n": n, "k_norm": k.to(torch.float64) / n, "alpha": a + b, "beta": b - a}


@torch.no_grad()
def filter_stats(layer: nn.Module, name: str = "") -> dict[str, torch.Tensor]:
    """K, K/n, α, β per output filter of a weight-binarized layer (see module doc).

    Computed from ``kernel_quantizer.factorize(weight)``, i.e. exactly the levels the forward
    uses (official-code options of the DAB quantizer included). ``source`` says whether it came
    from ``factorize`` or the sign(w) fallback (quantizers without a two-level form).
    """
    signs, a, b, source = weight_factors(layer, name)
    stats = levels_from_factors(signs, a, b)
    stats["source"] = source
    return stats


@torch.no_grad()
def filter_histogram(weight: torch.Tensor, index: int, bins: int = 32) -> dict:
    """Histogram of the latent weights of filter ``index`` (dim 0): ``counts`` and ``range`` [lo, hi]."""
    if not 0 <= index < weight.shape[0]:
        raise IndexError(f"filter_histogram: filter {index} out of range for {weight.shape[0]} filters")
    v = weight[index].detach().reshape(-1).to(torch.float64).cpu()
    lo, hi = float(v.min()), float(v.max())
    if hi <= lo:  # constant filter: one bin around the value
        lo, hi = lo - 0.5, hi + 0.5
    counts = torch.histc(v, bins=int(bins), min=lo, max=hi)
    return {"counts": [int(c) for c in counts.tolist()], "range": [lo, hi]}
