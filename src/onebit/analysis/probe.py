"""One forward pass that measures every diagnostic of a model on one batch.

``collect(model, batch)`` returns a JSON-ready dict (the record format of ``diagnostics.jsonl``,
see docs/analysis.md). It runs the model once in eval mode under ``no_grad`` (the mode is
restored), with forward hooks that reduce each tensor to a few sums on the spot, so memory stays
that of a plain inference pass; the float re-run of each binary layer uses at most ``max_rows``
rows (Linear) or a few samples (Conv).
"""

from __future__ import annotations

import fnmatch
import math

import torch
from torch import nn

from .dab import filter_histogram, levels_from_factors
from .entropy import PoolCapture
from .flips import FlipTracker
from .layers import binary_layers, eval_mode, float_forward, weight_factors
from .scale import _subsample
from .tnet import tnet_regularizer

__all__ = ["collect", "forward_batch", "split_batch"]


def split_batch(batch):
    """``(inputs, targets)`` from a loader batch (tuple/list of 2) or a bare input tensor."""
    if isinstance(batch, torch.Tensor):
        return batch, None
    if isinstance(batch, (tuple, list)) and len(batch) == 2:
        return batch[0], batch[1]
    if isinstance(batch, (tuple, list)) and len(batch) == 1:
        return batch[0], None
    raise ValueError(f"diagnostics: expected a batch (inputs, targets) or an input tensor, got {type(batch).__name__}"
                     + (f" of length {len(batch)}" if isinstance(batch, (tuple, list)) else ""))


def _device(model: nn.Module) -> torch.device:
    for p in model.parameters():
        return p.device
    return torch.device("cpu")


def forward_batch(model: nn.Module, batch):
    """Call the model on a batch as the trainer does: part segmentation also gets the category."""
    inputs, targets = split_batch(batch)
    if not isinstance(inputs, torch.Tensor):
        raise ValueError(f"diagnostics: batch inputs must be a tensor, got {type(inputs).__name__}")
    inputs = inputs.to(_device(model))
    task = (getattr(model, "onebit_config", None) or {}).get("task", getattr(model, "task", None))
    if task == "partseg" and isinstance(targets, (tuple, list)) and len(targets) == 2:
        return model(inputs, torch.as_tensor(targets[1]).to(inputs.device))
    return model(inputs)


class _Moments:
    """Count, mean and sum of squared deviations, merged over calls (Chan et al.), for an exact σ."""

    __slots__ = ("n", "mean", "m2")

    def __init__(self) -> None:
        self.n, self.mean, self.m2 = 0, 0.0, 0.0

    def add(self, t: torch.Tensor) -> None:
        k = t.numel()
        if k == 0:
            return
        var, mean = torch.var_mean(t.detach().float(), unbiased=False)
        mean, m2 = float(mean), float(var) * k
        delta = mean - self.mean
        tot = self.n + k
        self.mean += delta * k / tot
        self.m2 += m2 + delta * delta * self.n * k / tot
        self.n = tot

    def std(self) -> float | None:
        if self.n == 0:
            return None
        return math.sqrt(max(self.m2 / self.n, 0.0))


