"""Validation and plan records of the geometric ops (DGCNN, PointNet++) of a ``.onebit`` graph.

Torch-free. Rows of a value (docs/format.md): one per point (default; ``"mult": m`` gives N·m rows,
e.g. DGCNN's k edge rows per point), a fixed count ``"rows": R`` (PointNet++'s sampled centres and
their groups), one (``pooled``) or an image map (``hw``). ``index`` values hold int32 row indices
(``channels`` per row) into the rows of the value they were computed on; every reader checks that
it indexes a value with those rows.
"""

from __future__ import annotations

import math

GEO_OPS = ("knn", "fps", "ball_query", "gather", "edge", "group", "pool", "concat")
"""Graph ops for point neighbourhoods (docs/format.md, "Geometric ops")."""
# value references besides "input" / "output" ("features" is optional)
GEO_REFS = {"ball_query": ("centres",), "gather": ("index",), "edge": ("index",),
            "group": ("centres", "index", "features")}
"""Value references each geometric op takes besides ``input`` / ``output`` (``features`` is optional)."""
POOL_KINDS = ("max", "avg")
"""Reductions of the ``pool`` op."""


def row_desc(v: dict) -> tuple:
    """("pooled",) | ("hw", H, W) | ("rows", R) | ("mult", m): how many rows a value has."""
    if v["pooled"]:
        return ("pooled",)
    if v.get("hw") is not None:
        return ("hw", *v["hw"])
    if "rows" in v:
        return ("rows", v["rows"])
    return ("mult", v.get("mult", 1))


def value_rows(v: dict, n_points: int) -> int:
    """The row count of a value for clouds of ``n_points`` points."""
    d = row_desc(v)
    if d[0] == "pooled":
        return 1
    if d[0] == "hw":
        return d[1] * d[2]
    if d[0] == "rows":
        return d[1]
    return n_points * d[1]


def _times(desc: tuple, k: int):
    """Rows of a value with k rows per row of ``desc`` (None where that is not a point/group row set)."""
    if desc[0] == "rows":
        return ("rows", desc[1] * k)
    if desc[0] == "mult":
        return ("mult", desc[1] * k)
    return None


def _int(v, lo: int = 1) -> bool:
    return type(v) is int and v >= lo


