"""Point aggregation: plain max/avg and BiPointNet's Entropy-Maximizing Aggregation (EMA).

BiPointNet (Qin et al., ICLR 2021), Sec. 3.2 and App. A.5/A.6: binarizing the output of a max over
n points homogenises it, because max(X) > 0 almost surely for large n. EMA-max first shifts the
input, T(X) = X − δ*, by the offset that makes P(max(X − δ*) < 0) = ½ (maximum entropy of the
sign), which for X ~ N(0, 1) i.i.d. is the median of the max of n standard normals:

    δ*(n) = Φ⁻¹(0.5^(1/n)).

The offset is only optimal on the scale the paper assumes: the pooled features are the output of
a batch-norm layer, i.e. roughly N(0, 1) per channel. EMA-avg is the mean: for a symmetric input
the median of the mean is 0, so δ* = 0 (paper App. A.6).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from statistics import NormalDist

import torch
from torch import nn

__all__ = [
    "OFFICIAL_EMA_OFFSETS",
    "AvgPool",
    "EMAAvgPool",
    "EMAMaxPool",
    "MaxPool",
    "POOL_KINDS",
    "max_over",
    "ema_offset",
    "ema_offset_mc",
    "make_pool",
]

# Constants of the official BiPointNet code (Monte-Carlo estimates, one per point count it used).
OFFICIAL_EMA_OFFSETS: dict[int, float] = {
    20: 1.8268,
    64: 2.2983,
    258: 2.7829,
    1024: 3.2041,
    2048: 3.4025,
    4096: 3.5836,
}
"""δ* per point count n in the official BiPointNet code (its Monte-Carlo estimates), for comparison
with ``ema_offset``.
"""

_LOG_HALF = math.log(0.5)
_STD_NORMAL = NormalDist()


def ema_offset(n):
    """δ*(n) = Φ⁻¹(0.5^(1/n)), BiPointNet's EMA-max offset for n i.i.d. N(0, 1) inputs.

    ``n`` is an int (returns a float) or an integer tensor of point counts (returns a float64
    tensor of the same shape, e.g. one offset per cloud of a masked batch). Computed through the
    upper tail, Φ⁻¹(p) = −Φ⁻¹(1 − p) with 1 − p = −expm1(log(0.5)/n), because 0.5^(1/n) rounds
    towards 1 for large n and Φ⁻¹ near 1 would lose all its digits.
    """
    if isinstance(n, torch.Tensor):
        if n.is_floating_point() and not bool((n == n.round()).all()):
            raise ValueError("ema_offset: point counts must be whole numbers")
        nd = n.to(torch.float64)
        if nd.numel() and bool((nd < 1).any()):
            raise ValueError(f"ema_offset: every point count must be >= 1, got min {int(nd.min())}")
        upper = -torch.expm1(_LOG_HALF / nd)
        return 0.0 - torch.special.ndtri(upper)  # 0.0 - x turns -0.0 (n = 1) into 0.0
    if isinstance(n, bool) or int(n) != n:
        raise TypeError(f"ema_offset: n must be an integer point count, got {n!r}")
    n = int(n)
    if n < 1:
        raise ValueError(f"ema_offset: the number of pooled points must be >= 1, got {n}")
    upper = -math.expm1(_LOG_HALF / n)
    return 0.0 - _STD_NORMAL.inv_cdf(upper)


def _normal_sampler(shape: tuple[int, ...], generator: torch.Generator) -> torch.Tensor:
    return torch.randn(shape, generator=generator, dtype=torch.float64)


def ema_offset_mc(
    n: int,
    aggregation: str | Callable[[torch.Tensor], torch.Tensor] = "max",
    sampler: Callable[[tuple[int, ...], torch.Generator], torch.Tensor] | None = None,
    samples: int = 10000,
    seed: int = 0,
    return_stderr: bool = False,
    chunk_elems: int = 1 << 22,
):
    """Monte-Carlo EMA offset (BiPointNet App. A.5): the median of ``aggregation`` over n draws.

    δ* is the value that puts half of the aggregates below it, so that sign(agg(X) − δ*) is
    balanced. ``aggregation`` is "max", "avg"/"mean" or a callable reducing the last dim;
    ``sampler(shape, generator)`` draws the inputs (default: N(0, 1) in float64). With
    ``return_stderr`` also returns a distribution-free standard error of the median, half the
    width of the ±1σ binomial order-statistic interval around it.
    """
    n = int(n)
    samples = int(samples)
    if n < 1 or samples < 2:
        raise ValueError(f"ema_offset_mc: need n >= 1 and samples >= 2, got n={n}, samples={samples}")
    if isinstance(aggregation, str):
        if aggregation == "max":
            agg = lambda t: t.amax(dim=-1)  # noqa: E731
        elif aggregation in ("avg", "mean"):
            agg = lambda t: t.mean(dim=-1)  # noqa: E731
        else:
            raise ValueError(f"ema_offset_mc: aggregation must be 'max', 'avg' or a callable, got {aggregation!r}")
    elif callable(aggregation):
        agg = aggregation
    else:
        raise TypeError(f"ema_offset_mc: aggregation must be a string or a callable, got {type(aggregation)}")
    draw = sampler or _normal_sampler
    gen = torch.Generator().manual_seed(int(seed))
    rows = max(1, chunk_elems // n)  # bounded memory for large n
    values = []
    done = 0
    while done < samples:
        m = min(rows, samples - done)
        x = draw((m, n), gen)
        if tuple(x.shape) != (m, n):
            raise ValueError(f"ema_offset_mc: sampler returned shape {tuple(x.shape)}, expected {(m, n)}")
        values.append(agg(x).to(torch.float64).reshape(-1))
        done += m
    v = torch.cat(values).sort().values
    med = float(v.quantile(0.5))
    if not return_stderr:
        return med
    half = 0.5 * math.sqrt(samples)
    lo = int(max(0, math.floor(samples / 2 - half)))
    hi = int(min(samples - 1, math.ceil(samples / 2 + half)))
    return med, float(v[hi] - v[lo]) / 2.0


def _prepare_mask(mask: torch.Tensor, x: torch.Tensor, dim: int, keepdim: bool, who: str):
    """Validate ``mask`` and return (mask broadcastable to x, valid counts broadcastable to the output).

    Accepted shapes: ``x.shape[:dim + 1]`` (e.g. (B, N) for (B, N, C) pooled over dim 1, or
    (B, S, K) for grouped (B, S, K, C) pooled over dim 2), or (B, N) with N = x.shape[dim] for any
    dim (e.g. (B, C, N) pooled over dim 2).
    """
    if dim == 0:
        raise ValueError(f"{who}: cannot mask when pooling over the batch dim 0")
    m = mask.to(torch.bool)
    out_rank = x.dim() if keepdim else x.dim() - 1
    if tuple(m.shape) == tuple(x.shape[: dim + 1]):
        mb = m.reshape(tuple(m.shape) + (1,) * (x.dim() - dim - 1))
        n = m.sum(dim=-1)
        n_shape = tuple(n.shape) + ((1,) if keepdim else ()) + (1,) * (x.dim() - dim - 1)
    elif m.dim() == 2 and m.shape[0] == x.shape[0] and m.shape[1] == x.shape[dim]:
        shape = [1] * x.dim()
        shape[0], shape[dim] = m.shape
        mb = m.reshape(shape)
        n = m.sum(dim=1)
        n_shape = (n.shape[0],) + (1,) * (out_rank - 1)
    else:
        raise ValueError(
            f"{who}: mask must have shape (batch, points) = ({x.shape[0]}, {x.shape[dim]}) or "
            f"{tuple(x.shape[: dim + 1])} for input {tuple(x.shape)} pooled over dim {dim}, got {tuple(m.shape)}"
        )
    if bool((n == 0).any()):
        bad = torch.nonzero(n == 0).tolist()
        raise ValueError(f"{who}: group(s) {bad} have no valid point in the mask")
    return mb, n, n_shape


def _split(shape: torch.Size, dim: int) -> tuple[int, int, int]:
    """(outer, n, inner): ``shape`` seen as a contiguous (outer, n, inner) block around ``dim``."""
    return math.prod(shape[:dim]), shape[dim], math.prod(shape[dim + 1:])


def _max_with_indices(x: torch.Tensor, dim: int, keepdim: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """``torch.max(x, dim)``'s values and indices (the first maximum on ties), computed fast.

    torch's CPU max-with-indices reduces a non-innermost dim element by element; a 1-D max pool
    over the same dim of the (outer, inner, n) view runs vectorized over the inner dim, with the
    same values and the same first-maximum indices.
    """
    shape = x.shape
    pre, n, post = _split(shape, dim)
    if not x.is_floating_point() or x.numel() == 0:
        return x.max(dim=dim, keepdim=keepdim)
    values, indices = torch.nn.functional.max_pool1d(
        x.reshape(pre, n, post).transpose(1, 2), n, return_indices=True)  # (pre, post, 1)
    out = tuple(shape[:dim]) + ((1,) if keepdim else ()) + tuple(shape[dim + 1:])
    return values.reshape(out), indices.reshape(out)


class _MaxOverDim(torch.autograd.Function):
    """``x.max(dim)`` with a fast forward and a backward that writes each gradient at its argmax.

    The values, the indices (first maximum on ties) and the gradient are exactly those of
    ``torch.max(x, dim)``; only the kernels differ. Autograd's own backward scatters along ``dim``
    into a zero tensor, and torch's CPU scatter has no vectorized bf16 path; an ``index_put_`` at the
    flat positions has (``benchmarks/train_step_ab.py --ab maxpool`` times the whole train step).
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor, dim: int, keepdim: bool):
        values, indices = _max_with_indices(x, dim, keepdim)
        ctx.save_for_backward(indices)
        ctx.shape, ctx.dim = x.shape, dim
        ctx.mark_non_differentiable(indices)
        return values, indices

    @staticmethod
    def backward(ctx, grad: torch.Tensor, _grad_indices=None):
        (indices,) = ctx.saved_tensors
        shape = ctx.shape
        pre, n, post = _split(shape, ctx.dim)
        idx = indices.reshape(pre, post)
        # flat position of (outer, argmax, inner) in the contiguous input
        flat = (torch.arange(pre, device=idx.device).unsqueeze(1) * (n * post) + idx * post
                + torch.arange(post, device=idx.device)).reshape(-1)
        # in place on a fresh zero tensor: index_put (out of place) would copy it first
        out = grad.new_zeros(math.prod(shape)).index_put_((flat,), grad.reshape(-1))
        return out.view(shape), None, None


