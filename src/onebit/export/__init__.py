"""Export a (binarized) model to a ``.onebit`` file for ``onebit.runtime`` (docs/format.md).

``export(model, path)`` folds everything that is not a binary product into each layer's
epilogue: with z the layer's product (XNOR dot k − 2·popcount, or the float GEMM),

    v = clamp(γ/σ · (s·z + bias − μ) + β, act range) [pooled, − δ*]

and where the next layer binarizes v, sign(v) becomes an integer threshold on the dot
(dot ≥ τ, or dot ≤ τ with the flip bit for a negative slope; BiPointNet/XNOR/BNN scales,
LSR's α, BN and biases all fold into τ). Max pooling in front of a binary layer becomes an OR of
the thresholded bits over the points (sign(max z) = OR sign(z)); EMA-max's −δ*(n) is kept as a
rule and folded into τ by the runtime for the actual point count n. DAB weights
(W̃ = β + (α−β)·e) with binary inputs run as AND-popcount + one popcount per input row.

DGCNN and PointNet++ (SSG / MSG, classification) lower in :mod:`onebit.export.geometric`: the engine
runs their kNN, FPS, ball query, edge features and groupings natively, index for index as
:mod:`onebit.geometry`, and pools over neighbours inside the linear layers.

Image models (``sketch_a_net``, ``resnet18``) lower in :mod:`onebit.export.conv`: binary convs run
on packed NHWC bits (im2col into 64-bit-aligned taps + the same popcount GEMMs), max pools of bits
become OR/AND, ResNet's shortcuts are float adds.

XNOR-Net's dynamic input scale K (mean|x| over the input channels of each point, or the box filter
of it for a conv) depends on the real-valued input and cannot fold into a static threshold: such a
layer reads its float input, and its ``linear`` op (``input_scale``: "mean_abs") binarizes it and
computes K per row itself, with the float epilogue v = scale·(K·dot) + bias.

Layout: :mod:`~onebit.export.writer` (``export``, ``build_graph``), :mod:`~onebit.export.builder` (the
builder all families share), :mod:`~onebit.export.pointnet`, :mod:`~onebit.export.geometric`,
:mod:`~onebit.export.conv` (one module per family), :mod:`~onebit.export.fold` (thresholds, popcount
bounds, EMA offsets); this package face only re-exports.

Refused, with a message naming the layer: binary inputs with float weights, quantizers without
``factorize`` (ABC-Net) and input quantizers that are not sign(x).
"""


from __future__ import annotations

from .builder import ExportError
from .writer import build_graph, export

__all__ = ["ExportError", "export", "build_graph"]


class _CallableModule(__import__("types").ModuleType):
    """``onebit.export`` is both this package and the function: once the package is imported, Python
    binds the attribute ``onebit.export`` to the module, so calling the module calls :func:`export`."""

    def __call__(self, model, path, points: int | None = None, input_size: int | None = None) -> dict:
        return export(model, path, points, input_size)


__import__("sys").modules[__name__].__class__ = _CallableModule
