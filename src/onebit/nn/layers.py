"""Binary Linear / Conv1d / Conv2d layers: drop-in subclasses of the torch layers.

A binary layer computes, for input A and latent float weights W (same parameter names as torch,
so a float state_dict loads into it):

    Z = s ⊙ (Q_a(A) ⊛ Q_w(W)) [⊙ K] + bias

with ``Q_a`` = ``input_quantizer`` and ``Q_w`` = ``kernel_quantizer`` (None keeps that side
float) and the output scale s chosen by ``scale``:

* ``"none"``: s = 1 (BNN; or whatever scale the kernel quantizer itself applies, e.g. DAB's α/β);
* ``"channel"``: s_o = mean|W_o| per output channel (XNOR-Net's α, Rastegari et al. 2016),
  computed from the latent weights and *detached* (treated as a constant in backward, as the
  BiPointNet baselines do; the XNOR-Net paper also back-propagates through it);
* ``"lsr"``: one learnable scalar α (BiPointNet's Layer-wise Scale Recovery, Eq. 9-10), see
  :class:`onebit.nn.LSRScale`.

K is XNOR-Net's activation scaling map, used when the input quantizer is XNOR-style (see
:func:`onebit.quantizers.xnor_input_scale`): for a convolution the per-position mean of |A| over
channels box-filtered with the kernel's geometry; for a linear layer the mean |A| of each row.

Padding of binary convolutions: with a binarized input the padding is applied to Q_a(A) with
``pad_value`` (default −1; must be ±1) before a padding-free convolution, so the layer computes
exactly what a packed-bit XNOR/popcount engine computes (a bit cannot encode 0). With
``input_quantizer=None`` (weights-only binarization) the input is real and the layer pads with
ordinary zeros (or the layer's ``padding_mode``).
"""

from __future__ import annotations

import warnings
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .lsr import LSRScale

__all__ = ["BinaryConv1d", "BinaryConv2d", "BinaryLinear", "SCALES", "is_binary_layer", "resolve_quantizer"]

SCALES = ("none", "channel", "lsr")
"""Output scales of a binary layer: none, channel (XNOR-Net's mean|W| per output channel), lsr (BiPointNet Eq. 9)."""
# weight quantizers that already scale their output (α·sign, α/β, 2^k, Γ, Σ α_m B_m)
_SELF_SCALED = {"bwn", "xnor", "bireal_weight", "irnet", "dab", "xnor++", "abc"}
_FLOAT_NAMES = {"none", "float", "fp", "identity"}


def _get(name: str, role: str, opts: dict) -> nn.Module:
    from onebit import quantizers

    if "role" not in opts:
        # names shared by both sides ("xnor", "irnet", "abc", "bireal") take role=...; plain
        # quantizers ("ste_sign") do not, so retry without it
        try:
            return quantizers.get(name, role=role, **opts)
        except TypeError:
            pass
    return quantizers.get(name, **opts)


def resolve_quantizer(q: Any, role: str, owner: str = "binary layer") -> nn.Module | None:
    """Build a quantizer from a registry name, a dict ``{"name": ..., **options}``, a module or None.

    ``role`` is "input" or "kernel"; names registered for both sides get ``role="activation"``
    or ``role="weight"``. A quantizer whose ``kind`` is only for the other role is refused with an
    error naming ``owner``.
    """
    if q is None:
        return None
    if isinstance(q, str) and q.lower() in _FLOAT_NAMES:
        return None
    qrole = {"input": "activation", "kernel": "weight"}[role]
    if isinstance(q, nn.Module):
        module = q
    elif isinstance(q, str | dict):
        opts = {"name": q} if isinstance(q, str) else dict(q)
        name = opts.pop("name", None)
        if not isinstance(name, str):
            raise ValueError(f"{owner}: {role}_quantizer dict needs a 'name' key, got {q!r}")
        if name.lower() in _FLOAT_NAMES:
            return None
        try:
            module = _get(name, qrole, opts)
        except KeyError as e:
            raise ValueError(f"{owner}: {role}_quantizer: {e.args[0]}") from None
    else:
        raise TypeError(
            f"{owner}: {role}_quantizer must be a name, a dict with 'name', a module or None, got {type(q).__name__}"
        )
    kind = getattr(module, "kind", "both")
    wrong = {"input": "weight", "kernel": "activation"}[role]
    if kind == wrong:
        raise ValueError(
            f"{owner}: quantizer {getattr(module, 'name', type(module).__name__)!r} is a {kind} quantizer "
            f"and cannot be used as {role}_quantizer"
        )
    return module


