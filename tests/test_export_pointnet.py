"""Export + engine parity on the PointNet family: exact integer accumulators, close logits, same predictions."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import onebit
from onebit.export import ExportError
from onebit.export.bench import calibrated_model
from onebit.runtime import load, supported_isas


def _torch_accumulators(model, x):
    """{layer name: per-cloud integer products} of every binary-input layer, via forward hooks."""
    acc, hooks = {}, []
    for name, m in model.named_modules():
        if getattr(m, "input_quantizer", None) is None or getattr(m, "kernel_quantizer", None) is None:
            continue

        def hook(mod, inp, out, name=name):
            signs, a, b = mod.factorize()
            xs = torch.where(inp[0] >= 0, 1.0, -1.0).double()
            s = signs.double()
            if torch.all(b == 0):
                acc[name] = (xs @ s.T).round().long()
            else:  # DAB: [popcount(e AND x) ‖ popcount(x)]
                xb, e = (xs > 0).double(), (s > 0).double()
                acc[name] = torch.cat([xb @ e.T, xb.sum(-1, keepdim=True).expand(*xb.shape[:-1], s.shape[0])],
                                      -1).round().long()

        hooks.append(m.register_forward_hook(hook))
    with torch.no_grad():
        logits = model(x)
    for h in hooks:
        h.remove()
    return logits.numpy(), acc


def _check(model, tmp_path, x, isa=None, check_acc=True):
    path = tmp_path / "m.onebit"
    info = onebit.export(model, path)
    eng = load(path, isa=isa)
    ref, acc = _torch_accumulators(model.double(), x.double())  # float64 oracle: no host FP32 GEMM in it
    model.float()
    out, dbg = eng.run_debug(x.numpy())
    scale = max(1.0, float(np.abs(ref).max()))
    np.testing.assert_allclose(out, ref, rtol=0, atol=1e-4 * scale)
    assert (out.argmax(-1) == ref.argmax(-1)).all()
    np.testing.assert_array_equal(eng.run(x.numpy(), threads=2), out)
    if check_acc:
        assert acc, "no binary layer was hooked"
        for name, a in acc.items():
            for b in range(x.shape[0]):
                got = dbg[b][name]["acc"]
                want = a[b].reshape(got.shape[0], -1).numpy()
                np.testing.assert_array_equal(got, want, err_msg=f"layer {name}")
    return info, eng


@pytest.mark.parametrize("name", ["pointnet_deploy", "pointnet_vanilla", "pointnet"])
def test_bipointnet_parity(name, tmp_path):
    model = calibrated_model(name, "bipointnet", seed=1, points=64)
    x = torch.randn(2, 96, 3)
    info, eng = _check(model, tmp_path, x)
    assert info["float_layers"] == (3 if name == "pointnet" else 2)
    # the pooled 1024-channel layer runs as a thresholded OR: its per-point output is never stored
    op = next(o for o in eng.ops if o["name"] == "mlp2." + ("1" if name != "pointnet_vanilla" else "2") + ".linear")
    assert op["pool"] == "or" and "bound" not in op  # EMA offset: threshold derived per point count


@pytest.mark.parametrize("isa", ["avx512", "avx2", "scalar"])
@pytest.mark.parametrize("name,preset", [("pointnet_deploy", "bipointnet"), ("pointnet", "bipointnet"),
                                         ("pointnet_vanilla", "dab-wbin")])
def test_every_isa_same_logits(isa, name, preset, tmp_path):
    if isa not in supported_isas():
        pytest.skip(f"{isa} not supported here")
    # 50 points: row tails of every tile size; T-Nets: float GEMMs (bmm 3x3 and 64x64); dab-wbin: wide float layers
    model = calibrated_model(name, preset, seed=2, points=64)
    _check(model, tmp_path, torch.randn(2, 50, 3), isa=isa, check_acc=preset != "dab-wbin")


@pytest.mark.parametrize("isa", ["avx512", "avx2", "scalar"])
@pytest.mark.parametrize("name,preset", [("pointnet_deploy", "bipointnet"), ("pointnet", "bipointnet"),
                                         ("pointnet_vanilla", "bipointnet-avg")])
def test_duplicate_points_compaction_is_exact(isa, name, preset, tmp_path):
    """Clouds whose points repeat (as binarized codes of real clouds do): the engine drops duplicate rows
    before max/OR-pooled chains; logits must equal the uncompacted debug run bit for bit, and torch."""
    if isa not in supported_isas():
        pytest.skip(f"{isa} not supported here")
    model = calibrated_model(name, preset, seed=3, points=64)
    g = torch.Generator().manual_seed(0)
    base = torch.randn(2, 37, 3, generator=g)
    idx = torch.randint(0, 37, (300,), generator=g)
    x = base[:, idx]  # 300 points, at most 37 distinct
    _check(model, tmp_path, x, isa=isa)


@pytest.mark.parametrize("preset", ["bnn", "bipointnet-avg", "dab-wbin", "bwn", "xnor++"])
def test_other_presets(preset, tmp_path):
    model = calibrated_model("pointnet_deploy", preset, seed=3, points=64)
    # dab-wbin / bwn binarize weights only: real inputs, so no integer accumulators to compare
    _check(model, tmp_path, torch.randn(2, 70, 3), check_acc=preset not in ("dab-wbin", "bwn"))


def test_dab_binary_inputs_use_and_popcount(tmp_path):
    spec = onebit.convert.resolve_spec("dab-fbin", input="ste_sign")
    model = calibrated_model("pointnet_vanilla", spec, seed=4, points=64)
    _, eng = _check(model, tmp_path, torch.randn(2, 64, 3))
    assert any(op.get("product") == "and" for op in eng.ops)


def test_binary_last_and_first_layer(tmp_path):
    # Table 4 rows (c) and (d): last layer binary too / first layer binary as well
    last = onebit.convert.resolve_spec("bipointnet", keep_float=["first"])
    model = calibrated_model("pointnet_deploy", last, seed=6, points=64)
    info, _ = _check(model, tmp_path, torch.randn(2, 40, 3))
    assert info["float_layers"] == 1
    both = onebit.convert.resolve_spec("bipointnet", keep_float=[])
    model = calibrated_model("pointnet_deploy", both, seed=7, points=64)
    info, _ = _check(model, tmp_path, torch.randn(2, 40, 3))
    assert info["float_layers"] == 0


def test_no_bn_deploy_net_table4_f(tmp_path):
    # Table 4 (f): BN after the float first layer only; binary layers scale by LSR and keep a bias
    spec = onebit.convert.resolve_spec("bipointnet", bias="keep", model_options={
        "pool": "ema-max", "act": "hardtanh", "preact": True, "hidden_bn": False})
    model = calibrated_model("pointnet_deploy", spec, seed=9, points=64)
    bns = [n for n, m in model.named_modules() if isinstance(m, torch.nn.BatchNorm1d)]
    assert bns == ["mlp1.0.bn"]
    with torch.no_grad():  # non-zero biases, so the epilogue's bias term is exercised
        for m in model.modules():
            if getattr(m, "lsr", None) is not None:
                m.bias.copy_(0.5 * torch.randn_like(m.bias))
    info, _ = _check(model, tmp_path, torch.randn(2, 40, 3))
    assert info["float_layers"] == 2
    assert info["file_bytes"] <= 165_000


def test_file_size_deploy(tmp_path):
    model = calibrated_model("pointnet_deploy", "bipointnet", seed=8, points=32)
    info = onebit.export(model, tmp_path / "d.onebit")
    assert info["file_bytes"] <= 165_000  # 1-bit weights + thresholds; FP32 first/last layers


def test_non_finite_input_is_refused(tmp_path):
    model = calibrated_model("pointnet_deploy", "bipointnet", seed=0, points=32)
    onebit.export(model, tmp_path / "m.onebit")
    eng = load(tmp_path / "m.onebit")
    x = np.zeros((2, 40, 3), np.float32)
    x[1, 7, 2] = np.inf
    with pytest.raises(ValueError, match=r"not finite \(inf\) at cloud 1, row 7, channel 2"):
        eng.run(x)


def test_unsupported_model(tmp_path):
    with pytest.raises(ExportError, match="not supported"):
        onebit.export(torch.nn.Sequential(torch.nn.Linear(3, 4)), tmp_path / "s.onebit")
    with pytest.raises(ExportError, match="does not exist"):
        onebit.export(calibrated_model("pointnet_deploy", "bnn", points=16), tmp_path / "no" / "s.onebit")


@pytest.mark.realdata
def test_real_modelnet40_slice(shared_data, tmp_path):
    import h5py

    with h5py.File(shared_data / "modelnet40" / "test.h5", "r") as f:
        pts = torch.from_numpy(f["points"][:16])
    model = calibrated_model("pointnet", "bipointnet", seed=9, points=256)
    _check(model, tmp_path, pts, check_acc=False)
    model = calibrated_model("pointnet_deploy", "bipointnet", seed=9, points=256)
    _check(model, tmp_path, pts[:4])


def test_fixed_points_folds_ema_offset(tmp_path):
    model = calibrated_model("pointnet_deploy", "bipointnet", seed=12, points=64)
    a = onebit.export(model, tmp_path / "a.onebit")
    b = onebit.export(model, tmp_path / "b.onebit", points=96)
    assert b["file_bytes"] < a["file_bytes"] - 3000  # 1024 float (scale, bias) pairs → int16 τ + flip bits
    x = torch.randn(2, 96, 3)
    eb = load(tmp_path / "b.onebit")
    np.testing.assert_array_equal(eb.run(x.numpy()), load(tmp_path / "a.onebit").run(x.numpy()))
    assert "bound" in next(o for o in eb.ops if o["name"] == "mlp2.1.linear")
    with pytest.raises(ValueError, match="exactly 96 points"):
        eb.run(np.zeros((1, 50, 3), np.float32))