class GeometricOps:
    """Mixin of :class:`onebit.runtime.model.Model`: the ``_check_<op>`` validators and plan records."""

    def _space(self) -> dict:
        if not hasattr(self, "_index_space"):
            self._index_space = {}
        return self._index_space

    def _check_value_rows(self, name: str, v: dict) -> None:
        has_rows, has_mult = "rows" in v, "mult" in v
        if has_rows and not (_int(v["rows"]) and v["rows"] <= 1 << 26):
            raise self._bad(f"value {name!r}: rows must be a positive integer")
        if has_mult and not (_int(v["mult"]) and v["mult"] <= 1 << 16):
            raise self._bad(f"value {name!r}: mult must be a positive integer")
        if (has_rows or has_mult) and (v["pooled"] or v.get("hw") is not None or (has_rows and has_mult)):
            raise self._bad(f"value {name!r}: rows / mult exclude each other, pooled and hw")
        if v["kind"] == "index" and (v["pooled"] or v.get("hw") is not None):
            raise self._bad(f"value {name!r}: an index value has point or group rows")

    def _geo_bad(self, op: dict, msg: str):
        return self._bad(f"op {op['name']!r} ({op['op']}): {msg}")

    def _coords(self, op: dict, default: int, *vals: dict) -> int:
        c = op.get("coords", default)
        if not _int(c) or any(c > v["channels"] for v in vals):
            raise self._geo_bad(op, f"coords must be an integer in [1, {min(v['channels'] for v in vals)}], got {c!r}")
        return c

    def _indexes(self, op: dict, key: str, target: dict, values: dict) -> dict:
        """The index value op[key], checked to point into rows like ``target``'s."""
        ix = values[op[key]]
        if ix["kind"] != "index":
            raise self._geo_bad(op, f"{key} {op[key]!r} is not an index value")
        space = self._space().get(op[key])
        if space != row_desc(target):
            raise self._geo_bad(op, f"index {op[key]!r} points into rows {space}, not into the {row_desc(target)} "
                                    f"rows it is used on")
        return ix

    def _set_space(self, op: dict, src: dict) -> None:
        self._space()[op["output"]] = row_desc(src)

    @staticmethod
    def _float_rows(v: dict) -> bool:
        return v["kind"] == "float" and not v["pooled"] and v.get("hw") is None

    # ------------------------------------------------------------------ validators
    def _check_knn(self, op, vi, vo, values):
        k = op.get("k")
        if not _int(k):
            raise self._geo_bad(op, f"k must be a positive integer, got {k!r}")
        if not self._float_rows(vi) or row_desc(vi) != ("mult", 1):
            raise self._geo_bad(op, "the input must be float rows, one per point")
        if vo["kind"] != "index" or row_desc(vo) != ("mult", 1) or vo["channels"] != k:
            raise self._geo_bad(op, f"the output must be an index value of {k} columns, one row per point")
        self._coords(op, vi["channels"], vi)
        self._set_space(op, vi)

    def _check_fps(self, op, vi, vo, values):
        s = op.get("npoint")
        if not _int(s):
            raise self._geo_bad(op, f"npoint must be a positive integer, got {s!r}")
        if not self._float_rows(vi):
            raise self._geo_bad(op, "the input must be float point rows")
        if vo["kind"] != "index" or row_desc(vo) != ("rows", s) or vo["channels"] != 1:
            raise self._geo_bad(op, f"the output must be an index value of {s} rows and 1 column")
        if op.get("start", 0) != 0:
            raise self._geo_bad(op, "only start index 0 is supported")
        self._coords(op, vi["channels"], vi)
        self._set_space(op, vi)

    def _check_ball_query(self, op, vi, vo, values):
        vc = values[op["centres"]]
        k, r = op.get("k"), op.get("radius")
        if not _int(k):
            raise self._geo_bad(op, f"k (nsample) must be a positive integer, got {k!r}")
        if not isinstance(r, int | float) or isinstance(r, bool) or not math.isfinite(r) or r <= 0:
            raise self._geo_bad(op, f"radius must be a finite number > 0, got {r!r}")
        if not self._float_rows(vi) or not self._float_rows(vc):
            raise self._geo_bad(op, "points and centres must be float rows")
        if vo["kind"] != "index" or row_desc(vo) != row_desc(vc) or vo["channels"] != k:
            raise self._geo_bad(op, f"the output must be an index value of {k} columns, one row per centre")
        if self._coords(op, 3, vi, vc) > 4:
            raise self._geo_bad(op, "coords must be at most 4 (the exact channel-ordered distance of the reference)")
        self._set_space(op, vi)

    def _check_gather(self, op, vi, vo, values):
        if vi["kind"] == "index" or vi["pooled"] or vi.get("hw") is not None:
            raise self._geo_bad(op, "the input must be float or bit rows")
        ix = self._indexes(op, "index", vi, values)
        if vo["kind"] != vi["kind"] or vo["channels"] != vi["channels"] or \
                row_desc(vo) != _times(row_desc(ix), ix["channels"]):
            raise self._geo_bad(op, "the output has the input's kind and channels, one row per index")

    def _check_edge(self, op, vi, vo, values):
        if not self._float_rows(vi) or row_desc(vi) != ("mult", 1):
            raise self._geo_bad(op, "the input must be float rows, one per point")
        ix = self._indexes(op, "index", vi, values)
        if row_desc(ix) != row_desc(vi):
            raise self._geo_bad(op, "the index needs one row per point")
        if vo["kind"] not in ("float", "bits") or vo["channels"] != 2 * vi["channels"] or \
                row_desc(vo) != ("mult", ix["channels"]):
            raise self._geo_bad(op, f"the output is float or bits of {2 * vi['channels']} channels, "
                                    f"{ix['channels']} rows per point")

    def _check_group(self, op, vi, vo, values):
        vc = values[op["centres"]]
        if not self._float_rows(vi) or not self._float_rows(vc):
            raise self._geo_bad(op, "points and centres must be float rows")
        ix = self._indexes(op, "index", vi, values)
        if row_desc(ix) != row_desc(vc):
            raise self._geo_bad(op, "the index needs one row per centre")
        d = self._coords(op, 3, vi, vc)
        f = 0
        if "features" in op:
            vf = values[op["features"]]
            if vf["kind"] == "index" or row_desc(vf) != row_desc(vi) or (vf["kind"] == "bits" and vo["kind"] != "bits"):
                raise self._geo_bad(op, "features must be float (or, for a bits output, bit) rows like the points")
            f = vf["channels"]
        if vo["kind"] not in ("float", "bits") or vo["channels"] != d + f or \
                row_desc(vo) != _times(row_desc(vc), ix["channels"]):
            raise self._geo_bad(op, f"the output is float or bits of {d + f} channels, {ix['channels']} rows per "
                                    "centre")

    def _check_pool(self, op, vi, vo, values):
        if op.get("kind") not in POOL_KINDS:
            raise self._geo_bad(op, f"kind must be one of {list(POOL_KINDS)}, got {op.get('kind')!r}")
        if not self._float_rows(vi) or vo["kind"] != "float" or vo["channels"] != vi["channels"]:
            raise self._geo_bad(op, "pool maps float rows to float rows of the same channels")
        g = op.get("group")
        if g is None:
            if not vo["pooled"]:
                raise self._geo_bad(op, "without a group the output is one pooled row")
        else:
            self._group_rows(op, g, vi, vo)
        self._check_offset(op)

    def _check_concat(self, op, vi, vo, values):
        ins = [values[r] for r in op["inputs"]]
        if any(v["kind"] != vo["kind"] or v["kind"] == "index" or row_desc(v) != row_desc(vo) for v in ins):
            raise self._geo_bad(op, "inputs must be float or bit values with the output's kind and rows")
        if sum(v["channels"] for v in ins) != vo["channels"]:
            raise self._geo_bad(op, "output channels must be the sum of the inputs'")

    def _check_linear_group(self, op, vi, vo, pool):
        if pool == "none":
            raise self._geo_bad(op, "group needs a pool (max, avg or or)")
        self._group_rows(op, op["group"], vi, vo)

    def _group_rows(self, op, g, vi, vo) -> None:
        if not _int(g) or vo["pooled"] or vi.get("hw") is not None:
            raise self._geo_bad(op, f"group must be a positive integer on point or group rows, got {g!r}")
        di = row_desc(vi)
        if di[0] not in ("rows", "mult") or _times(row_desc(vo), g) != di:
            raise self._geo_bad(op, f"pooling groups of {g} rows of {di} cannot give {row_desc(vo)}")

    def _check_offset(self, op) -> None:
        off = op.get("offset", {"rule": "none"})
        rule = off.get("rule") if isinstance(off, dict) else None
        if rule not in ("none", "const", "ema") or (rule == "const" and not (
                isinstance(off.get("value"), int | float) and math.isfinite(off["value"]))) or (
                rule == "ema" and off.get("offsets") not in ("closed", "official")) or (
                rule == "ema" and op.get("kind") == "avg"):
            raise self._geo_bad(op, f"bad offset {off!r}")

    # ------------------------------------------------------------------ plan
    def _geo_record(self, op: dict, ids: dict, n_points: int) -> dict:
        kind = op["op"]
        rec = {"type": {"knn": 8, "fps": 9, "ball_query": 10, "gather": 11, "edge": 12, "group": 13, "pool": 14,
                        "concat": 15}[kind]}
        vi = self.values[op["input"]]
        if kind == "knn":
            rec.update(k=op["k"], coords=op.get("coords", vi["channels"]))
        elif kind == "fps":
            rec.update(coords=op.get("coords", vi["channels"]), start=0)
        elif kind == "ball_query":
            rec.update(in1=ids[op["centres"]], k=op["k"], radius=float(op["radius"]), coords=op.get("coords", 3))
        elif kind in ("gather", "edge"):
            rec["in1"] = ids[op["index"]]
        elif kind == "group":
            rec.update(in1=ids[op["centres"]], idx=ids[op["index"]], coords=op.get("coords", 3))
            if "features" in op:
                rec["feat"] = ids[op["features"]]
        elif kind == "pool":
            g = op.get("group")
            n = g if g is not None else value_rows(vi, n_points)
            rec.update(avg=op["kind"] == "avg", offset=self._offset(op, n))
            if g is not None:
                rec["group"] = g
        else:  # concat
            rec["ins"] = [ids[r] for r in op["inputs"]]
        return rec
