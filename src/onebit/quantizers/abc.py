"""ABC-Net (Lin, Zhao & Pan, NeurIPS 2017): linear combinations of M weight bases and N activation bases."""
from __future__ import annotations

import torch
from torch import nn

from .base import Quantizer, _per_channel, check_finite, register_quantizer, sign

__all__ = ["ABCWeight", "ABCAct", "abc_shifts"]


def abc_shifts(m: int) -> torch.Tensor:
    """u_i = −1 + 2(i−1)/(M−1), i = 1..M (ABC-Net Sec. 3.1); u = 0 for M = 1."""
    if m < 1:
        raise ValueError(f"abc: number of bases must be >= 1, got {m}")
    return torch.zeros(1) if m == 1 else torch.linspace(-1.0, 1.0, m)


class _ABCWeightFn(torch.autograd.Function):
    """Forward Σ_m α_m B_m; backward Σ_m α_m · g (ABC-Net Eq. 4: straight-through dB_m/dW = 1)."""

    @staticmethod
    def forward(ctx, w, out, alpha_sum):
        ctx.save_for_backward(alpha_sum)
        return out

    @staticmethod
    def backward(ctx, g):
        (alpha_sum,) = ctx.saved_tensors
        return g * alpha_sum, None, None


class ABCWeight(Quantizer):
    """ABC-Net weights: B_m = sign(W − mean(W) + u_m·std(W)), u_m spread over [−1, 1], and
    α = argmin ‖W − Σ α_m B_m‖² by least squares; returns Σ α_m B_m (exact, convolution is linear).

    ``bases`` = M (default 3); ``per`` = "layer" (the paper: one mean/std/α set per layer) or
    "channel" (one per output channel). α is recomputed each forward (not learned).
    """

    kind = "weight"
    name = "abc"

    def __init__(self, bases: int = 3, per: str = "layer"):
        super().__init__()
        if per not in ("layer", "channel"):
            raise ValueError(f"abc: per must be 'layer' or 'channel', got {per!r}")
        self.bases = int(bases)
        self.per = per
        self.register_buffer("u", abc_shifts(self.bases), persistent=False)

    def bases_and_alpha(self, w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Return B of shape (G, n, M) ({−1,+1}) and α of shape (G, M), G = 1 ("layer") or C_out."""
        check_finite(w, self.name, self.layer_name)
        w2 = w.detach().reshape(1 if self.per == "layer" else w.shape[0], -1)
        mean = w2.mean(1, keepdim=True)
        std = w2.std(1, keepdim=True) if w2.shape[1] > 1 else torch.zeros_like(mean)
        u = self.u.to(w2.dtype)
        b = sign((w2 - mean).unsqueeze(-1) + u * std.unsqueeze(-1))  # (G, n, M)
        # least squares in float64; gelsd copes with repeated (rank-deficient) bases
        sol = torch.linalg.lstsq(b.double(), w2.double().unsqueeze(-1), driver="gelsd").solution
        return b, sol.squeeze(-1).to(w2.dtype)

    def forward(self, w):
        """Σ_m α_m B_m (ABC-Net Sec. 3.1); the backward is g·Σ_m α_m (straight-through dB/dW = 1, ABC-Net Eq. 4)."""
        b, alpha = self.bases_and_alpha(w)
        out = (b * alpha.unsqueeze(1)).sum(-1)  # (G, n)
        alpha_sum = alpha.sum(-1)
        if self.per == "layer":
            out, alpha_sum = out.reshape(w.shape), alpha_sum.reshape(())
        else:
            out, alpha_sum = out.reshape(w.shape), _per_channel(alpha_sum, w)
        return _ABCWeightFn.apply(w, out, alpha_sum)

    def factorize(self, w):
        """Always raises NotImplementedError: M bases are not one a·signs + b."""
        raise NotImplementedError(f"abc ({self._where()}): ABC-Net weights are a sum of {self.bases} "
                                  "binary bases, not a single a*signs + b; export them as M separate bases")


class _ShiftedSign(torch.autograd.Function):
    """H_v(x) = 2·1(clip(x + v, 0, 1) >= 0.5) − 1 = sign(x + v − 0.5); backward 1(0 <= x + v <= 1)
    for both x and v (ABC-Net Eq. 9, straight-through of the clip)."""

    @staticmethod
    def forward(ctx, x, v):
        z = x + v
        ctx.save_for_backward(z)
        ctx.v_shape = v.shape
        return sign(z - 0.5)

    @staticmethod
    def backward(ctx, g):
        (z,) = ctx.saved_tensors
        gz = g * ((z >= 0) & (z <= 1)).to(g.dtype)
        return gz, gz.sum().reshape(ctx.v_shape)


class ABCAct(Quantizer):
    """ABC-Net activations: A ≈ Σ_n β_n H_{v_n}(x), H_v(x) = sign(x + v − 0.5) (sign(0) = +1).

    Shifts v and scales β are learnable Parameters created at construction (N = ``bases``,
    default 3). Init (our choice; the paper leaves it open): thresholds 0.5 − v_n spread evenly
    over [−1, 1] (v = 0.5, i.e. plain sign, for N = 1) and β_n = 1/N.
    """

    kind = "activation"
    name = "abc_act"

    def __init__(self, bases: int = 3):
        super().__init__()
        self.bases = int(bases)
        self.shift = nn.Parameter(0.5 - abc_shifts(self.bases))
        self.beta = nn.Parameter(torch.full((self.bases,), 1.0 / self.bases))

    def forward(self, x):
        """Σ_n β_n H_{v_n}(x) (ABC-Net Sec. 3.2)."""
        out = None
        for i in range(self.bases):
            h = self.beta[i] * _ShiftedSign.apply(x, self.shift[i])
            out = h if out is None else out + h
        return out


@register_quantizer("abc")
def _abc(role: str = "weight", **options) -> Quantizer:
    """``get("abc")`` = ABC-Net weight bases; ``get("abc", role="activation")`` = ``abc_act``."""
    if role == "weight":
        return ABCWeight(**options)
    if role == "activation":
        return ABCAct(**options)
    raise ValueError(f"abc: role must be 'weight' or 'activation', got {role!r}")


register_quantizer("abc_act")(ABCAct)
