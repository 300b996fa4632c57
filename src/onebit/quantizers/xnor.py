"""Scaled-sign binarizers: BWN / XNOR-Net (Rastegari et al. 2016), XNOR-Net++ (Bulat & Tzimiropoulos
2019) and Bi-Real Net's magnitude-aware weights (Liu et al. 2018)."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .base import Quantizer, _per_channel, check_finite, register_quantizer, sign
from .sign_ste import ApproxSign, ste_sign_fn

__all__ = ["BWN", "XNORAct", "XNORPlusPlus", "xnor_input_scale"]

_BACKWARDS = ("paper", "detached", "autograd")


class _ScaledSign(torch.autograd.Function):
    """Forward α·sign(w) with α = mean|w| per output channel (row of ``w2``, shape (C_out, n)).

    Backward (XNOR-Net paper, Sec. 3.1): dL/dw = g · (1/n + α·1(|w| <= 1)), the diagonal of
    d(α·sign(w))/dw with the straight-through sign.
    """

    @staticmethod
    def forward(ctx, w2):
        alpha = w2.abs().mean(1, keepdim=True)
        ctx.save_for_backward(w2, alpha)
        return alpha * sign(w2)

    @staticmethod
    def backward(ctx, g):
        w2, alpha = ctx.saved_tensors
        n = w2.shape[1]
        return g * (1.0 / n + alpha * (w2.abs() <= 1).to(g.dtype))


@register_quantizer("bwn")
class BWN(Quantizer):
    """BWN / XNOR-Net weights: W̃ = α·sign(W), α = mean|W| per output channel (Rastegari et al. 2016).

    ``backward``: "paper" (default) g·(1/n + α·1(|w|<=1)); "detached" α constant, g·α·1(|w|<=1)
    (Bi-Real's magnitude-aware gradient, BiPointNet's XNOR); "autograd" full Jacobian through α.
    ``center=True`` subtracts each row's mean first (BiPointNet's official XNOR linear).
    """

    kind = "weight"
    name = "bwn"

    def __init__(self, backward: str = "paper", center: bool = False):
        super().__init__()
        if backward not in _BACKWARDS:
            raise ValueError(f"{self.name}: backward must be one of {_BACKWARDS}, got {backward!r}")
        self.backward = backward
        self.center = bool(center)

    def _prep(self, w):
        check_finite(w, self.name, self.layer_name)
        w2 = w.reshape(w.shape[0], -1)
        if self.center:
            w2 = w2 - w2.mean(1, keepdim=True)
        return w2

    def forward(self, w):
        """α·sign(W), α = mean|W| per output channel (XNOR-Net Sec. 3.1), with the chosen ``backward``."""
        w2 = self._prep(w)
        if self.backward == "paper":
            out = _ScaledSign.apply(w2)
        elif self.backward == "detached":
            out = w2.abs().mean(1, keepdim=True).detach() * ste_sign_fn(w2)
        else:
            out = w2.abs().mean(1, keepdim=True) * ste_sign_fn(w2)
        return out.reshape(w.shape)

    @torch.no_grad()
    def factorize(self, w):
        """``(sign(W), mean|W| per output channel, 0)``."""
        w2 = self._prep(w)
        a = w2.abs().mean(1)
        return sign(w2).reshape(w.shape), a, torch.zeros_like(a)


def xnor_input_scale(x: torch.Tensor, kind: str = "linear", kernel_size=1, stride=1, padding=0,
                     dilation=1) -> torch.Tensor:
    """XNOR-Net's activation scale (Rastegari et al. 2016, Sec. 3.2), to multiply the layer OUTPUT.

    linear: x (..., C) -> mean_c |x| of shape (..., 1) (one scale per row / point, as BiPointNet's XNOR).
    conv2d: x (B, C, H, W) -> K = box-filter of A = mean_c |x| with the conv's geometry, (B, 1, H', W').
    conv1d: x (B, C, L) -> K of shape (B, 1, L'). Padding of A uses 0 (a padded entry has no magnitude).
    """
    if kind == "linear":
        return x.abs().mean(-1, keepdim=True)
    if kind not in ("conv1d", "conv2d"):
        raise ValueError(f"xnor_input_scale: kind must be 'linear', 'conv1d' or 'conv2d', got {kind!r}")
    nd = 1 if kind == "conv1d" else 2
    if x.dim() != nd + 2:
        raise ValueError(f"xnor_input_scale: {kind} input must have {nd + 2} dims, got shape {tuple(x.shape)}")
    ks = (kernel_size,) * nd if isinstance(kernel_size, int) else tuple(kernel_size)
    a = x.abs().mean(1, keepdim=True)
    box = torch.full((1, 1) + ks, 1.0 / float(torch.tensor(ks).prod()), dtype=x.dtype, device=x.device)
    conv = F.conv1d if nd == 1 else F.conv2d
    return conv(a, box, stride=stride, padding=padding, dilation=dilation)


@register_quantizer("xnor_act")
class XNORAct(Quantizer):
    """XNOR-Net activations: sign(x) with the hard-tanh STE, times XNOR-Net's input scale.

    mode="row" (default): returns sign(x)·mean_c|x| per row of the last dim — exact for Linear
    layers (BiPointNet's per-point XNOR). mode="sign": returns sign(x) only; a conv layer then
    multiplies its output by ``self.input_scale(x, kind="conv2d", ...)`` (the K map).
    ``detach_scale`` (default True, as BiPointNet's XNOR) stops the gradient through the scale.
    """

    kind = "activation"
    name = "xnor_act"

    def __init__(self, mode: str = "row", detach_scale: bool = True):
        super().__init__()
        if mode not in ("row", "sign"):
            raise ValueError(f"xnor_act: mode must be 'row' or 'sign', got {mode!r}")
        self.mode = mode
        self.detach_scale = bool(detach_scale)

    def forward(self, x):
        """sign(x)·mean_c|x| per row (``mode="row"``) or sign(x) (``mode="sign"``), XNOR-Net Sec. 3.2."""
        s = ste_sign_fn(x)
        if self.mode == "sign":
            return s
        scale = x.abs().mean(-1, keepdim=True)
        return s * (scale.detach() if self.detach_scale else scale)

    def input_scale(self, x, kind="linear", **geometry):
        """XNOR-Net's K for the layer output (``xnor_input_scale``), detached if ``detach_scale``."""
        scale = xnor_input_scale(x, kind, **geometry)
        return scale.detach() if self.detach_scale else scale


@register_quantizer("xnor")
def _xnor(role: str = "weight", **options) -> Quantizer:
    """``get("xnor")`` = XNOR-Net weights (same as ``bwn``); ``get("xnor", role="activation")`` =
    ``xnor_act``."""
    if role == "weight":
        q = BWN(**options)
        q.name = "xnor"
        return q
    if role == "activation":
        return XNORAct(**options)
    raise ValueError(f"xnor: role must be 'weight' or 'activation', got {role!r}")


@register_quantizer("xnor++")
class XNORPlusPlus(Quantizer):
    """XNOR-Net++ (Bulat & Tzimiropoulos 2019), Case 1: W̃ = Γ·sign(W) with a LEARNED scale Γ.

    granularity "channel" (default): one factor per output channel; "layer": one factor for the
    layer (BiPointNet Table 2's 18 factors). Since a convolution is linear, scaling the kernel per
    output channel equals scaling the output. Sign backward: hard-tanh STE; Γ learns by autograd.
    Γ starts at ``init`` (1.0, as BiBench) and must exist before the optimizer is built: pass
    ``weight_shape`` or call ``bind(weight_shape)`` in the layer's __init__.
    Activations use plain ``ste_sign``.
    """

    kind = "weight"
    name = "xnor++"

    def __init__(self, granularity: str = "channel", init: float = 1.0, weight_shape=None):
        super().__init__()
        if granularity not in ("channel", "layer"):
            raise ValueError(f"xnor++: granularity must be 'channel' or 'layer', got {granularity!r}")
        self.granularity = granularity
        self.init = float(init)
        self.scale: nn.Parameter | None = None
        if weight_shape is not None:
            self.bind(weight_shape)

    def bind(self, weight_shape) -> XNORPlusPlus:
        """Create the learnable scale for a weight of shape ``weight_shape`` (idempotent)."""
        n = 1 if self.granularity == "layer" else int(weight_shape[0])
        if self.scale is not None:
            if self.scale.numel() != n:
                raise ValueError(f"xnor++ ({self._where()}): already bound to {self.scale.numel()} factors, "
                                 f"cannot rebind to weight shape {tuple(weight_shape)}")
            return self
        self.scale = nn.Parameter(torch.full((n,), self.init))
        return self

    def _gamma(self, w):
        if self.scale is None:
            raise RuntimeError(f"xnor++ ({self._where()}): learnable scale not created; call "
                               "bind(weight.shape) in the layer's __init__ (before building the optimizer)")
        if self.granularity == "channel" and self.scale.numel() != w.shape[0]:
            raise ValueError(f"xnor++ ({self._where()}): bound to {self.scale.numel()} channels, "
                             f"weight has {w.shape[0]}")
        return self.scale.expand(w.shape[0])

    def forward(self, w):
        """Γ·sign(W) with the learned Γ (XNOR-Net++, Case 1)."""
        check_finite(w, self.name, self.layer_name)
        return _per_channel(self._gamma(w), w) * ste_sign_fn(w)

    @torch.no_grad()
    def factorize(self, w):
        """``(sign(W), Γ per output channel, 0)``."""
        a = self._gamma(w).detach().clone()
        return sign(w), a, torch.zeros_like(a)


@register_quantizer("bireal")
def _bireal(role: str = "activation", **options) -> Quantizer:
    """Bi-Real Net (Liu et al. 2018): activations use ApproxSign (default); ``role="weight"`` gives
    the magnitude-aware weights α·sign(W), α = mean|W| per output channel, gradient g·α·1(|w|<=1)
    (same as ``bireal_weight``). The real-valued shortcut is a model option, not a quantizer."""
    if role == "activation":
        q = ApproxSign(**options)
        q.name, q.kind = "bireal", "activation"
        return q
    if role == "weight":
        return BiRealWeight(**options)
    raise ValueError(f"bireal: role must be 'weight' or 'activation', got {role!r}")


@register_quantizer("bireal_weight")
class BiRealWeight(BWN):
    """Bi-Real's magnitude-aware weight binarizer: α·sign(W), α = mean|W| per channel (detached),
    dL/dw = g·α·1(|w| <= 1)."""

    name = "bireal_weight"

    def __init__(self, center: bool = False):
        super().__init__(backward="detached", center=center)