def _q_name(q: nn.Module | None) -> str | None:
    if q is None:
        return None
    return getattr(q, "name", type(q).__name__)


def _is_xnor_input(q: nn.Module | None) -> bool:
    """True for XNOR-Net-style activation binarizers (those with an ``input_scale(x, kind, ...)``)."""
    return q is not None and callable(getattr(q, "input_scale", None))


class _BinaryMixin:
    """Shared machinery of the binary layers (see the module docstring for the formula)."""

    _channel_dim: int = 1

    def _init_binary(self, input_quantizer, kernel_quantizer, scale, center_weights):
        owner = type(self).__name__
        self.input_quantizer = resolve_quantizer(input_quantizer, "input", owner)
        self.kernel_quantizer = resolve_quantizer(kernel_quantizer, "kernel", owner)
        if _is_xnor_input(self.input_quantizer) and getattr(self.input_quantizer, "mode", "sign") != "sign":
            # the layer multiplies its output by K itself, so the quantizer must emit plain signs
            # (the same product for Linear rows, and the only correct one for convolutions)
            self.input_quantizer.mode = "sign"
        if self.kernel_quantizer is not None and callable(getattr(self.kernel_quantizer, "bind", None)):
            # learnable weight scales (XNOR++) must exist before the optimizer is built
            self.kernel_quantizer.bind(tuple(self.weight.shape))
        if scale is None:
            scale = "none"
        if scale not in SCALES:
            raise ValueError(f"{owner}: scale must be one of {SCALES}, got {scale!r}")
        self.scale = scale
        kname = _q_name(self.kernel_quantizer)
        if scale == "channel" and kname in _SELF_SCALED:
            warnings.warn(f"{owner}: scale={scale!r} multiplies the output on top of the {kname!r} weight "
                          "quantizer's own scale", stacklevel=3)
        self.lsr = LSRScale(center_weights=center_weights) if scale == "lsr" else None
        if center_weights and scale != "lsr":
            raise ValueError(f"{owner}: center_weights is an LSR option (official BiPointNet code); use scale='lsr'")
        for m in (self.input_quantizer, self.kernel_quantizer, self.lsr):
            if m is not None:  # scales and quantizer state live where the weight lives
                m.to(device=self.weight.device)
        self.layer_name: str | None = None

    # -- introspection used by convert / summary / export ---------------------------------------
    @property
    def binarizes_input(self) -> bool:
        return self.input_quantizer is not None

    @property
    def binarizes_weight(self) -> bool:
        return self.kernel_quantizer is not None

    @property
    def xnor_input(self) -> bool:
        """True when the output is multiplied by XNOR-Net's input scaling map K."""
        return _is_xnor_input(self.input_quantizer)

    def set_layer_name(self, name: str) -> None:
        """Record the module name here and on the quantizers, so their errors name the layer."""
        self.layer_name = name
        for q in (self.input_quantizer, self.kernel_quantizer):
            if q is not None and hasattr(q, "layer_name"):
                q.layer_name = name

    def prepared_weight(self) -> torch.Tensor:
        """The latent weight the kernel quantizer sees (W, or W − mean W with LSR ``center_weights``)."""
        w = self.weight
        return self.lsr.prepare_weight(w) if self.lsr is not None else w

    def binary_weight(self) -> torch.Tensor:
        """Q_w(W) (the float weight when ``kernel_quantizer`` is None), without the output scale."""
        w = self.prepared_weight()
        return self.kernel_quantizer(w) if self.kernel_quantizer is not None else w

    def _weight_for_forward(self) -> tuple[torch.Tensor, bool]:
        """(weight, scaled): the output scale s is per output channel, so s ⊙ (A·Wᵀ) = A·(s ⊙ W)ᵀ;
        applying it to the (C_out, C_in) weight instead of the (B·N, C_out) output saves a full pass
        over the activations. LSR's first training batch needs the unscaled output (Eq. 9), so
        ``scaled`` is False then and ``_finish`` scales the output instead."""
        w = self.binary_weight()
        if self.scale == "channel":
            shape = (-1,) + (1,) * (w.dim() - 1)
            return w * self.channel_scale().reshape(shape).to(w.dtype), True
        if self.lsr is not None and (self.lsr.is_initialized or not self.training):
            return self.lsr(w), True
        return w, self.lsr is None

    def channel_scale(self) -> torch.Tensor:
        """XNOR-Net's α_o = mean |W_o| over each output channel, detached (shape (C_out,))."""
        w = self.weight.detach()
        return w.abs().reshape(w.shape[0], -1).mean(dim=1)

    def output_scale(self) -> torch.Tensor | None:
        """The per-output-channel factor s of the formula (None for scale='none')."""
        if self.scale == "channel":
            return self.channel_scale()
        if self.scale == "lsr":
            return self.lsr.alpha.detach().expand(self.weight.shape[0])
        return None

    def factorize(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(signs, a, b) with s ⊙ Q_w(W) = a·signs + b per output channel, the output scale folded in.

        Needs a kernel quantizer with ``factorize`` (see docs/design.md); the input-dependent XNOR
        map K (``xnor_input``) and the bias stay separate.
        """
        if self.kernel_quantizer is None:
            raise ValueError(f"{self._who()}: float weights have no binary factorization")
        with torch.no_grad():
            signs, a, b = self.kernel_quantizer.factorize(self.prepared_weight().detach())
            s = self.output_scale()
            if s is not None:
                a, b = a * s, b * s
        return signs, a, b

    def _who(self) -> str:
        return f"{type(self).__name__} {self.layer_name!r}" if self.layer_name else type(self).__name__

    # -- forward pieces ----------------------------------------------------------------------------
    def _per_channel(self, v: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
        shape = [1] * out.dim()
        shape[self._channel_dim] = -1
        return v.reshape(shape).to(out.dtype)

    def _exact_eval(self, xb: torch.Tensor) -> torch.Tensor | None:
        """Eval-mode output with the engine's order of operations: the integer accumulator
        Q_a(A)·signsᵀ first (exact in any float dtype, whatever the host's GEMM blocking), then the
        per-channel a, b and the bias. Folding the scale into the weight instead makes FP32 sums
        of ±s round differently at different row positions, so identical inputs would give
        outputs 1 ulp apart and their signed differences (DGCNN's edge features) would flip.
        None where the weights have no (signs, a, b) form (float or multi-base weights)."""
        if self.kernel_quantizer is None or not hasattr(self.kernel_quantizer, "factorize"):
            return None
        if xb.shape[-1] >= 2**24:  # integer sums beyond float32's exact range
            return None
        try:
            signs, a, b = self.factorize()
        except NotImplementedError:
            return None
        acc = F.linear(xb, signs.reshape(signs.shape[0], -1).to(xb.dtype))
        out = acc * a.to(xb.dtype)
        if bool((b != 0).any()):
            out = out + xb.sum(-1, keepdim=True) * b.to(xb.dtype)
        if self.bias is not None:
            out = out + self.bias.to(xb.dtype)
        return out

    def _finish(self, x: torch.Tensor, out: torch.Tensor, real_fn, scaled: bool = False) -> torch.Tensor:
        """Apply the output scale unless the weight carried it (channel, or LSR, initialising LSR on
        the first training batch), then the bias."""
        if scaled:
            pass
        elif self.scale == "channel":
            out = out * self._per_channel(self.channel_scale(), out)
        elif self.lsr is not None:
            if self.training and not self.lsr.is_initialized:
                with torch.no_grad():
                    real = real_fn(x, self.prepared_weight())
                    self.lsr.initialize_(real, out, self.prepared_weight(), self.binary_weight())
            out = self.lsr(out)
        if self.bias is not None:
            out = out + self._per_channel(self.bias, out)
        return out

    def _check_input(self, x: torch.Tensor) -> None:
        if not x.is_floating_point():
            raise TypeError(f"{self._who()}: expected a floating-point input, got {x.dtype}")

    def _binary_extra_repr(self) -> str:
        parts = [f"input_quantizer={_q_name(self.input_quantizer)!r}",
                 f"kernel_quantizer={_q_name(self.kernel_quantizer)!r}", f"scale={self.scale!r}"]
        if self.xnor_input:
            parts.append("xnor_input_scale=True")
        return ", ".join(parts)

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys,
                              unexpected_keys, error_msgs):
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys,
                                      unexpected_keys, error_msgs)
        # A float layer's bias is dropped when the binary layer has none (as from_float does).
        if self.bias is None and prefix + "bias" in unexpected_keys:
            unexpected_keys.remove(prefix + "bias")


def _bias_flag(layer: nn.Module, bias) -> bool:
    if bias is None or bias == "keep":
        return layer.bias is not None
    if bias is False or bias == "drop":
        return False
    if bias is True:
        return layer.bias is not None
    raise ValueError(f"bias must be None/'keep', 'drop' or a bool, got {bias!r}")


def _copy_params(new: nn.Module, layer: nn.Module) -> nn.Module:
    with torch.no_grad():
        new.weight.copy_(layer.weight)
        if new.bias is not None:
            new.bias.copy_(layer.bias)
    new.train(layer.training)
    return new.to(device=layer.weight.device)


class BinaryLinear(_BinaryMixin, nn.Linear):
    """Binary ``nn.Linear``: Z = s ⊙ (Q_a(A) Q_w(W)ᵀ) [⊙ K_row] + b over the last dim.

    Accepts any (..., in_features) input, so a point model's shared MLP on (B, N, C) is one GEMM
    over B·N rows. With an XNOR-style input quantizer each row is scaled by its mean |A|.
    """

    _channel_dim = -1

    def __init__(self, in_features: int, out_features: int, bias: bool = True, device=None, dtype=None, *,
                 input_quantizer="ste_sign", kernel_quantizer="ste_sign", scale: str = "none",
                 center_weights: bool = False) -> None:
        super().__init__(in_features, out_features, bias=bias, device=device, dtype=dtype)
        self._init_binary(input_quantizer, kernel_quantizer, scale, center_weights)

    @classmethod
    def from_float(cls, layer: nn.Linear, bias=None, **kw) -> BinaryLinear:
        """Binary copy of ``layer`` (weights copied; bias kept unless ``bias`` is False/'drop')."""
        if not isinstance(layer, nn.Linear):
            raise TypeError(f"BinaryLinear.from_float expects an nn.Linear, got {type(layer).__name__}")
        new = cls(layer.in_features, layer.out_features, bias=_bias_flag(layer, bias),
                  dtype=layer.weight.dtype, **kw)
        return _copy_params(new, layer)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Z = s ⊙ (Q_a(A) Q_w(W)ᵀ) [⊙ K_row] + b over the last dim of (..., in_features)."""
        self._check_input(x)
        if x.shape[-1] != self.in_features:
            raise ValueError(f"{self._who()}: expected input (..., {self.in_features}), got {tuple(x.shape)}")
        xb = self.input_quantizer(x) if self.input_quantizer is not None else x
        if not self.training and self.input_quantizer is not None and not self.xnor_input:
            exact = self._exact_eval(xb)
            if exact is not None:
                return exact
        w, scaled = self._weight_for_forward()
        out = F.linear(xb, w)
        if self.xnor_input:
            out = out * self.input_quantizer.input_scale(x, kind="linear").to(out.dtype)
        return self._finish(x, out, lambda a, w: F.linear(a, w), scaled)

    def extra_repr(self) -> str:
        return super().extra_repr() + ", " + self._binary_extra_repr()


class _BinaryConvNd(_BinaryMixin):
    _nd = 2

    def _init_conv(self, input_quantizer, kernel_quantizer, scale, center_weights, pad_value):
        self._init_binary(input_quantizer, kernel_quantizer, scale, center_weights)
        pv = float(pad_value)
        if self.input_quantizer is not None:
            if pv not in (-1.0, 1.0):
                raise ValueError(f"{type(self).__name__}: pad_value must be -1 or +1 (a bit cannot encode 0), got {pad_value}")
            if self.padding_mode != "zeros":
                raise ValueError(
                    f"{type(self).__name__}: a binarized input is padded with pad_value; padding_mode "
                    f"{self.padding_mode!r} is only supported with input_quantizer=None"
                )
        self.pad_value = pv

    def pad_amounts(self) -> list[tuple[int, int]]:
        """(before, after) padding per spatial dim, resolving padding='same'/'valid' like torch."""
        if isinstance(self.padding, str):
            if self.padding == "valid":
                return [(0, 0)] * self._nd
            out = []
            for k, d in zip(self.kernel_size, self.dilation, strict=True):
                total = d * (k - 1)
                out.append((total // 2, total - total // 2))
            return out
        return [(int(p), int(p)) for p in self.padding]

    def _fpad(self) -> list[int]:
        flat: list[int] = []
        for before, after in reversed(self.pad_amounts()):  # F.pad lists the last dim first
            flat += [before, after]
        return flat

    def _conv(self, x: torch.Tensor, w: torch.Tensor, padding=0, groups: int | None = None) -> torch.Tensor:
        fn = F.conv1d if self._nd == 1 else F.conv2d
        return fn(x, w, None, self.stride, padding, self.dilation, self.groups if groups is None else groups)

    def _padded_conv(self, xb: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        """pad(xb, pad_value) ⊛ w. With symmetric padding it is computed as the zero-padded xb ⊛ w plus
        pad_value × (border mask ⊛ Σ_c w): the same sum, without building the padded input, whose
        padding-free convolution (and its backward) runs up to 2.4× slower on CPU for small maps."""
        pads = self.pad_amounts()
        if all(p == (0, 0) for p in pads):
            return self._conv(xb, w)
        if any(b != a for b, a in pads):
            return self._conv(F.pad(xb, self._fpad(), value=self.pad_value), w)
        pad = tuple(p for p, _ in pads)
        out = self._conv(xb, w, pad)
        spatial = xb.shape[-self._nd:]
        mask = torch.ones((1,) * (xb.dim() - self._nd) + tuple(n + 2 * p for n, p in zip(spatial, pad, strict=True)),
                          dtype=xb.dtype, device=xb.device)
        mask[(..., *(slice(p, p + n) for n, p in zip(spatial, pad, strict=True)))] = 0
        # every input channel of a group sees the same border, so Σ over w's input-channel dim suffices
        border = self._conv(mask, w.sum(1, keepdim=True), groups=1)
        return out + self.pad_value * border

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self._check_input(x)
        if x.dim() not in (self._nd + 1, self._nd + 2) or x.shape[-self._nd - 1] != self.in_channels:
            raise ValueError(
                f"{self._who()}: expected input (B, {self.in_channels}, {', '.join('*' * self._nd)}), "
                f"got {tuple(x.shape)}"
            )
        w, scaled = self._weight_for_forward()
        if self.input_quantizer is None:
            out = self._conv_forward(x, w, None)  # weights-only: real input, ordinary zero padding
        else:
            out = self._padded_conv(self.input_quantizer(x), w)
            if self.xnor_input:
                out = out * self.xnor_map(x).to(out.dtype)
        return self._finish(x, out, self._real_conv, scaled)

    def xnor_map(self, x: torch.Tensor) -> torch.Tensor:
        """XNOR-Net's K for input ``x`` with this conv's geometry, (B, 1, *out_spatial).

        The magnitude map is zero padded (a padded position has no magnitude); asymmetric
        'same' padding is applied explicitly first.
        """
        pads = self.pad_amounts()
        padding: Any = tuple(p[0] for p in pads)
        if any(b != a for b, a in pads):
            x = F.pad(x, self._fpad())
            padding = 0
        kind = "conv1d" if self._nd == 1 else "conv2d"
        return self.input_quantizer.input_scale(x, kind=kind, kernel_size=self.kernel_size, stride=self.stride,
                                                padding=padding, dilation=self.dilation)

    def _real_conv(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        # the real-valued reference output A ⊛ W of LSR's Eq. 9, zero padded as a float conv
        return self._conv_forward(x, w, None)

    def extra_repr(self) -> str:
        s = super().extra_repr() + ", " + self._binary_extra_repr()
        if self.input_quantizer is not None and any(p != (0, 0) for p in self.pad_amounts()):
            s += f", pad_value={self.pad_value:g}"
        return s


def _conv_from_float(cls, layer, base, bias, kw):
    if not isinstance(layer, base):
        raise TypeError(f"{cls.__name__}.from_float expects an {base.__name__}, got {type(layer).__name__}")
    new = cls(layer.in_channels, layer.out_channels, layer.kernel_size, stride=layer.stride,
              padding=layer.padding, dilation=layer.dilation, groups=layer.groups,
              bias=_bias_flag(layer, bias), padding_mode=layer.padding_mode, dtype=layer.weight.dtype, **kw)
    return _copy_params(new, layer)


class BinaryConv1d(_BinaryConvNd, nn.Conv1d):
    """Binary ``nn.Conv1d`` (B, C, L): Z = s ⊙ (pad(Q_a(A), pad_value) ⊛ Q_w(W)) [⊙ K] + b."""

    _nd = 1

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0, dilation=1,
                 groups: int = 1, bias: bool = True, padding_mode: str = "zeros", device=None, dtype=None, *,
                 input_quantizer="ste_sign", kernel_quantizer="ste_sign", scale: str = "none",
                 pad_value: float = -1.0, center_weights: bool = False) -> None:
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias,
                         padding_mode, device=device, dtype=dtype)
        self._init_conv(input_quantizer, kernel_quantizer, scale, center_weights, pad_value)

    @classmethod
    def from_float(cls, layer: nn.Conv1d, bias=None, **kw) -> BinaryConv1d:
        """Binary copy of ``layer`` (same geometry, weights copied; bias kept unless ``bias`` is False)."""
        return _conv_from_float(cls, layer, nn.Conv1d, bias, kw)


class BinaryConv2d(_BinaryConvNd, nn.Conv2d):
    """Binary ``nn.Conv2d`` (B, C, H, W): Z = s ⊙ (pad(Q_a(A), pad_value) ⊛ Q_w(W)) [⊙ K] + b."""

    _nd = 2

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0, dilation=1,
                 groups: int = 1, bias: bool = True, padding_mode: str = "zeros", device=None, dtype=None, *,
                 input_quantizer="ste_sign", kernel_quantizer="ste_sign", scale: str = "none",
                 pad_value: float = -1.0, center_weights: bool = False) -> None:
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias,
                         padding_mode, device=device, dtype=dtype)
        self._init_conv(input_quantizer, kernel_quantizer, scale, center_weights, pad_value)

    @classmethod
    def from_float(cls, layer: nn.Conv2d, bias=None, **kw) -> BinaryConv2d:
        """Binary copy of ``layer`` (same geometry, weights copied; bias kept unless ``bias`` is False)."""
        return _conv_from_float(cls, layer, nn.Conv2d, bias, kw)


BINARY_TYPES = (BinaryLinear, BinaryConv1d, BinaryConv2d)
"""The binary layer classes."""


def is_binary_layer(m: nn.Module) -> bool:
    """True for a ``BinaryLinear``, ``BinaryConv1d`` or ``BinaryConv2d``."""
    return isinstance(m, BINARY_TYPES)
