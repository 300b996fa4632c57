"""Vectorised geometric ops on points-major (B, N, C) tensors, pure PyTorch.

These are the reference semantics for the native engine's kNN / FPS / ball query. Every choice of
points is made on one distance that torch and the engine compute bit for bit alike on any CPU, and
ties are broken by one rule:

* **The selection distance** E(a, b) = Σ_c (a_c − b_c)², each term and the running sum in float64,
  channels added in order 0, 1, 2, … with no fused multiply-add. The inputs are upcast to float64
  first (exact for float32), so E does not depend on the host's BLAS / GEMM kernels or on whether
  the model runs in float32 or float64: a float32 and a float64 copy of the same values pick the
  same points.
* **Ties go to the lower point index**, everywhere: kNN orders by (E, index), FPS takes the first
  maximal index, ball query takes points in index order, and a query with an empty ball takes
  its nearest point (lowest index on ties).

The ops:

* ``square_distance(a, b)``: pairwise squared distances in the input dtype. For C ≤ 4
  (coordinates) it is E rounded to the input dtype; for wider features it is the GEMM form
  ‖a‖² − 2a·b + ‖b‖² clamped at 0 (for the model's arithmetic, never for selecting points).
* ``farthest_point_sample``: iterative FPS from a given start index; at each step the point with
  the largest E to the selected set is taken, ties → lowest index.
* ``knn``: the k smallest E per query, ordered by (E, index). Wide features (C > 4) find
  candidates with the GEMM form first and re-rank every candidate within that form's rounding
  bound of the k-th by E, exactly as the engine does, so the answer is that of E over all points.
* ``ball_query``: the first ``nsample`` points in index order with E < r², r² = float32(radius²)
  (strict, as the PointNet++ CUDA kernel), padded with the first one found; a query with none
  inside the ball gets its nearest point (lowest index on ties).
* ``three_interpolate``: PointNet++ feature propagation, weights ∝ 1 / (d² + eps) over the 3
  nearest sources (by ``knn``), normalised to sum 1.
"""

from __future__ import annotations

import torch

__all__ = [
    "ball_query",
    "farthest_point_sample",
    "index_points",
    "knn",
    "square_distance",
    "three_interpolate",
]

_DIRECT_MAX_CHANNELS = 4


def _check(name: str, x: torch.Tensor, what: str, dims: int = 3) -> None:
    if not torch.is_tensor(x) or x.dim() != dims:
        shape = tuple(x.shape) if torch.is_tensor(x) else type(x).__name__
        raise ValueError(f"geometry.{name}: {what} must be a {dims}-D tensor, got {shape}")