def max_over(x: torch.Tensor, dim: int, keepdim: bool = False) -> torch.Tensor:
    """The max of ``x`` over ``dim`` (values only): ``x.max(dim).values``, computed faster."""
    if x.dim() == 0:
        raise ValueError("max_over: input must have at least one dim")
    dim = dim % x.dim()
    if not (x.requires_grad and torch.is_grad_enabled()) or x.numel() == 0:
        return _max_with_indices(x, dim, keepdim)[0]
    return _MaxOverDim.apply(x, dim, keepdim)[0]


class _Pool(nn.Module):
    kind = "pool"

    def __init__(self, dim: int = 1, keepdim: bool = False) -> None:
        super().__init__()
        self.dim = int(dim)
        self.keepdim = bool(keepdim)

    def _dim(self, x: torch.Tensor) -> int:
        if x.dim() < 2:
            raise ValueError(f"{type(self).__name__}: input must be at least 2-D, got shape {tuple(x.shape)}")
        d = self.dim % x.dim()
        return d

    def extra_repr(self) -> str:
        return f"dim={self.dim}" + (", keepdim=True" if self.keepdim else "")


class MaxPool(_Pool):
    """Max over the points dim (default 1 of (B, N, C)); with ``mask`` (B, N) padded points are ignored."""

    kind = "max"

    def _max(self, x, mask):
        d = self._dim(x)
        if mask is None:
            # max backprops to one index per channel (first on ties): cheaper than amax, which splits ties
            return max_over(x, d, self.keepdim), None
        m, n, n_shape = _prepare_mask(mask, x, d, self.keepdim, type(self).__name__)
        filled = x.masked_fill(~m, float("-inf"))
        return max_over(filled, d, self.keepdim), (n, n_shape)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Max over the points dim; ``mask`` (B, N) excludes padded points."""
        return self._max(x, mask)[0]


class AvgPool(_Pool):
    """Mean over the points dim (default 1 of (B, N, C)); with ``mask`` the mean of valid points only."""

    kind = "avg"

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Mean over the points dim; with ``mask`` (B, N) the mean of the valid points only."""
        d = self._dim(x)
        if mask is None:
            return x.mean(dim=d, keepdim=self.keepdim)
        m, n, n_shape = _prepare_mask(mask, x, d, self.keepdim, type(self).__name__)
        s = (x * m.to(x.dtype)).sum(dim=d, keepdim=self.keepdim)
        return s / n.reshape(n_shape).to(s.dtype)


