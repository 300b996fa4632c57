"""PointNet's T-Net regulariser as a diagnostic (BiPointNet Sec. 3.3.1 and 4.1, Fig. 4(b)).

L_reg = ‖I − Z Zᵀ‖_F for the predicted feature transform Z, averaged over the batch. Scale
distortion makes Z's entries huge, so L_reg stays large for a vanilla binarized PointNet and small
with LSR. The model's own ``regularizer(official=False)`` is used when it has one (design.md,
"Models"); otherwise the value is computed from ``model.last_transforms``.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["frobenius_regularizer", "tnet_regularizer"]


def frobenius_regularizer(z: torch.Tensor) -> float:
    """mean_b ‖I − Z_b Z_bᵀ‖_F for a (B, k, k) or (k, k) transform."""
    if z.dim() == 2:
        z = z.unsqueeze(0)
    if z.dim() != 3 or z.shape[-1] != z.shape[-2]:
        raise ValueError(f"frobenius_regularizer: expected (B, k, k) transforms, got {tuple(z.shape)}")
    z = z.detach().to(torch.float64)
    eye = torch.eye(z.shape[-1], dtype=z.dtype, device=z.device)
    return float(torch.linalg.matrix_norm(eye - z @ z.transpose(1, 2)).mean())


def _feature_transform(model: nn.Module) -> torch.Tensor | None:
    t = getattr(model, "last_transforms", None)
    if isinstance(t, torch.Tensor):
        return t
    if isinstance(t, dict):
        return t.get("feature")
    if isinstance(t, (list, tuple)) and t:
        return t[-1]
    return None


@torch.no_grad()
def tnet_regularizer(model: nn.Module) -> float | None:
    """L_reg of the model's last forward; None without a feature T-Net or before any forward."""
    z = _feature_transform(model)
    if z is None:
        return None
    reg = getattr(model, "regularizer", None)
    if callable(reg):
        try:
            return float(reg(official=False))
        except (RuntimeError, TypeError):  # foreign signature: compute it here
            pass
    return frobenius_regularizer(z)
