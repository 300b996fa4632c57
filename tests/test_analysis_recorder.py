"""DiagnosticsRecorder over a few fake epochs, and ``onebit analyze`` on a run dir and a checkpoint."""

from __future__ import annotations

import json

import pytest
import torch

from onebit.analysis import DiagnosticsRecorder, collect, read_jsonl, summarize, summary_table

models = pytest.importorskip("onebit.models")

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _settled(preset: str, **kw):
    """A tiny PointNet whose BN running statistics match its inputs (so eval mode is meaningful)."""
    torch.manual_seed(0)
    m = models.create("pointnet", num_classes=3, binarize=preset, width=0.125, **kw)
    for mod in m.modules():
        if isinstance(mod, torch.nn.modules.batchnorm._BatchNorm):
            mod.momentum = None  # cumulative average
    g = torch.Generator().manual_seed(0)
    m.train()
    with torch.no_grad():
        for _ in range(3):
            m(torch.randn(8, 128, 3, generator=g))
    return m, g


def _train_epochs(tmp_path, preset="bipointnet", epochs=3, every=1):
    m, g = _settled(preset)
    x = torch.randn(8, 128, 3, generator=g)
    y = torch.randint(0, 3, (8,), generator=g)
    rec = DiagnosticsRecorder(m, tmp_path, every=every)
    opt = torch.optim.SGD(m.parameters(), lr=0.5)
    for epoch in range(epochs):
        m.train()
        loss = torch.nn.functional.cross_entropy(m(x), y) + 1e-3 * m.regularizer()
        opt.zero_grad()
        loss.backward()
        opt.step()
        before = {k: v.clone() for k, v in m.state_dict().items()}
        rec.on_epoch_end(epoch, m, (x, y))
        assert m.training  # mode restored
        after = m.state_dict()
        assert all(torch.equal(before[k], after[k]) for k in before)  # eval mode: BN stats untouched
    return m, rec


def test_recorder_writes_valid_jsonl(tmp_path):
    m, rec = _train_epochs(tmp_path, "bipointnet", epochs=3)
    lines = (tmp_path / "diagnostics.jsonl").read_text().splitlines()
    assert len(lines) == 3
    records = [json.loads(line) for line in lines]  # strict JSON: no NaN
    assert [r["epoch"] for r in records] == [0, 1, 2]
    r0, r2 = records[0], records[-1]
    assert r0["flip_ratio"] is None and 0.0 <= r2["flip_ratio"] <= 1.0  # lr 0.5 flips some signs
    assert r2["flip_ratio"] > 0
    assert r2["global_pool"] == "pool" and 0.0 <= r2["pooled_entropy"] <= 1.0
    assert set(r2["pooled"]) == {"input_tnet.pool", "feature_tnet.pool", "pool"}
    assert r2["tnet_reg"] > 0
    binary = [n for n, d in r2["layers"].items()]
    assert "mlp1.0.linear" not in binary and "head.out" not in binary  # kept float
    d = r2["layers"]["mlp2.1.linear"]
    for key in ("scale_ratio", "zero_grad", "act_pos", "weight_pos", "flip", "k_norm", "alpha", "beta"):
        assert isinstance(d[key], float), key
    assert d["alpha"] == pytest.approx(-d["beta"])  # sign binarizer: levels ±a
    assert 1 <= len(r2["filters"]) <= 4
    f = next(iter(r2["filters"].values()))[0]
    assert sum(f["counts"]) == f["n"] and 0 <= f["K"] <= f["n"]
    assert len(lines[-1]) < 40_000  # modest file size per record
    assert read_jsonl(rec.path) == records


def test_recorder_every_and_torn_last_line(tmp_path):
    _train_epochs(tmp_path, "bnn", epochs=4, every=2)
    path = tmp_path / "diagnostics.jsonl"
    assert [r["epoch"] for r in read_jsonl(path)] == [1, 3]
    with open(path, "a") as f:
        f.write('{"epoch": 5, "layers": {')  # run killed mid-write
    assert len(read_jsonl(path)) == 2
    path.write_text('{"epoch": 0}\nnot json\n{"epoch": 1}\n')
    with pytest.raises(ValueError, match="line 2"):
        read_jsonl(path)
    with pytest.raises(ValueError, match="every"):
        DiagnosticsRecorder(torch.nn.Linear(1, 1), tmp_path, every=0)


