"""DGCNN (Wang et al., ACM TOG 2019): EdgeConv on a dynamic kNN graph, points-major.

EdgeConv: for each point i and its k nearest neighbours j (in the *current* feature space; the
point itself is its own first neighbour, as in the reference code), the edge feature
[x_j − x_i ‖ x_i] goes through a shared MLP (one GEMM over B·N·k rows) and is pooled over the k
neighbours with ``make_pool(pool, dim=2)`` (EMA-max subtracts δ*(k)). Classification: EdgeConv
64-64-128-256, concat (512) → Linear 1024 → [global pool ‖ global mean] → FC 512-256 → classes.
Segmentation: EdgeConv (64,64)-(64,64)-(64), concat (192) → 1024 → global pool, tiled
(‖ category embedding for partseg) ‖ per-point features → 256-256-128 (partseg) / 512-256
(semseg) → classes. The first graph is built on xyz (channels 0-2) for every task.
BiPointNet (App. E.3) keeps the first and the last layer float.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn as nn

from onebit.geometry import index_points, knn
from onebit.models._point_blocks import (
    ACTS,
    POOLS,
    Head,
    LinearBlock,
    SharedMLP,
    category_onehot,
    check_choice,
    check_points,
    make_pool,
    scaled,
    set_ema_offsets,
)
from onebit.models.registry import register_model


class EdgeConv(nn.Module):
    """x'_i = pool_j MLP([x_j − x_i ‖ x_i]) over the k nearest neighbours j of i."""

    def __init__(self, cin: int, widths: Sequence[int], k: int, *, act: str, pool: str):
        super().__init__()
        self.k = k
        self.mlp = SharedMLP(2 * cin, widths, act, last_act=pool != "ema-max")
        self.pool = make_pool(pool, dim=2)
        self.out_channels = self.mlp.out_channels

    def forward(self, x: torch.Tensor, graph_on: torch.Tensor | None = None) -> torch.Tensor:
        """EdgeConv on (B, N, C) features: the kNN graph of ``graph_on`` (default ``x``), edge
        features [x_j − x_i ‖ x_i], the shared MLP, then the pool over the k neighbours -> (B, N, C').
        """
        ref = x if graph_on is None else graph_on
        k = min(self.k, x.shape[1])
        with torch.no_grad():
            idx = knn(ref.detach(), ref.detach(), k)  # (B, N, k)
        nbr = index_points(x, idx)
        centre = x.unsqueeze(2).expand_as(nbr)
        return self.pool(self.mlp(torch.cat([nbr - centre, centre], dim=-1)))


class DGCNN(nn.Module):
    """DGCNN classifier ((B, N, C) → (B, classes)) or segmenter (→ (B, N, classes))."""

    def __init__(
        self,
        num_classes: int,
        task: str = "cls",
        *,
        k: int = 20,
        pool: str = "max",
        act: str = "leaky_relu",
        in_channels: int = 3,
        dropout: float = 0.5,
        num_categories: int = 16,
        width: float = 1.0,
        emb_dims: int = 1024,
    ):
        super().__init__()
        name = self.model_name = "dgcnn"
        check_choice(name, "task", task, ("cls", "partseg", "semseg"))
        check_choice(name, "pool", pool, POOLS)
        check_choice(name, "act", act, ACTS)
        if in_channels < 3:
            raise ValueError(f"{name}: needs xyz, but in_channels={in_channels}")
        if k < 1:
            raise ValueError(f"{name}: k must be >= 1, got {k}")
        self.task = task
        self.in_channels = in_channels
        self.num_categories = num_categories if task == "partseg" else 0
        convs = ((64,), (64,), (128,), (256,)) if task == "cls" else ((64, 64), (64, 64), (64,))
        self.ec = nn.ModuleList()
        cin = in_channels
        for widths in convs:
            ec = EdgeConv(cin, [scaled(width, c) for c in widths], k, act=act, pool=pool)
            self.ec.append(ec)
            cin = ec.out_channels
        cat = sum(e.out_channels for e in self.ec)
        emb = scaled(width, emb_dims)
        self.emb = LinearBlock(cat, emb, act if pool != "ema-max" else None)
        self.pool = make_pool(pool)
        if task == "cls":
            # DGCNN concatenates max and mean pooling; the mean is EMA-avg when EMA is asked for
            self.mean_pool = make_pool("ema-avg" if pool.startswith("ema") else "avg")
            self.head = Head(2 * emb, [scaled(width, c) for c in (512, 256)], num_classes, act, dropout)
            self.cat_emb = None
        else:
            self.mean_pool = None
            gdim = emb
            if task == "partseg":
                self.cat_emb = LinearBlock(num_categories, scaled(width, 64), act)
                gdim += self.cat_emb.linear.out_features
            else:
                self.cat_emb = None
            widths = (256, 256, 128) if task == "partseg" else (512, 256)
            self.head = Head(gdim + cat, [scaled(width, c) for c in widths], num_classes, act, dropout)
        self.onebit_keep_float = ("ec.0.mlp.0.linear", "head.out")

    def forward(self, points: torch.Tensor, category=None) -> torch.Tensor:
        """``points`` (B, N, C) (xyz first); ``category`` (B,) or (B, 16) one-hot for partseg."""
        check_points(self.model_name, points, self.in_channels)
        b, n, _ = points.shape
        feats = []
        x = points
        for i, ec in enumerate(self.ec):
            x = ec(x, graph_on=points[..., :3] if i == 0 else None)
            feats.append(x)
        local = torch.cat(feats, dim=-1)
        h = self.emb(local)
        if self.task == "cls":
            return self.head(torch.cat([self.pool(h), self.mean_pool(h)], dim=-1))
        g = self.pool(h)
        if self.cat_emb is not None:
            onehot = category_onehot(self.model_name, category, b, self.num_categories, points)
            g = torch.cat([g, self.cat_emb(onehot)], dim=-1)
        return self.head(torch.cat([g.unsqueeze(1).expand(b, n, g.shape[-1]), local], dim=-1))


@register_model("dgcnn", domain="points", tasks=("cls", "partseg", "semseg"))
def dgcnn(
    num_classes: int,
    task: str = "cls",
    pool: str = "max",
    ema_offsets: str = "closed",
    act: str = "leaky_relu",
    in_channels: int = 3,
    dropout: float = 0.5,
    num_categories: int = 16,
    width: float = 1.0,
    k: int = 20,
    emb_dims: int = 1024,
) -> nn.Module:
    """DGCNN with EdgeConv on a dynamic kNN graph (k=20), max+mean global pooling."""
    model = DGCNN(
        num_classes, task, k=k, pool=pool, act=act, in_channels=in_channels, dropout=dropout,
        num_categories=num_categories, width=width, emb_dims=emb_dims,
    )
    return set_ema_offsets(model, ema_offsets)