def _row_sample(x: torch.Tensor, max_rows: int) -> torch.Tensor:
    """Every k-th row of x viewed as (rows, last dim), at most about ``max_rows`` rows (a cheap view)."""
    rows = x.reshape(-1, x.shape[-1]) if x.dim() > 1 else x.reshape(-1, 1)
    step = -(-rows.shape[0] // max_rows)
    return rows[::step] if step > 1 else rows


class _LayerStats:
    def __init__(self, max_rows: int) -> None:
        self.max_rows = max_rows
        self.out_bin = _Moments()
        self.out_fp = _Moments()
        self.act_n = 0
        self.act_sat = 0
        self.act_pos = 0
        self.quantizer_fired = False

    def add_act(self, x: torch.Tensor) -> None:
        x = _row_sample(x.detach(), self.max_rows)
        self.act_n += x.numel()
        self.act_sat += int((x.abs() > 1.0).sum())  # STE gradient 1_{|x| ≤ 1} is zero here
        self.act_pos += int((x >= 0).sum())  # sign(0) = +1


def _finite(v):
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


def _hist_choice(layers: list[tuple[str, nn.Module]], hist_layers) -> list[str]:
    """Layers whose filters get histograms: names/fnmatch patterns, or the k with the largest filters."""
    names = [n for n, _ in layers]
    if isinstance(hist_layers, (list, tuple)):
        return [n for n in names if any(fnmatch.fnmatchcase(n, str(p)) for p in hist_layers)]
    k = int(hist_layers)
    if k <= 0:
        return []
    size = {n: m.weight[0].numel() for n, m in layers}
    return sorted(names, key=lambda n: -size[n])[:k]  # sorted() is stable: module order on ties


def _filter_choice(c_out: int, k: int) -> list[int]:
    return sorted({min(c_out - 1, int(c_out * (j + 0.5) / k)) for j in range(min(k, c_out))})


@torch.no_grad()
def collect(model: nn.Module, batch=None, *, max_rows: int = 4096, hist_layers: int | list[str] = 4, hist_filters: int = 2,
            bins: int = 32, flips: FlipTracker | None = None, seed: int = 0) -> dict:
    """All diagnostics of ``model`` on ``batch`` (None: weight statistics only). See docs/analysis.md.

    ``flips`` (a FlipTracker kept across calls) adds the weight flip ratio since its last update.
    ``hist_layers``: layer names / fnmatch patterns whose filters get histograms, or a count k (the
    k layers with the largest filters); ``hist_filters`` filters per such layer, ``bins`` bins each.
    """
    layers = binary_layers(model)
    gen = torch.Generator().manual_seed(int(seed))
    stats = {name: _LayerStats(int(max_rows)) for name, _ in layers}
    handles = []

    def layer_hook(name):
        def fn(module, inputs, output):
            st = stats[name]
            x = inputs[0] if isinstance(inputs, tuple) else inputs
            if not isinstance(x, torch.Tensor) or not isinstance(output, torch.Tensor):
                return
            if getattr(module, "input_quantizer", None) is not None:
                if st.quantizer_fired:
                    st.quantizer_fired = False
                else:  # quantizer not called as a module: it binarizes the layer input
                    st.add_act(x)
            xs, ys = _subsample(module, x.detach(), output.detach(), max_rows, gen)
            st.out_bin.add(ys)
            st.out_fp.add(float_forward(module, xs.to(module.weight.dtype)))

        return fn

    def quant_hook(name):
        def fn(module, inputs):
            x = inputs[0] if isinstance(inputs, tuple) else inputs
            if isinstance(x, torch.Tensor):
                stats[name].add_act(x)
                stats[name].quantizer_fired = True

        return fn

    record: dict = {"pooled_entropy": None, "pooled": {}, "tnet_reg": None}
    if batch is not None:
        for name, layer in layers:
            handles.append(layer.register_forward_hook(layer_hook(name)))
            q = getattr(layer, "input_quantizer", None)
            if isinstance(q, nn.Module):
                handles.append(q.register_forward_pre_hook(quant_hook(name)))
        try:
            with eval_mode(model), PoolCapture(model) as cap:
                forward_batch(model, batch)
        finally:
            for h in handles:
                h.remove()
        for pname in cap.order:
            ent = cap.entropies[pname]
            pos = cap.positive[pname]
            record["pooled"][pname] = {"entropy": sum(ent) / len(ent), "positive": sum(pos) / len(pos)}
        if cap.global_name is not None:
            record["pooled_entropy"] = record["pooled"][cap.global_name]["entropy"]
            record["global_pool"] = cap.global_name
        record["tnet_reg"] = _finite(tnet_regularizer(model))

    per_layer: dict[str, dict] = {}
    signs_by_layer: dict[str, torch.Tensor] = {}
    filters: dict[str, list] = {}
    weighted = [n for n, m in layers if getattr(m, "kernel_quantizer", None) is not None]
    hist_names = set(_hist_choice([(n, m) for n, m in layers if n in weighted], hist_layers))
    tot_sat = tot_act = 0
    for name, layer in layers:
        d: dict = {"type": type(layer).__name__, "in": int(layer.weight.shape[1]), "out": int(layer.weight.shape[0])}
        st = stats[name]
        sb, sf = st.out_bin.std(), st.out_fp.std()
        if sb is not None and sf is not None:
            d.update(std_binary=sb, std_float=sf, scale_ratio=_finite(sb / sf) if sf > 0 else None)
        if st.act_n:
            d.update(zero_grad=st.act_sat / st.act_n, act_pos=st.act_pos / st.act_n)
            tot_sat += st.act_sat
            tot_act += st.act_n
        if name in weighted:
            signs, a, b, source = weight_factors(layer, name)
            signs_by_layer[name] = signs
            lv = levels_from_factors(signs, a, b)
            d.update(weight_pos=float((signs > 0).to(torch.float64).mean()), n=int(lv["n"]),
                     k_norm=float(lv["k_norm"].mean()), alpha=float(lv["alpha"].mean()),
                     beta=float(lv["beta"].mean()), weight_source=source)
            if name in hist_names:
                filters[name] = [
                    {"index": i, "n": int(lv["n"]), "K": int(lv["K"][i]), "alpha": float(lv["alpha"][i]),
                     "beta": float(lv["beta"][i]), **filter_histogram(layer.weight, i, bins)}
                    for i in _filter_choice(signs.shape[0], hist_filters)
                ]
        per_layer[name] = {k: _finite(v) for k, v in d.items()}
    record["zero_grad"] = tot_sat / tot_act if tot_act else None
    record["flip_ratio"] = None
    if flips is not None:
        fr = flips.update(model, signs_by_layer)
        for name, v in fr.items():
            per_layer[name]["flip"] = v
        if fr:
            sizes = {n: signs_by_layer[n].numel() for n in fr}
            record["flip_ratio"] = sum(fr[n] * sizes[n] for n in fr) / sum(sizes.values())
    record["layers"] = per_layer
    record["filters"] = filters
    return record