class EMAAvgPool(AvgPool):
    """EMA-avg (BiPointNet Sec. 3.2.2): mean pooling, whose entropy-maximizing offset is δ* = 0.

    Identical in value to ``AvgPool``; kept as its own type so models and summaries say which
    aggregation the paper row uses.
    """

    kind = "ema-avg"


class EMAMaxPool(MaxPool):
    """EMA-max (BiPointNet Eq. 7-8): Y = max_points(X − δ*(n)) = max_points(X) − δ*(n).

    n is the number of points pooled: ``x.shape[dim]``, or per cloud the count of True entries of
    ``mask`` (B, N). ``offsets="closed"`` uses δ*(n) = Φ⁻¹(0.5^(1/n)) (any n);
    ``offsets="official"`` uses the official code's table ``OFFICIAL_EMA_OFFSETS`` and raises
    for any other n. The offset assumes the input is batch-norm output, ~N(0, 1) per channel.
    """

    kind = "ema-max"

    def __init__(self, dim: int = 1, offsets: str = "closed", keepdim: bool = False) -> None:
        super().__init__(dim=dim, keepdim=keepdim)
        if offsets not in ("closed", "official"):
            raise ValueError(f"EMAMaxPool: offsets must be 'closed' or 'official', got {offsets!r}")
        self.offsets = offsets

    def offset(self, n):
        """δ*(n) for an int or a tensor of point counts, per ``self.offsets``."""
        if self.offsets == "closed":
            return ema_offset(n)
        counts = n.tolist() if isinstance(n, torch.Tensor) else [int(n)]
        bad = sorted({int(c) for c in counts if int(c) not in OFFICIAL_EMA_OFFSETS})
        if bad:
            raise ValueError(
                f"EMAMaxPool(offsets='official'): the official BiPointNet code has offsets only for "
                f"n in {sorted(OFFICIAL_EMA_OFFSETS)}, not for n={bad}; use offsets='closed' "
                f"(δ*(n) = Φ⁻¹(0.5^(1/n)) for any n)"
            )
        if isinstance(n, torch.Tensor):
            return torch.tensor([OFFICIAL_EMA_OFFSETS[int(c)] for c in counts], dtype=torch.float64).reshape(
                n.shape
            )
        return OFFICIAL_EMA_OFFSETS[int(n)]

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """max_points(X) − δ*(n), n the points pooled per cloud (BiPointNet Eq. 7-8)."""
        y, counts = self._max(x, mask)
        if counts is None:
            return y - self.offset(x.shape[self._dim(x)])
        n, n_shape = counts
        delta = self.offset(n)
        return y - delta.reshape(n_shape).to(device=y.device, dtype=y.dtype)

    def extra_repr(self) -> str:
        return super().extra_repr() + f", offsets={self.offsets!r}"


POOL_KINDS: dict[str, type[_Pool]] = {
    "max": MaxPool,
    "avg": AvgPool,
    "ema-max": EMAMaxPool,
    "ema-avg": EMAAvgPool,
}
"""Pooling kind -> module class (``make_pool``)."""


def make_pool(kind: str, dim: int = 1, **options) -> nn.Module:
    """Pooling module for ``kind`` in max / avg / ema-max / ema-avg, reducing ``dim`` (default 1 of (B, N, C)).

    Every returned module takes ``forward(x, mask=None)``; ``options`` go to the class
    (e.g. ``offsets="official"`` for ema-max, ``keepdim=True``).
    """
    cls = POOL_KINDS.get(kind)
    if cls is None:
        raise ValueError(f"unknown pooling kind {kind!r}; choose one of {', '.join(POOL_KINDS)}")
    return cls(dim=dim, **options)
