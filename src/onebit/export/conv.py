"""Export of convolutional sketch models (Sketch-A-Net) to the ``.onebit`` graph (docs/format.md).

Values are NHWC maps (``hw`` = [H, W], one row per pixel). A convolution lowers to ``im2col``
(bits: one 64-bit-aligned group of words per tap, the pad value as bits; skipped for 1×1 / stride 1)
and a ``linear`` over the rows (``tap_channels`` = C: the channel padding bits of each tap never
count). Each layer's epilogue folds everything up to the next binarization:

    y = S·z + R·Σx + C          (its own BN, DAB's a·signs + b, conv bias)
    u = relu(y)                 (pooled by maxpool)
    bit = [g·u + h ≥ 0]         (the next unit's BN in the FBin order, then sign)

is rewritten per channel as bit = [σ·y + κ ≥ 0] with σ ∈ {+1, −1, 0}: an integer threshold on the
XNOR dot, or the AND (DAB) affine, or the float layer's affine. A max pool between the ReLU and
that BN pools the bits with OR where g > 0 and with AND where g < 0 (``invert`` channels).

Layers whose consumer takes real values (conv7 → the float conv8; every conv of a WBin or FP32
model) keep a float output (affine + ReLU clamp), pooled with float max pools; WBin weights are
stored as bits + (a, b) and expanded to a float GEMM at load.
"""

from __future__ import annotations

import numpy as np

from .builder import ExportError, _bn_affine, _check_binary_input


def _sign_fold(g: np.ndarray, h: np.ndarray, relu: bool) -> tuple[np.ndarray, np.ndarray]:
    """(σ, κ) per channel with [g·act(y) + h ≥ 0] = [σ·y + κ ≥ 0]; act = ReLU or identity."""
    n = len(g)
    sig, kap = np.zeros(n), np.where(h >= 0, 1.0, -1.0)  # g = 0: the constant sign(h)
    pos, neg = g > 0, g < 0
    t = np.zeros(n)
    t[pos | neg] = -h[pos | neg] / g[pos | neg]          # act(y) ≥ t (g > 0) or ≤ t (g < 0)
    if relu:
        # g > 0: t ≤ 0 always holds (relu ≥ 0); g < 0: t < 0 never holds
        always, never = pos & (t <= 0), neg & (t < 0)
        kap[always], kap[never] = 1.0, -1.0
        pos, neg = pos & ~always, neg & ~never
    sig[pos], kap[pos] = 1.0, -t[pos]
    sig[neg], kap[neg] = -1.0, t[neg]
    return sig, kap


