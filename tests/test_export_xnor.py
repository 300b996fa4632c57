"""XNOR-Net's dynamic input scale K exported and run natively (docs/format.md, ``input_scale``).

A binary layer with XNOR-Net activations reads its FLOAT input: the engine packs sign(x) (sign(0) = +1),
computes K = mean_c |x| per row and scales the row's popcount product in a float epilogue.

Reference: the torch model in float64 (as tests/test_export_geometric.py). In float32, torch's GEMM
rounds a·dot differently from row to row, and every next layer binarizes those float values, so
float64 is the reference in which the engine's integer products must match exactly (the engine's
own float32 rounding stays far below the margins of the signs of these random models).
Checked: every binary layer's integer accumulators equal, logits within LOGIT_RTOL, same predictions,
2 threads equal to 1, every ISA this CPU has.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import onebit
from onebit.export.bench import calibrated_model
from onebit.runtime import FormatError, load, supported_isas
from onebit.runtime.format import read, write
from test_export_geometric import SMALL, _parity

LOGIT_RTOL = 1e-4  # |engine − torch float64| <= LOGIT_RTOL · max(1, max |logit|) (observed ~1e-6)


def _scaled_ops(eng):
    return [op for op in eng.ops if op["op"] == "linear" and "input_scale" in op]


@pytest.mark.parametrize("name", ["pointnet_deploy", "pointnet_vanilla", "pointnet"])
@pytest.mark.parametrize("preset", ["xnor", "xnor+ema-max"])
def test_pointnet_family_parity(name, preset, tmp_path):
    model = calibrated_model(name, preset, seed=1, points=64)
    eng, _ = _parity(model, tmp_path, torch.randn(2, 70, 3))
    scaled = _scaled_ops(eng)
    # every binary layer (all but the float first and last) carries K and reads a float value
    assert len(scaled) == sum(getattr(m, "xnor_input", False) for m in model.modules()) > 3
    for op in scaled:
        assert op["input_scale"] == "mean_abs" and op["product"] == "xnor"
        assert eng.values[op["input"]]["kind"] == "float" and eng.values[op["output"]]["kind"] == "float"
    if preset == "xnor+ema-max":
        assert any(op.get("offset", {}).get("rule") == "ema" for op in scaled)


@pytest.mark.parametrize("isa", ["avx512", "avx2", "scalar"])
def test_every_isa(isa, tmp_path):
    if isa not in supported_isas():
        pytest.skip(f"{isa} not supported here")
    # 50 points: row tails of every tile size; the T-Nets' bmm on float features
    model = calibrated_model("pointnet", "xnor+ema-max", seed=2, points=64)
    _parity(model, tmp_path, torch.randn(2, 50, 3), isa=isa)


def test_fixed_points_and_dab_fbin(tmp_path):
    # --points folds EMA-max's δ*(n) into a constant offset; DAB-Net's FBin (K-scaled sign inputs, DAB
    # weights) runs the AND product with the same per-row scale: K·(a·(signs·x) + b·Σx)
    model = calibrated_model("pointnet_deploy", "xnor+ema-max", seed=3, points=64)
    _parity(model, tmp_path, torch.randn(2, 64, 3), points=64)
    dab = calibrated_model("pointnet_vanilla", "dab-fbin", seed=4, points=64)
    eng, _ = _parity(dab, tmp_path, torch.randn(2, 64, 3))
    assert {op["product"] for op in _scaled_ops(eng)} == {"and"}


@pytest.mark.parametrize("name", ["dgcnn", "pointnet2_ssg", "pointnet2_msg"])
def test_geometric_models(name, tmp_path):
    # DGCNN: K per edge row [x_j − x_i ‖ x_i], neighbour pools fused (group); PointNet++: per grouped row
    model = calibrated_model(name, "xnor+ema-max" if name != "pointnet2_msg" else "xnor", seed=5, points=96,
                             **SMALL[name])
    eng, _ = _parity(model, tmp_path, torch.randn(2, 96, 3))
    assert any("group" in op for op in _scaled_ops(eng))


def test_k_by_hand(tmp_path):
    """The first scaled layer against NumPy: v = clamp(scale·(K·dot) + bias) with K = mean|x| per row."""
    model = calibrated_model("pointnet_deploy", "xnor", seed=6, points=32)
    path = tmp_path / "m.onebit"
    onebit.export(model, path)
    eng = load(path)
    x = np.random.default_rng(0).normal(size=(1, 40, 3)).astype(np.float32)
    _, dbg = eng.run_debug(x)
    op = _scaled_ops(eng)[0]
    t, _ = read(path)
    xin = dbg[0][next(o["name"] for o in eng.ops if o["output"] == op["input"])]["float"]
    signs = np.where(xin >= 0, 1.0, -1.0)
    from onebit.runtime.model import unpack_signs

    w = unpack_signs(t[op["weight"]], op["in_features"])
    dot = signs @ w.T
    k = np.abs(xin.astype(np.float64)).mean(1, keepdims=True)
    got = dbg[0][op["name"]]["acc"]
    np.testing.assert_array_equal(got, dot.astype(np.int32))
    want = t[op["scale"]] * (k * dot) + t[op["bias"]]
    lo, hi = op["clamp"]
    want = np.clip(want, -np.inf if lo is None else lo, np.inf if hi is None else hi)
    v = dbg[0][op["name"]]["float"]
    np.testing.assert_allclose(v, want, rtol=1e-5, atol=1e-5)


def _rewrite(path, out, fn):
    t, g = read(path)
    fn(g)
    write(out, t, g)
    return out


def test_loader_rejects_bad_input_scale(tmp_path):
    model = calibrated_model("pointnet_deploy", "xnor", seed=7, points=32)
    path = tmp_path / "m.onebit"
    onebit.export(model, path)
    load(path)
    first = next(i for i, op in enumerate(read(path)[1]["ops"]) if "input_scale" in op)

    def bad_value(g):
        g["ops"][first]["input_scale"] = "mean_sq"

    def dropped(g):  # without K the op would read a float value as bits
        del g["ops"][first]["input_scale"]

    def float_product(g):
        g["ops"][first]["product"] = "float"

    def with_bound(g):
        g["ops"][first]["bound"] = g["ops"][first]["bias"]

    for fn, msg in [(bad_value, "input_scale must be one of"), (dropped, "cannot read a float value"),
                    (float_product, "needs an xnor or and product"), (with_bound, "needs an xnor or and product")]:
        with pytest.raises(FormatError, match=msg) as e:
            load(_rewrite(path, tmp_path / "bad.onebit", fn))
        assert "bad.onebit" in str(e.value) and read(path)[1]["ops"][first]["name"] in str(e.value)
