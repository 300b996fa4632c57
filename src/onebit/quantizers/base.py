"""Base class, sign convention and registry shared by every binarizer."""
from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

__all__ = ["Quantizer", "sign", "register_quantizer", "get", "names", "update_schedules"]


def sign(x: torch.Tensor) -> torch.Tensor:
    """sign(x) = +1 for x >= 0, -1 for x < 0 (project-wide convention: sign(0) = +1, never 0)."""
    if x.is_floating_point():
        # copysign is one fast pass; adding +0.0 turns -0.0 into +0.0 so that sign(-0.0) = +1 too
        return torch.ones_like(x).copysign_(x + 0.0)
    return torch.where(x >= 0, 1, -1).to(x.dtype)


def check_finite(x: torch.Tensor, who: str, layer_name: str | None = None) -> None:
    """Raise a ValueError naming the layer when ``x`` holds NaN or inf."""
    if not bool(torch.isfinite(x).all()):
        n_bad = int((~torch.isfinite(x)).sum())
        where = f"layer {layer_name!r}" if layer_name else "an unnamed layer"
        raise ValueError(f"{who}: {n_bad} non-finite value(s) (NaN/inf) in the tensor of {where}; "
                         f"shape {tuple(x.shape)}")


class Quantizer(nn.Module):
    """A binarizer: ``forward(x)`` returns the binarized float tensor with the paper's backward.

    Class attributes: ``bits`` (always 1), ``kind`` ("weight", "activation" or "both") and
    ``name`` (registry name). Weight quantizers implement ``factorize(w) -> (signs, a, b)`` with
    ``forward(w) == a * signs + b`` broadcast over dim 0 (the output channel).
    ``layer_name`` may be set by the owning layer so error messages name it.
    """

    bits: int = 1
    kind: str = "both"
    name: str = "quantizer"

    def __init__(self) -> None:
        super().__init__()
        self.layer_name: str | None = None

    def factorize(self, w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Weight binarizers: ``(signs, a, b)`` with ``forward(w) == a·signs + b`` per output channel
        (docs/design.md). The base class raises NotImplementedError.
        """
        raise NotImplementedError(f"quantizer {self.name!r} has no factorize(): it is not a weight binarizer "
                                  "of the form a*signs + b")

    def _where(self) -> str:
        return f"layer {self.layer_name!r}" if self.layer_name else "an unnamed layer"

    def extra_repr(self) -> str:
        return f"name={self.name!r}, kind={self.kind!r}, bits={self.bits}"


def _per_channel(v: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    """Reshape a per-output-channel vector (C_out,) to broadcast against ``ref`` (C_out, ...)."""
    return v.reshape((-1,) + (1,) * (ref.dim() - 1))


_REGISTRY: dict[str, Callable[..., Quantizer]] = {}


def register_quantizer(name: str) -> Callable:
    """Decorator registering a Quantizer factory (usually the class) under ``name``."""

    def deco(factory: Callable[..., Quantizer]) -> Callable[..., Quantizer]:
        if name in _REGISTRY and _REGISTRY[name] is not factory:
            raise ValueError(f"quantizer name {name!r} is already registered")
        _REGISTRY[name] = factory
        return factory

    return deco


def get(name: str, **options) -> Quantizer:
    """Build the quantizer registered as ``name`` with ``options`` (see docs/quantizers.md)."""
    if isinstance(name, nn.Module):
        return name
    if name not in _REGISTRY:
        raise KeyError(f"unknown quantizer {name!r}; known: {', '.join(names())}")
    try:
        return _REGISTRY[name](**options)
    except TypeError as e:
        raise TypeError(f"bad options for quantizer {name!r}: {e}") from e


def names() -> list[str]:
    """Sorted list of registered quantizer names."""
    return sorted(_REGISTRY)


def update_schedules(model: nn.Module, progress: float) -> int:
    """Call ``set_progress(progress)`` on every submodule that has it (IR-Net's EDE schedule).

    ``progress`` is training progress in [0, 1]; returns the number of modules updated.
    """
    if not 0.0 <= float(progress) <= 1.0:
        raise ValueError(f"update_schedules: progress must be in [0, 1], got {progress}")
    n = 0
    for m in model.modules():
        fn = getattr(m, "set_progress", None)
        if callable(fn):
            fn(float(progress))
            n += 1
    return n