class _ConvGraph:
    def __init__(self, model, in_channels: int, hw: list[int]):
        self.names = {id(m): n for n, m in model.named_modules()}
        self.values: dict[str, dict] = {"input": {"kind": "float", "channels": in_channels, "pooled": False,
                                                  "hw": list(hw)}}
        self.ops: list[dict] = []
        self.tensors: dict[str, np.ndarray] = {}
        self.cur = "input"

    def name(self, m) -> str:
        return self.names.get(id(m), type(m).__name__)

    def _new(self, kind: str, channels: int, hw) -> str:
        vid = f"v{len(self.values)}" + (".bits" if kind == "bits" else "")
        self.values[vid] = {"kind": kind, "channels": int(channels), "pooled": False, "hw": [int(hw[0]), int(hw[1])]}
        return vid

    @staticmethod
    def _geom(conv, name):
        if tuple(getattr(conv, "dilation", (1, 1))) != (1, 1) or conv.groups != 1:
            raise ExportError(f"layer {name!r}: only dilation 1 and groups 1 convolutions are supported")
        if hasattr(conv, "pad_amounts"):
            pads = conv.pad_amounts()
        elif isinstance(conv.padding, str):
            raise ExportError(f"layer {name!r}: string padding {conv.padding!r} is not supported")
        else:
            pads = [(int(p), int(p)) for p in conv.padding]
        if any(b != a for b, a in pads):
            raise ExportError(f"layer {name!r}: asymmetric padding is not supported")
        if conv.padding_mode != "zeros":
            raise ExportError(f"layer {name!r}: padding_mode {conv.padding_mode!r} is not supported")
        return list(conv.kernel_size), list(conv.stride), [pads[0][0], pads[1][0]]

    def conv(self, conv, post_bn, relu: bool, pools: list, next_bn, next_binary: bool, next_xnor: bool = False) -> None:
        """Lower conv (+ its BN, ReLU, max pools, the next unit's pre-BN and sign) onto the current value.

        XNOR-Net convs (``xnor_input``) read a float map: ``sign`` → bits im2col (pad_value) for the product,
        and a float im2col (zero padded) whose row means of |x| are K (the box filter of A = mean_c |x|
        with count-including-pad); their output is float. A conv feeding one (``next_xnor``) keeps a float
        output too, and the next unit's pre-BN becomes an ``affine`` op after the pools."""
        import torch.nn as nn

        name = self.name(conv)
        if not isinstance(conv, nn.Conv2d):
            raise ExportError(f"layer {name!r}: expected a Conv2d, got {type(conv).__name__}")
        vin = self.values[self.cur]
        c, hw = vin["channels"], vin["hw"]
        if conv.in_channels != c:
            raise ExportError(f"layer {name!r}: expects {conv.in_channels} input channels, gets {c}")
        (kh, kw), (sh, sw), (ph, pw) = self._geom(conv, name)
        n = conv.out_channels
        iq = getattr(conv, "input_quantizer", None)
        kq = getattr(conv, "kernel_quantizer", None)
        xnor = iq is not None and bool(getattr(conv, "xnor_input", False))
        if xnor and next_binary and not next_xnor:
            raise ExportError(f"layer {name!r}: an XNOR-Net (K-scaled) conv feeding a plain sign-input conv is not "
                              "supported (binarize both with the same activation quantizer)")
        xfloat = None
        if xnor:
            if vin["kind"] != "float":
                raise ExportError(f"layer {name!r}: internal error: an XNOR-Net conv reads a float map")
            xfloat = self.cur
            self.cur = self.sign(xfloat, None, name)
            vin = self.values[self.cur]
        binary = vin["kind"] == "bits"
        if binary != (iq is not None):
            raise ExportError(f"layer {name!r}: internal error: input kind {vin['kind']} vs its input quantizer")
        if iq is not None:
            _check_binary_input(conv, name)
        # ---- im2col
        ho, wo = (hw[0] + 2 * ph - kh) // sh + 1, (hw[1] + 2 * pw - kw) // sw + 1
        if ho < 1 or wo < 1:
            raise ExportError(f"layer {name!r}: the {hw[0]}x{hw[1]} map is smaller than the kernel")
        taps = kh * kw
        tw = (c + 63) // 64
        identity = (kh, kw, sh, sw, ph, pw) == (1, 1, 1, 1, 0, 0)
        xin = self.cur
        if not identity:
            width = taps * (64 * tw if binary else c)
            xin = self._new(vin["kind"], width, (ho, wo))
            self.ops.append({"op": "im2col", "name": name + ".im2col", "input": self.cur, "output": xin,
                             "kernel": [kh, kw], "stride": [sh, sw], "padding": [ph, pw],
                             "pad_value": float(conv.pad_value) if binary else 0.0})
        kin = xfloat
        if xnor and not identity:
            # K = mean over the taps of A = mean_c |x| (A zero padded) = mean |x| over the zero padded float row
            kin = self._new("float", taps * c, (ho, wo))
            self.ops.append({"op": "im2col", "name": name + ".im2col_k", "input": xfloat, "output": kin,
                             "kernel": [kh, kw], "stride": [sh, sw], "padding": [ph, pw], "pad_value": 0.0})
        pref = f"L{len(self.ops)}"  # tensors are named after the linear op's index
        k = self.values[xin]["channels"]
        kv = taps * c
        op: dict = {"op": "linear", "name": name, "input": xin, "in_features": k, "out_features": n}
        if binary and not identity:
            op["tap_channels"] = c
        if xnor:
            op.update(input_scale="mean_abs", scale_input=kin)
        with _no_grad():
            bias = conv.bias.detach().double().numpy() if conv.bias is not None else np.zeros(n)
            if kq is not None:
                try:
                    signs, a, b = conv.factorize()
                except NotImplementedError as e:
                    raise ExportError(f"layer {name!r}: its weight quantizer has no a·signs + b form ({e})") from None
                signs = signs.detach().permute(0, 2, 3, 1).reshape(n * taps, c).cpu().numpy()
                if not np.isin(signs, (-1.0, 1.0)).all():
                    raise ExportError(f"layer {name!r}: factorize() returned signs outside {{-1, +1}}")
                a = a.double().cpu().numpy().reshape(n)
                b = b.double().cpu().numpy().reshape(n)
                from onebit_runtime.bits import pack_signs

                if binary:
                    self.tensors[pref + ".w"] = pack_signs(signs).reshape(n, taps * tw)
                    op.update(weight=pref + ".w", weight_format="bits", product="xnor" if np.all(b == 0) else "and")
                    zs, row = a, b
                else:  # WBin: real input × binary weights W̃ = a·signs + b (a float GEMM at run time)
                    self.tensors[pref + ".w"] = pack_signs(signs.reshape(n, taps * c))
                    self.tensors[pref + ".ws"] = a.astype(np.float32)
                    self.tensors[pref + ".wb"] = b.astype(np.float32)
                    op.update(weight=pref + ".w", weight_format="bits", wscale=pref + ".ws", wshift=pref + ".wb",
                              product="float")
                    zs, row = np.ones(n), np.zeros(n)
            else:
                w = conv.weight.detach().double().permute(0, 2, 3, 1).reshape(n, taps * c).cpu().numpy()
                op.update(product="float", weight=pref + ".w", weight_format="f32")
                zs, row = np.ones(n), np.zeros(n)
        g, h = _bn_affine(post_bn, n, name)
        S, R, C = g * zs, g * row, g * bias + h
        if next_binary and not next_xnor and not xnor:
            if next_bn is not None:
                g2, h2 = _bn_affine(next_bn, n, name)
            else:
                g2, h2 = np.ones(n), np.zeros(n)
            sig, kap = _sign_fold(g2, h2, relu)
            mul, rmul, add = sig * S, sig * R, sig * C + kap
            out = self._new("bits", n, (ho, wo))
            if op["product"] == "xnor":
                from onebit_runtime.bits import pack_flags

                from onebit.export.fold import bound_dtype, popcount_bounds, thresholds

                tau, flip = thresholds(mul.astype(np.float32), add.astype(np.float32), -np.inf, np.inf, 0.0, kv)
                p, flip = popcount_bounds(tau, flip, kv)
                self.tensors[pref + ".t"] = (p + 1).astype(bound_dtype(kv))
                self.tensors[pref + ".f"] = pack_flags(flip)
                op.update(bound=pref + ".t", flip=pref + ".f")
            else:
                self._affine(op, pref, mul, rmul, add, [None, None], w if op["weight_format"] == "f32" else None)
            op.update(output=out, pool="none")
            self.ops.append(op)
            self.cur = out
            for pool in pools:
                self._pool(pool, sig < 0)
        else:
            if next_bn is not None and not next_xnor:
                raise ExportError(f"layer {name!r}: a BatchNorm between this layer and a real-valued-input conv is "
                                  "not supported (the WBin / float block order is conv -> BN -> ReLU)")
            out = self._new("float", n, (ho, wo))
            self._affine(op, pref, S, R, C, [0.0, None] if relu else [None, None],
                         w if op["weight_format"] == "f32" else None)
            op.update(output=out, pool="none")
            self.ops.append(op)
            self.cur = out
            for pool in pools:
                self._pool(pool, None)
            if next_xnor and next_bn is not None:
                self.cur = self.affine(self.cur, next_bn, self.name(next_bn))

    def sign(self, x: str, bn, name: str) -> str:
        """bits = sign(bn(x)) of a float map or pooled row (bn folded as [σ·x + κ ≥ 0]; None: plain sign)."""
        v = self.values[x]
        out = self._new("bits", v["channels"], v["hw"]) if "hw" in v else self._pooled("bits", v["channels"])
        op = {"op": "sign", "name": f"{name}.sign", "input": x, "output": out}
        if bn is not None:
            g, h = _bn_affine(bn, v["channels"], self.name(bn))
            sig, kap = _sign_fold(g, h, relu=False)
            pref = f"L{len(self.ops)}"
            self.tensors[pref + ".s"] = sig.astype(np.float32)
            self.tensors[pref + ".b"] = kap.astype(np.float32)
            op.update(scale=pref + ".s", bias=pref + ".b")
        self.ops.append(op)
        return out

    def affine(self, x: str, bn, name: str) -> str:
        """The float value bn(x) (eval BatchNorm as g·x + h per channel): an XNOR-Net layer's real input."""
        v = self.values[x]
        out = self._new("float", v["channels"], v["hw"]) if "hw" in v else self._pooled("float", v["channels"])
        g, h = _bn_affine(bn, v["channels"], self.name(bn))
        pref = f"L{len(self.ops)}"
        self.tensors[pref + ".s"] = g.astype(np.float32)
        self.tensors[pref + ".b"] = h.astype(np.float32)
        self.ops.append({"op": "affine", "name": name, "input": x, "output": out, "scale": pref + ".s",
                         "bias": pref + ".b"})
        return out

    def _pooled(self, kind: str, channels: int) -> str:
        vid = f"v{len(self.values)}" + (".bits" if kind == "bits" else "")
        self.values[vid] = {"kind": kind, "channels": int(channels), "pooled": True}
        return vid

    def _affine(self, op, pref, mul, rmul, add, clamp, w):
        if w is not None:  # float weights carry the per-channel scale
            self.tensors[pref + ".w"] = (w * mul[:, None]).astype(np.float32)
        else:
            self.tensors[pref + ".s"] = mul.astype(np.float32)
            op["scale"] = pref + ".s"
        self.tensors[pref + ".b"] = add.astype(np.float32)
        op.update(bias=pref + ".b", clamp=clamp, offset={"rule": "none"})
        if op["product"] == "and":
            self.tensors[pref + ".r"] = rmul.astype(np.float32)
            op["row_scale"] = pref + ".r"

    def _pool(self, pool, invert: np.ndarray | None) -> None:
        """Max pool of the current map: bits (``invert``: the AND channels) or float (``invert`` None)."""
        name = self.name(pool)

        def pair(v):
            return [int(v), int(v)] if isinstance(v, int) else [int(d) for d in v]

        (ph, pw) = pair(pool.padding)
        if pool.ceil_mode or pair(pool.dilation) != [1, 1] or (invert is not None and (ph or pw)):
            raise ExportError(f"pool {name!r}: only max pooling without dilation or ceil_mode is supported (and "
                              "without padding in front of a binarized layer)")
        (kh, kw) = pair(pool.kernel_size)
        (sh, sw) = pair(pool.stride if pool.stride is not None else pool.kernel_size)
        vin = self.values[self.cur]
        hw = vin["hw"]
        ho, wo = (hw[0] + 2 * ph - kh) // sh + 1, (hw[1] + 2 * pw - kw) // sw + 1
        if ho < 1 or wo < 1:
            raise ExportError(f"pool {name!r}: the {hw[0]}x{hw[1]} map is smaller than the window")
        out = self._new(vin["kind"], vin["channels"], (ho, wo))
        op = {"op": "maxpool", "name": name, "input": self.cur, "output": out, "kernel": [kh, kw], "stride": [sh, sw]}
        if ph or pw:
            op["padding"] = [ph, pw]
        if invert is not None:
            from onebit_runtime.bits import pack_flags

            tname = f"L{len(self.ops)}.i"
            self.tensors[tname] = pack_flags(invert)
            op["invert"] = tname
        self.ops.append(op)
        self.cur = out


