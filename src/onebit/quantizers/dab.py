"""DAB-Net (Prabhu et al., WACV 2018): the distribution-aware two-level binarizer.

Per output filter w ∈ R^n (dims 1.. flattened), W̃ = α·e + β·(1 − e) with the e, α, β minimising
‖w − W̃‖² exactly (paper Theorem 2 / Algorithm 1):
  α = wᵀe/K, β = wᵀ(1−e)/(n−K) (signed group means), and ‖w − W̃‖² = ‖w‖² − S with
  S = (wᵀe)²/K + (wᵀ(1−e))²/(n−K).
For a given K the best e is the top-K or the bottom-K set, and "top-K" is the same partition as
"bottom-(n−K)"; so one ascending sort with every split point i = 1..n−1 (lower group = the i
smallest) covers both of Algorithm 1's sort orders. S is evaluated, with prefix sums P_i in float64,
in the cancellation-free form S − T²/n = i(n−i)/n · (mean_hi − mean_lo)². A split between equal
values is never optimal (moving a tied value to one side strictly lowers the error), so such
splits are skipped: the upper group is then exactly {w ≥ threshold}.

Conventions (see docs/quantizers.md): α is the UPPER level (α ≥ β) and K = |{α entries}|, so
signs = 2e − 1 agree with sign(w) on centred filters. (The paper's "α is the level of larger
magnitude" is only a naming choice; W̃ is the same.) A filter with < 2 distinct values (n = 1,
constant, all zero) has ONE level: K = n, α = β = mean(w) (0 for an all-zero filter).
"""
from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from typing import NamedTuple

import numpy as np
import torch

from .base import Quantizer, _per_channel, check_finite, register_quantizer, sign

__all__ = ["DABFit", "dab_fit", "dab_fit_official", "dab_stats", "DAB", "DABAct", "center_and_clamp_"]

BACKWARDS = ("thm3", "thm3_literal", "jacobian", "ste", "official")
"""Backward rules of ``DAB(backward=...)``; "thm3" (DAB-Net Theorem 3) is the default."""


class DABFit(NamedTuple):
    """Per-row two-level fit: ``mask`` (R, n) bool, True on the α (upper) group; ``alpha``, ``beta``
    (R,) in the input dtype; ``k`` (R,) int64 = |α group|; ``l1_hi``, ``l1_lo`` (R,) = mean |w| over
    the α / β group (Theorem 3's ‖T_k‖₁/K and ‖W − T_k‖₁/(n − K); 0 for an empty group)."""

    mask: torch.Tensor
    alpha: torch.Tensor
    beta: torch.Tensor
    k: torch.Tensor
    l1_hi: torch.Tensor | None = None
    l1_lo: torch.Tensor | None = None
    absmax: torch.Tensor | None = None


_PARALLEL_MIN = 1 << 17  # rows are split over torch.get_num_threads() threads above this many values
_POOLS: dict = {}


def _pool(threads: int) -> ThreadPoolExecutor:
    """A per-process thread pool (keyed by pid, so a forked child never reuses its parent's)."""
    key = (os.getpid(), threads)
    if key not in _POOLS:
        _POOLS[key] = ThreadPoolExecutor(threads, thread_name_prefix="onebit-dab")
    return _POOLS[key]


