"""``summary(model, example_input)``: per-layer bits, memory and MACs of a (binarized) model.

In the spirit of ``larq.models.summary``: one row per leaf module (binary layers count as
leaves, their quantizers and scales included), with

* parameters by bit width: binarized weights are 1-bit; everything else (float weights, biases,
  BN affine parameters, learnable scales such as LSR's α or XNOR++'s Γ) is 32-bit;
* scale factors: how many scaling factors the deployed layer stores (per-channel α/β, LSR α, ...);
  those that are not parameters (e.g. XNOR's mean|W| per channel) are added to the memory at 32 bit;
  activation factors: XNOR-Net's input scales computed at run time, per example (not stored);
* packed memory: 1 bit per binary weight (M bits for ABC-Net's M bases), 32 bits per float value;
* MACs per example, measured with forward hooks on ``example_input``: a MAC is binary when both
  its operands are binary (binarized input and weights: XNOR + popcount), else float (larq's
  convention: the precision of a MAC is that of its widest operand). For point clouds MACs grow
  linearly with the number of points.
"""

from __future__ import annotations

import math
import sys
import types
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

__all__ = ["LayerSummary", "ModelSummary", "summary"]


@dataclass
class LayerSummary:
    """One row of ``summary()``: a layer's quantizers, output shape, 1-bit and 32-bit parameters,
    scale factors, memory and binary / float multiply-accumulates.
    """
    name: str
    type: str
    input_quantizer: str | None
    kernel_quantizer: str | None
    output_shape: tuple[int, ...] | None
    params_1bit: int
    params_32bit: int
    scale_factors: int
    activation_factors: int
    memory_bits: int
    binary_macs: int
    float_macs: int

    @property
    def params(self) -> int:
        return self.params_1bit + self.params_32bit

    @property
    def memory_bytes(self) -> float:
        return self.memory_bits / 8.0

    def to_dict(self) -> dict[str, Any]:
        """The row as a JSON-friendly dict (with ``params`` and ``memory_bytes``)."""
        d = asdict(self)
        d["output_shape"] = list(self.output_shape) if self.output_shape is not None else None
        d["params"] = self.params
        d["memory_bytes"] = self.memory_bytes
        return d


class ModelSummary:
    """Result of :func:`summary`: ``.rows`` (``LayerSummary``), ``.totals`` (dict), ``to_dict()``, ``str()``."""

    def __init__(self, rows: list[LayerSummary], totals: dict[str, Any], notes: list[str], title: str) -> None:
        self.rows = rows
        self.totals = totals
        self.notes = notes
        self.title = title

    def to_dict(self) -> dict[str, Any]:
        """The summary as a JSON-friendly dict: ``title``, ``rows``, ``totals``, ``notes``."""
        return {"title": self.title, "rows": [r.to_dict() for r in self.rows], "totals": dict(self.totals),
                "notes": list(self.notes)}

    def __str__(self) -> str:
        return _render(self)

    def __repr__(self) -> str:
        t = self.totals
        return (f"ModelSummary({self.title!r}, layers={len(self.rows)}, params={t['params']}, "
                f"ratio={t['compression_ratio']:.2f}x)")


def _q_name(q) -> str | None:
    if q is None:
        return None
    return getattr(q, "name", type(q).__name__)


def _is_leaf(m: nn.Module) -> bool:
    from onebit.nn import is_binary_layer

    return is_binary_layer(m) or not any(True for _ in m.children())


