"""The builder every model family lowers through: a logical graph of layers with float semantics (as in
torch) becomes the physical ops of a ``.onebit`` graph (docs/format.md), with everything that is not a
binary product folded into each layer's epilogue (BatchNorm, scales, biases, activations, EMA-max
offsets for a fixed point count, integer thresholds of the next sign).

Shared by :mod:`onebit.export.pointnet`, :mod:`onebit.export.geometric` (DGCNN, PointNet++) and, for its
helpers, :mod:`onebit.export.conv` (image models). The maths it folds is :mod:`onebit.export.fold`; the
bit packing is the format's (:mod:`onebit_runtime.bits`).
"""

from __future__ import annotations

import json

import numpy as np

__all__ = ["ExportError"]


class ExportError(ValueError):
    """The model (or one of its layers) cannot be exported; the message names the layer."""


class _Val:
    __slots__ = ("id", "channels", "pooled", "producer", "bit_users", "float_users")

    def __init__(self, vid: int, channels: int, pooled: bool, producer=None):
        self.id, self.channels, self.pooled, self.producer = vid, channels, pooled, producer
        self.bit_users = 0
        self.float_users = 0


class _Builder:
    """Logical graph (float semantics, as in torch) → physical ops of the .onebit graph."""

    def __init__(self, model, in_channels: int, points: int | None = None):
        import torch.nn as nn

        self.points = points
        self.nn = nn
        self.names = {id(m): n for n, m in model.named_modules()}
        self.vals: list[_Val] = []
        self.nodes: list[dict] = []
        self.input = self._new(in_channels, False)

    def _new(self, channels, pooled, producer=None) -> _Val:
        v = _Val(len(self.vals), channels, pooled, producer)
        self.vals.append(v)
        return v

    def name(self, m) -> str:
        return self.names.get(id(m), type(m).__name__)

    # ---------------------------------------------------------------- logical graph
    def linear(self, layer, x: _Val, bn=None, act=None, extra_bias=None) -> _Val:
        if not isinstance(layer, self.nn.Linear):
            raise ExportError(f"layer {self.name(layer)!r}: only Linear layers are supported, got "
                              f"{type(layer).__name__}")
        if layer.in_features != x.channels:
            raise ExportError(f"layer {self.name(layer)!r}: expects {layer.in_features} inputs, gets {x.channels}")
        node = {"kind": "linear", "layer": layer, "input": x, "bn": bn, "act": act, "pool": None,
                "extra_bias": extra_bias}
        binary_in = getattr(layer, "input_quantizer", None) is not None
        if binary_in and not getattr(layer, "xnor_input", False):
            x.bit_users += 1
        else:
            x.float_users += 1
        out = self._new(layer.out_features, x.pooled, node)
        node["output"] = out
        self.nodes.append(node)
        return out

    def block(self, blk, x: _Val) -> _Val:
        bn = blk.bn if not isinstance(blk.bn, self.nn.Identity) else None
        act = blk.act if not isinstance(blk.act, self.nn.Identity) else None
        return self.linear(blk.linear, x, bn, act)

    def mlp(self, seq, x: _Val) -> _Val:
        for blk in seq:
            x = self.block(blk, x)
        return x

    def pool(self, module, x: _Val) -> _Val:
        node = x.producer
        if node is None or node["kind"] != "linear" or node["pool"] is not None or x.bit_users or x.float_users:
            raise ExportError(f"pool {self.name(module)!r}: must directly follow a linear layer used only by it")
        if x.pooled:
            raise ExportError(f"pool {self.name(module)!r}: input is already pooled")
        kind, offset = _pool_kind(module, self.name(module))
        if offset["rule"] == "ema" and self.points is not None:
            # fixed point count: δ*(n) is a constant, so it folds into integer thresholds at export
            try:
                delta = float(module.offset(self.points))
            except ValueError as e:
                raise ExportError(f"pool {self.name(module)!r}: {e}") from None
            offset = {"rule": "const", "value": delta}
        node["pool"] = (kind, offset)
        x.pooled = True  # the pooled value replaces the per-point one (fused)
        return x

    def bmm(self, x: _Val, mat: _Val) -> _Val:
        if mat.channels != x.channels * x.channels or not mat.pooled:
            raise ExportError(f"bmm: a {x.channels}-channel input needs a {x.channels}x{x.channels} transform")
        x.float_users += 1
        mat.float_users += 1
        node = {"kind": "bmm", "input": x, "matrix": mat}
        out = self._new(x.channels, x.pooled, node)
        node["output"] = out
        self.nodes.append(node)
        return out

    # ---------------------------------------------------------------- lowering
    def lower(self, output: _Val, model_info: dict) -> tuple[dict, dict]:
        output.float_users += 1
        tensors: dict[str, np.ndarray] = {}
        values: dict[str, dict] = {}
        ops: list[dict] = []

        def fname(v: _Val) -> str:
            return "input" if v is self.input else f"v{v.id}"

        def bname(v: _Val) -> str:
            return f"v{v.id}.bits"

        values["input"] = {"kind": "float", "channels": self.input.channels, "pooled": False}
        if self.input.bit_users:  # binary first layer: sign of the raw points
            values[bname(self.input)] = {"kind": "bits", "channels": self.input.channels, "pooled": False}
            ops.append({"op": "sign", "name": "sign_input", "input": "input", "output": bname(self.input)})
        for node in self.nodes:
            out = node["output"]
            if node["kind"] == "bmm":
                values[fname(out)] = {"kind": "float", "channels": out.channels, "pooled": out.pooled}
                ops.append({"op": "bmm", "name": f"bmm{out.id}", "input": fname(node["input"]),
                            "matrix": fname(node["matrix"]), "output": fname(out)})
            else:
                self._lower_linear(node, tensors, values, ops, fname, bname)
            if out.bit_users and (out.float_users or node["kind"] == "bmm"):  # float value + sign op
                values[bname(out)] = {"kind": "bits", "channels": out.channels, "pooled": out.pooled}
                ops.append({"op": "sign", "name": f"sign{out.id}", "input": fname(out), "output": bname(out)})
        inp = {"name": "input", "channels": self.input.channels}
        if self.points is not None:
            inp["points"] = int(self.points)
        graph = {"input": inp,
                 "values": values, "ops": ops, "output": fname(output), "model": model_info}
        return graph, tensors

    def _lower_linear(self, node, tensors, values, ops, fname, bname):
        import torch

        layer, x, out = node["layer"], node["input"], node["output"]
        name = self.name(layer)
        k, n = layer.in_features, layer.out_features
        iq = getattr(layer, "input_quantizer", None)
        kq = getattr(layer, "kernel_quantizer", None)
        op: dict = {"op": "linear", "name": name, "in_features": k, "out_features": n}
        pref = f"L{len(ops)}"  # short tensor names keep the header small; the op carries the layer name
        with torch.no_grad():
            bias = layer.bias.detach().double().cpu().numpy() if layer.bias is not None else np.zeros(n)
            if node["extra_bias"] is not None:
                bias = bias + node["extra_bias"]
            a = b = signs = None
            if kq is not None:
                try:
                    signs, a, b = layer.factorize()
                except NotImplementedError as e:
                    raise ExportError(f"layer {name!r}: its weight quantizer has no a·signs + b form ({e})") from None
                signs = signs.reshape(n, k).cpu().numpy()
                a = a.double().cpu().numpy().reshape(n)
                b = b.double().cpu().numpy().reshape(n)
                if not np.isin(signs, (-1.0, 1.0)).all():
                    raise ExportError(f"layer {name!r}: factorize() returned signs outside {{-1, +1}}")
            xscale = iq is not None and bool(getattr(layer, "xnor_input", False))
            if iq is not None:
                _check_binary_input(layer, name)
                tensors[pref + ".w"] = _pack(signs)
                op["weight"] = pref + ".w"
                op["weight_format"] = "bits"
                if np.all(b == 0):
                    # s·Q_w(W)·x = a·dot with dot = k − 2·popcount(x xor w)
                    op["product"] = "xnor"
                    zs, zc = a, np.zeros(n)
                    row = None
                else:
                    # DAB: W̃·x = a·(signs·x) + b·Σx; the engine gets both integers from AND-popcounts:
                    # signs·x = 4·popc(e∧x) − 2·popc(x) + k − 2|e|, Σx = 2·popc(x) − k (e = signs > 0)
                    op["product"] = "and"
                    zs, row, zc = a, b, np.zeros(n)
            else:
                op["product"] = "float"
                if kq is not None:
                    tensors[pref + ".w"] = _pack(signs)
                    tensors[pref + ".ws"] = a.astype(np.float32)
                    tensors[pref + ".wb"] = b.astype(np.float32)
                    op.update(weight=pref + ".w", weight_format="bits", wscale=pref + ".ws",
                              wshift=pref + ".wb")
                else:
                    w = layer.weight.detach().double()
                    s = layer.output_scale() if hasattr(layer, "output_scale") else None
                    if s is not None:
                        w = w * s.double().reshape(-1, 1)
                    op.update(weight=pref + ".w", weight_format="f32")
                zs, zc, row = np.ones(n), np.zeros(n), None
            # v = g·(zs·z + row·pcx + zc + bias) + h  with BN folded (g, h)
            g, h = _bn_affine(node["bn"], n, name)
            scale = g * zs
            shift = g * (zc + bias) + h
            row_scale = g * row if row is not None else None
        clamp = _act_clamp(node["act"], name)
        pool = node["pool"]
        pool_kind, offset = (pool if pool is not None else ("none", {"rule": "none"}))
        want_bits = out.bit_users > 0 and out.float_users == 0
        if want_bits and (pool_kind == "avg" or xscale):
            # sign(mean) is no OR, and an XNOR-Net scaled layer has a float epilogue only: emit the float
            # value, then a sign op for the binary consumers
            want_bits = False
            out.float_users += 1  # (forces the sign op in lower())
        if want_bits:
            op["pool"] = "or" if pool_kind == "max" else "none"
            oname = bname(out)
            values[oname] = {"kind": "bits", "channels": n, "pooled": out.pooled}
        else:
            op["pool"] = pool_kind
            oname = fname(out)
            values[oname] = {"kind": "float", "channels": n, "pooled": out.pooled}
        op["input"] = bname(x) if op["product"] != "float" and not xscale else fname(x)
        if xscale:
            # XNOR-Net's K = mean_c |x| per input row: the op binarizes its float input and scales each row
            op["input_scale"] = "mean_abs"
        op["output"] = oname
        if want_bits and op["product"] == "xnor" and offset["rule"] != "ema":
            from onebit_runtime.bits import pack_flags

            from onebit.export.fold import bound_dtype, popcount_bounds, thresholds

            off = float(offset.get("value", 0.0))
            lo = -np.inf if clamp[0] is None else clamp[0]
            hi = np.inf if clamp[1] is None else clamp[1]
            tau, flip = thresholds(scale.astype(np.float32), shift.astype(np.float32), lo, hi, off, k)
            # stored as the popcount bound b: bit = [popcount(x XOR w) < b] XOR flip, b ∈ [0, k + 1], in the
            # smallest integer type; flip bits packed 8 per byte: the file stays close to 1 bit per weight
            p, flip = popcount_bounds(tau, flip, k)
            tensors[pref + ".t"] = (p + 1).astype(bound_dtype(k))
            tensors[pref + ".f"] = pack_flags(flip)
            op.update(bound=pref + ".t", flip=pref + ".f")
        else:
            if op["weight_format"] == "f32":
                # float weights: the per-channel scale (BN's γ/σ) goes into the weight rows, no scale tensor
                tensors[pref + ".w"] = (w * torch.from_numpy(scale).reshape(-1, 1)).numpy().astype(np.float32)
            else:
                tensors[pref + ".s"] = scale.astype(np.float32)
                op["scale"] = pref + ".s"
            tensors[pref + ".b"] = shift.astype(np.float32)
            op.update(bias=pref + ".b", clamp=list(clamp), offset=offset)
            if row_scale is not None:
                tensors[pref + ".r"] = row_scale.astype(np.float32)
                op["row_scale"] = pref + ".r"
        ops.append(op)


