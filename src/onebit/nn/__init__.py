"""onebit.nn: binary layers, BiPointNet's EMA pooling and Layer-wise Scale Recovery.

See docs/layers.md for the formulas, the padding convention and the papers they come from.
"""

from .layers import SCALES, BinaryConv1d, BinaryConv2d, BinaryLinear, is_binary_layer, resolve_quantizer
from .lsr import LSRScale
from .pool import (
    OFFICIAL_EMA_OFFSETS,
    POOL_KINDS,
    AvgPool,
    EMAAvgPool,
    EMAMaxPool,
    MaxPool,
    ema_offset,
    ema_offset_mc,
    make_pool,
)

__all__ = [
    "OFFICIAL_EMA_OFFSETS",
    "POOL_KINDS",
    "SCALES",
    "AvgPool",
    "BinaryConv1d",
    "BinaryConv2d",
    "BinaryLinear",
    "EMAAvgPool",
    "EMAMaxPool",
    "LSRScale",
    "MaxPool",
    "ema_offset",
    "ema_offset_mc",
    "is_binary_layer",
    "make_pool",
    "resolve_quantizer",
]