def _ordered_sqdist64(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Σ_c (a_c − b_c)² of (B, N, C), (B, M, C) → float64 (B, N, M): channels in order, square and
    add as separate roundings (the engine is compiled with -ffp-contract=off and does the same
    operations in the same order). In place unless a gradient is needed."""
    a64, b64 = a.double(), b.double()
    grad = a64.requires_grad or b64.requires_grad
    d = None
    for i in range(a.shape[2]):
        diff = a64[:, :, i, None] - b64[:, None, :, i]
        sq = diff.square() if grad else diff.square_()
        d = sq if d is None else (d + sq if grad else d.add_(sq))
    if d is None:
        return a64.new_zeros(a.shape[0], a.shape[1], b.shape[1])
    return d


def _selection_distance(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """E(a_i, b_j) of the module docstring: (B, N, C), (B, M, C) → float64 (B, N, M), no gradient."""
    return _ordered_sqdist64(a.detach(), b.detach())


def square_distance(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Pairwise squared Euclidean distances: (B, N, C), (B, M, C) → (B, N, M).

    C ≤ 4: the selection distance E (float64, channel order) rounded to the input dtype. C > 4:
    ‖a‖² − 2 a·bᵀ + ‖b‖², clamped at 0 (rounding can make it slightly negative, or non-zero for
    identical points). Differentiable in both cases.
    """
    _check("square_distance", a, "a")
    _check("square_distance", b, "b")
    if a.shape[0] != b.shape[0] or a.shape[2] != b.shape[2]:
        raise ValueError(
            f"geometry.square_distance: shapes {tuple(a.shape)} and {tuple(b.shape)} differ in batch or channels"
        )
    c = a.shape[2]
    if c <= _DIRECT_MAX_CHANNELS:
        return _ordered_sqdist64(a, b).to(a.dtype)
    aa = a.square().sum(-1, keepdim=True)
    bb = b.square().sum(-1).unsqueeze(1)
    return torch.baddbmm(aa + bb, a, b.transpose(1, 2), alpha=-2.0).clamp_min_(0.0)


def index_points(points: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """Gather rows per batch: points (B, N, C), idx (B, *S) int → (B, *S, C) = points[b, idx[b, …]]."""
    _check("index_points", points, "points")
    if idx.dim() < 1 or idx.shape[0] != points.shape[0]:
        raise ValueError(
            f"geometry.index_points: idx of shape {tuple(idx.shape)} does not match batch {points.shape[0]}"
        )
    b, n, c = points.shape
    idx = idx.long()
    offset = (torch.arange(b, device=idx.device) * n).view(b, *([1] * (idx.dim() - 1)))
    flat = points.reshape(b * n, c)
    return flat[(idx + offset).reshape(-1)].view(*idx.shape, c)


def farthest_point_sample(
    xyz: torch.Tensor,
    npoint: int,
    start: int | torch.Tensor = 0,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Farthest point sampling: (B, N, C) → indices (B, npoint) int64.

    idx[:, 0] = ``start``: an int (default 0) or a (B,) tensor of per-cloud start indices;
    ``start=None`` draws a uniform start per cloud from ``generator`` (seeded → reproducible).
    Then idx[:, t] = argmax_j min_{s<t} E(x_j, x_{idx[:, s]}), with the selection distance E of
    the module docstring (float64, channel order); ties → lowest j. Once every distinct point is taken
    (npoint > number of distinct points) all distances are 0 and index 0 is repeated.
    """
    _check("farthest_point_sample", xyz, "xyz")
    b, n, _ = xyz.shape
    if n == 0:
        raise ValueError("geometry.farthest_point_sample: empty point cloud")
    if npoint < 1:
        raise ValueError(f"geometry.farthest_point_sample: npoint must be >= 1, got {npoint}")
    dev = xyz.device
    if start is None:
        cur = torch.randint(0, n, (b,), generator=generator, device="cpu").to(dev)
    elif torch.is_tensor(start):
        cur = start.to(device=dev, dtype=torch.long).reshape(-1).expand(b).clone()
    else:
        cur = torch.full((b,), int(start), dtype=torch.long, device=dev)
    if int(cur.min()) < 0 or int(cur.max()) >= n:
        raise ValueError(f"geometry.farthest_point_sample: start index out of range [0, {n})")
    out = torch.empty(b, npoint, dtype=torch.long, device=dev)
    mind = torch.full((b, n), float("inf"), dtype=torch.float64, device=dev)
    bidx = torch.arange(b, device=dev)
    for t in range(npoint):
        out[:, t] = cur
        d = _selection_distance(xyz, xyz[bidx, cur].unsqueeze(1))[..., 0]  # E to the new centre, (B, N)
        torch.minimum(mind, d, out=mind)
        cur = mind.argmax(dim=1)  # first maximal index on ties (documented torch behaviour)
    return out


def _smallest_k(d: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The k smallest of d (..., M) ordered by (value, index): (values, indices)."""
    m = d.shape[-1]
    if k == m:
        vals, idx = d, torch.arange(m, device=d.device).expand_as(d)
    else:
        # the k+1 smallest (unsorted): the largest of them is the (k+1)-th distance; if the k-th
        # equals it, the choice at the boundary is a tie that topk resolves arbitrarily, so such
        # rows are redone with a stable sort (lowest index first)
        vals, idx = d.topk(k + 1, dim=-1, largest=False, sorted=False)
        top2, pos = vals.topk(2, dim=-1)
        tied = top2[..., 0] == top2[..., 1]
        keep = torch.ones_like(vals, dtype=torch.bool).scatter_(-1, pos[..., :1], False)
        vals = vals[keep].view(*vals.shape[:-1], k)
        idx = idx[keep].view(*idx.shape[:-1], k)
        if bool(tied.any()):
            sv, si = torch.sort(d[tied], dim=-1, stable=True)
            vals[tied] = sv[:, :k]
            idx[tied] = si[:, :k]
    # canonical order: by index, then stably by distance → (distance, index)
    idx, perm = idx.sort(dim=-1)
    vals = vals.gather(-1, perm)
    vals, perm = vals.sort(dim=-1, stable=True)
    return vals, idx.gather(-1, perm)


def _knn_wide(query: torch.Tensor, ref: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """kNN by E for C > 4 without the (B, N, M, C) cost of E everywhere: the GEMM form finds every
    point within its rounding bound of the k-th (the engine's bound, γ = (2C + 16)·ε), then only
    those candidates are ranked by E. Returns (E of the k, their indices), ordered by (E, index)."""
    q, r = query.detach(), ref.detach()
    if q.dtype != torch.float64:
        q, r = q.float(), r.float()
    c = q.shape[2]
    qq = q.square().sum(-1)  # (B, N)
    rr = r.square().sum(-1)  # (B, M)
    approx = torch.baddbmm(qq.unsqueeze(-1) + rr.unsqueeze(1), q, r.transpose(1, 2), alpha=-2.0)
    gamma = (2 * c + 16) * torch.finfo(q.dtype).eps
    kth = approx.topk(k, dim=-1, largest=False, sorted=True).values[..., -1]
    lim = kth + 2.0 * gamma * (qq + rr.max(dim=-1, keepdim=True).values)  # (B, N)
    cand = approx <= lim.unsqueeze(-1)
    kc = max(k, int(cand.sum(-1).max()))
    cidx = approx.topk(kc, dim=-1, largest=False, sorted=False).indices  # every candidate is in here
    inside = approx.gather(-1, cidx) <= lim.unsqueeze(-1)
    q64, r64 = query.detach().double(), ref.detach().double()
    e = None
    for i in range(c):  # E on the candidates: float64, channel order, no FMA
        col = r64[:, :, i].unsqueeze(1).expand(-1, q.shape[1], -1).gather(-1, cidx)
        diff = col - q64[:, :, i, None]
        e = diff.square_() if e is None else e.add_(diff.square_())
    e = e.masked_fill_(~inside, float("inf"))
    cidx, perm = cidx.sort(dim=-1)  # index order, then stably by E → (E, index)
    e = e.gather(-1, perm)
    e, perm = e.sort(dim=-1, stable=True)
    return e[..., :k], cidx.gather(-1, perm)[..., :k]


def knn(query: torch.Tensor, ref: torch.Tensor, k: int, return_dist: bool = False):
    """k nearest neighbours of each query in ref: (B, N, C), (B, M, C) → idx (B, N, k) int64.

    Ordered by (E, index), E the float64 selection distance of the module docstring: exact ties
    go to the lower index, both in the choice at the k-th boundary and in the order; the same
    neighbours in float32 and float64, on any CPU, and in the engine. ``return_dist`` also
    returns the distances (B, N, k) (E rounded to the input dtype). A query that is also in
    ``ref`` has E = 0 to itself, so it is its own first neighbour unless a duplicate of it has a
    lower index.
    """
    _check("knn", query, "query")
    _check("knn", ref, "ref")
    m = ref.shape[1]
    if not 1 <= k <= m:
        raise ValueError(f"geometry.knn: k={k} must lie in [1, {m}] (the number of reference points)")
    if query.shape[0] != ref.shape[0] or query.shape[2] != ref.shape[2]:
        raise ValueError(
            f"geometry.knn: shapes {tuple(query.shape)} and {tuple(ref.shape)} differ in batch or channels"
        )
    if query.shape[2] <= _DIRECT_MAX_CHANNELS:
        vals, idx = _smallest_k(_selection_distance(query, ref), k)
    else:
        vals, idx = _knn_wide(query, ref, k)
    return (idx, vals.to(query.dtype)) if return_dist else idx


def ball_query(radius: float, nsample: int, xyz: torch.Tensor, centres: torch.Tensor) -> torch.Tensor:
    """Indices (B, S, nsample) of points of xyz (B, N, C) within ``radius`` of centres (B, S, C).

    The first ``nsample`` points in index order with E < float32(radius²) (strict); fewer → padded with
    the first one found; none → the nearest point (lowest index on ties) fills the row.
    """
    _check("ball_query", xyz, "xyz")
    _check("ball_query", centres, "centres")
    if nsample < 1 or radius <= 0:
        raise ValueError(f"geometry.ball_query: need nsample >= 1 and radius > 0, got {nsample}, {radius}")
    b, n, _ = xyz.shape
    d = _selection_distance(centres, xyz)  # (B, S, N), float64
    r2 = float(torch.tensor(radius * radius, dtype=torch.float32))  # the engine stores float32(radius²)
    inside = d < r2
    ar = torch.arange(n, device=xyz.device, dtype=torch.int32)
    key = torch.where(inside, ar, n)  # outside → n, sorts after every real index
    k = min(nsample, n)
    # the k smallest keys are the first k points inside, in index order once sorted
    idx = key.topk(k, dim=-1, largest=False, sorted=False).values.sort(dim=-1).values.long()
    if k < nsample:
        idx = torch.cat([idx, idx.new_full((*idx.shape[:2], nsample - k), n)], dim=-1)
    first = idx[..., :1]
    empty = first == n
    if bool(empty.any()):
        nearest = d.argmin(dim=-1, keepdim=True)  # first minimal index
        first = torch.where(empty, nearest, first)
    return torch.where(idx == n, first, idx)


def three_interpolate(
    xyz: torch.Tensor, src_xyz: torch.Tensor, src_feats: torch.Tensor, eps: float = 1e-8
) -> torch.Tensor:
    """PointNet++ feature propagation: features at xyz (B, N, C) from src (B, S, C), (B, S, D) → (B, N, D).

    f(x) = Σ_{i ∈ 3-NN(x)} w_i f_i with w_i = (1 / (d_i² + eps)) / Σ_j 1 / (d_j² + eps); fewer
    than 3 sources use all of them (one source is copied to every point).
    """
    _check("three_interpolate", src_feats, "src_feats")
    if src_feats.shape[:2] != src_xyz.shape[:2]:
        raise ValueError(
            f"geometry.three_interpolate: src_xyz {tuple(src_xyz.shape)} and src_feats "
            f"{tuple(src_feats.shape)} disagree"
        )
    s = src_xyz.shape[1]
    if s == 1:
        return src_feats.expand(-1, xyz.shape[1], -1)
    idx, d = knn(xyz, src_xyz, min(3, s), return_dist=True)
    w = 1.0 / (d + eps)
    w = w / w.sum(-1, keepdim=True)
    return (index_points(src_feats, idx) * w.unsqueeze(-1)).sum(dim=2)