def _pack(signs: np.ndarray) -> np.ndarray:
    from onebit_runtime.bits import pack_signs

    return pack_signs(signs)


def _bn_affine(bn, n: int, name: str):
    """Eval-mode BatchNorm as y = g·x + h (float64)."""
    if bn is None:
        return np.ones(n), np.zeros(n)
    import torch.nn as nn

    if not isinstance(bn, nn.modules.batchnorm._BatchNorm):
        raise ExportError(f"layer {name!r}: unsupported normalisation {type(bn).__name__}")
    if bn.running_mean is None or bn.running_var is None:
        raise ExportError(f"layer {name!r}: BatchNorm without running statistics cannot be folded")
    mean = bn.running_mean.detach().double().cpu().numpy()
    var = bn.running_var.detach().double().cpu().numpy()
    g = 1.0 / np.sqrt(var + bn.eps)
    h = -mean * g
    if bn.affine:
        w = bn.weight.detach().double().cpu().numpy()
        bb = bn.bias.detach().double().cpu().numpy()
        g, h = g * w, h * w + bb
    return g, h


def _act_clamp(act, name: str):
    import torch.nn as nn

    if act is None:
        return (None, None)
    if isinstance(act, nn.ReLU):
        return (0.0, None)
    if isinstance(act, nn.Hardtanh):
        return (float(act.min_val), float(act.max_val))
    raise ExportError(f"layer {name!r}: activation {type(act).__name__} is not supported (ReLU, Hardtanh)")