def _macs_per_call(m: nn.Module, out: torch.Tensor) -> int:
    """Multiply-accumulates of one call of a Linear/Conv layer producing ``out``."""
    if isinstance(m, nn.Linear):
        return out.numel() * m.in_features
    if isinstance(m, nn.Conv1d | nn.Conv2d | nn.Conv3d):
        return out.numel() * (m.in_channels // m.groups) * math.prod(m.kernel_size)
    return 0


# weight binarizers whose factorization stores per-output-channel factors by construction, even
# when some of them happen to equal 1 (IR-Net's power-of-two scale of a standardised row is often 1)
_PER_CHANNEL_FACTORS = {"bwn": 1, "xnor": 1, "bireal": 1, "bireal_weight": 1, "irnet": 1, "dab": 2}


def _weight_factor_count(layer) -> tuple[int, int]:
    """(factors, of which not parameters) stored by a binary layer's weight side and output scale."""
    total = derived = 0
    kq = layer.kernel_quantizer
    c_out = layer.weight.shape[0]
    if kq is not None:
        learned = sum(p.numel() for p in kq.parameters())
        known = _PER_CHANNEL_FACTORS.get(getattr(kq, "name", ""))
        if learned:
            total += learned
        elif known is not None:
            total += known * c_out
            derived += known * c_out
        else:
            try:
                _, a, b = kq.factorize(layer.prepared_weight().detach())
                n = 0
                if not bool((a == a.reshape(-1)[0]).all()):
                    n += c_out
                elif float(a.reshape(-1)[0]) != 1.0:
                    n += 1
                if bool((b != 0).any()):
                    n += c_out if not bool((b == b.reshape(-1)[0]).all()) else 1
                total += n
                derived += n
            except NotImplementedError:
                bases = int(getattr(kq, "bases", 1))
                n = bases * (c_out if getattr(kq, "per", "layer") == "channel" else 1)
                total += n
                derived += n
    if layer.scale == "channel":
        total += c_out
        derived += c_out
    elif layer.scale == "lsr":
        total += 1  # α is a parameter, already in the 32-bit count
    iq = layer.input_quantizer
    if iq is not None:
        total += sum(p.numel() for p in iq.parameters())
    return total, derived


def summary(model: nn.Module, example_input, *, title: str | None = None) -> ModelSummary:
    """Per-layer table of a model's bits, memory and MACs from one forward of ``example_input``.

    ``example_input`` is a tensor (or a tuple of positional inputs) whose dim 0 is the batch; MACs
    are reported per example (the forward's MACs divided by the batch size). The model is run in
    eval mode under no_grad and put back in its previous mode.
    """
    from onebit.nn import is_binary_layer

    inputs = example_input if isinstance(example_input, tuple | list) else (example_input,)
    if not inputs or not isinstance(inputs[0], torch.Tensor) or inputs[0].dim() == 0:
        raise ValueError("summary: example_input must be a batched tensor (dim 0 = batch) or a tuple of them")
    batch = int(inputs[0].shape[0])
    if batch < 1:
        raise ValueError("summary: example_input has an empty batch")

    rows_mods: list[tuple[str, nn.Module]] = []
    covered: set[int] = set()
    for name, m in model.named_modules():
        if any(name.startswith(p + ".") for p, pm in rows_mods if is_binary_layer(pm)):
            continue  # inside a binary layer (its quantizers / LSR): counted in that row
        own = list(m.parameters(recurse=_is_leaf(m)))
        if _is_leaf(m) or own:
            rows_mods.append((name, m))
    stats: dict[int, dict[str, Any]] = {id(m): {"calls": 0, "macs": 0, "shape": None, "act": 0}
                                        for _, m in rows_mods}

    def hook(mod, _inp, out):
        st = stats[id(mod)]
        st["calls"] += 1
        t = out[0] if isinstance(out, tuple | list) and out and isinstance(out[0], torch.Tensor) else out
        if isinstance(t, torch.Tensor):
            st["shape"] = (-1, *t.shape[1:]) if t.dim() > 0 else ()
            st["macs"] += _macs_per_call(mod, t)
            if getattr(mod, "xnor_input", False) and t.dim() > 0:
                # XNOR-Net's activation scale: one factor per output position (row / pixel / point)
                st["act"] += t.numel() // t.shape[-1 if isinstance(mod, nn.Linear) else 1]

    handles = [m.register_forward_hook(hook) for _, m in rows_mods]
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            model(*inputs)
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)

    rows: list[LayerSummary] = []
    for name, m in rows_mods:
        params = [p for p in m.parameters(recurse=_is_leaf(m)) if id(p) not in covered]
        covered.update(id(p) for p in params)
        st = stats[id(m)]
        macs = st["macs"] // batch
        p1 = p32 = factors = derived = 0
        mem = 0
        bmacs = fmacs = 0
        iqn = kqn = None
        if is_binary_layer(m):
            iqn, kqn = _q_name(m.input_quantizer), _q_name(m.kernel_quantizer)
            w_bits = int(getattr(m.kernel_quantizer, "bases", 1)) if m.binarizes_weight else 32
            for p in params:
                if p is m.weight and m.binarizes_weight:
                    p1 += p.numel()
                    mem += p.numel() * w_bits
                else:
                    p32 += p.numel()
                    mem += 32 * p.numel()
            factors, derived = _weight_factor_count(m)
            mem += 32 * derived
            if m.binarizes_input and m.binarizes_weight:
                a_bits = int(getattr(m.input_quantizer, "bases", 1))
                bmacs = macs * w_bits * a_bits  # ABC-Net: one binary product per pair of bases
            else:
                fmacs = macs
        else:
            p32 = sum(p.numel() for p in params)
            mem = 32 * p32
            fmacs = macs
        rows.append(LayerSummary(name or "(model)", type(m).__name__, iqn, kqn, st["shape"], p1, p32, factors,
                                 st["act"] // batch, mem, bmacs, fmacs))

    # parameters owned by non-leaf modules that had no row (should not happen) still count as float
    rest = [p for p in model.parameters() if id(p) not in covered]
    n_rest = sum(p.numel() for p in rest)

    p1 = sum(r.params_1bit for r in rows)
    p32 = sum(r.params_32bit for r in rows) + n_rest
    mem_bits = sum(r.memory_bits for r in rows) + 32 * n_rest
    fp32_bits = 32 * (p1 + p32)
    bmacs = sum(r.binary_macs for r in rows)
    fmacs = sum(r.float_macs for r in rows)
    x = inputs[0]
    totals: dict[str, Any] = {
        "params": p1 + p32,
        "params_1bit": p1,
        "params_32bit": p32,
        "scale_factors": sum(r.scale_factors for r in rows),
        "activation_factors": sum(r.activation_factors for r in rows),
        "memory_bytes": mem_bits / 8.0,
        "fp32_bytes": fp32_bits / 8.0,
        "compression_ratio": (fp32_bits / mem_bits) if mem_bits else float("nan"),
        "binary_macs": bmacs,
        "float_macs": fmacs,
        "macs": bmacs + fmacs,
        "binary_mac_fraction": (bmacs / (bmacs + fmacs)) if (bmacs + fmacs) else 0.0,
        "input_shape": [-1, *x.shape[1:]],
        "batch_size": batch,
    }
    notes = [f"MACs are per example of shape {tuple(x.shape[1:])}; a MAC is binary when both operands are 1-bit."]
    if _looks_like_points(model, x):
        totals["num_points"] = int(x.shape[1])
        notes.append(f"Point model: MACs scale linearly with the number of points (here N = {x.shape[1]}).")
    return ModelSummary(rows, totals, notes, title or type(model).__name__)


def _looks_like_points(model: nn.Module, x: torch.Tensor) -> bool:
    cfg = getattr(model, "onebit_config", None)
    if isinstance(cfg, dict) and cfg.get("name"):
        try:
            from onebit.models.registry import entry

            return entry(cfg["name"]).domain == "points"
        except Exception:  # registry unavailable or unknown name: fall back to the shape
            pass
    # (B, N, C) with few channels last: the point layout of docs/design.md
    return x.dim() == 3 and x.shape[-1] <= 16 and x.shape[1] > x.shape[-1]


def _fmt_int(n: int) -> str:
    return f"{n:,}"


def _fmt_bytes(b: float) -> str:
    for unit, k in (("MiB", 1 << 20), ("KiB", 1 << 10)):
        if b >= k:
            return f"{b / k:.2f} {unit}"
    return f"{b:.1f} B"


def _render(s: ModelSummary) -> str:
    head = ["Layer", "Type", "In q", "Kernel q", "Output shape", "1-bit", "32-bit", "Factors", "Memory",
            "Binary MACs", "Float MACs"]
    body = []
    for r in s.rows:
        body.append([
            r.name, r.type, r.input_quantizer or "-", r.kernel_quantizer or "-",
            str(tuple(r.output_shape)) if r.output_shape is not None else "-",
            _fmt_int(r.params_1bit), _fmt_int(r.params_32bit), _fmt_int(r.scale_factors),
            _fmt_bytes(r.memory_bytes), _fmt_int(r.binary_macs), _fmt_int(r.float_macs),
        ])
    t = s.totals
    total_row = ["Total", "", "", "", "", _fmt_int(t["params_1bit"]), _fmt_int(t["params_32bit"]),
                 _fmt_int(t["scale_factors"]), _fmt_bytes(t["memory_bytes"]), _fmt_int(t["binary_macs"]),
                 _fmt_int(t["float_macs"])]
    widths = [max(len(str(row[i])) for row in [head, *body, total_row]) for i in range(len(head))]
    numeric = set(range(5, len(head)))

    def line(row):
        return "  ".join(str(c).rjust(w) if i in numeric else str(c).ljust(w)
                         for i, (c, w) in enumerate(zip(row, widths, strict=True))).rstrip()

    rule = "-" * len(line(head))
    out = [f"{s.title} summary", rule, line(head), rule, *(line(r) for r in body), rule, line(total_row), rule]
    out.append(f"Total params: {_fmt_int(t['params'])} ({_fmt_int(t['params_1bit'])} 1-bit, "
               f"{_fmt_int(t['params_32bit'])} 32-bit)")
    out.append(f"FP32 size: {_fmt_bytes(t['fp32_bytes'])}   binarized size: {_fmt_bytes(t['memory_bytes'])}   "
               f"ratio: {t['compression_ratio']:.2f}x")
    out.append(f"MACs per example: {_fmt_int(t['macs'])} ({100 * t['binary_mac_fraction']:.1f} % binary)")
    out.extend(s.notes)
    return "\n".join(out)


class _CallableModule(types.ModuleType):
    """``onebit.summary`` is both this module and the function: once ``import onebit.summary`` has
    bound the module to the package attribute, ``onebit.summary(model, x)`` must still work."""

    def __call__(self, *args, **kwargs):
        return summary(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
