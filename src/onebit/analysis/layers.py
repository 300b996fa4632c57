"""Finding binary layers and pooling modules in a model, and running a layer's float counterpart.

A *binary layer* is a Linear/Conv1d/Conv2d carrying an ``input_quantizer`` or a
``kernel_quantizer`` (the ``onebit.nn`` layer API, design.md "Layers"); it is found by duck typing
so that any layer honouring that contract is analysed. A *pooling module* is one of
``onebit.nn``'s point pools (``MaxPool``/``AvgPool`` and their EMA subclasses) or any module whose
``kind`` is one of the pooling kinds of ``make_pool``.
"""

from __future__ import annotations

from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "POOL_KINDS",
    "binary_layers",
    "eval_mode",
    "float_forward",
    "is_binary_layer",
    "is_pool",
    "pool_modules",
    "weight_factors",
]

POOL_KINDS = ("max", "avg", "ema-max", "ema-avg")
"""The ``kind`` values that mark a module as a pooling module (those of ``onebit.nn.make_pool``)."""

_LAYER_TYPES = (nn.Linear, nn.Conv1d, nn.Conv2d)


def _quantizer(layer: nn.Module, attr: str):
    q = getattr(layer, attr, None)
    return q if q is not None else None


def is_binary_layer(m: nn.Module) -> bool:
    """True for a Linear/Conv layer with a weight or input quantizer (a BiPointNet "bi-linear" layer)."""
    if not isinstance(m, _LAYER_TYPES):
        return False
    return _quantizer(m, "kernel_quantizer") is not None or _quantizer(m, "input_quantizer") is not None


def binary_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """``(name, layer)`` of every binary layer of ``model``, in module order."""
    return [(name, m) for name, m in model.named_modules() if is_binary_layer(m)]


def _pool_classes() -> tuple[type, ...]:
    try:
        from onebit.nn.pool import AvgPool, MaxPool
    except ImportError:  # the layers package is optional for the analysis of plain torch models
        return ()
    return (MaxPool, AvgPool)


def is_pool(m: nn.Module) -> bool:
    """True for a point pooling module (``onebit.nn`` pools, EMA included, or any ``kind`` in POOL_KINDS)."""
    classes = _pool_classes()
    if classes and isinstance(m, classes):
        return True
    kind = getattr(m, "kind", None)
    return isinstance(kind, str) and kind in POOL_KINDS and not any(True for _ in m.parameters())


def pool_modules(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """``(name, module)`` of every pooling module of ``model``, in module order."""
    return [(name, m) for name, m in model.named_modules() if is_pool(m)]


def float_forward(layer: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The full-precision counterpart of a binary layer: same weight and bias, no quantizer, no scale.

    This is A ⊛ W of BiPointNet Eq. 9 (zero padding for convolutions, as a float layer does).
    """
    w, b = layer.weight, layer.bias
    if isinstance(layer, nn.Linear):
        return F.linear(x, w, b)
    if isinstance(layer, nn.Conv1d):
        return F.conv1d(x, w, b, layer.stride, layer.padding, layer.dilation, layer.groups)
    if isinstance(layer, nn.Conv2d):
        return F.conv2d(x, w, b, layer.stride, layer.padding, layer.dilation, layer.groups)
    raise TypeError(f"float_forward: {type(layer).__name__} is not a Linear/Conv1d/Conv2d layer")


@torch.no_grad()
def weight_factors(layer: nn.Module, name: str = "") -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, str]:
    """``(signs, a, b, source)`` of a binary layer's weight, with binarized weight = a·signs + b.

    Uses ``kernel_quantizer.factorize(w)`` (design.md "Quantizers"); for quantizers that cannot
    factorize (ABC's M bases) falls back to sign(w) (sign(0) = +1) with a = mean|w|, b = 0 and
    ``source = "sign"`` so callers can say the statistics are approximate.
    """
    q = _quantizer(layer, "kernel_quantizer")
    if q is None:
        raise ValueError(f"layer {name or type(layer).__name__!r} has no kernel_quantizer: its weights are float")
    prepared = getattr(layer, "prepared_weight", None)
    # the latent weight the quantizer sees (W − mean W under the official LSR centring)
    w = (prepared() if callable(prepared) else layer.weight).detach()
    out_ch = w.shape[0]
    try:
        signs, a, b = q.factorize(w)
        source = "factorize"
    except NotImplementedError:
        signs = torch.where(w >= 0, 1.0, -1.0).to(w.dtype)
        a = w.reshape(out_ch, -1).abs().mean(dim=1)
        b = torch.zeros_like(a)
        source = "sign"
    signs = torch.as_tensor(signs)
    a = torch.as_tensor(a, dtype=w.dtype).reshape(-1)
    b = torch.as_tensor(b, dtype=w.dtype).reshape(-1)
    if signs.shape != w.shape:
        raise ValueError(f"layer {name!r}: factorize returned signs of shape {tuple(signs.shape)}, "
                         f"expected the weight's {tuple(w.shape)}")
    if a.numel() == 1:
        a = a.expand(out_ch)
    if b.numel() == 1:
        b = b.expand(out_ch)
    if a.numel() != out_ch or b.numel() != out_ch:
        raise ValueError(f"layer {name!r}: factorize returned a/b with {a.numel()}/{b.numel()} values, "
                         f"expected one per output channel ({out_ch})")
    return signs, a, b, source


@contextmanager
def eval_mode(model: nn.Module):
    """Put ``model`` in eval mode and restore every submodule's own training flag afterwards."""
    flags = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        yield model
    finally:
        for m, flag in flags:
            m.training = flag
