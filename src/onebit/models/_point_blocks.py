"""Shared building blocks of the point-cloud models (points-major (B, N, C) tensors).

Every shared MLP is an ``nn.Linear`` over the last dimension, so one layer is a single GEMM over
B·N rows (the fast CPU layout and the inference engine's layout). Blocks are
Linear → BatchNorm → activation, the order of PointNet and BiPointNet (binary linear → BN →
Hardtanh); the exporter folds each ``PointBatchNorm`` (a real ``nn.BatchNorm1d``) into the layer
before it.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn as nn

ACTS = ("relu", "hardtanh", "leaky_relu")
POOLS = ("max", "avg", "ema-max", "ema-avg")
TASKS = ("cls", "partseg", "semseg")


class PointBatchNorm(nn.BatchNorm1d):
    """BatchNorm over the channel (last) dim of a (..., C) tensor.

    It is an ``nn.BatchNorm1d`` applied to the (rows, C) view of the input, which is a free
    reshape of a contiguous Linear output: no transposes, and the statistics are taken over all
    B·N (or B·S·K) rows exactly as BatchNorm1d on (B, C, N) would.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] != self.num_features:
            raise ValueError(
                f"PointBatchNorm: expected {self.num_features} channels in the last dim, got shape "
                f"{tuple(x.shape)}"
            )
        if x.dim() == 2:
            return super().forward(x)
        shape = x.shape
        return super().forward(x.reshape(-1, shape[-1])).view(shape)


def check_choice(model: str, option: str, value, choices: Sequence) -> None:
    if value not in choices:
        raise ValueError(f"{model}: {option}={value!r} is not one of {list(choices)}")


def make_act(kind: str) -> nn.Module:
    """ReLU for full-precision nets; Hardtanh for BiPointNet (its gradient is the STE window)."""
    if kind == "relu":
        return nn.ReLU()
    if kind == "hardtanh":
        return nn.Hardtanh()
    if kind == "leaky_relu":  # DGCNN's activation (slope 0.2)
        return nn.LeakyReLU(0.2)
    raise ValueError(f"unknown activation {kind!r}; expected one of {list(ACTS)}")


def make_pool(kind: str, dim: int = 1) -> nn.Module:
    """Pool over ``dim`` (1 of (B, N, C), 2 of grouped (B, S, K, C)) via ``onebit.nn.make_pool``.

    EMA-max subtracts δ*(n) with n = x.shape[dim], the number of points (or neighbours) pooled.
    """
    from onebit.nn import make_pool as nn_make_pool

    if kind not in POOLS:
        raise ValueError(f"unknown pool {kind!r}; expected one of {list(POOLS)}")
    return nn_make_pool(kind, dim=dim)


def set_ema_offsets(model: nn.Module, offsets: str) -> nn.Module:
    """Choose the EMA-max offsets of every pool in ``model``: "closed" (δ*(n) = Φ⁻¹(0.5^(1/n)), any n)
    or "official" (the BiPointNet code's Monte-Carlo table, which only knows some n; notes §b6)."""
    from onebit.nn import EMAMaxPool

    if offsets not in ("closed", "official"):
        raise ValueError(f"ema_offsets must be 'closed' or 'official', got {offsets!r}")
    for m in model.modules():
        if isinstance(m, EMAMaxPool):
            m.offsets = offsets
    return model


class LinearBlock(nn.Module):
    """y = act(BN(x Wᵀ)) over the last dim; ``act=None`` leaves the BN output (before a pool)."""

    def __init__(self, cin: int, cout: int, act: str | None = "relu", bn: bool = True):
        super().__init__()
        # BN directly follows, so a bias would be redundant (it is absorbed by BN's shift)
        self.linear = nn.Linear(cin, cout, bias=not bn)
        self.bn = PointBatchNorm(cout) if bn else nn.Identity()
        self.act = make_act(act) if act is not None else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.bn(self.linear(x)))


class SharedMLP(nn.Sequential):
    """Chain of LinearBlocks cin → widths[0] → … ; ``last_act=False`` drops the final activation.

    ``bn=False`` builds the blocks without BatchNorm (each Linear then keeps its bias); ``bn="first"``
    keeps it on the first block only (BiPointNet Table 4 (f): LSR replaces BN after the float first layer).
    """

    def __init__(self, cin: int, widths: Sequence[int], act: str = "relu", last_act: bool = True,
                 bn: bool | str = True):
        if bn not in (True, False, "first"):
            raise ValueError(f"SharedMLP: bn must be True, False or 'first', got {bn!r}")
        blocks = []
        for i, w in enumerate(widths):
            is_last = i == len(widths) - 1
            with_bn = bn is True or (bn == "first" and i == 0)
            blocks.append(LinearBlock(cin, w, act if (last_act or not is_last) else None, bn=with_bn))
            cin = w
        super().__init__(*blocks)
        self.out_channels = cin


def scaled(width: float, c: int) -> int:
    """Channel count c scaled by the width multiplier (at least 1)."""
    return max(1, int(round(c * width)))


def check_points(model: str, x: torch.Tensor, in_channels: int) -> None:
    if not torch.is_tensor(x) or x.dim() != 3:
        shape = tuple(x.shape) if torch.is_tensor(x) else type(x).__name__
        raise ValueError(f"{model}: expected points of shape (B, N, C), got {shape}")
    if x.shape[-1] != in_channels:
        raise ValueError(
            f"{model}: expected {in_channels} input channels (points-major (B, N, C)), got shape "
            f"{tuple(x.shape)}"
        )
    if not x.is_floating_point():
        raise ValueError(f"{model}: expected a float tensor, got {x.dtype}")


def category_onehot(model: str, category, batch: int, num_categories: int, like: torch.Tensor):
    """(B,) int labels or (B, num_categories) one-hot → float one-hot (B, num_categories)."""
    if category is None:
        raise ValueError(f"{model}: task 'partseg' needs the object category: model(points, category)")
    category = torch.as_tensor(category, device=like.device)
    if category.dim() == 2:
        if category.shape != (batch, num_categories):
            raise ValueError(
                f"{model}: one-hot category must have shape ({batch}, {num_categories}), got "
                f"{tuple(category.shape)}"
            )
        return category.to(like.dtype)
    category = category.reshape(-1).long()
    if category.numel() != batch:
        raise ValueError(f"{model}: got {category.numel()} categories for a batch of {batch}")
    if category.numel() and (int(category.min()) < 0 or int(category.max()) >= num_categories):
        raise ValueError(f"{model}: category labels must lie in [0, {num_categories}), got {category.tolist()}")
    return torch.nn.functional.one_hot(category, num_categories).to(like.dtype)


class Head(nn.Module):
    """Classifier / per-point head: Linear → BN → act blocks, dropout, final Linear → classes.

    Works on (B, C) global features (classification) and (B, N, C) point features (segmentation).
    """

    def __init__(self, cin: int, widths: Sequence[int], num_classes: int, act: str, dropout: float,
                 bn: bool = True):
        super().__init__()
        self.mlp = SharedMLP(cin, widths, act, bn=bn)
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.out = nn.Linear(self.mlp.out_channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.dropout(self.mlp(x)))