def test_max_pool_homogenises_and_avg_keeps_entropy():
    """BiPointNet Fig. 4(a): the binarized max-pooled global feature is (nearly) all +1."""
    m_max, g = _settled("bnn")
    r_max = collect(m_max, torch.randn(32, 128, 3, generator=g))
    assert r_max["pooled"]["pool"]["positive"] > 0.95 and r_max["pooled_entropy"] < 0.2
    m_avg, g = _settled("bipointnet-avg")
    r_avg = collect(m_avg, torch.randn(32, 128, 3, generator=g))
    assert r_avg["pooled_entropy"] > 0.3
    # LSR (BiPointNet) keeps the scale near the float one; plain BNN inflates it (Theorem 2: ~√m)
    assert r_max["layers"]["mlp2.1.linear"]["scale_ratio"] > 3
    assert 0.2 < r_avg["layers"]["mlp2.1.linear"]["scale_ratio"] < 3


def test_summary_table_lists_layers(tmp_path):
    _train_epochs(tmp_path, "dab-wbin", epochs=2)
    records = read_jsonl(tmp_path / "diagnostics.jsonl")
    s = summarize(records, [{"epoch": 1, "oa": 50.0}])
    text = summary_table(s)
    assert "mlp2.1.linear" in text and "K/n" in text and "oa=50" in text
    assert s["layers"]["mlp2.1.linear"]["alpha"] > 0 > s["layers"]["mlp2.1.linear"]["beta"]


def _png_ok(path):
    return path.is_file() and path.read_bytes()[:8] == PNG_MAGIC and path.stat().st_size > 2000


