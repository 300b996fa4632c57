"""onebit.zoo: the shipped entries (sha256, engine = torch float64, measured accuracy on the real test
split) and the builder on small checkpoints made here."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch

from onebit import zoo
from onebit.zoo.build import build_entry, eval_split, parity_clouds, predict
from onebit.zoo.weights import pack_model, save_bytes, state_dict_from_bytes

REQUIRED = ("pointnet-bipointnet-modelnet40", "pointnet_deploy-bipointnet-modelnet40", "pointnet-fp-modelnet40")
INFO_KEYS = ("model", "binarize", "num_classes", "points", "oa", "protocol", "sha256", "bytes", "epochs", "schedule",
             "command", "weights", "engine", "build_command")


def _logits64(model, x: np.ndarray) -> np.ndarray:
    return predict(x, model=model)


def _close(got, ref, tol=1e-4):
    np.testing.assert_allclose(got, ref, rtol=0, atol=tol * max(1.0, float(np.abs(ref).max())))


# -- the shipped entries ------------------------------------------------------------------------
def test_required_entries_and_metadata():
    assert set(REQUIRED) <= set(zoo.names())
    for name in zoo.names():
        m = zoo.info(name)
        assert all(k in m for k in INFO_KEYS), name
        assert m["name"] == name and m["num_classes"] == 40 and m["protocol"]["dataset"] == "modelnet40"
        assert m["sha256"] == m["weights"]["sha256"] and m["bytes"] == m["weights"]["bytes"]
        assert 0 < m["oa"] <= 100 and m["protocol"]["test_shapes"] == 2468
        assert m["oa_measured_with"].startswith("engine" if m["engine"] else "torch")
        assert m["weights"]["storage"] == ("fp32" if m["binarize"] == "fp" else "signs+scales")
        assert set(zoo.verify(name)) == ({"weights", "engine"} if m["engine"] else {"weights"})
    assert zoo.total_bytes() < zoo.BUDGET_BYTES
    info = zoo.info(REQUIRED[1])
    info["oa"] = -1  # a copy: the metadata itself is unchanged
    assert zoo.info(REQUIRED[1])["oa"] > 0


def test_weights_are_safetensors_without_pickle():
    for name in zoo.names():
        data = zoo.path(name).read_bytes()
        n = int.from_bytes(data[:8], "little")
        header = json.loads(data[8:8 + n])
        assert header["__metadata__"]["format"] == "onebit-zoo/1"
        assert b"pickle" not in data[:8 + n] and not data.startswith(b"PK")


@pytest.mark.parametrize("name", [n for n in zoo.names() if zoo.info(n)["engine"]])
def test_shipped_engine_equals_torch_float64(name):
    m = zoo.info(name)
    eng = zoo.engine(name)
    model = zoo.load(name)
    assert not model.training
    x = parity_clouds(m["points"])
    _close(eng.run(x), _logits64(model, x))


def test_fp_entry_loads_and_has_no_engine():
    name = "pointnet-fp-modelnet40"
    model = zoo.load(name)
    x = parity_clouds(zoo.info(name)["points"], n=2)
    assert _logits64(model, x).shape == (2, 40)
    with pytest.raises(zoo.ZooError, match="ships no engine file"):
        zoo.engine(name)


def test_zoo_import_and_engine_need_no_torch():
    code = ("import sys, numpy as np, onebit.zoo as z\n"
            "e = z.engine('pointnet_deploy-bipointnet-modelnet40')\n"
            "out = e.run(np.zeros((1, 64, 3), np.float32))\n"
            "assert out.shape == (1, 40), out.shape\n"
            "z.info('pointnet-fp-modelnet40')\n"
            "assert 'torch' not in sys.modules, 'torch was imported'\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


def test_sha256_mismatch_names_the_file(tmp_path):
    name = "pointnet_deploy-bipointnet-modelnet40"
    for suffix in (".json", ".safetensors", ".onebit"):
        shutil.copy(zoo.ENTRIES_DIR / f"{name}{suffix}", tmp_path)
    zoo.engine(name, root=tmp_path)  # intact copy
    for suffix, fn in ((".onebit", zoo.engine), (".safetensors", zoo.load)):
        f = tmp_path / f"{name}{suffix}"
        data = bytearray(f.read_bytes())
        data[-1] ^= 1
        f.write_bytes(bytes(data))
        with pytest.raises(zoo.ZooError, match=rf"{name}\{suffix}: sha256 mismatch"):
            fn(name, root=tmp_path)


def test_unknown_entry():
    with pytest.raises(zoo.ZooError, match="unknown zoo entry 'nope'.*pointnet_deploy-bipointnet-modelnet40"):
        zoo.info("nope")
    with pytest.raises(zoo.ZooError, match="unknown zoo entry"):
        zoo.engine("../entries/x")


def test_cli_zoo_and_infer_by_name(tmp_path, capsys):
    from onebit.cli import main

    assert main(["zoo"]) == 0
    out = capsys.readouterr().out
    assert all(n in out for n in REQUIRED) and "test OA %" in out
    assert main(["zoo", REQUIRED[1]]) == 0
    assert json.loads(capsys.readouterr().out)["name"] == REQUIRED[1]
    assert main(["zoo", "--verify"]) == 0
    assert "ok" in capsys.readouterr().out
    assert main(["zoo", "nope"]) == 1

    x = parity_clouds(256)
    np.save(tmp_path / "clouds.npy", x)
    assert main(["infer", REQUIRED[1], str(tmp_path / "clouds.npy"), "--json"]) == 0
    got = json.loads(capsys.readouterr().out)
    np.testing.assert_array_equal(got["predictions"], zoo.engine(REQUIRED[1]).run(x).argmax(-1))
    # z-up input: swapped into the y-up frame first
    np.save(tmp_path / "z.npy", x[..., [0, 2, 1]])
    assert main(["infer", REQUIRED[1], str(tmp_path / "z.npy"), "--json", "--up-axis", "z"]) == 0
    assert json.loads(capsys.readouterr().out)["predictions"] == got["predictions"]
    assert main(["infer", "pointnet-fp-modelnet40", str(tmp_path / "clouds.npy")]) == 1
    assert "ships no engine file" in capsys.readouterr().err


@pytest.mark.realdata
@pytest.mark.parametrize("name", zoo.names())
def test_shipped_accuracy_on_real_modelnet40(name, shared_data):
    """The metadata's numbers re-measured on the real test split (same protocol, same fixed draw):
    the whole split through the engine, the stored first-shapes check for torch-measured entries."""
    m = zoo.info(name)
    ds, proto = eval_split(m["train"]["config"], data_root=shared_data / "modelnet40", test_seed=m["protocol"]["test_seed"])
    assert proto["test_shapes"] == m["protocol"]["test_shapes"]
    n = len(ds) if m["engine"] else m["check"]["shapes"]
    xs, ys = zip(*(ds[i] for i in range(n)), strict=True)
    x = np.stack([np.asarray(v, np.float32) for v in xs])
    y = np.asarray([int(v) for v in ys])
    pred = (zoo.engine(name).run(x) if m["engine"] else _logits64(zoo.load(name), x)).argmax(-1)
    k = m["check"]["shapes"]
    assert int((pred[:k] == y[:k]).sum()) == m["check"]["correct"]
    assert " ".join(map(str, pred[:k])) == m["check"]["predictions"]
    if m["engine"]:
        assert round(100.0 * float((pred == y).mean()), 2) == m["oa"]


# -- the builder, on checkpoints made here ---------------------------------------------------------
def _tiny_checkpoint(tmp_path, binarize, name="run"):
    from onebit.train import run

    cfg = {"model": {"name": "pointnet_deploy", "options": {"width": 0.125}}, "binarize": binarize,
           "data": {"name": "synthetic_shapes", "options": {"num_per_class": 6, "test_per_class": 3, "num_points": 48,
                                                            "seed": 0}},
           "epochs": 2, "batch_size": 16, "seed": 0, "optim": {"name": "adam", "lr": 0.01}, "threads": 1,
           "amp": "off", "diagnostics": False, "log": {"progress": False, "csv": False, "tensorboard": False}}
    return run(cfg, tmp_path / name, progress=False).last_ckpt


def test_build_entry_from_checkpoint(tmp_path):
    from onebit.train.checkpoint import load_model

    ckpt = _tiny_checkpoint(tmp_path, "bipointnet")
    out = tmp_path / "zoo"
    meta = build_entry(ckpt, "tiny-bipointnet", out=out, budget=None, train_command="tests", log=lambda *_: None)
    assert zoo.names(out) == ["tiny-bipointnet"]
    info = zoo.info("tiny-bipointnet", root=out)
    assert info == json.loads(json.dumps(meta))
    assert info["weights"]["storage"] == "signs+scales" and info["weights"]["latent_binary_layers"] == []
    assert info["epochs"] == 2 and info["schedule"] == "short" and info["command"] == "tests"
    assert info["oa_measured_with"].startswith("engine") and info["points"] == 48

    original, _ = load_model(ckpt)
    shipped = zoo.load("tiny-bipointnet", root=out)
    x = parity_clouds(48)
    ref = _logits64(original, x)
    _close(_logits64(shipped, x), ref, 1e-9)  # signs + scales: exact for inference
    _close(zoo.engine("tiny-bipointnet", root=out).run(x), ref)

    # the recorded accuracy is what the shipped engine file measures on the checkpoint's test split
    ds, _ = eval_split(info["train"]["config"])
    xs = np.stack([np.asarray(ds[i][0]) for i in range(len(ds))])
    ys = np.asarray([int(ds[i][1]) for i in range(len(ds))])
    pred = zoo.engine("tiny-bipointnet", root=out).run(xs).argmax(-1)
    assert round(100.0 * float((pred == ys).mean()), 2) == info["oa"]

    # idempotent: the same command rebuilds the same files
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    build_entry(ckpt, "tiny-bipointnet", out=out, budget=None, train_command="tests", log=lambda *_: None)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_build_fp_entry_without_engine_and_budget(tmp_path):
    ckpt = _tiny_checkpoint(tmp_path, None, "fp")
    out = tmp_path / "zoo"
    build_entry(ckpt, "tiny-fp", out=out, engine=False, budget=None, log=lambda *_: None)
    info = zoo.info("tiny-fp", root=out)
    assert info["engine"] is None and info["oa_measured_with"] == "torch float64"
    assert info["weights"]["storage"] == "fp32" and not (out / "tiny-fp.onebit").exists()
    with pytest.raises(zoo.ZooError, match="ships no engine file"):
        zoo.engine("tiny-fp", root=out)
    # over the budget: refused before any file is written
    with pytest.raises(zoo.ZooError, match="over its .* budget"):
        build_entry(ckpt, "tiny-fp2", out=out, budget=zoo.total_bytes(out) + 1000, log=lambda *_: None)
    assert zoo.names(out) == ["tiny-fp"]


@pytest.mark.parametrize("preset,form", [("bipointnet", "mag"), ("bnn", "mag"), ("xnor", "mag"),
                                         ("xnor+ema-max", "mag"), ("dab-wbin", "affine")])
def test_signs_and_scales_are_exact(preset, form):
    from onebit.export.bench import calibrated_model
    from onebit.zoo.weights import load_weights

    model = calibrated_model("pointnet_vanilla", preset, num_classes=10, seed=3, points=32, width=0.25)
    _, meta, summary = pack_model(model)
    binary = json.loads(meta["binary"])
    assert binary and {b["form"] for b in binary} == {form} and summary["latent_binary_layers"] == []
    data, _ = save_bytes(model)
    latent, _ = save_bytes(model, compact=False)
    assert len(data) < len(latent)
    assert set(state_dict_from_bytes(data)) == set(model.state_dict())
    x = parity_clouds(32)
    shipped = load_weights(model.onebit_config, data)
    with torch.no_grad():
        got, ref = shipped(torch.from_numpy(x)).numpy(), model(torch.from_numpy(x)).numpy()
    if preset in ("bipointnet", "bnn"):  # sign binarizers: the same binarized weights, bit-identical logits
        np.testing.assert_array_equal(got, ref)
    # XNOR / DAB recompute their scales from W̃: equal to float32 rounding
    _close(got, ref, 1e-6)
    _close(_logits64(shipped, x), _logits64(model, x), 1e-6)


def test_bad_weights_file():
    from onebit.zoo.weights import load_weights

    with pytest.raises(zoo.ZooError, match="not a safetensors file|not an onebit zoo weights file"):
        load_weights({"name": "pointnet_deploy", "num_classes": 40}, b"\x00" * 16, source="x.safetensors")
    from safetensors.numpy import save

    with pytest.raises(zoo.ZooError, match="x.safetensors: not an onebit zoo weights file"):
        load_weights({"name": "pointnet_deploy", "num_classes": 40}, save({"a": np.zeros(2, np.float32)}),
                     source="x.safetensors")
