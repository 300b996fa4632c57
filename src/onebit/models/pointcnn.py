"""PointCNN (Li et al., NeurIPS 2018): X-Conv layers, points-major, classification.

X-Conv (PointCNN Alg. 1) for a representative point p with K neighbours (coordinates P, features F):
  1. P' = P − p                                   local coordinates (K × 3)
  2. F_δ = MLP_δ(P')                              lift each coordinate to C_δ features (2 layers)
  3. F* = [F_δ ‖ F]                               (K × (C_δ + C_in))
  4. X = MLP(P')                                  a learned K × K transform from the flattened K·3
  5. F_X = X F*                                   weight and permute the neighbours
  6. F_p = Conv(K, F_X)                           depthwise-separable: a depthwise ``nn.Conv1d``
                                                  over the K neighbours (depth multiplier d), then
                                                  a pointwise Linear → BN → act
Neighbourhoods are the K·D nearest points taken every D-th (dilation D), representatives come
from FPS. Classification: X-Conv (K, D, P, C) = (8,1,all,48) (12,2,384,96) (16,2,128,192)
(16,3,128,384) as PointCNN's ModelNet40 model, then a global pool (PointCNN averages, so the
default is ``avg``; BiPointNet uses EMA-avg) and FC 384-192-classes. PointCNN averages logits over
points; here the features are pooled first so that the aggregation is the EMA-able layer.
BiPointNet (App. E.3) keeps "every first layer of XConv" float: here both layers of each X-Conv
that read raw local coordinates (MLP_δ's first layer and the X-transform's first layer), plus the
classifier's last layer.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn

from onebit.geometry import farthest_point_sample, index_points, knn
from onebit.models._point_blocks import (
    ACTS,
    POOLS,
    Head,
    LinearBlock,
    SharedMLP,
    check_choice,
    check_points,
    make_pool,
    scaled,
    set_ema_offsets,
)
from onebit.models.registry import register_model

_LAYERS = ((8, 1, None, 48), (12, 2, 384, 96), (16, 2, 128, 192), (16, 3, 128, 384))


class XConv(nn.Module):
    """One X-Conv layer: (xyz (B, N, 3), feats (B, N, C_in) | None) → (rep xyz (B, P, 3), (B, P, C))."""

    def __init__(self, cin: int, cout: int, k: int, dilation: int, npoint: int | None,
                 c_delta: int, depth_multiplier: int, *, act: str):
        super().__init__()
        self.k, self.dilation, self.npoint = k, dilation, npoint
        self.lift = SharedMLP(3, [c_delta, c_delta], act)
        self.xtrans = nn.Sequential(
            LinearBlock(3 * k, k * k, act), LinearBlock(k * k, k * k, act), nn.Linear(k * k, k * k)
        )
        cstar = c_delta + cin
        self.depthwise = nn.Conv1d(cstar, cstar * depth_multiplier, kernel_size=k, groups=cstar, bias=False)
        self.pointwise = LinearBlock(cstar * depth_multiplier, cout, act)
        self.out_channels = cout

    def forward(self, xyz: torch.Tensor, feats: torch.Tensor | None):
        """One X-Conv level: representative points (FPS), their dilated kNN, the X-transform and
        convolution -> (representative xyz (B, P, 3), features (B, P, C)).
        """
        b, n, _ = xyz.shape
        with torch.no_grad():
            if self.npoint is None or self.npoint >= n:
                reps = xyz
            else:
                reps = index_points(xyz, farthest_point_sample(xyz, self.npoint))
            span = min(self.k * self.dilation, n)
            idx = knn(reps, xyz, span)[:, :, :: self.dilation]
        k = idx.shape[-1]
        if k < self.k:  # fewer points than the kernel: repeat the nearest ones cyclically
            idx = idx.repeat(1, 1, math.ceil(self.k / k))[:, :, : self.k]
        p = reps.shape[1]
        local = index_points(xyz, idx) - reps.unsqueeze(2)  # (B, P, K, 3)
        fstar = self.lift(local)
        if feats is not None:
            fstar = torch.cat([fstar, index_points(feats, idx)], dim=-1)
        x = self.xtrans(local.reshape(b, p, self.k * 3)).view(b, p, self.k, self.k)
        fx = torch.matmul(x, fstar)  # (B, P, K, C*)
        c = fx.shape[-1]
        dw = self.depthwise(fx.reshape(b * p, self.k, c).transpose(1, 2))  # (B·P, C*·d, 1)
        return reps, self.pointwise(dw.view(b, p, -1))


class PointCNN(nn.Module):
    """PointCNN classifier: X-Conv stack → global pool → FC → logits (B, classes)."""

    def __init__(self, num_classes: int, task: str = "cls", *, pool: str = "avg", act: str = "relu",
                 in_channels: int = 3, dropout: float = 0.5, width: float = 1.0, k: int | None = None):
        super().__init__()
        name = self.model_name = "pointcnn"
        check_choice(name, "task", task, ("cls",))
        check_choice(name, "pool", pool, POOLS)
        check_choice(name, "act", act, ACTS)
        if in_channels < 3:
            raise ValueError(f"{name}: needs xyz, but in_channels={in_channels}")
        self.in_channels = in_channels
        self.xconv = nn.ModuleList()
        cin = in_channels - 3
        keep = []
        for i, (kk, d, p, c) in enumerate(_LAYERS):
            kk = kk if k is None else min(kk, int(k))
            cout = scaled(width, c)
            c_delta = max(1, cout // 2 if i == 0 else cout // 4)
            dm = 4 if i == 0 else min(4, math.ceil(cout / max(cin, 1)))
            self.xconv.append(XConv(cin, cout, kk, d, p, c_delta, dm, act=act))
            keep += [f"xconv.{i}.lift.0.linear", f"xconv.{i}.xtrans.0.linear"]
            cin = cout
        self.pool = make_pool(pool)
        self.head = Head(cin, [scaled(width, 384), scaled(width, 192)], num_classes, act, dropout)
        self.onebit_keep_float = (*keep, "head.out")

    def forward(self, points: torch.Tensor) -> torch.Tensor:
        """Points (B, N, C) -> logits (B, classes)."""
        check_points(self.model_name, points, self.in_channels)
        xyz = points[..., :3].contiguous()
        feats = points[..., 3:] if self.in_channels > 3 else None
        for layer in self.xconv:
            xyz, feats = layer(xyz, feats)
        return self.head(self.pool(feats))


@register_model("pointcnn", domain="points", tasks=("cls",))
def pointcnn(
    num_classes: int,
    task: str = "cls",
    pool: str = "avg",
    ema_offsets: str = "closed",
    act: str = "relu",
    in_channels: int = 3,
    dropout: float = 0.5,
    width: float = 1.0,
    k: int | None = None,
) -> nn.Module:
    """PointCNN with X-Conv (learned K×K transform + depthwise-separable conv), 4 layers."""
    model = PointCNN(num_classes, task, pool=pool, act=act, in_channels=in_channels, dropout=dropout,
                    width=width, k=k)
    return set_ema_offsets(model, ema_offsets)
