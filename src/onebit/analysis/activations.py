"""Activation statistics of binary layers: zero-gradient ratio (BiPointNet Fig. 4(c)) and sign balance.

The straight-through estimator of sign passes the gradient only where |x| ≤ 1, so the fraction
of quantizer inputs with |x| > 1 is the fraction of activations whose gradient is exactly 0
(saturation, amplified by scale distortion, Sec. 3.3.1). Sign balance is P(sign(x) = +1), with
sign(0) = +1; ½ maximises the entropy of the binarized tensor (Proposition 1).
"""

from __future__ import annotations

import torch

__all__ = ["positive_fraction", "zero_grad_ratio"]


def zero_grad_ratio(x: torch.Tensor, threshold: float = 1.0) -> float:
    """Fraction of entries with |x| > threshold: where the STE gradient 1_{|x| ≤ 1} is zero."""
    if x.numel() == 0:
        raise ValueError("zero_grad_ratio: empty tensor")
    return float((x.detach().abs() > threshold).to(torch.float64).mean())


def positive_fraction(x: torch.Tensor) -> float:
    """Fraction of +1 in sign(x) (sign(0) = +1), i.e. P(x ≥ 0)."""
    if x.numel() == 0:
        raise ValueError("positive_fraction: empty tensor")
    return float((x.detach() >= 0).to(torch.float64).mean())
