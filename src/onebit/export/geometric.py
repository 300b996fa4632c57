"""Export of DGCNN and PointNet++ (classification) to the ``.onebit`` graph (docs/format.md).

The geometry runs natively in the engine, index for index as :mod:`onebit.geometry`:

* DGCNN: per EdgeConv ``knn`` (on xyz for the first, on the current features after) → ``edge``
  ([x_j − x_i ‖ x_i] as float rows, or directly as the bits [x_j ≥ x_i ‖ x_i ≥ 0] when the first
  layer of the EdgeConv MLP is binary) → the shared MLP on N·k rows → the pool over the k
  neighbours, fused into the MLP's last linear (``group`` = k; EMA-max's δ*(k) is a constant) →
  ``concat`` of the four EdgeConv outputs → emb → ``pool`` max and mean → ``concat`` → head.
* PointNet++: per set abstraction ``fps`` → ``gather`` (the centres) → per radius ``ball_query`` →
  ``group`` ([x_j − c ‖ f_j], or its bits) → shared MLP on S·K rows → pool over the K neighbours
  fused into the last linear (bits by OR of integer thresholds when the next consumer is binary)
  → ``concat`` of the branches (MSG); the last SA groups all: ``concat`` [centres ‖ features] →
  MLP → pool → head.

Each linear layer folds BN / LSR / scales into its epilogue exactly as the PointNet exporter
(:class:`onebit.export.builder._Builder`). Refused with a message naming the layer: segmentation tasks,
activations other than ReLU / Hardtanh (DGCNN's default LeakyReLU: the bipointnet preset uses
Hardtanh), PointNet++ with extra input channels, and everything the PointNet exporter refuses.
"""

from __future__ import annotations

import numpy as np

from .builder import ExportError, _Builder, _model_info, _pool_kind


