"""PointConv (Wu et al., CVPR 2019), density-weighted, efficient form; classification.

For a centre p with K nearest neighbours (relative coordinates P' = P − p, features F after a
shared MLP, C channels):

    PointConv(p) = Σ_k S_k · W(P'_k) ⊗ F_k        (PointConv Eq. 3-4)

* W = WeightNet(P'): shared MLP 3 → 8 → 8 → C_mid (16) on relative coordinates;
* S = DensityNet(s): MLP 1 → 16 → 1 with a sigmoid on s_k = ρ⁻¹_k / max_k ρ⁻¹_k, where
  ρ_i = mean_j exp(−‖x_i − x_j‖² / (2σ²)) / (2.5σ) is a Gaussian kernel density estimate over the
  layer's input points (bandwidth σ);
* efficient PointConv (§3.3): the sum is the matmul (S ⊙ F)ᵀ W of shape C × C_mid per centre,
  flattened and followed by Linear(C·C_mid → C) → BN → act.

There is no pooling: the weighted sum is the aggregation (BiPointNet App. E.3: "PointConv does
not have explicit aggregators"), so this model takes no ``pool`` option. Classification: SA
512 centres, K=32, σ=0.1, MLP 64-64-128; SA 128, K=64, σ=0.2, MLP 128-128-256; SA over all
points, σ=0.4, MLP 256-512-1024; FC 512-256-classes. BiPointNet keeps the first and last layer
float; the WeightNet / DensityNet input layers are also kept float, because their inputs are raw
3-D offsets and a positive 1-D density scale, whose signs carry (almost) no information.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn as nn

from onebit.geometry import farthest_point_sample, index_points, knn, square_distance
from onebit.models._point_blocks import (
    ACTS,
    Head,
    LinearBlock,
    SharedMLP,
    check_choice,
    check_points,
    scaled,
)
from onebit.models.registry import register_model

_LAYERS = ((512, 32, 0.1, (64, 64, 128)), (128, 64, 0.2, (128, 128, 256)), (None, None, 0.4, (256, 512, 1024)))


def kernel_density(xyz: torch.Tensor, bandwidth: float) -> torch.Tensor:
    """ρ_i = mean_j exp(−‖x_i − x_j‖² / (2σ²)) / (2.5σ) over the cloud, (B, N, 3) → (B, N)."""
    d = square_distance(xyz, xyz)
    return torch.exp(d.mul_(-1.0 / (2.0 * bandwidth * bandwidth))).mean(dim=-1) / (2.5 * bandwidth)


class PointConvLayer(nn.Module):
    """Density-weighted PointConv set abstraction: (xyz, feats) → (centres (B, S, 3), (B, S, C))."""

    def __init__(self, npoint: int | None, nsample: int | None, bandwidth: float, cin: int,
                 widths: Sequence[int], *, act: str, c_mid: int = 16):
        super().__init__()
        self.npoint, self.nsample, self.bandwidth = npoint, nsample, bandwidth
        self.group_all = npoint is None
        self.mlp = SharedMLP(cin + 3, widths, act)
        self.weightnet = SharedMLP(3, [8, 8, c_mid], act)
        self.densitynet = nn.Sequential(LinearBlock(1, 16, act), LinearBlock(16, 1, None), nn.Sigmoid())
        c = self.mlp.out_channels
        self.linear = LinearBlock(c * c_mid, c, act)
        self.out_channels = c

    def forward(self, xyz: torch.Tensor, feats: torch.Tensor | None):
        """One PointConv level: FPS centres, kNN groups, inverse-density-weighted MLP
        convolution -> (centres (B, S, 3), features (B, S, C)).
        """
        b, n, _ = xyz.shape
        with torch.no_grad():
            inv_density = 1.0 / kernel_density(xyz, self.bandwidth)  # (B, N)
            if self.group_all:
                centres = xyz.new_zeros(b, 1, 3)
                idx = torch.arange(n, device=xyz.device).expand(b, 1, n)
            else:
                centres = index_points(xyz, farthest_point_sample(xyz, self.npoint))
                idx = knn(centres, xyz, min(self.nsample, n))
        rel = index_points(xyz, idx) - centres.unsqueeze(2)  # (B, S, K, 3)
        g = rel if feats is None else torch.cat([rel, index_points(feats, idx)], dim=-1)
        h = self.mlp(g)  # (B, S, K, C)
        inv = index_points(inv_density.unsqueeze(-1), idx)  # (B, S, K, 1)
        scale = self.densitynet(inv / inv.amax(dim=2, keepdim=True))
        w = self.weightnet(rel)  # (B, S, K, C_mid)
        out = torch.matmul((h * scale).transpose(-1, -2), w)  # (B, S, C, C_mid)
        return centres, self.linear(out.flatten(-2))


class PointConv(nn.Module):
    """PointConv classifier: three density-weighted PointConv layers → FC → logits (B, classes)."""

    def __init__(self, num_classes: int, task: str = "cls", *, act: str = "relu", in_channels: int = 3,
                 dropout: float = 0.4, width: float = 1.0, npoints: Sequence[int] | None = None,
                 nsample: int | None = None):
        super().__init__()
        name = self.model_name = "pointconv"
        check_choice(name, "task", task, ("cls",))
        check_choice(name, "act", act, ACTS)
        if in_channels < 3:
            raise ValueError(f"{name}: needs xyz, but in_channels={in_channels}")
        if npoints is not None and len(npoints) != 2:
            raise ValueError(f"{name}: npoints gives the 2 sampled levels' centre counts, got {npoints}")
        self.in_channels = in_channels
        self.sa = nn.ModuleList()
        cin = in_channels - 3
        keep = ["sa.0.mlp.0.linear"]
        for i, (npoint, k, bw, widths) in enumerate(_LAYERS):
            if npoint is not None:
                npoint = int(npoints[i]) if npoints is not None else npoint
                k = k if nsample is None else int(nsample)
            layer = PointConvLayer(npoint, k, bw, cin, [scaled(width, c) for c in widths], act=act)
            self.sa.append(layer)
            keep += [f"sa.{i}.weightnet.0.linear", f"sa.{i}.densitynet.0.linear"]
            cin = layer.out_channels
        self.head = Head(cin, [scaled(width, 512), scaled(width, 256)], num_classes, act, dropout)
        self.onebit_keep_float = (*keep, "head.out")

    def forward(self, points: torch.Tensor) -> torch.Tensor:
        """Points (B, N, C) -> logits (B, classes)."""
        check_points(self.model_name, points, self.in_channels)
        xyz = points[..., :3].contiguous()
        feats = points[..., 3:] if self.in_channels > 3 else None
        for layer in self.sa:
            xyz, feats = layer(xyz, feats)
        return self.head(feats.squeeze(1))


@register_model("pointconv", domain="points", tasks=("cls",))
def pointconv(
    num_classes: int,
    task: str = "cls",
    act: str = "relu",
    in_channels: int = 3,
    dropout: float = 0.4,
    width: float = 1.0,
    npoints: Sequence[int] | None = None,
    nsample: int | None = None,
) -> nn.Module:
    """Density-weighted PointConv (efficient matmul form); no pooling layer (takes no ``pool``)."""
    return PointConv(num_classes, task, act=act, in_channels=in_channels, dropout=dropout, width=width,
                     npoints=npoints, nsample=nsample)