def test_cli_analyze_run_dir(tmp_path, capsys):
    from onebit.cli import main

    run = tmp_path / "run"
    _train_epochs(run, "bipointnet", epochs=3)
    with open(run / "metrics.jsonl", "w") as f:
        for e in range(3):
            f.write(json.dumps({"epoch": e, "lr": 0.1, "train_loss": 1.0 / (e + 1), "oa": 30.0 + e, "macc": 20.0 + e})
                    + "\n")
    out = tmp_path / "figs"
    assert main(["analyze", str(run), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    expected = ["entropy", "scale_distortion", "tnet_reg", "sign_balance", "flip_ratio", "dab_k",
                "dab_alpha_beta", "dab_filter_hist", "accuracy", "zero_grad"]
    for name in expected:
        assert _png_ok(out / f"{name}.png"), name
        assert str(out / f"{name}.png") in printed
    assert "mlp2.1.linear" in printed and "records: 3" in printed


def test_cli_analyze_metrics_only_and_errors(tmp_path, capsys):
    from onebit.cli import main

    (tmp_path / "metrics.jsonl").write_text(json.dumps({"epoch": 0, "oa": 10.0, "train_loss": 2.0}) + "\n")
    assert main(["analyze", str(tmp_path)]) == 0
    assert _png_ok(tmp_path / "analysis" / "accuracy.png")
    assert not (tmp_path / "analysis" / "entropy.png").exists()  # only figures with data
    assert main(["analyze", str(tmp_path / "missing")]) == 2
    assert "no such file" in capsys.readouterr().err
    bad = tmp_path / "bad.ckpt"
    bad.write_bytes(b"not a checkpoint")
    assert main(["analyze", str(bad)]) == 2
    assert "bad.ckpt" in capsys.readouterr().err


def test_cli_analyze_checkpoint(tmp_path, capsys):
    pytest.importorskip("onebit.train.checkpoint")
    data = pytest.importorskip("onebit.data")
    from onebit.cli import main

    data.load_all()
    m, _ = _settled("bipointnet")
    ckpt = {"model_config": m.onebit_config, "state_dict": m.state_dict(), "epoch": 4,
            "config": {"data": {"name": "synthetic_shapes", "options": {"num_per_class": 2, "num_points": 128},
                                "eval_options": {}, "eval_split": "test", "protocol": None}}}
    path = tmp_path / "last.ckpt"
    torch.save(ckpt, path)
    assert main(["analyze", str(path), "--batch-size", "8", "--json"]) == 0
    s = json.loads(capsys.readouterr().out)
    assert s["epoch"] == 4 and s["pooled_entropy"] is not None and s["tnet_reg"] is not None
    figs = s["figures"]
    assert {"entropy", "scale_distortion", "sign_balance", "zero_grad", "dab_k"} <= set(figs)
    assert "flip_ratio" not in figs and "accuracy" not in figs  # nothing over time in a checkpoint
    for p in figs.values():
        assert _png_ok(__import__("pathlib").Path(p))
    assert (tmp_path / "last_analysis" / "scale_distortion.png").is_file()


def test_collect_partseg_passes_category_and_sketch_convs():
    torch.manual_seed(0)
    m = models.create("pointnet", num_classes=4, task="partseg", binarize="bipointnet", width=0.125,
                      num_categories=3)
    pts = torch.randn(2, 64, 3)
    rec = collect(m, (pts, [torch.zeros(2, 64, dtype=torch.long), torch.tensor([0, 2])]))
    assert rec["pooled_entropy"] is not None and rec["layers"]
    if "sketch_a_net" not in models.names():
        pytest.skip("sketch_a_net not registered")
    s = models.create("sketch_a_net", num_classes=5, binarize="dab-fbin", input_size=32, width=0.25)
    rec = collect(s, torch.randn(4, 1, 32, 32))
    convs = {n: d for n, d in rec["layers"].items() if d["type"] == "BinaryConv2d"}
    assert convs and all("zero_grad" in d and "k_norm" in d and d["scale_ratio"] > 0 for d in convs.values())
    assert rec["filters"]  # DAB filters get histograms


def test_latest_per_epoch_dedupes_resumed_runs():
    from onebit.analysis.plots import latest_per_epoch

    rows = [{"epoch": 0, "v": 1}, {"epoch": 1, "v": 2}, {"epoch": 1, "v": 3}, {"epoch": 2, "v": 4}]
    assert [r["v"] for r in latest_per_epoch(rows[::-1])] == [1, 2, 4]
    assert [r["v"] for r in latest_per_epoch(rows)] == [1, 3, 4]


def test_cli_analyze_checkpoint_with_ten_crop_eval(tmp_path, capsys):
    """A sketch run evaluated with ten-crop items (B, 10, 1, H, W) is probed on its first crop."""
    from onebit.cli import main

    m = models.create("sketch_a_net", num_classes=4, binarize="dab-fbin", input_size=32, width=0.125)
    opts = {"num_classes": 4, "size": 36, "per_class": 2}
    ckpt = {"model_config": m.onebit_config, "state_dict": m.state_dict(), "epoch": 1,
            "config": {"data": {"name": "synthetic_sketches", "options": opts,
                                "eval_options": {"resize": 36, "crop": 32, "ten_crop": True},
                                "eval_split": "test", "protocol": None}}}
    path = tmp_path / "best.ckpt"
    torch.save(ckpt, path)
    assert main(["analyze", str(path), "--batch-size", "4", "--json"]) == 0
    s = json.loads(capsys.readouterr().out)
    assert s["epoch"] == 1 and "dab_k" in s["figures"]


def test_cli_analyze_checkpoint_of_a_protocol_run(tmp_path, capsys):
    """A run trained under a data protocol (``data.protocol: bipointnet``, as every ModelNet40 campaign
    row) is probed on its own test split, a fixed point draw, at its training point count."""
    from onebit.cli import main
    from onebit.train import run

    cfg = {"model": {"name": "pointnet_deploy", "options": {"width": 0.125}}, "binarize": "bipointnet",
           "data": {"name": "synthetic_shapes", "protocol": {"name": "bipointnet", "num_points": 40},
                    "options": {"num_per_class": 4, "test_per_class": 2, "seed": 0}},
           "epochs": 1, "batch_size": 8, "seed": 0, "threads": 1, "amp": "off", "diagnostics": False,
           "log": {"progress": False, "csv": False, "tensorboard": False}}
    ckpt = run(cfg, tmp_path / "run", progress=False).last_ckpt
    assert main(["analyze", str(ckpt), "--batch-size", "64", "--json", "--out", str(tmp_path / "a")]) == 0
    first = json.loads(capsys.readouterr().out)
    assert first["pooled_entropy"] is not None
    assert main(["analyze", str(ckpt), "--batch-size", "64", "--json", "--out", str(tmp_path / "b")]) == 0
    assert json.loads(capsys.readouterr().out)["pooled_entropy"] == first["pooled_entropy"]  # a fixed draw
    assert main(["analyze", str(ckpt), "--split", "train", "--json", "--out", str(tmp_path / "c")]) == 0
    capsys.readouterr()
    assert main(["analyze", str(ckpt), "--split", "val", "--json"]) == 2
    assert "only its train and test splits" in capsys.readouterr().err
