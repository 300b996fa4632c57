"""PointNet (Qi et al., CVPR 2017) and BiPointNet's variants (Qin et al., ICLR 2021).

Layout (points-major, every shared MLP an ``nn.Linear`` over the last dim of (B, N, C)):

* ``pointnet``: input T-Net (3×3) → mlp1 (C→64) → feature T-Net (64×64) → mlp2 (64→128→1024,
  last layer Linear → BN with no activation) → global pool → head FC 1024-512-256-classes.
  This is the PyTorch PointNet that BiPointNet binarizes: 18 linear layers for classification,
  of which the official config keeps 3 float (notes §b5).
* ``pointnet_vanilla``: no T-Nets, shared MLP C-64-64-64-128-1024, pool, FC 1024-512-256-classes.
* ``pointnet_deploy``: BiPointNet's deployment net (paper App. B, Fig. 6 (b)): shared MLP
  C-64-128-1024, pool, FC 1024-512-256-classes; first (C×64) and last (256×classes) stay float.

Segmentation (PointNet Fig. 2): per-point [local features (output of mlp1, 64) ‖ global feature
(‖ category one-hot for partseg)] → shared MLP 512-256-128 → classes, output (B, N, classes).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn as nn

from onebit.models._point_blocks import (
    ACTS,
    POOLS,
    TASKS,
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


class TNet(nn.Module):
    """T-Net: shared MLP → pool → FC → k×k matrix + I (PointNet §4.2).

    With ``ema-max`` the last shared layer's BN output is pooled directly (EMA shifts it by δ*);
    otherwise it goes through the activation first, as in the PyTorch PointNet.
    """

    def __init__(self, cin: int, k: int, *, pool: str, act: str, width: float = 1.0):
        super().__init__()
        self.k = k
        self.mlp = SharedMLP(cin, [scaled(width, c) for c in (64, 128, 1024)], act, last_act=pool != "ema-max")
        self.pool = make_pool(pool)
        self.fc = SharedMLP(self.mlp.out_channels, [scaled(width, c) for c in (512, 256)], act)
        self.out = nn.Linear(self.fc.out_channels, k * k)
        self.register_buffer("identity", torch.eye(k).reshape(-1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Points or features (B, N, k) -> the predicted k x k transform (B, k, k), identity-centred."""
        g = self.pool(self.mlp(x))
        return (self.out(self.fc(g)) + self.identity).view(-1, self.k, self.k)


class PointNet(nn.Module):
    """PointNet for classification ((B, N, C) → (B, classes)) or segmentation (→ (B, N, classes))."""

    def __init__(
        self,
        num_classes: int,
        task: str = "cls",
        *,
        mlp1: Sequence[int] = (64,),
        mlp2: Sequence[int] = (128, 1024),
        input_transform: bool = True,
        feature_transform: bool = True,
        pool: str = "max",
        act: str = "relu",
        in_channels: int = 3,
        dropout: float = 0.4,
        num_categories: int = 16,
        width: float = 1.0,
        hidden_bn: bool = True,
        name: str = "pointnet",
    ):
        super().__init__()
        check_choice(name, "task", task, TASKS)
        check_choice(name, "pool", pool, POOLS)
        check_choice(name, "act", act, ACTS)
        if num_classes < 1:
            raise ValueError(f"{name}: num_classes must be >= 1, got {num_classes}")
        if input_transform and in_channels < 3:
            raise ValueError(f"{name}: the input transform needs xyz, but in_channels={in_channels}")
        self.model_name = name
        self.task = task
        self.in_channels = in_channels
        self.num_categories = num_categories if task == "partseg" else 0
        w1 = [scaled(width, c) for c in mlp1]
        w2 = [scaled(width, c) for c in mlp2]
        self.input_tnet = TNet(in_channels, 3, pool=pool, act=act, width=width) if input_transform else None
        # hidden_bn=False: BN after the first layer only (BiPointNet Table 4 (f): the binary layers
        # carry LSR and a bias instead; the T-Nets keep theirs)
        bn = True if hidden_bn else "first"
        self.mlp1 = SharedMLP(in_channels, w1, act, bn=bn)
        self.feature_tnet = (
            TNet(self.mlp1.out_channels, self.mlp1.out_channels, pool=pool, act=act, width=width)
            if feature_transform
            else None
        )
        # PointNet's encoder ends Linear → BN → pool: no activation before the global pool
        self.mlp2 = SharedMLP(self.mlp1.out_channels, w2, act, last_act=False, bn=bool(hidden_bn))
        self.pool = make_pool(pool)
        gdim = self.mlp2.out_channels
        if task == "cls":
            self.head = Head(gdim, [scaled(width, c) for c in (512, 256)], num_classes, act, dropout,
                             bn=bool(hidden_bn))
        else:
            cin = self.mlp1.out_channels + gdim + self.num_categories
            self.head = Head(cin, [scaled(width, c) for c in (512, 256, 128)], num_classes, act, 0.0,
                             bn=bool(hidden_bn))
        self.last_transforms: dict[str, torch.Tensor] = {}
        keep = ["mlp1.0.linear", "head.out"]
        if input_transform:
            keep.append("input_tnet.mlp.0.linear")
        self.onebit_keep_float = tuple(keep)

    def forward(self, points: torch.Tensor, category=None) -> torch.Tensor:
        """``points`` (B, N, C); ``category`` (B,) labels or (B, 16) one-hot, for partseg only."""
        check_points(self.model_name, points, self.in_channels)
        b, n, _ = points.shape
        transforms = {}
        x = points
        if self.input_tnet is not None:
            a = self.input_tnet(points)
            transforms["input"] = a
            xyz = torch.bmm(points[..., :3], a)
            x = xyz if self.in_channels == 3 else torch.cat([xyz, points[..., 3:]], dim=-1)
        local = self.mlp1(x)
        if self.feature_tnet is not None:
            a = self.feature_tnet(local)
            transforms["feature"] = a
            local = torch.bmm(local, a)
        g = self.pool(self.mlp2(local))
        self.last_transforms = transforms
        if self.task == "cls":
            return self.head(g)
        if self.task == "partseg":
            onehot = category_onehot(self.model_name, category, b, self.num_categories, g)
            g = torch.cat([g, onehot], dim=-1)
        feats = torch.cat([local, g.unsqueeze(1).expand(b, n, g.shape[-1])], dim=-1)
        return self.head(feats)

    def regularizer(self, official: bool = False) -> torch.Tensor:
        """Feature-transform regulariser of the last forward: mean_b ‖A_b A_bᵀ − I‖_F (PointNet Eq. 2).

        ``official=True`` gives the BiPointNet code's mean_b ‖A_b (A_bᵀ − I)‖_F (notes §b5). A model
        without a feature T-Net returns 0.
        """
        if self.feature_tnet is None:
            return torch.zeros((), device=self.mlp1[0].linear.weight.device)
        a = self.last_transforms.get("feature")
        if a is None:
            raise RuntimeError(f"{self.model_name}: regularizer() needs a forward pass first")
        eye = torch.eye(a.shape[-1], device=a.device, dtype=a.dtype)
        at = a.transpose(1, 2)
        m = torch.bmm(a, at - eye) if official else torch.bmm(a, at) - eye
        return torch.linalg.matrix_norm(m).mean()


