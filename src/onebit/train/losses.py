"""Training losses: cross-entropy / NLL with label smoothing and class weights, plus PointNet's
feature-transform regulariser (weight 0.001 as in PointNet / BiPointNet)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = ["TaskLoss", "inverse_cube_root_weights"]


def inverse_cube_root_weights(counts: Sequence[int] | torch.Tensor) -> torch.Tensor:
    """S3DIS class weights of the BiPointNet code: w_c = (max_k n_k / n_c)^(1/3) (absent classes: 0)."""
    counts = torch.as_tensor(counts, dtype=torch.float64)
    w = torch.zeros_like(counts)
    seen = counts > 0
    w[seen] = (counts.max() / counts[seen]) ** (1.0 / 3.0)
    return w.float()


class TaskLoss(nn.Module):
    """L = CE(output, y; label smoothing ε, class weights) + λ·L_reg(model).

    ``name="ce"``: output are logits; ``"nll"``: output are log-probabilities (models ending in
    log_softmax). Label smoothing for NLL uses the same mixture (1-ε)·NLL + ε·mean_k(-log p_k).
    L_reg is ``model.regularizer(official=...)`` (PointNet's ‖AAᵀ − I‖_F; ``official=True``:
    the official code's ‖A(Aᵀ − I)‖_F) when the model has one and λ > 0.
    """

    def __init__(self, name: str = "ce", label_smoothing: float = 0.0, class_weights=None,
                 tnet_reg: float = 0.0, official_reg: bool = False):
        super().__init__()
        if name not in ("ce", "nll"):
            raise ValueError(f"loss: unknown name {name!r} (expected 'ce' or 'nll')")
        self.name = name
        self.label_smoothing = float(label_smoothing)
        self.tnet_reg = float(tnet_reg)
        self.official_reg = bool(official_reg)
        self.register_buffer("class_weights", None if class_weights is None else torch.as_tensor(
            class_weights, dtype=torch.float32))

    def forward(self, output: torch.Tensor, target: torch.Tensor, model: nn.Module | None = None) -> torch.Tensor:
        """The loss of ``output`` (B, K) or (B, N, K) against ``target``, plus λ·``model.regularizer()``."""
        if output.dim() == 3:  # segmentation (B, N, K) -> (B·N, K)
            output = output.reshape(-1, output.shape[-1])
            target = target.reshape(-1)
        output = output.float()
        target = target.long()
        if self.class_weights is not None and self.class_weights.numel() != output.shape[-1]:
            raise ValueError(f"loss: {self.class_weights.numel()} class weights for {output.shape[-1]} classes")
        if self.name == "ce":
            loss = F.cross_entropy(output, target, weight=self.class_weights, label_smoothing=self.label_smoothing)
        else:
            loss = F.nll_loss(output, target, weight=self.class_weights)
            if self.label_smoothing > 0:
                smooth = -output.mean(dim=-1).mean()
                loss = (1 - self.label_smoothing) * loss + self.label_smoothing * smooth
        if model is not None and self.tnet_reg > 0:
            reg = getattr(model, "regularizer", None)
            if callable(reg) and getattr(model, "last_transforms", None):
                loss = loss + self.tnet_reg * reg(official=self.official_reg)
        return loss