def _resnet_feed(b: _ResGraph, x: str, bn, conv) -> str:
    """The value a conv reads from the float map ``x``: sign(bn(x)) as bits for a binarized conv."""
    if getattr(conv, "input_quantizer", None) is None:
        if bn is not None:
            raise ExportError(f"layer {b.name(bn)!r}: a BatchNorm before a real-valued-input conv is not supported")
        return x
    if _xnor(conv):  # XNOR-Net: the conv reads the real bn(x) (K needs its magnitudes)
        return b.affine(x, bn, b.name(bn)) if bn is not None else x
    return b.sign(x, bn, b.name(conv))


def _xnor(layer) -> bool:
    return getattr(layer, "input_quantizer", None) is not None and bool(getattr(layer, "xnor_input", False))


class _ResGraph(_ConvGraph):
    def add(self, a: str, c: str, name: str) -> str:
        v = self.values[a]
        out = self._new("float", v["channels"], v["hw"])
        self.ops.append({"op": "add", "name": name, "input": a, "other": c, "output": out, "clamp": [0.0, None]})
        return out

    def avgpool(self, x: str, name: str) -> str:
        out = self._pooled("float", self.values[x]["channels"])
        self.ops.append({"op": "avgpool", "name": name, "input": x, "output": out})
        return out

    def head(self, x: str, bn, fc) -> str:
        """The classifier on the pooled features: binary (sign(BN(x)) → XNOR/AND) or float (BN folded in)."""
        import torch.nn as nn

        name = self.name(fc)
        if not isinstance(fc, nn.Linear):
            raise ExportError(f"layer {name!r}: expected a Linear classifier, got {type(fc).__name__}")
        k, n = fc.in_features, fc.out_features
        bias = fc.bias.detach().double().numpy() if fc.bias is not None else np.zeros(n)
        op: dict = {"op": "linear", "name": name, "in_features": k, "out_features": n, "pool": "none",
                    "clamp": [None, None], "offset": {"rule": "none"}}
        iq = getattr(fc, "input_quantizer", None)
        kq = getattr(fc, "kernel_quantizer", None)
        with _no_grad():
            if iq is not None:
                _check_binary_input(fc, name)
                if _xnor(fc):  # XNOR-Net: K = mean |bn(x)| of the pooled row, computed by the op itself
                    xin = self.affine(x, bn, self.name(bn)) if bn is not None else x
                    op["input_scale"] = "mean_abs"
                else:
                    xin = self.sign(x, bn, name)
                pref = f"L{len(self.ops)}"
                signs, a, b = fc.factorize()
                from onebit_runtime.bits import pack_signs

                a = a.double().numpy().reshape(n)
                b = b.double().numpy().reshape(n)
                self.tensors[pref + ".w"] = pack_signs(signs.reshape(n, k).numpy())
                self.tensors[pref + ".s"] = a.astype(np.float32)
                op.update(product="xnor" if np.all(b == 0) else "and", weight=pref + ".w", weight_format="bits",
                          scale=pref + ".s")
                if op["product"] == "and":
                    self.tensors[pref + ".r"] = b.astype(np.float32)
                    op["row_scale"] = pref + ".r"
            else:
                xin = x
                pref = f"L{len(self.ops)}"
                g, h = _bn_affine(bn, k, self.name(bn) if bn is not None else name)
                if kq is not None:  # WBin classifier: W̃ = a·signs + b, stored expanded (BN folds into it)
                    signs, a, bb = fc.factorize()
                    w = (a.double().reshape(n, 1) * signs.double().reshape(n, k) + bb.double().reshape(n, 1)).numpy()
                else:
                    w = fc.weight.detach().double().numpy()
                bias = bias + w @ h
                self.tensors[pref + ".w"] = (w * g[None, :]).astype(np.float32)
                op.update(product="float", weight=pref + ".w", weight_format="f32")
        self.tensors[pref + ".b"] = bias.astype(np.float32)
        out = self._pooled("float", n)
        op.update(bias=pref + ".b", input=xin, output=out)
        self.ops.append(op)
        return out