def _sort_and_prefix(w2: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Ascending sort of each row and its float64 prefix sums. On CPU float32/float64 NumPy is used:
    its SIMD sort is an order of magnitude faster than torch.sort on CPU, and its row cumsum avoids
    torch's multi-threaded cumsum, which was ~30x slower with 2 threads on a busy machine
    (see docs/results/dab_overhead.md)."""
    if w2.device.type == "cpu" and w2.dtype in (torch.float32, torch.float64):
        s = w2.contiguous().numpy().copy()
        p = np.empty(s.shape, np.float64)

        def work(lo: int, hi: int) -> None:  # NumPy releases the GIL in sort and cumsum
            s[lo:hi].sort(axis=1)
            p[lo:hi] = s[lo:hi]
            np.cumsum(p[lo:hi], axis=1, out=p[lo:hi])

        threads = min(torch.get_num_threads(), s.shape[0])
        if threads > 1 and s.size >= _PARALLEL_MIN:
            bounds = np.linspace(0, s.shape[0], threads + 1).astype(int)
            list(_pool(threads).map(lambda b: work(*b), zip(bounds[:-1], bounds[1:])))
        else:
            work(0, s.shape[0])
        return torch.from_numpy(s), torch.from_numpy(p)
    s = torch.sort(w2, dim=1).values
    return s, s.cumsum(1, dtype=torch.float64)


@torch.no_grad()
def dab_fit(w2: torch.Tensor, layer_name: str | None = None, who: str = "dab") -> DABFit:
    """Exact least-squares two-level fit of every row of ``w2`` (R, n); O(n log n) per row, vectorised.

    Raises ValueError (naming ``layer_name``) if a row holds NaN or inf.
    """
    if w2.dim() != 2 or w2.shape[1] == 0:
        raise ValueError(f"{who}: expected a non-empty 2-D (rows, n) tensor, got shape {tuple(w2.shape)}")
    r, n = w2.shape
    s, p = _sort_and_prefix(w2.detach())
    # NaN sorts last and ±inf sort to the ends, so the row extremes tell whether a row is finite
    if not bool(torch.isfinite(s[:, 0]).all() and torch.isfinite(s[:, -1]).all()):
        check_finite(w2, who, layer_name)
    total = p[:, -1]
    if n > 1:
        # score_i − T²/n = c_i·(mean_hi − mean_lo)², c_i = i(n−i)/n; mean_hi − mean_lo = T/(n−i) − P_i·n/(i(n−i))
        # is >= 0 on sorted rows, so its product with √c_i is maximised directly: z_i = T·a_i − P_i·b_i
        i = torch.arange(1, n, dtype=torch.float64, device=w2.device)
        sqrt_c = torch.sqrt(i * (n - i) / n)
        z = torch.outer(total, sqrt_c / (n - i))
        z.addcmul_(p[:, :-1], sqrt_c * n / (i * (n - i)), value=-1.0)
        j = z.argmax(1)  # first maximum: lower group = the j+1 smallest values
        two = s[:, 0] != s[:, -1]  # rows with >= 2 distinct values
        # A split between equal values is never optimal (module docstring); if rounding made the
        # argmax land inside a run of ties, redo those rows with the tied splits excluded.
        bad = (s.gather(1, j.unsqueeze(1)) == s.gather(1, (j + 1).unsqueeze(1))).squeeze(1) & two
        if bool(bad.any()):
            rows = bad.nonzero().squeeze(1)
            zb = z[rows].masked_fill_(s[rows, 1:] == s[rows, :-1], -torch.inf)
            j[rows] = zb.argmax(1)
    else:
        j = torch.zeros(r, dtype=torch.long, device=w2.device)
        two = torch.zeros(r, dtype=torch.bool, device=w2.device)
    n_lo = j + 1
    lo_sum = p.gather(1, j.unsqueeze(1)).squeeze(1)
    k = torch.where(two, n - n_lo, torch.full_like(n_lo, n))
    mean_all = total / n
    alpha = torch.where(two, (total - lo_sum) / (n - n_lo).clamp_min(1), mean_all)
    beta = torch.where(two, lo_sum / n_lo, mean_all)
    thr = s.gather(1, n_lo.clamp_max(n - 1).unsqueeze(1))
    thr = torch.where(two.unsqueeze(1), thr, torch.full_like(thr, -torch.inf))
    mask = w2 >= thr
    # group sums of |w| from the same prefix sums: with z0 negatives, Σ_{t<m}|s_t| = P(m) − 2·P(min(m, z0))
    z0 = torch.searchsorted(s, torch.zeros_like(s[:, :1])).squeeze(1)  # number of negative entries

    def prefix(m):  # P(m) = sum of the m smallest values, P(0) = 0
        return torch.where(m > 0, p.gather(1, (m - 1).clamp_min(0).unsqueeze(1)).squeeze(1), 0.0)

    abs_total = total - 2 * prefix(z0)
    abs_lo = torch.where(two, lo_sum - 2 * prefix(torch.minimum(n_lo, z0)), 0.0)
    l1_hi = (abs_total - abs_lo) / k
    l1_lo = abs_lo / (n - k).clamp_min(1)
    absmax = torch.maximum(s[:, 0].abs(), s[:, -1].abs())
    return DABFit(mask, alpha.to(w2.dtype), beta.to(w2.dtype), k, l1_hi, l1_lo, absmax)


@torch.no_grad()
def dab_fit_official(w2: torch.Tensor) -> DABFit:
    """The official code's K/α/β (notes §a2), reproduced for compatibility only:
    scores P_j²/(j+1) + (T − P_j)²/(n − j) (off-by-one denominator) for a descending and an
    ascending sort, first argmax of each, the order chosen by comparing INDICES (j_D >= j_A ->
    descending), strict threshold U = {w > thr}, levels α = mean|w| over U and β = −mean|w| over
    the rest, |U| counted as the non-zero entries of w on U. An empty U gives the whole filter β
    (α is then reported equal to β). ``k`` is that non-zero count."""
    r, n = w2.shape
    j = torch.arange(n, dtype=w2.dtype, device=w2.device)
    total = w2.sum(1, keepdim=True)

    def first_argmax(sorted_rows):
        p = sorted_rows.cumsum(1)
        score = p * p / (j + 1) + (total - p) ** 2 / (n - j)
        return score.argmax(1)

    d = torch.sort(w2, dim=1, descending=True).values
    a = torch.sort(w2, dim=1).values
    jd, ja = first_argmax(d), first_argmax(a)
    thr = torch.where(jd >= ja, d.gather(1, jd.unsqueeze(1)).squeeze(1), a.gather(1, ja.unsqueeze(1)).squeeze(1))
    u = w2 > thr.unsqueeze(1)
    cnt = ((w2 * u) != 0).sum(1)
    absw = w2.abs()
    beta = -(absw * ~u).sum(1) / (n - cnt).clamp_min(1)
    alpha = torch.where(cnt > 0, (absw * u).sum(1) / cnt.clamp_min(1), beta)
    return DABFit(u, alpha, beta, cnt)


def _two_level(mf: torch.Tensor, alpha: torch.Tensor, beta: torch.Tensor) -> torch.Tensor:
    """β + (α − β)·e for a float 0/1 mask (R, n): arithmetic, which is much faster on CPU than
    torch.where with per-row broadcast levels."""
    return torch.addcmul(beta.unsqueeze(1), mf, (alpha - beta).unsqueeze(1))


class _DABFn(torch.autograd.Function):
    """Forward: β + (α − β)·e. Backward: one of ``BACKWARDS`` (see DAB's docstring)."""

    @staticmethod
    def forward(ctx, w2, mf, alpha, beta, k, l1_hi, l1_lo, backward, c_in, all_inside):
        ctx.save_for_backward(w2, mf, alpha, beta, k, l1_hi, l1_lo)
        ctx.backward_mode, ctx.c_in, ctx.all_inside = backward, c_in, all_inside
        return _two_level(mf, alpha, beta)

    @staticmethod
    def backward(ctx, g):
        w2, mf, alpha, beta, k, l1_hi, l1_lo = ctx.saved_tensors
        mode = ctx.backward_mode
        n = w2.shape[1]
        kf = k.to(g.dtype).unsqueeze(1)
        inv_lo = 1.0 / (n - kf).clamp_min(1)  # only used on lower-group entries (exist iff n − K >= 1)
        inv_hi = 1.0 / kf.clamp_min(1)
        none = (None,) * 9
        if mode == "ste":
            return (g if ctx.all_inside else g * (w2.abs() <= 1).to(g.dtype),) + none
        if mode == "jacobian":
            g_hi_sum = (g * mf).sum(1, keepdim=True)
            g_hi, g_lo = g_hi_sum * inv_hi, (g.sum(1, keepdim=True) - g_hi_sum) * inv_lo
            return (torch.addcmul(g_lo, mf, g_hi - g_lo),) + none
        absw = w2.abs()
        if mode == "official":
            ste = (absw < 1).to(g.dtype)
            a_abs, b_abs = alpha.unsqueeze(1).abs(), beta.unsqueeze(1).abs()
            mult = torch.addcmul(inv_lo, mf, inv_hi - inv_lo)
            mult.addcmul_(torch.addcmul(b_abs, mf, a_abs - b_abs), ste)
            return (g * mult * (1.0 - 1.0 / ctx.c_in),) + none
        # Theorem 3: G = e/K + (‖T_k‖₁/K)·1(|w|<=1)·e + s_lo/(n−K)·(1−e) + (‖W−T_k‖₁/(n−K))·1(|w|<=1)·(1−e)
        if l1_hi is None:  # (the official fit does not provide the group means of |w|)
            abs_hi = (absw * mf).sum(1, keepdim=True)
            l1_hi, l1_lo = abs_hi * inv_hi, (absw.sum(1, keepdim=True) - abs_hi) * inv_lo
        else:
            l1_hi, l1_lo = l1_hi.to(g.dtype).unsqueeze(1), l1_lo.to(g.dtype).unsqueeze(1)
        if mode == "thm3" and ctx.all_inside:
            # every |w| <= 1 (e.g. after center_and_clamp_): the STE indicator is 1, so the
            # multiplier is constant per group and one addcmul builds it
            c_lo, c_hi = inv_lo + l1_lo, inv_hi + l1_hi
            return (g * torch.addcmul(c_lo, mf, c_hi - c_lo),) + none
        if mode == "thm3_literal":  # e/K + (1 − e)·sign(w)/(n − K)
            mult = (1 - mf).mul_(sign(w2)).mul_(inv_lo).addcmul_(mf, inv_hi.expand_as(mf))
        else:
            mult = torch.addcmul(inv_lo, mf, inv_hi - inv_lo)
        mult.addcmul_(torch.addcmul(l1_lo, mf, l1_hi - l1_lo), (absw <= 1).to(g.dtype))
        return (g * mult,) + none


@register_quantizer("dab")
class DAB(Quantizer):
    """DAB-Net weight binarizer: exact optimal two-level W̃ = α·e + β·(1 − e) per output filter.

    backward:
      "thm3" (default): the paper's Theorem 3 read as a diagonal multiplier,
          α group: 1/K + (‖T_k‖₁/K)·1(|w| <= 1);  β group: +1/(n−K) + (‖W−T_k‖₁/(n−K))·1(|w| <= 1)
          (STE read as the indicator; the lower-group mean term taken as +1/(n−K), the exact
          Jacobian's diagonal for a signed-mean β).
      "thm3_literal": the same with sign(w)/(n−K) as the lower-group mean term (the literal text).
      "jacobian": exact Jacobian with the mask fixed: each entry gets the mean of g over its group.
      "ste": g·1(|w| <= 1).
      "official": the official code's multiplier (1 − 1/C)·[α·1(|w|<1) + 1/|U| ; |β|·1(|w|<1) + 1/(n−|U|)].
    variant: "paper" (default, exact) or "official" (the official code's forward quirks, notes §a2;
    its default backward is then "official").
    Non-finite weights raise ValueError naming ``layer_name``.
    """

    kind = "weight"
    name = "dab"

    def __init__(self, backward: str | None = None, variant: str = "paper", layer_name: str | None = None):
        super().__init__()
        if variant not in ("paper", "official"):
            raise ValueError(f"dab: variant must be 'paper' or 'official', got {variant!r}")
        backward = backward or ("official" if variant == "official" else "thm3")
        if backward not in BACKWARDS:
            raise ValueError(f"dab: backward must be one of {BACKWARDS}, got {backward!r}")
        self.variant, self.backward = variant, backward
        self.layer_name = layer_name

    def fit(self, w: torch.Tensor) -> DABFit:
        """The per-filter fit (mask reshaped to (C_out, n))."""
        w2 = w.detach().reshape(w.shape[0], -1)
        if self.variant == "official":
            check_finite(w2, self.name, self.layer_name)
            return dab_fit_official(w2)
        return dab_fit(w2, self.layer_name, self.name)

    def forward(self, w):
        """W̃ = α·e + β·(1 − e) per filter, the optimal two-level fit (DAB-Net Theorem 2, Algorithm 1)."""
        f = self.fit(w)
        c_in = w.shape[1] if w.dim() > 1 else 1
        mf = f.mask.to(w.dtype)
        all_inside = f.absmax is not None and bool((f.absmax <= 1).all())
        out = _DABFn.apply(w.reshape(w.shape[0], -1), mf, f.alpha, f.beta, f.k, f.l1_hi, f.l1_lo,
                           self.backward, c_in, all_inside)
        return out.reshape(w.shape)

    @torch.no_grad()
    def factorize(self, w):
        """signs = 2e − 1, a = (α − β)/2, b = (α + β)/2, so that forward(w) == a·signs + b."""
        f = self.fit(w)
        signs = torch.where(f.mask, 1.0, -1.0).to(w.dtype).reshape(w.shape)
        return signs, (f.alpha - f.beta) / 2, (f.alpha + f.beta) / 2

    def extra_repr(self):
        return super().extra_repr() + f", variant={self.variant!r}, backward={self.backward!r}"


@torch.no_grad()
def dab_stats(w: torch.Tensor, variant: str = "paper") -> dict[str, torch.Tensor]:
    """Per-filter DAB statistics of a weight (C_out, ...): K (int64), alpha, beta, n, sse."""
    q = DAB(variant=variant)
    f = q.fit(w)
    w2 = w.detach().reshape(w.shape[0], -1)
    approx = torch.where(f.mask, f.alpha.unsqueeze(1), f.beta.unsqueeze(1))
    return {"K": f.k, "alpha": f.alpha, "beta": f.beta,
            "n": torch.full_like(f.k, w2.shape[1]), "sse": ((w2 - approx) ** 2).sum(1)}


class _ClipSTE(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, out):
        ctx.save_for_backward(x)
        return out

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return g * (x.abs() <= 1).to(g.dtype), None


@register_quantizer("dab_act")
class DABAct(Quantizer):
    """DAB two-level binarizer for activations: the exact optimal α/β fit per sample over all
    non-batch dims (per="sample", default) or per row of the last dim (per="row", i.e. per point
    for (B, N, C) inputs). Backward: straight-through g·1(|x| <= 1) (α, β treated as constants)."""

    kind = "activation"
    name = "dab_act"

    def __init__(self, per: str = "sample", layer_name: str | None = None):
        super().__init__()
        if per not in ("sample", "row"):
            raise ValueError(f"dab_act: per must be 'sample' or 'row', got {per!r}")
        self.per = per
        self.layer_name = layer_name

    def forward(self, x):
        """The two-level fit of each sample (or row), straight-through backward g·1(|x| ≤ 1)."""
        x2 = x.detach().reshape(x.shape[0], -1) if self.per == "sample" else x.detach().reshape(-1, x.shape[-1])
        f = dab_fit(x2, self.layer_name, self.name)
        out = _two_level(f.mask.to(x.dtype), f.alpha, f.beta).reshape(x.shape)
        return _ClipSTE.apply(x, out)


@torch.no_grad()
def center_and_clamp_(weight: torch.Tensor, mode: str = "filter", bound: float = 1.0) -> torch.Tensor:
    """DAB-Net Algorithm 2 preprocessing of LATENT weights, in place: mean-centre, then clamp to
    [−bound, bound]. mode="filter": subtract each output filter's mean (the paper);
    mode="channel": subtract the mean over the input-channel axis, dim 1 (the official code).
    Called by the trainer after each optimizer step when the spec enables ``dab_preprocess``."""
    if mode == "filter":
        weight.sub_(_per_channel(weight.reshape(weight.shape[0], -1).mean(1), weight))
    elif mode == "channel":
        if weight.dim() < 2:
            raise ValueError(f"center_and_clamp_: mode='channel' needs a weight with >= 2 dims, "
                             f"got shape {tuple(weight.shape)}")
        weight.sub_(weight.mean(1, keepdim=True))
    else:
        raise ValueError(f"center_and_clamp_: mode must be 'filter' or 'channel', got {mode!r}")
    return weight.clamp_(-bound, bound)