def _pool_kind(module, name: str):
    """(kind, offset rule) of a pooling module over the points."""
    cls = type(module).__name__
    if getattr(module, "keepdim", False) or getattr(module, "dim", 1) != 1:
        raise ExportError(f"pool {name!r}: only pooling over dim 1 without keepdim is supported")
    if cls == "EMAMaxPool":
        return "max", {"rule": "ema", "offsets": getattr(module, "offsets", "closed")}
    if cls in ("MaxPool",) or (cls == "_Reduce" and module.kind == "max"):
        return "max", {"rule": "none"}
    if cls in ("AvgPool", "EMAAvgPool") or (cls == "_Reduce" and module.kind == "avg"):
        return "avg", {"rule": "none"}
    raise ExportError(f"pool {name!r}: unsupported pooling module {cls}")


def _check_binary_input(layer, name: str) -> None:
    """A layer with a binarized input runs on popcounts only if its input binarizer is plain sign(x)
    and its weights are binarized too. (XNOR-Net's input scale K, which depends on the real-valued
    input, is not folded: such a layer reads its float input and the op computes K, ``input_scale``.)"""
    _check_sign_quantizer(layer.input_quantizer, name)
    if getattr(layer, "kernel_quantizer", None) is None:
        raise ExportError(f"layer {name!r}: binary input with float weights has no popcount form; "
                          "binarize the weights too or keep the input float")