def resnet_graph(model, info: dict, input_size: int) -> tuple[dict, dict]:
    """(graph, tensors) of a (binarized) ResNet-18: BasicBlocks with real-valued shortcuts.

    Each block reads the float map x: sign(BN(x)) as bits for its binary convs (FBin order), the
    second conv's output stays float (its DAB / XNOR affine), the shortcut (x, or its downsample:
    sign(BN(x)) → binary 1×1 conv, float out) is added in float and ReLU'd by an ``add`` op.
    """
    import torch.nn as nn

    in_ch = model.conv1.in_channels
    b = _ResGraph(model, in_ch, [input_size, input_size])
    if getattr(model.conv1, "input_quantizer", None) is not None:
        raise ExportError("layer 'conv1': a binarized first layer is not supported (keep it float)")
    b.conv(model.conv1, model.bn1, True, [], None, False)
    b._pool(model.maxpool, None)
    x = b.cur
    for stage in (model.layer1, model.layer2, model.layer3, model.layer4):
        for blk in stage:
            bname = b.name(blk)
            ds = blk.downsample
            if blk.preact:
                b.cur = _resnet_feed(b, x, blk.bn1, blk.conv1)
                b.conv(blk.conv1, None, True, [], blk.bn2, getattr(blk.conv2, "input_quantizer", None) is not None,
                       _xnor(blk.conv2))
                b.conv(blk.conv2, None, False, [], None, False)
                main = b.cur
                if ds is not None:
                    b.cur = _resnet_feed(b, x, ds[0], ds[1])
                    b.conv(ds[1], None, False, [], None, False)
            else:
                b.cur = _resnet_feed(b, x, None, blk.conv1)
                nxt = getattr(blk.conv2, "input_quantizer", None) is not None
                b.conv(blk.conv1, blk.bn1, True, [], None, nxt, _xnor(blk.conv2))
                b.conv(blk.conv2, blk.bn2, False, [], None, False)
                main = b.cur
                if ds is not None:
                    b.cur = _resnet_feed(b, x, None, ds[0])
                    b.conv(ds[0], ds[1], False, [], None, False)
            shortcut = b.cur if ds is not None else x
            x = b.add(main, shortcut, bname + ".add")
    if not isinstance(model.avgpool, nn.AdaptiveAvgPool2d) or model.avgpool.output_size not in (1, (1, 1)):
        raise ExportError("layer 'avgpool': only a global average pool is supported")
    g = b.avgpool(x, "avgpool")
    head_bn = None if isinstance(model.head_bn, nn.Identity) else model.head_bn
    out = b.head(g, head_bn, model.fc)
    inp = {"name": "input", "channels": in_ch, "hw": [input_size, input_size]}
    info = dict(info, input_size=input_size, preact=bool(model.layer1[0].preact))
    return {"input": inp, "values": b.values, "ops": b.ops, "output": out, "model": info}, b.tensors


