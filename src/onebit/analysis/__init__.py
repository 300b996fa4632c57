"""onebit.analysis: the diagnostics behind the papers' figures (see docs/analysis.md).

- ``sign_entropy`` / ``pooled_entropy``: H(sign(pooled feature)), BiPointNet Fig. 4(a) / 7
- ``layer_scale`` / ``std_ratio``: scale distortion σ(binary)/σ(float), BiPointNet Sec. 3.3.1
- ``tnet_regularizer``: ‖I − ZZᵀ‖_F of the feature T-Net, BiPointNet Fig. 4(b)
- ``zero_grad_ratio``: fraction of quantizer inputs with |x| > 1, BiPointNet Fig. 4(c)
- ``positive_fraction``: sign balance; ``flip_ratio`` / ``FlipTracker``: weight sign flips
- ``filter_stats``: DAB-Net's per-filter K, α, β (Figs. 3-5)
- ``collect(model, batch)``: all of them in one pass; ``DiagnosticsRecorder``: per-epoch JSONL
- ``plot_records``: the PNG figures
"""

from __future__ import annotations

from .activations import positive_fraction, zero_grad_ratio
from .dab import filter_histogram, filter_stats, levels_from_factors
from .entropy import PoolCapture, binary_entropy, pooled_entropy, sign_entropy
from .flips import FlipTracker, flip_ratio
from .layers import binary_layers, float_forward, is_binary_layer, is_pool, pool_modules, weight_factors
from .probe import collect, forward_batch
from .recorder import DIAGNOSTICS_FILE, DiagnosticsRecorder, read_jsonl
from .report import summarize, summary_table
from .scale import layer_scale, std_ratio
from .tnet import frobenius_regularizer, tnet_regularizer

__all__ = [
    "DIAGNOSTICS_FILE",
    "DiagnosticsRecorder",
    "FlipTracker",
    "PoolCapture",
    "binary_entropy",
    "binary_layers",
    "collect",
    "filter_histogram",
    "filter_stats",
    "flip_ratio",
    "float_forward",
    "forward_batch",
    "frobenius_regularizer",
    "is_binary_layer",
    "is_pool",
    "layer_scale",
    "levels_from_factors",
    "plot_records",
    "pool_modules",
    "positive_fraction",
    "pooled_entropy",
    "read_jsonl",
    "sign_entropy",
    "std_ratio",
    "summarize",
    "summary_table",
    "tnet_regularizer",
    "weight_factors",
    "zero_grad_ratio",
]


def plot_records(*args, **kwargs):
    """``onebit.analysis.plots.plot_records`` (imports matplotlib on first use)."""
    from .plots import plot_records as _plot

    return _plot(*args, **kwargs)
