"""IR-Net (Qin et al., CVPR 2020): Libra-PB weights and the EDE (error decay estimator) backward."""
from __future__ import annotations

import math

import torch

from .base import Quantizer, check_finite, register_quantizer, sign

__all__ = ["IRNetWeight", "IRNetAct", "ede_params", "ede_sign_fn"]


def ede_params(progress: float, t_min: float = 0.1, t_max: float = 10.0) -> tuple[float, float]:
    """EDE schedule (IR-Net Eq. 10): t = T_min·10^(p·log10(T_max/T_min)), k = max(1/t, 1)."""
    if not 0.0 <= progress <= 1.0:
        raise ValueError(f"EDE progress must be in [0, 1], got {progress}")
    t = t_min * 10.0 ** (progress * math.log10(t_max / t_min))
    return t, max(1.0 / t, 1.0)


class _EDESign(torch.autograd.Function):
    """Forward sign(x); backward g·k·t·(1 − tanh²(t·x)) (IR-Net's EDE)."""

    @staticmethod
    def forward(ctx, x, t, k):
        ctx.save_for_backward(x)
        ctx.t, ctx.k = t, k
        return sign(x)

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        th = torch.tanh(ctx.t * x)
        return g * (ctx.k * ctx.t) * (1 - th * th), None, None


def ede_sign_fn(x: torch.Tensor, t: float, k: float) -> torch.Tensor:
    """sign(x) with IR-Net's EDE backward g·k·t·(1 − tanh²(t·x)); ``t``, ``k`` from ``ede_params``."""
    return _EDESign.apply(x, t, k)


class _EDEMixin:
    """Holds the EDE schedule; ``set_progress(p)`` is called by ``update_schedules`` every epoch.

    Progress is a plain attribute (not a buffer) so the layer's state_dict keys stay those of the
    float layer; the trainer re-applies it after a resume.
    """

    def _init_ede(self, t_min: float, t_max: float, progress: float):
        if not (t_min > 0 and t_max > 0):
            raise ValueError(f"irnet: T_min and T_max must be > 0, got {t_min}, {t_max}")
        self.t_min, self.t_max = float(t_min), float(t_max)
        self.set_progress(progress)

    def set_progress(self, p: float) -> None:
        self.progress = float(p)
        self.t, self.k = ede_params(self.progress, self.t_min, self.t_max)


class IRNetWeight(_EDEMixin, Quantizer):
    """IR-Net Libra-PB weights (per output channel): Ŵ = (W − mean(W)) / std(W) (unbiased std),
    Q = sign(Ŵ)·2^round(log2 mean|Ŵ|) with the scale detached; sign backward = EDE.
    The gradient flows through the standardisation by autograd (as the IR-Net code does).
    Constant (or single-entry) rows give Ŵ = 0 and a scale of 0: the output row is 0.
    ``role="activation"`` returns ``irnet_act`` instead.
    """

    kind = "weight"
    name = "irnet"

    def __init__(self, t_min: float = 0.1, t_max: float = 10.0, progress: float = 0.0):
        super().__init__()
        self._init_ede(t_min, t_max, progress)

    def _standardize(self, w):
        check_finite(w, self.name, self.layer_name)
        w2 = w.reshape(w.shape[0], -1)
        wc = w2 - w2.mean(1, keepdim=True)
        std = wc.std(1, keepdim=True) if w2.shape[1] > 1 else torch.zeros_like(wc[:, :1])
        # constant rows: wc == 0 exactly, dividing by a clamped std keeps them 0 (no NaN)
        return wc / std.clamp_min(torch.finfo(w.dtype).tiny)

    @staticmethod
    def _scale(wh):
        m = wh.detach().abs().mean(1, keepdim=True)
        return torch.where(m > 0, torch.exp2(torch.round(torch.log2(m.clamp_min(1e-30)))), torch.zeros_like(m))

    def forward(self, w):
        """IR-Net's Libra-PB: sign(Ŵ)·2^round(log2 mean|Ŵ|), Ŵ the per-channel standardised weight."""
        wh = self._standardize(w)
        return (ede_sign_fn(wh, self.t, self.k) * self._scale(wh)).reshape(w.shape)

    @torch.no_grad()
    def factorize(self, w):
        """``(sign(Ŵ), 2^round(log2 mean|Ŵ|), 0)`` per output channel."""
        wh = self._standardize(w)
        a = self._scale(wh).reshape(-1)
        return sign(wh).reshape(w.shape), a, torch.zeros_like(a)

    def extra_repr(self):
        return super().extra_repr() + f", t={self.t:.4g}, k={self.k:.4g}"


@register_quantizer("irnet_act")
class IRNetAct(_EDEMixin, Quantizer):
    """IR-Net activations: sign(x) with the EDE backward, no scale."""

    kind = "activation"
    name = "irnet_act"

    def __init__(self, t_min: float = 0.1, t_max: float = 10.0, progress: float = 0.0):
        super().__init__()
        self._init_ede(t_min, t_max, progress)

    def forward(self, x):
        """sign(x) with the EDE backward."""
        return ede_sign_fn(x, self.t, self.k)

    def extra_repr(self):
        return super().extra_repr() + f", t={self.t:.4g}, k={self.k:.4g}"


@register_quantizer("irnet")
def _irnet(role: str = "weight", **options) -> Quantizer:
    """``get("irnet")`` = Libra-PB weights; ``get("irnet", role="activation")`` = ``irnet_act``."""
    if role == "weight":
        return IRNetWeight(**options)
    if role == "activation":
        return IRNetAct(**options)
    raise ValueError(f"irnet: role must be 'weight' or 'activation', got {role!r}")