@register_model("pointnet", domain="points", tasks=TASKS)
def pointnet(
    num_classes: int,
    task: str = "cls",
    pool: str = "max",
    ema_offsets: str = "closed",
    act: str = "relu",
    in_channels: int = 3,
    dropout: float = 0.4,
    num_categories: int = 16,
    width: float = 1.0,
    input_transform: bool = True,
    feature_transform: bool = True,
) -> nn.Module:
    """PointNet with input (3×3) and feature (64×64) T-Nets; BiPointNet's main backbone."""
    model = PointNet(
        num_classes, task, pool=pool, act=act, in_channels=in_channels, dropout=dropout,
        num_categories=num_categories, width=width, input_transform=input_transform,
        feature_transform=feature_transform, name="pointnet",
    )
    return set_ema_offsets(model, ema_offsets)


@register_model("pointnet_vanilla", domain="points", tasks=TASKS)
def pointnet_vanilla(
    num_classes: int,
    task: str = "cls",
    pool: str = "max",
    ema_offsets: str = "closed",
    act: str = "relu",
    in_channels: int = 3,
    dropout: float = 0.4,
    num_categories: int = 16,
    width: float = 1.0,
) -> nn.Module:
    """Vanilla PointNet without T-Nets: shared MLP C-64-64-64-128-1024, pool, FC 1024-512-256."""
    model = PointNet(
        num_classes, task, mlp1=(64, 64), mlp2=(64, 128, 1024), input_transform=False,
        feature_transform=False, pool=pool, act=act, in_channels=in_channels, dropout=dropout,
        num_categories=num_categories, width=width, name="pointnet_vanilla",
    )
    return set_ema_offsets(model, ema_offsets)


@register_model("pointnet_deploy", domain="points", tasks=("cls",))
def pointnet_deploy(
    num_classes: int,
    task: str = "cls",
    pool: str = "max",
    ema_offsets: str = "closed",
    act: str = "relu",
    in_channels: int = 3,
    dropout: float = 0.4,
    width: float = 1.0,
    hidden_bn: bool = True,
) -> nn.Module:
    """BiPointNet deployment net (App. B, Fig. 6 b): shared MLP C-64-128-1024, pool, FC 1024-512-256.

    ``hidden_bn=False`` is Table 4 (f): BatchNorm after the first layer only; every later layer is
    Linear (+ bias) → activation, so a binarized layer's scale comes from LSR alone.
    """
    model = PointNet(
        num_classes, task, mlp1=(64,), mlp2=(128, 1024), input_transform=False, feature_transform=False,
        pool=pool, act=act, in_channels=in_channels, dropout=dropout, width=width, hidden_bn=hidden_bn,
        name="pointnet_deploy",
    )
    return set_ema_offsets(model, ema_offsets)