class _no_grad:
    def __enter__(self):
        import torch

        self._g = torch.no_grad()
        self._g.__enter__()

    def __exit__(self, *exc):
        return self._g.__exit__(*exc)


def sketch_a_net_graph(model, info: dict) -> tuple[dict, dict]:
    """(graph, tensors) of a binarized Sketch-A-Net (FBin / BNN presets, either block order)."""
    import torch.nn as nn

    size = getattr(model, "input_size", None)
    if size is None:  # the model keeps its geometry, not the size; the registry's config has it
        size = _input_size(model)
    in_ch = model.conv1.conv.in_channels
    b = _ConvGraph(model, in_ch, [size, size])
    if model.conv1.preact:
        raise ExportError("layer 'conv1': a BN before the float first conv is not supported")
    units = [model.conv1, model.conv2, model.conv3, model.conv4, model.conv5, model.conv6, model.conv7]
    pools = {0: [model.pool1], 1: [model.pool2], 4: [model.pool3]}
    for i, u in enumerate(units):
        if i == 0 and getattr(u.conv, "input_quantizer", None) is not None:
            raise ExportError("layer 'conv1.conv': a binarized first layer is not supported (keep it float)")
        relu = isinstance(u.relu, nn.ReLU)
        if not relu and not isinstance(u.relu, nn.Identity):
            raise ExportError(f"layer {b.name(u)!r}: activation {type(u.relu).__name__} is not supported")
        nxt = units[i + 1] if i + 1 < len(units) else None
        if nxt is not None:
            next_binary = getattr(nxt.conv, "input_quantizer", None) is not None
            next_bn = nxt.bn if nxt.preact else None
        else:
            next_binary, next_bn = False, None
        b.conv(u.conv, None if u.preact else u.bn, relu, pools.get(i, []), next_bn, next_binary,
               nxt is not None and _xnor(nxt.conv))
    if b.values[b.cur]["hw"] != [1, 1]:
        raise ExportError(f"export: the map before conv8 is {b.values[b.cur]['hw']}, expected 1x1")
    if getattr(model.conv8, "input_quantizer", None) is not None or getattr(model.conv8, "kernel_quantizer", None):
        raise ExportError("layer 'conv8': a binarized classifier is not supported (keep it float)")
    b.conv(model.conv8, None, False, [], None, False)
    inp = {"name": "input", "channels": in_ch, "hw": [size, size]}
    info = dict(info, input_size=size, preact=bool(model.conv2.preact))
    graph = {"input": inp, "values": b.values, "ops": b.ops, "output": b.cur, "model": info}
    return graph, b.tensors


def _input_size(model) -> int:
    cfg = getattr(model, "onebit_config", None)
    if not isinstance(cfg, dict):
        raise ExportError("export: cannot tell the sketch_a_net input size (build the model with "
                          "onebit.models.create, which records it, or set model.input_size)")
    size = (cfg.get("options") or {}).get("input_size", 225)  # 225: the builder's default
    if type(size) is not int:
        raise ExportError(f"export: bad sketch_a_net input_size {size!r}")
    return size
