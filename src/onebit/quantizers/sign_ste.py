"""Sign binarizers: BNN's straight-through sign and Bi-Real's ApproxSign."""
from __future__ import annotations

import torch

from .base import Quantizer, register_quantizer, sign


class _STESign(torch.autograd.Function):
    """Forward sign(x); backward g * 1(|x| <= 1) (hard-tanh STE, Courbariaux et al. 2016, BNN)."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return sign(x)

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return g * (x.abs() <= 1).to(g.dtype)


class _ApproxSign(torch.autograd.Function):
    """Forward sign(x); backward Bi-Real's ApproxSign derivative (Liu et al. 2018):
    d/dx = 2 + 2x on [-1, 0), 2 - 2x on [0, 1), 0 elsewhere."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return sign(x)

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        d = torch.where(x < 0, 2 + 2 * x, 2 - 2 * x)
        d = torch.where((x >= -1) & (x < 1), d, torch.zeros_like(d))
        return g * d


def ste_sign_fn(x: torch.Tensor) -> torch.Tensor:
    """sign(x) with the hard-tanh straight-through backward."""
    return _STESign.apply(x)


def approx_sign_fn(x: torch.Tensor) -> torch.Tensor:
    """sign(x) with Bi-Real's piecewise-polynomial backward."""
    return _ApproxSign.apply(x)


def _plain_sign_factors(w: torch.Tensor):
    """(sign(w), a = 1, b = 0) per output channel: an unscaled sign binarizer's W̃ = signs."""
    ones = torch.ones(w.shape[0], dtype=w.dtype, device=w.device)
    return sign(w), ones, torch.zeros_like(ones)


@register_quantizer("ste_sign")
class STESign(Quantizer):
    """BNN (Courbariaux et al. 2016): y = sign(x), dy/dx = 1(|x| <= 1). Weights or activations."""

    kind = "both"
    name = "ste_sign"

    def forward(self, x):
        """sign(x) (sign(0) = +1) with the hard-tanh STE, BiPointNet Eq. 1."""
        return ste_sign_fn(x)

    def factorize(self, w):
        """``(sign(w), 1, 0)``: plain signs, no scale."""
        return _plain_sign_factors(w)


@register_quantizer("approx_sign")
class ApproxSign(Quantizer):
    """Bi-Real Net (Liu et al. 2018): y = sign(x), dy/dx = 2+2x on [-1,0), 2-2x on [0,1), else 0."""

    kind = "both"
    name = "approx_sign"

    def forward(self, x):
        """sign(x) with Bi-Real's ApproxSign backward."""
        return approx_sign_fn(x)

    def factorize(self, w):
        """``(sign(w), 1, 0)``: plain signs, no scale."""
        return _plain_sign_factors(w)