def _check_sign_quantizer(q, name: str) -> None:
    """The engine's input binarizer is sign(x) (sign(0) = +1): check the quantizer's forward is that."""
    import torch

    probe = torch.tensor([-2.0, -1.0, -1e-3, 0.0, 1e-3, 0.5, 1.0, 3.0])
    was = q.training
    q.eval()
    with torch.no_grad():
        y = q(probe)
    q.train(was)
    if not torch.equal(y, torch.where(probe >= 0, 1.0, -1.0)):
        raise ExportError(f"layer {name!r}: input quantizer {getattr(q, 'name', type(q).__name__)!r} is not "
                          "sign(x) at inference; the engine cannot run it")


def _model_info(model) -> dict:
    """Short description of the source model (the full config lives in the training checkpoint)."""
    cfg = getattr(model, "onebit_config", None) or {}
    info = {"class": type(model).__name__}
    for key in ("name", "num_classes", "task"):
        if isinstance(cfg.get(key), str | int):
            info[key] = cfg[key]
    spec = cfg.get("binarize")
    if isinstance(spec, dict) and isinstance(spec.get("name"), str):
        info["binarize"] = spec["name"]
    opts = cfg.get("options")
    if isinstance(opts, dict):
        try:
            json.dumps(opts, allow_nan=False)
            info["options"] = opts
        except (TypeError, ValueError):
            pass
    return info
