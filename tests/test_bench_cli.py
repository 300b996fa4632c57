"""`onebit export` / `onebit infer` / `onebit bench` and `onebit.export.bench.compare`."""

from __future__ import annotations

import copy
import json
import subprocess
import sys

import numpy as np
import pytest
import torch

import onebit
from onebit.cli import main
from onebit.export.bench import calibrated_model, compare, points_major, time_interleaved


@pytest.fixture(scope="module")
def deploy(tmp_path_factory):
    d = tmp_path_factory.mktemp("cli")
    model = calibrated_model("pointnet_deploy", "bipointnet", seed=11, points=64)
    path = d / "m.onebit"
    onebit.export(model, path)
    return model, path, d


def test_export_cli_from_checkpoint(deploy, capsys):
    from onebit.train.checkpoint import save_checkpoint

    model, path, d = deploy
    ckpt = save_checkpoint({"model_config": model.onebit_config, "state_dict": model.state_dict(), "epoch": 1,
                            "config": {}}, d / "last.ckpt")
    out = d / "from_ckpt.onebit"
    assert main(["export", str(ckpt), "-o", str(out), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["file_bytes"] == out.stat().st_size == path.stat().st_size
    assert out.read_bytes() == path.read_bytes()  # deterministic export
    assert main(["export", str(d / "missing.ckpt"), "-o", str(out)]) == 1
    assert "missing.ckpt" in capsys.readouterr().err


def test_infer_cli_npy_h5(deploy, capsys):
    import h5py

    model, path, d = deploy
    x = np.random.default_rng(0).normal(size=(3, 64, 3)).astype(np.float32)
    np.save(d / "x.npy", x)
    with h5py.File(d / "x.h5", "w") as f:
        f["data"] = x
        f["label"] = np.array([0, 1, 2])
    with torch.no_grad():
        want = copy.deepcopy(model).double()(torch.from_numpy(x).double()).argmax(-1).tolist()  # float64 oracle
    assert main(["infer", str(path), str(d / "x.npy"), "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["predictions"] == want and len(res["logits"]) == 3
    assert main(["infer", str(path), str(d / "x.h5"), "--isa", "scalar", "--limit", "2"]) == 0
    out = capsys.readouterr().out
    assert "accuracy" in out and "1: class" in out
    np.save(d / "bad.npy", np.zeros((2, 5, 4), np.float32))
    assert main(["infer", str(path), str(d / "bad.npy")]) == 1
    assert "expected points" in capsys.readouterr().err
    nan = x.copy()
    nan[1, 5, 0] = np.nan
    np.save(d / "nan.npy", nan)
    assert main(["infer", str(path), str(d / "nan.npy")]) == 1
    err = capsys.readouterr().err
    assert "nan.npy" in err and "not finite (nan) at cloud 1, row 5, channel 0" in err
    (d / "junk.onebit").write_bytes(b"nonsense")
    assert main(["infer", str(d / "junk.onebit"), str(d / "x.npy")]) == 1
    assert "junk.onebit" in capsys.readouterr().err


def test_infer_cli_without_torch(deploy):
    _, path, d = deploy
    np.save(d / "y.npy", np.zeros((16, 3), np.float32))
    code = ("import sys\nfrom onebit.cli import main\n"
            f"rc = main(['infer', {str(path)!r}, {str(d / 'y.npy')!r}, '--json'])\n"
            "assert 'torch' not in sys.modules\nsys.exit(rc)\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["predictions"][0] in range(40)


def test_bench_cli_json(tmp_path, capsys):
    out = tmp_path / "rows.json"
    rc = main(["bench", "--points", "64", "--rounds", "2", "--min-block", "0.005", "--json", str(out), "--profile",
               "--runners", "torch-eager,torch-fp32-pm,engine"])
    assert rc == 0
    rows = json.loads(out.read_text())
    keys = {"model", "runner", "threads", "batch", "points", "median_ms", "min_ms", "max_ms", "file_bytes"}
    assert {r["runner"] for r in rows} == {"torch-eager", "torch-fp32-pm", "engine"}
    for r in rows:
        assert keys <= set(r) and r["min_ms"] <= r["median_ms"] <= r["max_ms"] and r["points"] == 64
    eng = next(r for r in rows if r["runner"] == "engine")
    fp = next(r for r in rows if r["runner"] == "torch-fp32-pm")
    assert eng["file_bytes"] * 15 < fp["file_bytes"]
    text = capsys.readouterr().out
    assert "mlp2.1.linear" in text and "per-op" in text


def test_points_major_matches_float_model():
    from onebit.export import build_graph
    from onebit.models import create

    for name in ("pointnet_deploy", "pointnet"):
        torch.manual_seed(0)
        m = create(name, 10).eval()
        for bn in m.modules():
            if isinstance(bn, torch.nn.BatchNorm1d):
                bn.running_mean.normal_()
                bn.running_var.uniform_(0.5, 2)
        g, t = build_graph(m)
        x = torch.randn(2, 50, 3)
        with torch.no_grad():
            got = points_major(g, t, torch.float64)(x.double()).numpy()  # float64 on both sides: host-independent
            np.testing.assert_allclose(got, m.double()(x.double()).numpy(), rtol=1e-5, atol=1e-6)  # folded float32 params


def test_time_interleaved_orders_rounds():
    calls = []
    res = time_interleaved({"a": lambda: calls.append("a"), "b": lambda: calls.append("b")}, rounds=2,
                           min_block_s=0.0)
    assert set(res) == {"a", "b"} and all(len(v["samples"]) == 2 for v in res.values())
    # warm-up a, b; then per round: a (block warm-up) a (timed), b b — the runners alternate
    assert calls == ["a", "b"] + ["a", "a", "b", "b"] * 2


def test_compare(deploy):
    model, *_ = deploy
    r = compare(model, torch.randn(1, 64, 3), threads=1, rounds=2, min_block_s=0.005)
    assert r["same_predictions"] and r["max_abs_diff"] < 1e-3
    assert r["engine_ms"] > 0 and r["torch_ms"] > 0 and r["file_bytes"] < r["torch_bytes"]


def test_engine_bench_table4_f_is_the_real_no_bn_net():
    """benchmarks/engine.py's Table 4 (f): the binary layers carry a bias and no BN (not a BN net with BN
    set to the identity), and the engine computes what torch computes on it."""
    import importlib.util
    from pathlib import Path

    bench = Path(__file__).resolve().parents[1] / "benchmarks" / "engine.py"
    sys.path.insert(0, str(bench.parent))
    spec = importlib.util.spec_from_file_location("engine_bench", bench)
    eng = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(eng)
    model = eng.table4_model("(f) no BN (LSR only)", eng.table4_variants()["(f) no BN (LSR only)"])
    assert [n for n, m in model.named_modules() if isinstance(m, torch.nn.BatchNorm1d)] == ["mlp1.0.bn"]
    assert all(m.bias is not None for n, m in model.named_modules() if n.startswith(("mlp2.", "head.mlp."))
               and isinstance(m, torch.nn.Linear))
    r = compare(model, torch.randn(1, 64, 3), threads=1, rounds=1, min_block_s=0.0)
    assert r["same_predictions"] and r["max_abs_diff"] < 1e-3


def test_engine_bench_table4_accuracy_is_the_checkpoints_own_test_draw(tmp_path):
    """A trained Table 4 variant is scored like the campaign's OA column: at its training point count, on
    the fixed test draw 0 of its own test split, through the engine (which agrees with float64 torch)."""
    import importlib.util
    from pathlib import Path

    from onebit.train import run
    from onebit.zoo.build import eval_split, predict

    bench = Path(__file__).resolve().parents[1] / "benchmarks" / "engine.py"
    sys.path.insert(0, str(bench.parent))
    spec = importlib.util.spec_from_file_location("engine_bench_t4", bench)
    eng = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(eng)
    cfg = {"model": {"name": "pointnet_deploy", "options": {"width": 0.125}}, "binarize": "bipointnet",
           "data": {"name": "synthetic_shapes", "options": {"num_per_class": 6, "test_per_class": 3, "num_points": 48,
                                                            "seed": 0}},
           "epochs": 2, "batch_size": 16, "seed": 0, "optim": {"name": "adam", "lr": 0.01}, "threads": 1,
           "amp": "off", "diagnostics": False, "log": {"progress": False, "csv": False, "tensorboard": False}}
    run(cfg, tmp_path / "deploy_bipointnet", progress=False)

    model = eng._load_trained(tmp_path / "deploy_bipointnet" / "last.ckpt")
    pts, lab = eng.checkpoint_test_draw(model)
    ds, _ = eval_split(model.onebit_train_config, test_seed=0)
    assert pts.shape == (len(ds), 48, 3) and np.array_equal(pts[1], np.asarray(ds[1][0], np.float32))
    acc = eng.engine_accuracy_on(model, pts, lab)
    assert acc == float((predict(pts, model=model).argmax(-1) == lab).mean())

    rows = eng.table4(quick=True, checkpoint=None, runs=tmp_path)
    scored = {r["variant"]: r for r in rows if r.get("accuracy") is not None}
    assert list(scored) == ["(b) FL fp32, LL fp32"]  # only (b) has a checkpoint here
    assert scored["(b) FL fp32, LL fp32"]["accuracy"] == 100 * acc
    assert scored["(b) FL fp32, LL fp32"]["accuracy_points"] == 48
    assert "(b)" in eng._table4_note(rows) and "(d)" in eng._table4_note(rows)
