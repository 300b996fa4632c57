"""PointNet++ (Qi et al., NeurIPS 2017), single- and multi-scale grouping, points-major.

Set abstraction (SA): FPS picks S centres, ball query groups K neighbours, a shared MLP runs on
[relative xyz ‖ features] of each (centre, neighbour) pair as one GEMM over B·S·K rows, and a
pool over the K neighbours (``make_pool(pool, dim=2)``, so EMA-max subtracts δ*(K)) gives the
centre's feature. The last SA groups all points. Feature propagation (FP) interpolates coarse
features back with inverse-squared-distance weights over 3 neighbours, concatenates the skip
features and applies a shared MLP. Layer sizes are the papers' defaults (cls: 1024 points,
partseg: 2048, semseg: 4096); ``npoints`` / ``max_nsample`` / ``width`` shrink them.

BiPointNet (App. E.3) keeps the first and the last layer float: here the first layer of each
SA1 branch (the only layers that see raw coordinates) and the head's output layer. Blocks are
Linear → BN → act as in every onebit point model (the official BiPointNet PointNet++ uses
Linear → ReLU → BN and an extra float 3→64 layer, notes §b9). Ball-query neighbourhoods with
fewer than K points are padded by repeating the first one, so EMA-max uses δ*(K) with K the
padded size, like the official constant for n = 64.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn as nn

from onebit.geometry import ball_query, farthest_point_sample, index_points, three_interpolate
from onebit.models._point_blocks import (
    ACTS,
    POOLS,
    Head,
    SharedMLP,
    category_onehot,
    check_choice,
    check_points,
    make_pool,
    scaled,
    set_ema_offsets,
)
from onebit.models.registry import register_model

# (npoint, radii, nsamples, mlps) per SA level; npoint None = group all
_SSG = {
    "cls": [(512, (0.2,), (32,), ((64, 64, 128),)), (128, (0.4,), (64,), ((128, 128, 256),)),
            (None, None, None, ((256, 512, 1024),))],
    "partseg": [(512, (0.2,), (32,), ((64, 64, 128),)), (128, (0.4,), (64,), ((128, 128, 256),)),
                (None, None, None, ((256, 512, 1024),))],
    "semseg": [(1024, (0.1,), (32,), ((32, 32, 64),)), (256, (0.2,), (32,), ((64, 64, 128),)),
               (64, (0.4,), (32,), ((128, 128, 256),)), (16, (0.8,), (32,), ((256, 256, 512),))],
}
_MSG = {
    "cls": [(512, (0.1, 0.2, 0.4), (16, 32, 128), ((32, 32, 64), (64, 64, 128), (64, 96, 128))),
            (128, (0.2, 0.4, 0.8), (32, 64, 128), ((64, 64, 128), (128, 128, 256), (128, 128, 256))),
            (None, None, None, ((256, 512, 1024),))],
    "partseg": [(512, (0.1, 0.2, 0.4), (32, 64, 128), ((32, 32, 64), (64, 64, 128), (64, 96, 128))),
                (128, (0.4, 0.8), (64, 128), ((128, 128, 256), (128, 196, 256))),
                (None, None, None, ((256, 512, 1024),))],
    "semseg": [(1024, (0.05, 0.1), (16, 32), ((16, 16, 32), (32, 32, 64))),
               (256, (0.1, 0.2), (16, 32), ((64, 64, 128), (64, 96, 128))),
               (64, (0.2, 0.4), (16, 32), ((128, 196, 256), (128, 196, 256))),
               (16, (0.4, 0.8), (16, 32), ((256, 256, 512), (256, 384, 512)))],
}
# FP MLPs from the coarsest level back to the input points
_FP = {
    ("ssg", "partseg"): ((256, 256), (256, 128), (128, 128, 128)),
    ("ssg", "semseg"): ((256, 256), (256, 256), (256, 128), (128, 128, 128)),
    ("msg", "partseg"): ((256, 256), (256, 128), (128, 128)),
    ("msg", "semseg"): ((256, 256), (256, 256), (256, 128), (128, 128, 128)),
}


class SetAbstraction(nn.Module):
    """FPS → ball query (one branch per radius) → shared MLP → pool over neighbours → concat."""

    def __init__(self, npoint, radii, nsamples, mlps, cin: int, *, act: str, pool: str):
        super().__init__()
        self.npoint = npoint
        self.group_all = npoint is None
        self.radii = tuple(radii) if radii else ()
        self.nsamples = tuple(nsamples) if nsamples else ()
        # ema-max pools the BN output itself (BiPointNet); otherwise Linear → BN → act → pool
        last_act = pool != "ema-max"
        self.branches = nn.ModuleList(SharedMLP(cin + 3, m, act, last_act=last_act) for m in mlps)
        self.pool = make_pool(pool, dim=2 if not self.group_all else 1)
        self.out_channels = sum(b.out_channels for b in self.branches)

    def forward(self, xyz: torch.Tensor, feats: torch.Tensor | None):
        """Sample (FPS), group (ball query per radius), MLP and pool: ``(xyz (B, N, 3), feats)``
        -> ``(centres (B, S, 3), features (B, S, C))``; ``group_all`` pools the whole cloud.
        """
        if self.group_all:
            x = xyz if feats is None else torch.cat([xyz, feats], dim=-1)
            out = self.pool(self.branches[0](x))  # (B, C)
            return xyz.new_zeros(xyz.shape[0], 1, 3), out.unsqueeze(1)
        with torch.no_grad():
            centre_idx = farthest_point_sample(xyz, self.npoint)
        centres = index_points(xyz, centre_idx)
        outs = []
        for radius, k, mlp in zip(self.radii, self.nsamples, self.branches, strict=True):
            with torch.no_grad():
                idx = ball_query(radius, k, xyz, centres)
            rel = index_points(xyz, idx) - centres.unsqueeze(2)  # (B, S, K, 3)
            g = rel if feats is None else torch.cat([rel, index_points(feats, idx)], dim=-1)
            outs.append(self.pool(mlp(g)))  # (B, S, C)
        return centres, outs[0] if len(outs) == 1 else torch.cat(outs, dim=-1)


class FeaturePropagation(nn.Module):
    """Interpolate coarse features to fine points (3-NN, 1/d² weights), concat skip, shared MLP."""

    def __init__(self, cin: int, widths: Sequence[int], act: str):
        super().__init__()
        self.mlp = SharedMLP(cin, widths, act)
        self.out_channels = self.mlp.out_channels

    def forward(self, xyz, coarse_xyz, coarse_feats, skip):
        """Interpolate ``coarse_feats`` onto ``xyz`` (three nearest, inverse distance),
        concatenate ``skip`` and run the MLP (segmentation decoder).
        """
        up = three_interpolate(xyz, coarse_xyz, coarse_feats)
        x = up if skip is None else torch.cat([skip, up], dim=-1)
        return self.mlp(x)


class PointNet2(nn.Module):
    """PointNet++ classifier ((B, N, C) → (B, classes)) or segmenter (→ (B, N, classes))."""

    def __init__(
        self,
        num_classes: int,
        task: str = "cls",
        *,
        grouping: str = "ssg",
        pool: str = "max",
        act: str = "relu",
        in_channels: int = 3,
        dropout: float = 0.5,
        num_categories: int = 16,
        width: float = 1.0,
        npoints: Sequence[int] | None = None,
        max_nsample: int | None = None,
    ):
        super().__init__()
        name = f"pointnet2_{grouping}"
        self.model_name = name
        check_choice(name, "task", task, ("cls", "partseg", "semseg"))
        check_choice(name, "pool", pool, POOLS)
        check_choice(name, "act", act, ACTS)
        if in_channels < 3:
            raise ValueError(f"{name}: needs xyz, but in_channels={in_channels}")
        self.task = task
        self.in_channels = in_channels
        self.num_categories = num_categories if task == "partseg" else 0
        levels = (_SSG if grouping == "ssg" else _MSG)[task]
        sampled = [lv for lv in levels if lv[0] is not None]
        if npoints is not None:
            npoints = tuple(int(n) for n in npoints)
            if len(npoints) != len(sampled):
                raise ValueError(f"{name}: {task} has {len(sampled)} sampled SA levels, got npoints={npoints}")
        extra = in_channels - 3
        cin = extra
        self.sa = nn.ModuleList()
        skip_channels = [extra]
        for i, (npoint, radii, nsamples, mlps) in enumerate(levels):
            if npoint is not None:
                npoint = npoints[i] if npoints is not None else npoint
                if max_nsample is not None:
                    nsamples = tuple(min(k, int(max_nsample)) for k in nsamples)
            mlps = [[scaled(width, c) for c in m] for m in mlps]
            sa = SetAbstraction(npoint, radii, nsamples, mlps, cin, act=act, pool=pool)
            self.sa.append(sa)
            cin = sa.out_channels
            skip_channels.append(cin)
        if task == "cls":
            self.fp = None
            self.head = Head(cin, [scaled(width, c) for c in (512, 256)], num_classes, act, dropout)
        else:
            self.fp = nn.ModuleList()
            fine = skip_channels[:-1][::-1]  # skip channels, coarse to fine
            for j, widths in enumerate(_FP[(grouping, task)]):
                skip = fine[j]
                if j == len(fine) - 1:  # input level: [one-hot ‖ xyz ‖ extra channels] as in PointNet++
                    skip = self.num_categories + in_channels
                fp = FeaturePropagation(skip + cin, [scaled(width, c) for c in widths], act)
                self.fp.append(fp)
                cin = fp.out_channels
            self.head = Head(cin, [scaled(width, 128)], num_classes, act, dropout)
        first = [f"sa.0.branches.{i}.0.linear" for i in range(len(self.sa[0].branches))]
        self.onebit_keep_float = (*first, "head.out")

    def forward(self, points: torch.Tensor, category=None) -> torch.Tensor:
        """``points`` (B, N, C) (xyz first); ``category`` (B,) or (B, 16) one-hot for partseg."""
        check_points(self.model_name, points, self.in_channels)
        xyz = points[..., :3].contiguous()
        feats = points[..., 3:] if self.in_channels > 3 else None
        xyzs, featss = [xyz], [feats]
        for sa in self.sa:
            xyz, feats = sa(xyz, feats)
            xyzs.append(xyz)
            featss.append(feats)
        if self.fp is None:
            return self.head(feats.squeeze(1))
        b, n, _ = points.shape
        for j, fp in enumerate(self.fp):
            level = len(self.sa) - 1 - j  # fine level receiving the features
            skip = featss[level]
            if level == 0:
                skip = points
                if self.task == "partseg":
                    onehot = category_onehot(self.model_name, category, b, self.num_categories, points)
                    skip = torch.cat([onehot.unsqueeze(1).expand(b, n, -1), points], dim=-1)
            feats = fp(xyzs[level], xyzs[level + 1], feats, skip)
        return self.head(feats)


def _builder(grouping: str, doc: str):
    def build(
        num_classes: int,
        task: str = "cls",
        pool: str = "max",
        ema_offsets: str = "closed",
        act: str = "relu",
        in_channels: int = 3,
        dropout: float = 0.5,
        num_categories: int = 16,
        width: float = 1.0,
        npoints: Sequence[int] | None = None,
        max_nsample: int | None = None,
    ) -> nn.Module:
        model = PointNet2(
            num_classes, task, grouping=grouping, pool=pool, act=act, in_channels=in_channels,
            dropout=dropout, num_categories=num_categories, width=width, npoints=npoints,
            max_nsample=max_nsample,
        )
        return set_ema_offsets(model, ema_offsets)

    build.__doc__ = doc
    build.__name__ = build.__qualname__ = f"pointnet2_{grouping}"
    return register_model(f"pointnet2_{grouping}", domain="points", tasks=("cls", "partseg", "semseg"))(build)


pointnet2_ssg = _builder("ssg", "PointNet++ with single-scale grouping (cls: SA 512/128/all, radii 0.2/0.4).")
"""Registered model ``pointnet2_ssg``: PointNet++ with single-scale grouping."""
pointnet2_msg = _builder("msg", "PointNet++ with multi-scale grouping (three radii per SA level).")
"""Registered model ``pointnet2_msg``: PointNet++ with multi-scale grouping."""
