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
    from onebit.runtime import unpack_signs

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


# ---------------------------------------------------------------- conv models (K = box filter of mean_c |x|)
def _check_conv(model, tmp_path, x, n_binary, isa=None, **kw):
    from test_export_sketch import _torch_accumulators as conv_accumulators

    path = tmp_path / "m.onebit"
    onebit.export(model, path, **kw)
    eng = load(path, isa=isa)
    ref, acc = conv_accumulators(model.double(), x.double())
    model.float()
    out, dbg = eng.run_debug(x.numpy())
    np.testing.assert_allclose(out, ref, rtol=0, atol=LOGIT_RTOL * max(1.0, float(np.abs(ref).max())))
    assert (out.argmax(-1) == ref.argmax(-1)).all()
    np.testing.assert_array_equal(eng.run(x.numpy(), threads=2), out)
    assert len(acc) == n_binary, sorted(acc)
    for name, a in acc.items():
        for b in range(x.shape[0]):
            np.testing.assert_array_equal(dbg[b][name]["acc"], a[b].numpy(), err_msg=f"layer {name}")
    assert len(_scaled_ops(eng)) == n_binary
    return eng


@pytest.mark.parametrize("isa", ["avx512", "avx2", "scalar"])
@pytest.mark.parametrize("preset,preact", [("xnor", True), ("xnor", False), ("dab-fbin", True)])
def test_sketch_a_net(preset, preact, isa, tmp_path):
    # FBin order (preact): the next unit's BN is an affine op after the float pools; -1 padded bits, while
    # the K rows are zero padded (a padded pixel has no magnitude); dab-fbin: the paper's K-scaled inputs
    from test_export_sketch import _strokes, calibrated_sketch

    if isa not in supported_isas():
        pytest.skip(f"{isa} not supported here")
    model = calibrated_sketch(onebit.convert.resolve_spec(preset), preact, seed=1)
    eng = _check_conv(model, tmp_path, _strokes(2, 64, 11) + 0.05 * torch.rand(2, 1, 64, 64), 6, isa=isa)
    ks = [op for op in eng.ops if op["op"] == "im2col" and op["name"].endswith(".im2col_k")]
    assert ks and all(op["pad_value"] == 0.0 for op in ks)
    assert any(op["op"] == "affine" for op in eng.ops) == preact


def test_sketch_a_net_pad_plus_one(tmp_path):
    from test_export_sketch import _strokes, calibrated_sketch

    spec = onebit.convert.resolve_spec("xnor", pad_value=1)
    model = calibrated_sketch(spec, True, seed=2)
    _check_conv(model, tmp_path, _strokes(2, 64, 12) + 0.05 * torch.rand(2, 1, 64, 64), 6)


@pytest.mark.parametrize("preact", [True, False])
def test_resnet18(preact, tmp_path):
    # stride-2 3x3 and 1x1 downsample convs, the K-scaled binary classifier on BN(avg pool)
    from test_export_sketch import _strokes, calibrated_resnet

    model = calibrated_resnet("xnor", preact, seed=4)
    _check_conv(model, tmp_path, _strokes(2, 40, 31) + 0.1 * torch.rand(2, 1, 40, 40), 20, input_size=40)


def test_loader_rejects_bad_conv_scale_input(tmp_path):
    from test_export_sketch import calibrated_sketch

    model = calibrated_sketch(onebit.convert.resolve_spec("xnor"), True, seed=3)
    path = tmp_path / "m.onebit"
    onebit.export(model, path)
    load(path)
    ops = read(path)[1]["ops"]
    lin = next(i for i, op in enumerate(ops) if "scale_input" in op)
    aff = next(i for i, op in enumerate(ops) if op["op"] == "affine")

    def bits_as_scale(g):  # K from the bit rows
        g["ops"][lin]["scale_input"] = g["ops"][lin]["input"]

    def other_rows(g):  # the float map before im2col: other rows than the bit input
        g["ops"][lin]["scale_input"] = g["ops"][lin - 1]["input"]

    def no_scale(g):
        del g["ops"][lin]["input_scale"]

    def later(g):  # a value computed after the op
        g["ops"][lin]["scale_input"] = g["ops"][lin]["output"]

    def affine_shape(g):
        g["ops"][aff]["output"] = g["ops"][aff + 1]["output"]

    for fn, msg in [(bits_as_scale, "scale_input must be a float value"), (other_rows, "scale_input must be"),
                    (no_scale, "scale_input without input_scale"), (later, "before it is computed"),
                    (affine_shape, "affine maps a float value")]:
        with pytest.raises(FormatError, match=msg):
            load(_rewrite(path, tmp_path / "bad.onebit", fn))


def test_mixed_conv_activations_are_refused(tmp_path):
    from onebit.export import ExportError

    spec = onebit.convert.resolve_spec("xnor", layers={"conv3.conv": {"input": "ste_sign"}})
    m = onebit.models.create("sketch_a_net", 6, binarize=spec, input_size=64, width=0.25, preact=True).eval()
    with pytest.raises(ExportError, match=r"'conv2\.conv'.*plain sign-input conv"):
        onebit.export(m, tmp_path / "m.onebit")
