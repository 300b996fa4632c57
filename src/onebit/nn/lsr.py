"""Layer-wise Scale Recovery (BiPointNet, Qin et al. ICLR 2021, Sec. 3.3.2).

One learnable scalar α per binary layer multiplies the binary product:

    forward  Z = α (B_a ⊙ B_w)            (Eq. 10)
    backward g_α = Σ g_Z ⊙ (B_a ⊙ B_w)   (autograd computes exactly this)

and α is initialised from data (Eq. 9): α₀ = σ(A ⊙ W) / σ(B_a ⊙ B_w), the standard deviation of
the real-valued layer output over that of the binary output, on the first training batch.
``init="unit"`` instead sets α₀ = 1 / σ(B_a ⊙ B_w), so the layer's output starts with unit variance
(the data-dependent init of weight normalisation). A net without BatchNorm needs it where an
EMA-max pool follows: δ* assumes N(0, 1) input (``benchmarks/bipointnet_no_bn_probe.py``).

Here α is a Parameter from construction (so an optimizer built afterwards holds it); the layer
copies α₀ into it in place, under no_grad, on its first forward in training mode. The buffer
``initialized`` records that this happened and is saved in the state_dict, so resuming from a
checkpoint never re-initialises. Under torch.distributed α₀ is averaged over ranks so that every
replica starts from the same value.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["LSR_INITS", "LSRScale"]

LSR_INITS = ("real", "unit")
"""How α₀ is set on the first training batch: match the real-valued output's σ (Eq. 9) or unit σ."""


class LSRScale(nn.Module):
    """Learnable layer-wise scale α (BiPointNet LSR); ``forward(z) = α·z``.

    ``center_weights=True`` reproduces the official code, which binarizes W − mean(W) (one global
    mean per layer) instead of W; the paper (default False) has no centring. The owning layer
    applies it through :meth:`prepare_weight`. ``init`` is one of ``LSR_INITS``: "real" (Eq. 9,
    the paper) or "unit" (α₀ = 1 / σ(B_a ⊙ B_w), unit-variance output for nets without BN).
    """

    def __init__(self, center_weights: bool = False, init: str = "real") -> None:
        super().__init__()
        if init not in LSR_INITS:
            raise ValueError(f"LSRScale: init must be one of {LSR_INITS}, got {init!r}")
        self.center_weights = bool(center_weights)
        self.init = init
        self.alpha = nn.Parameter(torch.ones(()))
        self.register_buffer("initialized", torch.zeros((), dtype=torch.bool))
        self._ready = False  # python-side cache of `initialized`: no device sync once it is True

    def prepare_weight(self, w: torch.Tensor) -> torch.Tensor:
        """W, or W − mean(W) with ``center_weights`` (gradient flows through the centring)."""
        return w - w.mean() if self.center_weights else w

    @property
    def is_initialized(self) -> bool:
        if not self._ready:
            self._ready = bool(self.initialized)
        return self._ready

    @torch.no_grad()
    def initialize_(self, real_out: torch.Tensor, binary_out: torch.Tensor, weight: torch.Tensor | None = None,
                    binary_weight: torch.Tensor | None = None) -> float:
        """Set α ← σ(real_out) / σ(binary_out) (Eq. 9), or 1 / σ(binary_out) with ``init="unit"``, in
        place and mark as initialised.

        Degenerate batches (zero or non-finite std, e.g. an all-zero input) fall back to the
        weights' ratio σ(W) / σ(B_w) when given (as the official code does), else to 1.
        """
        a0 = _std_ratio(real_out if self.init == "real" else None, binary_out)
        if a0 is None and weight is not None and binary_weight is not None:
            a0 = _std_ratio(weight, binary_weight)
        value = torch.tensor(1.0 if a0 is None else a0, dtype=self.alpha.dtype, device=self.alpha.device)
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.all_reduce(value)
            value /= torch.distributed.get_world_size()
        self.alpha.copy_(value)
        self.initialized.fill_(True)
        self._ready = True
        return float(value)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """α·z: BiPointNet Eq. 10, Z = α (B_a ⊙ B_w)."""
        return self.alpha.to(z.dtype) * z

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys,
                              unexpected_keys, error_msgs):
        # A float (or pre-LSR) state_dict has neither key: leave α uninitialised so the first
        # training batch sets it, instead of failing a strict load.
        keys = (prefix + "alpha", prefix + "initialized")
        absent = [k for k in keys if k not in state_dict]
        self._ready = False  # re-read the loaded flag on next use
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys,
                                      unexpected_keys, error_msgs)
        if len(absent) == 2:
            for k in keys:
                if k in missing_keys:
                    missing_keys.remove(k)

    def extra_repr(self) -> str:
        state = f"alpha={float(self.alpha.detach()):.4g}" if self.is_initialized else "alpha=<init on first training batch>"
        return (state + (", center_weights=True" if self.center_weights else "")
                + (f", init={self.init!r}" if self.init != "real" else ""))


def _std_ratio(num: torch.Tensor | None, den: torch.Tensor) -> float | None:
    """σ(num) / σ(den) over all elements, 1 / σ(den) when ``num`` is None; None when degenerate."""
    if (num is not None and num.numel() < 2) or den.numel() < 2:
        return None
    s_num = 1.0 if num is None else float(num.detach().double().std())
    s_den = float(den.detach().double().std())
    if not (s_num > 0 and s_den > 0) or not (abs(s_num) < float("inf") and abs(s_den) < float("inf")):
        return None
    return s_num / s_den
