"""Load a ``.onebit`` file, validate its graph and run it with the native engine (no torch).

The graph (docs/format.md) is a list of ops over named values; :class:`Model` checks every op
against the tensors once, builds the execution plan (buffers + op records with pre-packed
weights and integer thresholds) and hands it to ``_engine.Engine``, which runs the whole
forward pass in one native call per batch.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from statistics import NormalDist

import numpy as np

from .format import FormatError, read
from .geometric import GEO_OPS, GEO_REFS, GeometricOps, row_desc, value_rows

# ops of the engine (csrc/engine.cpp)
_OP = {"flinear": 0, "blinear": 1, "bmm": 2, "sign": 3, "im2col": 4, "maxpool": 5, "add": 6, "avgpool": 7,
       "knn": 8, "fps": 9, "ball_query": 10, "gather": 11, "edge": 12, "group": 13, "pool": 14, "concat": 15,
       "affine": 16}
_OUT = {"f32": 0, "bits": 1, "or": 2, "max": 3, "avg": 4}
OP_TYPES = ("linear", "sign", "bmm", "im2col", "maxpool", "add", "avgpool", "affine") + GEO_OPS
"""Every op type a ``.onebit`` graph may hold."""
PRODUCTS = ("float", "xnor", "and")
"""Products of a ``linear`` op: float GEMM, XNOR-popcount (±1 x ±1) or AND-popcount (DAB's 0/1 levels)."""
INPUT_SCALES = ("mean_abs",)  # linear's input_scale: XNOR-Net's K = mean_c |x| of each float input row
"""``input_scale`` values of a ``linear`` op: ``mean_abs`` is XNOR-Net's K = mean_c |x| per float input row."""
POOLS = ("none", "max", "avg", "or")
"""Pooling fused into a ``linear`` op's output: none, max, avg, or OR of sign bits (sign(max z) = OR sign(z))."""
ISAS = ("avx512", "avx2", "scalar")
"""Kernel paths of the native engine, fastest first."""

# BiPointNet official EMA-max offsets (Monte-Carlo, per point count); mirrors onebit.nn.pool
OFFICIAL_EMA_OFFSETS = {20: 1.8268, 64: 2.2983, 258: 2.7829, 1024: 3.2041, 2048: 3.4025, 4096: 3.5836}
"""The official BiPointNet code's EMA-max offsets per point count (mirrors ``onebit.nn.pool``)."""


def ema_offset(n: int) -> float:
    """δ*(n) = Φ⁻¹(0.5^(1/n)) (BiPointNet EMA-max), via the upper tail for precision at large n."""
    upper = -math.expm1(math.log(0.5) / n)
    return -NormalDist().inv_cdf(upper)


def thresholds(scale, bias, lo, hi, offset, k: int):
    """Integer threshold τ and flip bit per channel for bit = [clamp(s·dot + c, lo, hi) − offset ≥ 0].

    ``dot`` ∈ {−k, −k+2, …, k} is the XNOR product of k ±1 inputs. Every candidate is evaluated in
    float32 (the engine's float epilogue does the same arithmetic), and the set where the bit is 1 is
    written as dot ≥ τ (flip 0) or dot ≤ τ (flip 1); τ = −k (always 1) or k + 1 (never) encode
    constant channels (e.g. sign(ReLU(z)) = +1). Raises ValueError if a channel is not monotone.
    """
    s = np.asarray(scale, np.float32)[:, None]
    c = np.asarray(bias, np.float32)[:, None]
    dots = np.arange(-k, k + 1, 2, dtype=np.float32)[None, :]
    v = s * dots + c
    v = np.minimum(np.maximum(v, np.float32(lo)), np.float32(hi)) - np.float32(offset)
    on = v >= 0
    n = on.shape[0]
    tau = np.empty(n, np.int64)
    flip = np.zeros(n, np.uint8)
    d = np.arange(-k, k + 1, 2)
    for i in range(n):
        row = on[i]
        if row.all():
            tau[i] = -k
        elif not row.any():
            tau[i] = k + 1
        else:
            first, last = int(np.argmax(row)), len(row) - 1 - int(np.argmax(row[::-1]))
            if not row[first:last + 1].all():
                raise ValueError(f"channel {i}: the binarized output is not monotone in the binary product")
            if last == len(row) - 1:
                tau[i] = d[first]
            elif first == 0:
                tau[i], flip[i] = d[last], 1
            else:
                raise ValueError(f"channel {i}: the binarized output is not monotone in the binary product")
    return tau.astype(np.int32), flip


def popcount_bounds(tau, flip, k: int):
    """Engine form of a threshold: bit = (popcount(x xor w) ≤ P) xor flip, with dot = k − 2·popcount."""
    tau = np.asarray(tau, np.int64)
    flip = np.asarray(flip, np.uint8)
    p_up = np.floor_divide(k - tau, 2)             # dot ≥ τ ⇔ pc ≤ ⌊(k−τ)/2⌋
    p_dn = -np.floor_divide(-(k - tau), 2) - 1      # dot ≤ τ ⇔ ¬(pc ≤ ⌈(k−τ)/2⌉ − 1)
    p = np.where(flip.astype(bool), p_dn, p_up)
    return np.clip(p, -1, k).astype(np.int64), flip


def bound_dtype(k: int) -> str:
    """Smallest dtype of a popcount bound in [0, k + 1] (u1 up to k = 254, then i2, then i4)."""
    return "u1" if k + 1 <= 255 else "<i2" if k + 1 <= 32767 else "<i4"


def unpack_signs(bits: np.ndarray, k: int) -> np.ndarray:
    """(N, W) uint64 packed rows → (N, k) float32 ±1 (bit 1 ↔ +1)."""
    b = np.unpackbits(np.ascontiguousarray(bits).view(np.uint8), axis=1, bitorder="little")[:, :k]
    return b.astype(np.float32) * 2 - 1


def pack_signs(x: np.ndarray) -> np.ndarray:
    """(R, k) array → (R, ⌈k/64⌉) uint64 with bit = (x ≥ 0) (sign(0) = +1); padding bits 0."""
    x = np.asarray(x)
    r, k = x.shape
    w = (k + 63) // 64
    b = np.zeros((r, w * 64), np.uint8)
    b[:, :k] = x >= 0
    return np.packbits(b, axis=1, bitorder="little").view("<u8").reshape(r, w)


def _engine():
    try:
        from . import _engine as eng
    except ImportError as e:  # pragma: no cover - only on a broken install
        raise ImportError("onebit.runtime._engine (the native kernels) is not built: reinstall onebit "
                          f"(pip install -e .): {e}") from None
    return eng


def resolve_isa(isa: str | None) -> str:
    """ISA to use: ``isa``, else $ONEBIT_ISA, else the best this CPU supports."""
    eng = _engine()
    name = isa or os.environ.get("ONEBIT_ISA") or eng.best_isa()
    name = name.strip().lower()
    if name not in ISAS:
        raise ValueError(f"unknown ISA {name!r} (ONEBIT_ISA / isa=): expected one of {list(ISAS)}")
    if name not in eng.supported_isas():
        raise ValueError(f"ISA {name!r} is not supported by this CPU (supported: {eng.supported_isas()})")
    return name


class Model(GeometricOps):
    """An exported model ready to run: ``run(points) -> logits`` (NumPy in, NumPy out)."""

    def __init__(self, path, isa: str | None = None):
        self.path = Path(path)
        self.file_bytes = self.path.stat().st_size if self.path.exists() else 0
        self.tensors, self.graph = read(self.path)
        self.isa = resolve_isa(isa)
        self._check_graph()
        self._engines: dict[int, object] = {}

    # ------------------------------------------------------------------ validation
    def _bad(self, msg: str) -> FormatError:
        return FormatError(f"{self.path}: {msg}")

    def _tensor(self, op: dict, key: str, dtype: str, shape: tuple) -> np.ndarray:
        name = op.get(key)
        if not isinstance(name, str) or name not in self.tensors:
            raise self._bad(f"op {op.get('name')!r}: tensor {key}={name!r} is missing")
        t = self.tensors[name]
        if t.dtype != np.dtype(dtype) or tuple(t.shape) != tuple(shape):
            raise self._bad(f"op {op.get('name')!r}: tensor {name!r} is {t.dtype}{list(t.shape)}, expected "
                            f"{np.dtype(dtype)}{list(shape)}")
        return t

    def _check_graph(self) -> None:
        g = self.graph
        inp = g.get("input")
        if not isinstance(inp, dict) or type(inp.get("channels")) is not int or not 1 <= inp["channels"] <= 1 << 16:
            raise self._bad("graph.input must give the number of input channels")
        if not isinstance(inp.get("name"), str):
            raise self._bad("graph.input needs a name")
        values = g.get("values")
        ops = g.get("ops")
        if not isinstance(values, dict) or not isinstance(ops, list) or not ops:
            raise self._bad("graph needs 'values' (object) and a non-empty 'ops' list")
        for name, v in values.items():
            if (not isinstance(v, dict) or v.get("kind") not in ("float", "bits", "index")
                    or type(v.get("channels")) is not int
                    or not 1 <= v["channels"] <= 1 << 24 or type(v.get("pooled")) is not bool):
                raise self._bad(f"value {name!r}: needs kind (float/bits/index), channels (int) and pooled (bool)")
            self._check_value_rows(name, v)
            hw = v.get("hw")
            if hw is not None and not (isinstance(hw, list) and len(hw) == 2 and all(
                    type(d) is int and 1 <= d <= 1 << 13 for d in hw) and not v["pooled"]):
                raise self._bad(f"value {name!r}: hw must be [H, W] (a spatial map, not pooled)")
        want = {"kind": "float", "channels": inp["channels"], "pooled": False}
        if "hw" in inp:
            want["hw"] = inp["hw"]
        if inp["name"] not in values or values[inp["name"]] != want:
            raise self._bad("graph.input must be a float per-point value (or a float [H, W] map, as graph.input)")
        defined = {inp["name"]}
        self.ops = []
        for i, op in enumerate(ops):
            if not isinstance(op, dict) or op.get("op") not in OP_TYPES or not isinstance(op.get("name"), str):
                raise self._bad(f"op #{i}: needs 'name' and 'op' in {list(OP_TYPES)}")
            if op["op"] == "concat":  # reads a list of values: "input" stands for the first
                ins = op.get("inputs")
                if not isinstance(ins, list) or len(ins) < 2 or not all(isinstance(r, str) for r in ins):
                    raise self._bad(f"op {op['name']!r}: concat needs 'inputs', a list of at least two value names")
                op = {**op, "input": ins[0]}
            second = {"bmm": ("matrix",), "add": ("other",), **GEO_REFS}.get(op["op"], ())
            if op["op"] == "linear" and "scale_input" in op:  # XNOR-Net's K of a conv: its float im2col rows
                second = ("scale_input",)
            second = tuple(k for k in second if k != "features" or "features" in op)
            reads = [(key, op.get(key)) for key in ("input",) + second] + [
                ("inputs", r) for r in (op["inputs"][1:] if op["op"] == "concat" else [])]
            for key, ref in reads + [("output", op.get("output"))]:
                if not isinstance(ref, str) or ref not in values:
                    raise self._bad(f"op {op['name']!r}: {key}={ref!r} is not a declared value")
            for _key, ref in reads:
                if ref not in defined:
                    raise self._bad(f"op {op['name']!r}: reads {ref!r} before it is computed")
            if op["output"] in defined:
                raise self._bad(f"op {op['name']!r}: value {op['output']!r} is written twice")
            vi, vo = values[op["input"]], values[op["output"]]
            if op["op"] not in GEO_OPS:
                if any(values[ref]["kind"] == "index" for _, ref in reads + [("output", op["output"])]):
                    raise self._bad(f"op {op['name']!r}: index values are read and written by geometric ops only")
                if op["op"] != "linear" and not vo["pooled"] and row_desc(vi) != row_desc(vo) and \
                        op["op"] not in ("im2col", "maxpool"):
                    raise self._bad(f"op {op['name']!r}: input and output rows differ")
            getattr(self, f"_check_{op['op']}")(op, vi, vo, values)
            defined.add(op["output"])
            self.ops.append(op)
        out = g.get("output")
        if out not in defined or values[out]["kind"] != "float":
            raise self._bad(f"graph.output {out!r} must be a computed float value")
        pts = inp.get("points")
        if pts is not None and (type(pts) is not int or pts < 1):
            raise self._bad("graph.input.points must be a positive integer or absent")
        self.points = pts
        self.values = values
        self.input_channels = inp["channels"]
        self.output_channels = values[out]["channels"]
        self.output_pooled = values[out]["pooled"] or values[out].get("hw") == [1, 1]
        self.input_hw = inp.get("hw")

    def _window(self, op, vi, vo) -> tuple:
        """(kh, kw, sh, sw, ph, pw, Ho, Wo) of an im2col / maxpool op, checked against its values."""
        name = op["name"]

        def pair(key, lo):
            v = op.get(key, [0, 0] if key == "padding" else None)
            if not (isinstance(v, list) and len(v) == 2 and all(type(d) is int and d >= lo for d in v)):
                raise self._bad(f"op {name!r}: {key} must be two integers >= {lo}")
            return v

        (kh, kw), (sh, sw), (ph, pw) = pair("kernel", 1), pair("stride", 1), pair("padding", 0)
        if vi.get("hw") is None or vo.get("hw") is None:
            raise self._bad(f"op {name!r}: input and output must be [H, W] maps")
        h, w = vi["hw"]
        if ph >= kh or pw >= kw or h + 2 * ph < kh or w + 2 * pw < kw:
            raise self._bad(f"op {name!r}: window {kh}x{kw} (padding {ph},{pw}) does not fit the {h}x{w} map")
        ho, wo = (h + 2 * ph - kh) // sh + 1, (w + 2 * pw - kw) // sw + 1
        if vo["hw"] != [ho, wo]:
            raise self._bad(f"op {name!r}: output map must be {[ho, wo]}, got {vo['hw']}")
        return kh, kw, sh, sw, ph, pw, ho, wo

    def _check_im2col(self, op, vi, vo, values):
        kh, kw = self._window(op, vi, vo)[:2]
        c = vi["channels"]
        width = kh * kw * (64 * ((c + 63) // 64) if vi["kind"] == "bits" else c)
        if vi["kind"] != vo["kind"] or vo["channels"] != width:
            raise self._bad(f"op {op['name']!r}: im2col of a {vi['kind']} map with {c} channels gives {vi['kind']} "
                            f"rows of {width}")
        pv = op.get("pad_value", 0.0)
        if not isinstance(pv, int | float) or isinstance(pv, bool) or not math.isfinite(pv) or (
                vi["kind"] == "bits" and pv not in (-1, 1)):
            raise self._bad(f"op {op['name']!r}: bad pad_value {pv!r} (bits: +1 or -1)")

    def _check_maxpool(self, op, vi, vo, values):
        if self._window(op, vi, vo)[4:6] != (0, 0) and vi["kind"] == "bits":
            raise self._bad(f"op {op['name']!r}: bit max pool without padding only")
        c = vi["channels"]
        if vi["kind"] != vo["kind"] or vo["channels"] != c:
            raise self._bad(f"op {op['name']!r}: maxpool maps a map to one of the same kind and channels")
        if vi["kind"] == "float":
            if "invert" in op:
                raise self._bad(f"op {op['name']!r}: invert applies to bit pooling only")
            return
        inv = self._tensor(op, "invert", "u1", ((c + 7) // 8,))
        if c % 8 and int(inv[-1]) >> (c % 8):
            raise self._bad(f"op {op['name']!r}: invert padding bits are not zero")

    def _check_sign(self, op, vi, vo, values):
        if vi["kind"] != "float" or vo["kind"] != "bits" or vi["channels"] != vo["channels"] or \
                vi["pooled"] != vo["pooled"] or vi.get("hw") != vo.get("hw"):
            raise self._bad(f"op {op['name']!r}: sign maps a float value to bits of the same shape")
        if ("scale" in op) != ("bias" in op):
            raise self._bad(f"op {op['name']!r}: an affine sign needs both scale and bias")
        for key in ("scale", "bias"):
            if key in op and not np.isfinite(self._tensor(op, key, "<f4", (vi["channels"],))).all():
                raise self._bad(f"op {op['name']!r}: tensor {key} has non-finite values")

    def _check_add(self, op, vi, vo, values):
        v1 = values[op["other"]]
        if not (vi["kind"] == v1["kind"] == vo["kind"] == "float") or not (
                vi["channels"] == v1["channels"] == vo["channels"]) or vi.get("hw") != v1.get("hw") or \
                vi.get("hw") != vo.get("hw") or not (vi["pooled"] == v1["pooled"] == vo["pooled"]):
            raise self._bad(f"op {op['name']!r}: add needs two float values of the output's shape")
        clamp = op.get("clamp", [None, None])
        if not (isinstance(clamp, list) and len(clamp) == 2 and all(
                c is None or (isinstance(c, int | float) and not isinstance(c, bool) and math.isfinite(c))
                for c in clamp)):
            raise self._bad(f"op {op['name']!r}: clamp must be [lo|null, hi|null]")

    def _check_affine(self, op, vi, vo, values):
        if vi["kind"] != "float" or vo["kind"] != "float" or vi["channels"] != vo["channels"] or \
                vi["pooled"] != vo["pooled"] or vi.get("hw") != vo.get("hw"):
            raise self._bad(f"op {op['name']!r}: affine maps a float value to one of the same shape")
        for key in ("scale", "bias"):
            if not np.isfinite(self._tensor(op, key, "<f4", (vi["channels"],))).all():
                raise self._bad(f"op {op['name']!r}: tensor {key} has non-finite values")

    def _check_avgpool(self, op, vi, vo, values):
        if vi["kind"] != "float" or vo["kind"] != "float" or vi["channels"] != vo["channels"] or vi["pooled"] or \
                not vo["pooled"] or "hw" in vo:
            raise self._bad(f"op {op['name']!r}: avgpool maps a float map to one pooled float row")

    def _check_bmm(self, op, vi, vo, values):
        vm = values[op["matrix"]]
        k = vi["channels"]
        if (vi["kind"], vm["kind"], vo["kind"]) != ("float",) * 3 or vm["channels"] != k * k or not vm["pooled"] \
                or vo["channels"] != k or vo["pooled"] != vi["pooled"]:
            raise self._bad(f"op {op['name']!r}: bmm needs float (rows, k) x pooled (k*k) -> (rows, k)")

    def _check_linear(self, op, vi, vo, values):
        name = op["name"]
        k, n = op.get("in_features"), op.get("out_features")
        if type(k) is not int or type(n) is not int or k != vi["channels"] or n != vo["channels"] or k < 1 or n < 1:
            raise self._bad(f"op {name!r}: in/out_features do not match its values")
        prod, pool = op.get("product"), op.get("pool", "none")
        if prod not in PRODUCTS or pool not in POOLS:
            raise self._bad(f"op {name!r}: product must be one of {list(PRODUCTS)}, pool one of {list(POOLS)}")
        xs = op.get("input_scale")
        if xs is not None:
            # XNOR-Net's input scale K: the op reads float rows, binarizes them itself and scales each row's product
            if xs not in INPUT_SCALES:
                raise self._bad(f"op {name!r}: input_scale must be one of {list(INPUT_SCALES)}, got {xs!r}")
            if "scale_input" in op:
                # bits in (a conv's im2col), K from the float rows of scale_input (the zero padded float im2col)
                vk = values[op["scale_input"]]
                if vi["kind"] != "bits" or vk["kind"] != "float" or row_desc(vk) != row_desc(vi) or \
                        vk.get("hw") != vi.get("hw") or vk["pooled"] != vi["pooled"] or "group" in op:
                    raise self._bad(f"op {name!r}: scale_input must be a float value with the rows of its bit input "
                                    "(no group)")
            elif vi["kind"] != "float" or "tap_channels" in op:
                raise self._bad(f"op {name!r}: input_scale {xs!r} without scale_input reads a float value "
                                "(no tap_channels)")
            if prod not in ("xnor", "and") or vo["kind"] != "float" or "bound" in op:
                raise self._bad(f"op {name!r}: input_scale {xs!r} needs an xnor or and product with a float output "
                                "(no bound)")
        elif "scale_input" in op:
            raise self._bad(f"op {name!r}: scale_input without input_scale")
        elif (prod == "float") != (vi["kind"] == "float"):
            raise self._bad(f"op {name!r}: a {prod} product cannot read a {vi['kind']} value")
        if vo["pooled"] != (vi["pooled"] or (pool != "none" and "group" not in op)):
            raise self._bad(f"op {name!r}: output pooled flag does not match pool={pool!r}")
        if "group" in op:
            self._check_linear_group(op, vi, vo, pool)
        elif not vo["pooled"] and vi.get("hw") != vo.get("hw"):
            raise self._bad(f"op {name!r}: output map {vo.get('hw')} differs from the input's {vi.get('hw')}")
        elif not vo["pooled"] and row_desc(vi) != row_desc(vo):
            raise self._bad(f"op {name!r}: output rows {row_desc(vo)} differ from the input's {row_desc(vi)}")
        kv = self._valid_features(op)
        if (pool == "or") != (vo["kind"] == "bits" and pool != "none") or (pool in ("max", "avg") and
                                                                            vo["kind"] != "float"):
            raise self._bad(f"op {name!r}: pool={pool!r} does not match output kind {vo['kind']!r}")
        w = (k + 63) // 64
        fmt = op.get("weight_format")
        if fmt == "f32":
            if prod != "float":
                raise self._bad(f"op {name!r}: float weights need product 'float'")
            self._tensor(op, "weight", "<f4", (n, k))
        elif fmt == "bits":
            bits = self._tensor(op, "weight", "<u8", (n, w))
            if k % 64 and (bits[:, -1] >> np.uint64(k % 64)).any():
                raise self._bad(f"op {name!r}: weight padding bits are not zero")
            tc = op.get("tap_channels")
            if tc is not None and tc % 64:
                tw = (tc + 63) // 64  # per tap: channel words, padding bits of the last word zero
                if (bits.reshape(n, -1, tw)[:, :, -1] >> np.uint64(tc % 64)).any():
                    raise self._bad(f"op {name!r}: weight padding bits are not zero")
            if prod == "float":
                self._tensor(op, "wscale", "<f4", (n,))
                self._tensor(op, "wshift", "<f4", (n,))
        else:
            raise self._bad(f"op {name!r}: weight_format must be 'f32' or 'bits'")
        if "bound" in op:
            if prod != "xnor" or vo["kind"] != "bits":
                raise self._bad(f"op {name!r}: integer thresholds need an xnor product with bit output")
            bound = self._tensor(op, "bound", bound_dtype(kv), (n,))
            flipb = self._tensor(op, "flip", "u1", ((n + 7) // 8,))
            if n % 8 and int(flipb[-1]) >> (n % 8):
                raise self._bad(f"op {name!r}: flip padding bits are not zero")
            if (bound < 0).any() or (bound > kv + 1).any():
                raise self._bad(f"op {name!r}: bound out of range [0, {kv + 1}]")
        else:
            keys = ("bias",) + (("scale",) if prod != "float" or "scale" in op else ()) + (
                ("row_scale",) if prod == "and" else ())
            for key in keys:
                t = self._tensor(op, key, "<f4", (n,))
                if not np.isfinite(t).all():
                    raise self._bad(f"op {name!r}: tensor {key} has non-finite values")
            clamp = op.get("clamp", [None, None])
            if not (isinstance(clamp, list) and len(clamp) == 2 and all(
                    c is None or (isinstance(c, int | float) and not isinstance(c, bool) and math.isfinite(c))
                    for c in clamp)):
                raise self._bad(f"op {name!r}: clamp must be [lo|null, hi|null]")
            off = op.get("offset", {"rule": "none"})
            rule = off.get("rule") if isinstance(off, dict) else None
            if rule not in ("none", "const", "ema") or (rule == "const" and not (
                    isinstance(off.get("value"), int | float) and math.isfinite(off["value"]))) or (
                    rule == "ema" and off.get("offsets") not in ("closed", "official")):
                raise self._bad(f"op {name!r}: bad offset {off!r}")
        if prod == "and" and fmt != "bits":
            raise self._bad(f"op {name!r}: the AND product needs bit weights")

    def _valid_features(self, op) -> int:
        """Input bits that count: in_features, or for conv rows (``tap_channels`` C) taps·C without the
        word padding of each tap (in_features = taps·64·⌈C/64⌉)."""
        k, tc = op["in_features"], op.get("tap_channels")
        if tc is None:
            return k
        tw = 64 * ((tc + 63) // 64) if type(tc) is int and tc >= 1 else 0
        if not tw or op.get("weight_format") != "bits" or k % tw:
            raise self._bad(f"op {op['name']!r}: tap_channels {tc!r} does not divide in_features {k} in 64-bit taps")
        return k // tw * tc

    # ------------------------------------------------------------------ plan
    def _offset(self, op: dict, n_points: int) -> float:
        off = op.get("offset", {"rule": "none"})
        if off["rule"] == "const":
            return float(off["value"])
        if off["rule"] == "ema":
            if off["offsets"] == "official":
                if n_points not in OFFICIAL_EMA_OFFSETS:
                    raise ValueError(f"{self.path}: op {op['name']!r} uses the official EMA-max offsets, which "
                                     f"exist only for n in {sorted(OFFICIAL_EMA_OFFSETS)}, not n={n_points}")
                return OFFICIAL_EMA_OFFSETS[n_points]
            return ema_offset(n_points)
        return 0.0

    def _plan(self, n_points: int):
        bufs, ids = [], {}
        order = [self.graph["input"]["name"]] + [op["output"] for op in self.ops]
        for name in order:
            v = self.values[name]
            ids[name] = len(bufs)
            hw = v.get("hw")
            bufs.append({"bits": v["kind"] == "bits", "pooled": v["pooled"], "cols": v["channels"],
                         "rows": hw[0] * hw[1] if hw else v.get("rows", 0), "mult": v.get("mult", 1),
                         "index": v["kind"] == "index"})
        recs = []
        for op in self.ops:
            rec = {"name": op["name"], "in0": ids[op["input"]], "out": ids[op["output"]]}
            if op["op"] == "sign":
                rec["type"] = _OP["sign"]
                if "scale" in op:
                    rec.update(mul=self.tensors[op["scale"]], add=self.tensors[op["bias"]])
            elif op["op"] == "add":
                lo, hi = op.get("clamp", [None, None])
                rec.update(type=_OP["add"], in1=ids[op["other"]], lo=-np.inf if lo is None else float(lo),
                           hi=np.inf if hi is None else float(hi))
            elif op["op"] == "avgpool":
                rec["type"] = _OP["avgpool"]
            elif op["op"] == "affine":
                rec.update(type=_OP["affine"], mul=self.tensors[op["scale"]], add=self.tensors[op["bias"]])
            elif op["op"] == "bmm":
                rec.update(type=_OP["bmm"], in1=ids[op["matrix"]])
            elif op["op"] in GEO_OPS:
                rec.update(self._geo_record(op, ids, n_points))
            elif op["op"] in ("im2col", "maxpool"):
                vi = self.values[op["input"]]
                (kh, kw), (sh, sw) = op["kernel"], op["stride"]
                ph, pw = op.get("padding", [0, 0])
                rec.update(type=_OP[op["op"]], H=vi["hw"][0], W=vi["hw"][1], kh=kh, kw=kw, sh=sh, sw=sw, ph=ph, pw=pw)
                if op["op"] == "im2col":
                    rec["pad"] = float(op.get("pad_value", 0.0))
                elif vi["kind"] == "bits":
                    c = vi["channels"]
                    inv = np.zeros(64 * ((c + 63) // 64), np.uint8)
                    inv[:c] = np.unpackbits(self.tensors[op["invert"]], bitorder="little")[:c]
                    rec["inv"] = np.packbits(inv, bitorder="little").view("<u8")
            else:
                rec.update(self._linear_record(op, n_points, ids))
            recs.append(rec)
        return bufs, recs, ids[self.graph["output"]]

    def _linear_record(self, op: dict, n_points: int, ids: dict) -> dict:
        t = self.tensors
        k, n = op["in_features"], op["out_features"]
        vo = self.values[op["output"]]
        pool = op.get("pool", "none")
        if vo["kind"] == "bits":
            mode = "or" if pool == "or" else "bits"
        else:
            mode = {"none": "f32", "max": "max", "avg": "avg"}[pool]
        kv = self._valid_features(op)
        rec = {"K": k, "N": n, "out_mode": _OUT[mode], "Kv": kv}
        if "group" in op:
            rec["group"] = op["group"]
        if op["product"] == "float":
            if op["weight_format"] == "f32":
                w = t[op["weight"]]
            else:  # binary weights, real input: W̃ = a·signs + b expanded once at load
                w = t[op["wscale"]][:, None] * unpack_signs(t[op["weight"]], k) + t[op["wshift"]][:, None]
            rec.update(type=_OP["flinear"], wt=np.ascontiguousarray(w.T, dtype=np.float32))
        else:
            rec.update(type=_OP["blinear"], weight=t[op["weight"]], and_mode=op["product"] == "and")
            if op.get("input_scale") == "mean_abs":
                rec["xscale"] = 2 if "scale_input" in op else 1
                if "scale_input" in op:
                    rec["in1"] = ids[op["scale_input"]]
        if "bound" in op:
            flip = np.unpackbits(t[op["flip"]], bitorder="little")[:n]
            p = t[op["bound"]].astype(np.int64) - 1
            rec.update(P=p, flip=flip, mul=np.zeros(n, np.float32), add=np.zeros(n, np.float32))
            return rec
        lo, hi = op.get("clamp", [None, None])
        lo = -np.inf if lo is None else float(lo)
        hi = np.inf if hi is None else float(hi)
        # EMA-max: δ*(n) for the rows pooled together (a group, or every row of the input)
        offset = self._offset(op, op["group"] if "group" in op else value_rows(self.values[op["input"]], n_points))
        mul = t[op["scale"]] if "scale" in op else np.ones(n, np.float32)  # float layers: scale in the weights
        rec.update(mul=mul, add=t[op["bias"]], lo=lo, hi=hi, offset=offset)
        if op["product"] == "and":
            rec["rowc"] = t[op["row_scale"]]
        elif op["product"] == "xnor" and vo["kind"] == "bits":
            tau, flip = thresholds(t[op["scale"]], t[op["bias"]], lo, hi, offset, kv)
            rec["P"], rec["flip"] = popcount_bounds(tau, flip, kv)
        return rec

    def _engine_for(self, n_points: int):
        eng = self._engines.get(n_points)
        if eng is None:
            bufs, recs, out = self._plan(n_points)
            try:
                eng = _engine().Engine(bufs, recs, out, self.isa)
            except ValueError as e:
                raise FormatError(f"{self.path}: {e}") from None
            if len(self._engines) > 8:
                self._engines.clear()
            self._engines[n_points] = eng
        return eng

    # ------------------------------------------------------------------ running
    def _prepare(self, x) -> np.ndarray:
        x = np.asarray(x)
        if self.input_hw is not None:
            return self._prepare_image(x)
        if x.ndim == 2:
            x = x[None]
        if x.ndim != 3 or x.shape[-1] != self.input_channels:
            raise ValueError(f"{self.path.name}: expected points (B, N, {self.input_channels}) or (N, "
                             f"{self.input_channels}), got shape {x.shape}")
        if x.shape[1] < 1:
            raise ValueError(f"{self.path.name}: a cloud needs at least one point")
        if self.points is not None and x.shape[1] != self.points:
            raise ValueError(f"{self.path.name}: this model was exported for clouds of exactly {self.points} points "
                             f"(EMA-max offsets folded into its thresholds), got {x.shape[1]}; re-export without "
                             "points= to accept any point count")
        if not np.issubdtype(x.dtype, np.floating):
            raise ValueError(f"{self.path.name}: expected float points, got {x.dtype}")
        return np.ascontiguousarray(x, dtype=np.float32)

    def _prepare_image(self, x) -> np.ndarray:
        """Images (B, C, H, W) (torch's NCHW), (B, H, W) or (H, W) for C = 1 → NHWC rows (B, H·W, C)."""
        h, w = self.input_hw
        c = self.input_channels
        if x.ndim == 2 or (x.ndim == 3 and c == 1 and x.shape[0] != 1 and x.shape[-2:] == (h, w)):
            x = x.reshape((-1, 1) + x.shape[-2:])
        elif x.ndim == 3:
            x = x[None]
        if x.ndim != 4 or x.shape[1:] != (c, h, w):
            raise ValueError(f"{self.path.name}: expected images (B, {c}, {h}, {w})" + (
                f", (B, {h}, {w}) or ({h}, {w})" if c == 1 else "") + f", got shape {x.shape}")
        if not np.issubdtype(x.dtype, np.floating):
            raise ValueError(f"{self.path.name}: expected float images, got {x.dtype}")
        return np.ascontiguousarray(x.transpose(0, 2, 3, 1).reshape(x.shape[0], h * w, c), dtype=np.float32)

    def _squeeze(self, out: np.ndarray) -> np.ndarray:
        return out[:, 0, :] if self.output_pooled else out

    def run(self, x, threads: int = 1) -> np.ndarray:
        """Logits (B, classes) for points (B, N, C) float32 (or one cloud (N, C) → (1, classes)); image
        models (``input_hw`` set) take images (B, C, H, W), or (B, H, W) / (H, W) with one channel."""
        x = self._prepare(x)
        out = self._engine_for(x.shape[1]).run(x, int(threads), False, False)
        return self._squeeze(out)

    def run_debug(self, x):
        """(logits, [per cloud: {op name: {"float"|"bits": output, "acc": int32 accumulators}}]).

        ``acc`` is the binary layer's integer product: the XNOR dot (k − 2·popcount) for XNOR
        layers, and for AND (DAB) layers [popcount(e AND x) ‖ popcount(x)] per row.
        """
        x = self._prepare(x)
        out, dbg = self._engine_for(x.shape[1]).run(x, 1, True, False)
        return self._squeeze(out), dbg

    def profile(self, x, threads: int = 1, repeats: int = 20) -> list[tuple[str, float]]:
        """Per-op time in µs per cloud (native timers), summed over ``repeats`` runs of ``x``."""
        x = self._prepare(x)
        eng = self._engine_for(x.shape[1])
        total: dict[str, float] = {}
        for _ in range(repeats):
            eng.run(x, int(threads), False, True)
            for name, ns in eng.profile():
                total[name] = total.get(name, 0.0) + ns
        scale = 1e-3 / (repeats * x.shape[0])
        return [(name, ns * scale) for name, ns in total.items()]

    def __repr__(self) -> str:
        return (f"onebit.runtime.Model({str(self.path)!r}, ops={len(self.ops)}, isa={self.isa!r}, "
                f"in={self.input_channels}, out={self.output_channels})")


def load(path, isa: str | None = None) -> Model:
    """Load and validate a ``.onebit`` file; ``isa`` (or $ONEBIT_ISA) forces avx512 / avx2 / scalar."""
    return Model(path, isa=isa)