class _GeoBuilder(_Builder):
    """The PointNet builder plus row sets (N·k edge rows, S centres, S·K groups) and geometric nodes."""

    def __init__(self, model, in_channels: int, points: int | None = None):
        super().__init__(model, in_channels, points)
        self.rows: dict[int, dict] = {}   # value id -> {} (per point) | {"mult": m} | {"rows": R}
        self.index: set[int] = set()     # ids of index values

    # ---------------------------------------------------------------- row sets
    def _rows_of(self, v) -> dict:
        return dict(self.rows.get(v.id, {}))

    def _times(self, v, k: int) -> dict:
        r = self._rows_of(v)
        if "rows" in r:
            return {"rows": r["rows"] * k}
        return {"mult": r.get("mult", 1) * k}

    def _divided(self, v, g: int, who: str) -> dict:
        r = self._rows_of(v)
        if "rows" in r and r["rows"] % g == 0:
            return {"rows": r["rows"] // g} if r["rows"] // g > 1 else {"rows": 1}
        if r.get("mult", 1) % g == 0 and "rows" not in r:
            m = r.get("mult", 1) // g
            return {"mult": m} if m > 1 else {}
        raise ExportError(f"pool {who!r}: cannot pool groups of {g} rows of {r}")

    def _node(self, kind: str, name: str, channels: int, rows: dict, is_index: bool = False, **kw):
        node = {"kind": kind, "name": name, **kw}
        out = self._new(channels, False, node)
        node["output"] = out
        self.rows[out.id] = rows
        if is_index:
            self.index.add(out.id)
        self.nodes.append(node)
        return out

    # ---------------------------------------------------------------- logical graph
    def linear(self, layer, x, bn=None, act=None, extra_bias=None):
        out = super().linear(layer, x, bn, act, extra_bias)
        self.rows[out.id] = self._rows_of(x)
        return out

    def knn(self, x, k: int, name: str, coords: int | None = None):
        if self._rows_of(x):
            raise ExportError(f"{name}: kNN runs on per-point rows")
        x.float_users += 1
        return self._node("knn", name, k, {}, is_index=True, input=x, k=int(k), coords=coords)

    def edge(self, x, idx, name: str):
        x.float_users += 1
        return self._node("edge", name, 2 * x.channels, {"mult": idx.channels}, input=x, index=idx)

    def fps(self, x, npoint: int, name: str):
        x.float_users += 1
        return self._node("fps", name, 1, {"rows": int(npoint)}, is_index=True, input=x, npoint=int(npoint))

    def gather(self, x, idx, name: str):
        x.float_users += 1
        return self._node("gather", name, x.channels, self._times(idx, idx.channels), input=x, index=idx)

    def ball_query(self, xyz, centres, radius: float, k: int, name: str):
        xyz.float_users += 1
        centres.float_users += 1
        return self._node("ball_query", name, int(k), self._rows_of(centres), is_index=True, input=xyz, centres=centres,
                          radius=float(radius), k=int(k))

    def group(self, xyz, centres, idx, feats, name: str):
        xyz.float_users += 1
        centres.float_users += 1
        ch = 3 + (feats.channels if feats is not None else 0)
        # the features' users are counted at lowering, once the group's own output kind is known
        return self._node("group", name, ch, self._times(centres, idx.channels), input=xyz, centres=centres,
                          index=idx, features=feats)

    def concat(self, vals, name: str):
        rows = [self._rows_of(v) for v in vals]
        if any(r != rows[0] for r in rows) or any(v.pooled != vals[0].pooled for v in vals):
            raise ExportError(f"{name}: concatenated values have different rows")
        # the inputs' users are counted at lowering: bits when the concatenation is only read as bits
        out = self._node("concat", name, sum(v.channels for v in vals), rows[0], inputs=list(vals))
        out.pooled = vals[0].pooled
        return out

    def group_pool(self, module, x, g: int):
        """Pool over consecutive groups of g rows (the k neighbours / K ball members), fused into the linear."""
        who = self.name(module)
        node = x.producer
        if node is None or node["kind"] != "linear" or node["pool"] is not None or x.bit_users or x.float_users:
            raise ExportError(f"pool {who!r}: must directly follow a linear layer used only by it")
        kind, offset = _group_pool_kind(module, who, g)
        if kind == "avg":
            # a mean as a separate op, summed exactly (in double): equal neighbour sets give equal means in
            # any order, so DGCNN's next sign(x_j − x_i) sees exact ties as torch in float64 does
            x.float_users += 1
            return self._node("pool", who, x.channels, self._divided(x, g, who), input=x, pool="avg",
                              offset=offset, group=int(g))
        node["pool"] = (kind, offset)
        node["group"] = int(g)
        self.rows[x.id] = self._divided(x, g, who)
        return x

    def pool(self, module, x, fuse: bool = True):
        """Pool over every row of x: fused into its linear when x has no other user (and ``fuse``), else a
        ``pool`` op."""
        who = self.name(module)
        kind, offset = _pool_kind(module, who)
        r = self._rows_of(x)
        if offset["rule"] == "ema" and (r or self.points is not None):
            n = r["rows"] if "rows" in r else self.points * r.get("mult", 1) if self.points is not None else None
            if n is not None:
                try:
                    offset = {"rule": "const", "value": float(module.offset(n))}
                except ValueError as e:
                    raise ExportError(f"pool {who!r}: {e}") from None
        node = x.producer
        if fuse and node is not None and node["kind"] == "linear" and node["pool"] is None and not x.bit_users \
                and not x.float_users:
            node["pool"] = (kind, offset)
            x.pooled = True
            self.rows[x.id] = {}
            return x
        x.float_users += 1
        out = self._node("pool", who, x.channels, {}, input=x, pool=kind, offset=offset)
        out.pooled = True
        return out

    # ---------------------------------------------------------------- lowering
    def lower(self, output, model_info: dict) -> tuple[dict, dict]:
        output.float_users += 1
        # a group reads its features, a concat its inputs, as bits when its own output is only read as bits
        # (consumers first: reverse order, so a concat of concats propagates)
        for node in reversed(self.nodes):
            if node["kind"] not in ("group", "concat"):
                continue
            o = node["output"]
            bits = o.bit_users > 0 and o.float_users == 0
            for v in node["inputs"] if node["kind"] == "concat" else [node["features"]]:
                if v is None:
                    continue
                if bits:
                    v.bit_users += 1
                else:
                    v.float_users += 1
        tensors: dict[str, np.ndarray] = {}
        values: dict[str, dict] = {}
        ops: list[dict] = []

        def fname(v) -> str:
            return "input" if v is self.input else f"v{v.id}"

        def bname(v) -> str:
            return f"v{v.id}.bits"

        def declare(vname: str, v, kind: str) -> None:
            values[vname] = {"kind": kind, "channels": v.channels, "pooled": v.pooled, **self._rows_of(v)}

        values["input"] = {"kind": "float", "channels": self.input.channels, "pooled": False}
        if self.input.bit_users:
            declare(bname(self.input), self.input, "bits")
            ops.append({"op": "sign", "name": "sign_input", "input": "input", "output": bname(self.input)})
        for node in self.nodes:
            out = node["output"]
            if node["kind"] == "linear":
                self._lower_linear(node, tensors, values, ops, fname, bname)
                op = ops[-1]
                kind = values[op["output"]]["kind"]
                declare(op["output"], out, kind)
                if node.get("group"):
                    op["group"] = node["group"]
            else:
                kind = self._lower_geo(node, values, ops, fname, bname, declare)
            if out.bit_users and kind == "float":
                declare(bname(out), out, "bits")
                ops.append({"op": "sign", "name": f"sign{out.id}", "input": fname(out), "output": bname(out)})
        inp = {"name": "input", "channels": self.input.channels}
        if self.points is not None:
            inp["points"] = int(self.points)
        return {"input": inp, "values": values, "ops": ops, "output": fname(output), "model": model_info}, tensors

    def _lower_geo(self, node, values, ops, fname, bname, declare) -> str:
        """Emit one geometric op; returns the kind of its output ("float", "bits" or "index")."""
        kind, out, name = node["kind"], node["output"], node["name"]
        if out.id in self.index:
            declare(fname(out), out, "index")
            values[fname(out)]["kind"] = "index"
            op = {"op": kind, "name": name, "input": fname(node["input"]), "output": fname(out)}
            if kind == "knn":
                op["k"] = node["k"]
                if node["coords"] is not None:
                    op["coords"] = node["coords"]
            elif kind == "fps":
                op.update(npoint=node["npoint"], coords=3)
            else:  # ball_query
                op.update(centres=fname(node["centres"]), k=node["k"], radius=node["radius"], coords=3)
            ops.append(op)
            return "index"
        bits_out = kind in ("edge", "group", "concat") and out.bit_users > 0 and out.float_users == 0
        oname = bname(out) if bits_out else fname(out)
        declare(oname, out, "bits" if bits_out else "float")
        op = {"op": kind, "name": name, "output": oname}
        if kind == "concat":
            op["inputs"] = [(bname if bits_out else fname)(v) for v in node["inputs"]]
        else:
            op["input"] = fname(node["input"])
        if kind in ("edge", "gather"):
            op["index"] = fname(node["index"])
        elif kind == "group":
            op.update(centres=fname(node["centres"]), index=fname(node["index"]), coords=3)
            f = node["features"]
            if f is not None:
                op["features"] = bname(f) if bits_out and bname(f) in values else fname(f)
        elif kind == "pool":
            op.update(kind=node["pool"], offset=node["offset"])
            if node.get("group"):
                op["group"] = node["group"]
        ops.append(op)
        return "bits" if bits_out else "float"


def _binary_input(layer) -> bool:
    return getattr(layer, "input_quantizer", None) is not None


def _group_pool_kind(module, name: str, g: int):
    """(kind, constant offset) of a pool over the neighbour dim (dim 2 of (B, S, K, C))."""
    cls = type(module).__name__
    if getattr(module, "keepdim", False) or getattr(module, "dim", 2) != 2:
        raise ExportError(f"pool {name!r}: only pooling over the neighbours (dim 2) without keepdim is supported")
    if cls == "EMAMaxPool":
        try:
            return "max", {"rule": "const", "value": float(module.offset(g))}
        except ValueError as e:
            raise ExportError(f"pool {name!r}: {e}") from None
    if cls == "MaxPool":
        return "max", {"rule": "none"}
    if cls in ("AvgPool", "EMAAvgPool"):
        return "avg", {"rule": "none"}
    raise ExportError(f"pool {name!r}: unsupported pooling module {cls}")


def dgcnn_graph(model, points: int | None = None) -> tuple[dict, dict]:
    """The ``.onebit`` graph and tensors of a classification DGCNN (kNN, edge features, pools in the engine)."""
    if model.task != "cls":
        raise ExportError(f"export: dgcnn task {model.task!r} is not supported (classification only)")
    b = _GeoBuilder(model, model.in_channels, points)
    x = b.input
    feats = []
    for i, ec in enumerate(model.ec):
        name = b.name(ec)
        nxt = model.ec[i + 1] if i + 1 < len(model.ec) else None
        if nxt is not None and _binary_input(ec.mlp[-1].linear) and _binary_input(nxt.mlp[0].linear) and \
                type(ec.pool).__name__ in ("AvgPool", "EMAAvgPool"):
            # means of a binary layer's outputs: two neighbour sets whose products sum alike give exactly equal
            # means, and sign(x_j − x_i) of the next EdgeConv then depends on float rounding (torch's too)
            raise ExportError(f"pool {b.name(ec.pool)!r}: the mean over neighbours of a binary layer's outputs feeds "
                              f"the binarized edge features sign(x_j - x_i) of {b.name(nxt)!r}, which are exact ties "
                              "decided by float rounding; no exact export (use max / EMA-max neighbour pooling)")
        if points is not None and points < ec.k:
            raise ExportError(f"{name}: k = {ec.k} neighbours need at least {ec.k} points, not {points}")
        idx = b.knn(x, ec.k, f"{name}.knn", coords=3 if i == 0 else None)  # the first graph is built on xyz
        h = b.mlp(ec.mlp, b.edge(x, idx, f"{name}.edge"))
        x = b.group_pool(ec.pool, h, ec.k)
        feats.append(x)
    h = b.block(model.emb, b.concat(feats, "concat_local"))
    g = b.concat([b.pool(model.pool, h, fuse=False), b.pool(model.mean_pool, h, fuse=False)], "concat_global")
    out = b.linear(model.head.out, b.mlp(model.head.mlp, g))
    return b.lower(out, _model_info(model))


def pointnet2_graph(model, points: int | None = None) -> tuple[dict, dict]:
    """The ``.onebit`` graph and tensors of a classification PointNet++ (SSG or MSG; FPS, ball query, grouping)."""
    name = model.model_name
    if model.task != "cls":
        raise ExportError(f"export: {name} task {model.task!r} is not supported (classification only)")
    if model.in_channels != 3:
        raise ExportError(f"export: {name} with {model.in_channels} input channels is not supported (xyz only)")
    b = _GeoBuilder(model, 3, points)
    xyz, feats = b.input, None
    for sa in model.sa:
        sname = b.name(sa)
        if sa.group_all:
            x = xyz if feats is None else b.concat([xyz, feats], f"{sname}.concat")
            feats = b.pool(sa.pool, b.mlp(sa.branches[0], x))
            continue
        centres = b.gather(xyz, b.fps(xyz, sa.npoint, f"{sname}.fps"), f"{sname}.centres")
        outs = []
        for j, (radius, k, mlp) in enumerate(zip(sa.radii, sa.nsamples, sa.branches, strict=True)):
            idx = b.ball_query(xyz, centres, radius, k, f"{sname}.ball_query.{j}")
            h = b.mlp(mlp, b.group(xyz, centres, idx, feats, f"{sname}.group.{j}"))
            outs.append(b.group_pool(sa.pool, h, k))
        feats = outs[0] if len(outs) == 1 else b.concat(outs, f"{sname}.concat")
        xyz = centres
    if not feats.pooled:
        raise ExportError(f"export: {name} must end with a set abstraction that groups all points")
    out = b.linear(model.head.out, b.mlp(model.head.mlp, feats))
    return b.lower(out, _model_info(model))
