"""benchmarks/dab_sketch.py end to end on tiny files in the real QuickDraw / Sketchy layouts: row
fields, seed and fold aggregation, rows growing seed by seed, kill + resume, --merge, --table,
--plot, --figures; the QuickDraw train/test split options; the campaign plan of issue 14."""

from __future__ import annotations

import importlib.util
import json
import os
import shlex
import statistics
import subprocess
import sys
from collections import Counter
from pathlib import Path

import h5py
import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
BENCH = REPO / "benchmarks" / "dab_sketch.py"


def _load(name: str):
    sys.path.insert(0, str(BENCH.parent))
    spec = importlib.util.spec_from_file_location(name, BENCH.parent / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


ds = _load("dab_sketch")


def _quickdraw_h5(path: Path, classes=("cat", "dog", "eye"), per=30) -> Path:
    """The shared file's layout: images (N, 28, 28) uint8 white on black, label, a 'classes' attribute."""
    rng = np.random.default_rng(0)
    n = len(classes) * per
    imgs = np.zeros((n, 28, 28), np.uint8)
    labels = np.repeat(np.arange(len(classes)), per)
    for i, c in enumerate(labels):  # a class-dependent bar, jittered, so the classes are learnable
        r = 4 + 8 * c + rng.integers(-2, 3)
        imgs[i, r: r + 3, 4:24] = 255
        imgs[i, rng.integers(0, 28), rng.integers(0, 28)] = 255 - i % 200  # every drawing distinct
    with h5py.File(path, "w") as f:
        f["images"] = imgs
        f["label"] = labels.astype(np.int16)
        f.attrs["classes"] = json.dumps(list(classes))
    return path


def _sketchy_h5(path: Path, classes=3, per=25) -> Path:
    rng = np.random.default_rng(1)
    n = classes * per
    imgs = np.full((n, 32, 32), 255, np.uint8)
    labels = np.repeat(np.arange(classes), per)
    for i, c in enumerate(labels):
        imgs[i, 6 + 8 * c: 9 + 8 * c, 4:28] = rng.integers(0, 60)
    with h5py.File(path, "w") as f:
        f["sketches"] = imgs
        f["labels"] = labels.astype(np.int16)
        f.attrs["classes"] = json.dumps([f"c{i}" for i in range(classes)])
    return path


def _qd_args(data: Path, runs: Path, js: Path, *extra) -> list[str]:
    return ["--dataset", "quickdraw", "--epochs", "2", "--width", "0.125", "--batch-size", "16", "--size", "28",
            "--train-per-class", "16", "--test-per-class", "4", "--pool-per-class", "24",
            "--quickdraw-paths", str(data), "--out", str(runs), "--json", str(js), "--amp", "off", *extra]


@pytest.fixture(scope="module")
def qd(tmp_path_factory):
    """fp and dab-fbin, seeds 0 and 1, on a tiny QuickDraw file (one process, as the campaign runs them)."""
    tmp = tmp_path_factory.mktemp("dab_qd")
    data = _quickdraw_h5(tmp / "qd.h5")
    runs, js = tmp / "runs", tmp / "rows.json"
    assert ds.main(_qd_args(data, runs, js, "--settings", "fp,dab-fbin", "--seeds", "0,1")) == 0
    return {"tmp": tmp, "data": data, "runs": runs, "json": js}


def test_quickdraw_split_options(tmp_path):
    from onebit.data import get_dataset, load_all

    load_all()
    data = _quickdraw_h5(tmp_path / "qd.h5")
    kw = dict(paths=data, per_class=24, test_per_class=4)
    test = get_dataset("quickdraw_bitmap", "test", **kw)
    assert Counter(test.labels) == {0: 4, 1: 4, 2: 4}
    test_imgs = {im.tobytes() for im in test.images}
    for n in (5, 20, 100):  # any training size: the same test set, never overlapping it
        train = get_dataset("quickdraw_bitmap", "train", train_per_class=n, **kw)
        assert Counter(train.labels) == dict.fromkeys(range(3), min(n, 20))
        assert not test_imgs & {im.tobytes() for im in train.images}
        assert {im.tobytes() for im in get_dataset("quickdraw_bitmap", "test", train_per_class=n, **kw).images} \
            == test_imgs
    # training takes the first drawings of each class: the 5 are the first 5 of the 20
    first = get_dataset("quickdraw_bitmap", "train", train_per_class=5, **kw).images
    assert np.array_equal(first[:5], get_dataset("quickdraw_bitmap", "train", **kw).images[:5])
    with pytest.raises(ValueError, match="test_per_class must be >= 1"):
        get_dataset("quickdraw_bitmap", "test", paths=data, test_per_class=0)


def test_quickdraw_rows_aggregate_seeds(qd):
    doc = ds.load_doc(qd["json"])
    rows = {r["setting"]: r for r in doc["rows"]}
    assert set(rows) == {"fp", "dab-fbin"}
    for setting, r in rows.items():
        for field in ("model", "dataset", "setting", "acc", "acc_std", "seed_accs", "epochs", "size", "width",
                      "train_per_class", "seconds", "cpu", "command", "schedule"):
            assert field in r, field
        assert (r["model"], r["dataset"], r["epochs"], r["size"], r["width"]) == \
            ("sketch_a_net", "quickdraw_bitmap", 2, 28, 0.125)
        assert r["train_per_class"] == 16 and r["test_per_class"] == 4 and r["amp"] == "off"
        assert r["seeds"] == [0, 1] and len(r["seed_accs"]) == 2 and "fold_accs" not in r
        assert r["acc"] == pytest.approx(statistics.fmean(r["seed_accs"]), abs=0.01)
        assert r["acc_std"] == pytest.approx(statistics.stdev(r["seed_accs"]), abs=0.01)
        assert r["schedule"] == "short" and r["seconds"] > 0 and r["cpu"]
        assert all(0 <= a <= 100 for a in r["seed_accs"])
        # the command reproduces the row: parsed back, it gives the same configuration
        argv = shlex.split(r["command"])
        assert argv[:2] == ["python", "benchmarks/dab_sketch.py"] and "--seeds" in argv
        assert argv[argv.index("--seeds") + 1] == "0,1" and argv[argv.index("--settings") + 1] == setting
        args = ds.parse_args(argv[2:])
        assert ds.config_id(args, "quickdraw", setting, False) == r["config_id"]
        assert len({u["run_dir"] for u in r["units"]}) == 2
        assert all(not Path(u["run_dir"]).is_relative_to(REPO) for u in r["units"])
    assert "dab_stats" in rows["dab-fbin"]["units"][0] and "dab_stats" not in rows["fp"]["units"][0]
    # runs differ only in the seed
    cfg0 = ds.run_config(ds.parse_args(_qd_args(qd["data"], qd["runs"], qd["json"])), "quickdraw", "fp", 1, seed=0)
    cfg1 = ds.run_config(ds.parse_args(_qd_args(qd["data"], qd["runs"], qd["json"])), "quickdraw", "fp", 1, seed=1)
    assert {k for k in cfg0 if cfg0[k] != cfg1[k]} == {"seed"}
    assert cfg0["data"]["options"] == {"resize": 32, "crop": 28, "per_class": 24, "test_per_class": 4,
                                       "train_per_class": 16, "paths": [str(qd["data"])]}


def test_row_grows_seed_by_seed_and_skips_done(qd, capsys):
    js = qd["tmp"] / "grow.json"
    args = _qd_args(qd["data"], qd["runs"], js, "--settings", "fp")
    # seed 0's run directory is finished: this "resumes" it without training
    assert ds.main(args + ["--seeds", "0"]) == 0
    row = ds.load_doc(js)["rows"][0]
    assert row["seeds"] == [0] and row["acc_std"] is None and row["units"][0]["resumed"]
    assert row["seed_accs"] == ds.load_doc(qd["json"])["rows"][0]["seed_accs"][:1]
    capsys.readouterr()
    assert ds.main(args + ["--seeds", "0,1"]) == 0
    assert "seed 0: already in grow.json, skipped" in capsys.readouterr().out
    row = ds.load_doc(js)["rows"][0]
    assert row["seeds"] == [0, 1] and row["command"].count("--seeds 0,1") == 1
    assert len(ds.load_doc(js)["rows"]) == 1


def test_kill_then_resume_is_exact(qd):
    """SIGKILL after epoch 0's checkpoint, rerun the same command: the seed resumes and ends at the
    accuracy of the uninterrupted run (the fixture's seed 0)."""
    from onebit.train.trainer import KILL_ENV

    js, runs = qd["tmp"] / "killed.json", qd["tmp"] / "runs_killed"
    argv = _qd_args(qd["data"], runs, js, "--settings", "fp", "--seeds", "0", "--threads", "1")
    env = {**os.environ, KILL_ENV: "0", "OMP_NUM_THREADS": "1"}
    p = subprocess.run([sys.executable, str(BENCH), *argv], env=env, capture_output=True, text=True, timeout=120)
    assert p.returncode == -9, p.stderr[-2000:]
    assert not js.exists() or not ds.load_doc(js)["rows"]  # nothing recorded for an unfinished seed
    assert ds.main(argv) == 0
    row = ds.load_doc(js)["rows"][0]
    assert row["units"][0]["resumed"] is True
    ref = next(r for r in ds.load_doc(qd["json"])["rows"] if r["setting"] == "fp")
    assert row["seed_accs"] == ref["seed_accs"][:1] and row["config_id"] == ref["config_id"]


def test_merge_side_by_side_files(qd, tmp_path):
    a, b, out = tmp_path / "a.json", tmp_path / "b.json", tmp_path / "out.json"
    for js, seed in ((a, "0"), (b, "1")):  # two processes, one file each (finished runs: no training)
        assert ds.main(_qd_args(qd["data"], qd["runs"], js, "--settings", "fp", "--seeds", seed)) == 0
    ds.record_amp(b, {"cpu": "X", "model": "resnet18", "size": 32, "width": 1.0, "setting": "fp", "batch": 64,
                      "bf16_speedup_cpu": 0.9})
    legacy = {"model": "sketch_a_net", "dataset": "quickdraw_bitmap", "setting": "fp", "acc": 70.5, "acc_std": None,
              "epochs": 6, "command": "python benchmarks/dab_sketch.py --old", "schedule": "short"}
    out.write_text(json.dumps([legacy]))  # the older bare-list format
    assert ds.main(["--json", str(out), "--merge", str(a), str(b)]) == 0
    doc = ds.load_doc(out)
    assert doc["rows"][0] == legacy and len(doc["rows"]) == 2 and len(doc["amp"]) == 1
    row = doc["rows"][1]
    ref = next(r for r in ds.load_doc(qd["json"])["rows"] if r["setting"] == "fp")
    assert row["seeds"] == [0, 1] and row["seed_accs"] == ref["seed_accs"] and row["acc"] == ref["acc"]
    # merging again changes nothing (a unit of the same seed replaces itself)
    assert ds.main(["--json", str(out), "--merge", str(a), str(b)]) == 0
    assert ds.load_doc(out)["rows"] == doc["rows"]


def test_sketchy_folds(tmp_path):
    data = _sketchy_h5(tmp_path / "sk.h5")
    js = tmp_path / "sk.json"
    argv = ["--dataset", "sketchy", "--settings", "bwn", "--folds", "1,2", "--epochs", "1", "--width", "0.125",
            "--batch-size", "16", "--size", "28", "--sketchy-path", str(data), "--out", str(tmp_path / "runs"),
            "--json", str(js), "--amp", "off", "--no-diagnostics"]
    assert ds.main(argv) == 0
    (row,) = ds.load_doc(js)["rows"]
    assert row["dataset"] == "sketchy_subset" and row["folds"] == [1, 2] and len(row["fold_accs"]) == 2
    assert "seed_accs" not in row and row["classes"] == 3 and row["k"] == 5 and row["train_per_class"] == 20
    assert row["acc_std"] == pytest.approx(statistics.stdev(row["fold_accs"]), abs=0.01)
    assert "--folds 1,2 --k 5" in row["command"] and row["schedule"] == "short"
    with pytest.raises(SystemExit, match="one --seed"):
        ds.main(argv + ["--seeds", "0,1"])


def test_table_plot_figures(qd, tmp_path, capsys):
    js = str(qd["json"])
    assert ds.main(["--json", js, "--table", "--schedule", "any"]) == 0
    out = capsys.readouterr().out
    assert "| sketch_a_net | quickdraw_bitmap | fp |" in out and "DAB − XNOR (FBin)" in out
    assert "target: WBin within 1.5 of FPrec" in out and "paper sketch_a_net TU-Berlin / Sketchy" in out
    png = tmp_path / "t2.png"
    assert ds.main(["--json", js, "--plot", str(png), "--schedule", "any"]) == 0
    assert png.stat().st_size > 5000
    with pytest.raises(SystemExit, match="no rows"):
        ds.main(["--json", js, "--plot", str(png)])  # default: full / partial rows only
    run_dir = Path(next(r for r in ds.load_doc(qd["json"])["rows"] if r["setting"] == "dab-fbin")["units"][0]["run_dir"])
    assert ds.main(["--figures", str(run_dir), "--figures-out", str(tmp_path / "figs")]) == 0
    names = sorted(p.name for p in (tmp_path / "figs").iterdir())
    assert names == ["dab_fig_alpha_beta.png", "dab_fig_filters.png", "dab_fig_k.png"]
    assert "K/n" in capsys.readouterr().out


def test_schedule_marks():
    qd = {"model": "sketch_a_net", "dataset": "quickdraw_bitmap", "epochs": 30, "size": 28, "width": 0.5,
          "train_per_class": 2000, "test_per_class": 500, "seeds": [0, 1, 2], "seed_accs": [1, 2, 3]}
    assert ds.row_schedule(qd) == "full"
    assert ds.row_schedule({**qd, "seeds": [0, 1]}) == "partial"
    assert ds.row_schedule({**qd, "epochs": 29}) == "short"
    assert ds.row_schedule({**qd, "model": "resnet18", "size": 32, "width": 0.5}) == "short"  # full width only
    assert ds.row_schedule({**qd, "model": "resnet18", "size": 32, "width": 1.0, "epochs": 20,
                            "train_per_class": 1000}) == "full"
    sk = {"model": "sketch_a_net", "dataset": "sketchy_subset", "epochs": 30, "size": 64, "width": 0.5,
          "classes": 125, "k": 5, "folds": [1, 2, 3, 4, 5]}
    assert ds.row_schedule(sk) == "full"
    assert ds.row_schedule({**sk, "folds": [1, 2]}) == "partial"
    assert ds.row_schedule({**sk, "classes": 25}) == "short"
    assert ds.row_schedule({"dataset": "quickdraw_bitmap", "setting": "fp", "epochs": 8}) == "short"


def test_campaign_plan_meets_the_schedule():
    camp = _load("dab_sketch_campaign")
    items = camp.plan({"rows": [], "amp": []}, "cpu", 1.3, 2.8)
    assert len(items) == 35 and sum(len(i["units"]) for i in items) == 55  # 30 QuickDraw seeds + 25 Sketchy folds
    assert Counter(i["group"]["key"] for i in items) == {"san-qd": 15, "res-qd": 15, "san-sk": 5}
    for it in items:
        argv = shlex.split(it["command"])
        args = ds.parse_args(argv[2:])
        dataset = args.dataset
        base = ds.base_row(args, dataset, it["setting"], False)
        flag_units = ds._seeds(args) if dataset == "quickdraw" else ds._folds(args)
        assert flag_units == it["units"]
        # the rows these jobs fill are full once every job of the row has run
        all_units = it["group"]["units"]
        key = "seed" if dataset == "quickdraw" else "fold"
        row = ds.finalize_row({**base, "units": [{"seed": u if key == "seed" else 0, "fold": u if key == "fold" else None,
                                                 "acc": 50.0, "cpu": "c"} for u in all_units]})
        assert row["schedule"] == "full", (it["id"], row)
        assert it["est_min"] < 2.8 * 60
    sessions = camp.pack_sessions(items, 2, 2.8 * 60)
    assert sum(len(lane) for s in sessions for lane in s) == 35
    assert all(sum(i["left_min"] for i in lane) <= 2.8 * 60 for s in sessions for lane in s)
    # a row half done: only its missing seeds are left
    job = items[0]
    args = ds.parse_args(shlex.split(job["command"])[2:])
    base = ds.base_row(args, "quickdraw", job["setting"], False)
    doc = {"rows": [ds.finalize_row({**base, "units": [{"seed": 0, "fold": None, "acc": 1.0, "cpu": "c"}]})], "amp": []}
    left = {i["id"]: i["status"] for i in camp.plan(doc, "cpu", 1.3, 2.8)}
    assert left["san-qd-fp-s0"] == "done" and left["san-qd-fp-s1"] == "todo"
    # estimates: a job's own finished units on this CPU (median CPU time), resumed ones and other CPUs aside
    units = [{"seed": 0, "fold": None, "acc": 1.0, "cpu": "cpu", "cpu_seconds": 300.0},
             {"seed": 1, "fold": None, "acc": 1.0, "cpu": "cpu", "cpu_seconds": 420.0, "resumed": True},
             {"seed": 2, "fold": None, "acc": 1.0, "cpu": "other", "cpu_seconds": 60.0}]
    doc = {"rows": [ds.finalize_row({**base, "units": units})], "amp": []}
    per100k, n = camp.measured_per_100k(doc, job, "cpu")
    g = job["group"]
    assert n == 1 and per100k == pytest.approx(300.0 / 60 / (g["train_per_class"] * g["classes"] * g["epochs"] / 1e5))
    est = {i["id"]: i for i in camp.plan(doc, "cpu", 1.3, 2.8)}
    assert est["san-qd-fp-s1"]["cost_src"] == "measured, 1 unit(s)"
    assert est["san-qd-fp-s1"]["est_min"] == pytest.approx(1.3 * 5.0, abs=0.06)  # 300 CPU s per unit, x safety
    assert est["san-qd-bwn-s0"]["cost_src"] == "issue"  # no unit of that job yet
    assert camp.measured_per_100k(doc, job, "nowhere") is None


def test_campaign_dry_run(tmp_path, capsys):
    camp = _load("dab_sketch_campaign")
    assert camp.main(["--run", "--dry-run", "--only", "san-qd-fp-s0|res-qd-xnor-s2", "--json",
                      str(tmp_path / "none.json"), "--no-commit"]) == 0
    out = capsys.readouterr().out
    assert out.count("] lane ") == 2 and "--settings fp --seeds 0" in out and "--settings xnor --seeds 2" in out
    assert "lane A" in out and "lane B" in out and "0 job(s) left" in out
    assert out.count("--amp auto") == 2  # no timings in that file: the trainer decides
    # with timings on this CPU: bf16 only where it is >= 1.15x faster
    amp = [{"cpu": "c", "model": "sketch_a_net", "size": 28, "width": 0.5, "setting": s, "bf16_speedup_cpu": v}
           for s, v in (("fp", 1.48), ("dab-fbin", 1.27))]
    amp += [{"cpu": "c", "model": "resnet18", "size": 32, "width": 1.0, "setting": s, "bf16_speedup_cpu": 1.1}
            for s in ("fp", "dab-fbin")]
    items = {i["id"]: i for i in camp.plan({"rows": [], "amp": amp}, "c", 1.3, 2.8)}
    assert items["san-qd-fp-s0"]["amp"] == "bf16" and items["res-qd-fp-s0"]["amp"] == "off"
    assert items["san-sk-fp-f12345"]["amp"] == "auto"  # not measured
    assert items["san-qd-fp-s0"]["est_min"] < camp.plan({"rows": [], "amp": []}, "c", 1.3, 2.8)[0]["est_min"] * 0.8


def test_git_commit_only_its_paths(tmp_path):
    def git(*a):
        return subprocess.run(["git", "-C", str(tmp_path), *a], capture_output=True, text=True, check=True).stdout

    git("init", "-q")
    git("config", "user.email", "t@t")
    git("config", "user.name", "t")
    (tmp_path / "rows.json").write_text("[]\n")
    (tmp_path / "other.txt").write_text("a\n")
    git("add", "rows.json", "other.txt")
    git("commit", "-q", "-m", "init")
    (tmp_path / "other.txt").write_text("b\n")
    git("add", "other.txt")  # someone else's staged change
    (tmp_path / "rows.json").write_text("[1]\n")
    (tmp_path / "new.png").write_bytes(b"png")
    assert ds.git_commit([tmp_path / "rows.json", tmp_path / "new.png"], "rows")
    assert git("show", "--name-only", "--format=%s", "HEAD").split() == ["rows", "new.png", "rows.json"]
    assert git("diff", "--cached", "--name-only").split() == ["other.txt"]  # still staged, not committed
    assert not ds.git_commit(tmp_path / "rows.json", "nothing new")


def test_table2_judges_targets_only_on_complete_rows():
    def row(setting, acc, std, schedule):
        return {"model": "sketch_a_net", "dataset": "quickdraw_bitmap", "setting": setting, "acc": acc,
                "acc_std": std, "schedule": schedule, "seed_accs": [acc], "epochs": 30, "train_per_class": 2000}

    full = [row("fp", 94.8, 0.1, "full"), row("bwn", 94.3, 0.1, "full"), row("dab-wbin", 93.4, 0.1, "full"),
            row("xnor", 90.8, 0.3, "full"), row("dab-fbin", 91.0, 0.1, "full")]
    t = ds.table2(full)
    assert "| met (bwn -0.50, dab-wbin -1.40) |" in t
    assert "| NOT met (+0.20 vs 2σ = 0.60) |" in t
    partial = full[:3] + [row("xnor", 90.8, None, "partial"), row("dab-fbin", 91.0, None, "partial")]
    t = ds.table2(partial)
    assert "pending: a row still lacks seeds / folds (+0.20 so far)" in t


def test_fit_table_from_units_dab_stats(qd):
    """The DAB-fit table averages the units' dab_stats over layers and seeds; fp rows carry none."""
    rows = ds.load_doc(qd["json"])["rows"]
    (dab,) = [r for r in rows if r["setting"] == "dab-fbin"]
    layers = [v for u in dab["units"] for v in u["dab_stats"].values()]
    assert len(layers) == 2 * 6  # two seeds, six binarized convs
    for v in layers:  # DAB's fit is the optimal two-level one: never worse than alpha*sign(W)
        assert v["sse_dab_rel"] <= v["sse_bwn_rel"] + 1e-4
    d = statistics.fmean(v["sse_dab_rel"] for v in layers)
    b = statistics.fmean(v["sse_bwn_rel"] for v in layers)
    t = ds.fit_table(rows)
    (line,) = [x for x in t.splitlines() if "| dab-fbin |" in x]
    assert f"| 2 | {d:.4f} | {b:.4f} | {100 * (1 - d / b):.2f} % |" in line
    assert "| fp |" not in t
    variant = [dict(dab, variant="dab_preprocess=False")]
    assert "| dab-fbin (dab_preprocess=False) |" in ds.fit_table(variant)
    assert ds.fit_table([r for r in rows if r["setting"] == "fp"]) == "(no row carries dab_stats yet)"


@pytest.mark.parametrize("ab", ["padding", "optimizer"])
def test_train_step_ab_times_both_paths_and_restores_the_layer(tmp_path, ab):
    from onebit.nn import layers

    bench = _load("train_step_ab")
    before = layers._BinaryConvNd._padded_conv
    out = tmp_path / "ab.json"
    for _ in range(2):  # a rerun replaces its row
        assert bench.main(["--ab", ab, "--cases", "2", "--rounds", "2", "--steps", "1", "--batch", "8",
                           "--out", str(out)]) == 0
    (row,) = json.loads(out.read_text())
    assert (row["ab"], row["model"], row["setting"], row["amp"]) == (ab, "sketch_a_net", "dab-fbin", "bf16")
    assert row["before_ms"] > 0 and row["after_ms"] > 0 and row["cpu"]
    assert row["speedup"] == pytest.approx(row["before_ms"] / row["after_ms"], rel=0.01)
    assert layers._BinaryConvNd._padded_conv is before  # the patched path never outlives the run


def test_longer_schedule_is_a_variant_kept_out_of_table2():
    argv = ["--model", "sketch_a_net", "--dataset", "sketchy", "--size", "64", "--width", "0.5", "--k", "5",
            "--settings", "xnor", "--folds", "1"]
    unit = [{"seed": 0, "fold": 1, "acc": 40.0, "cpu": "c"}]
    longer = ds.finalize_row({**ds.base_row(ds.parse_args(argv + ["--epochs", "120"]), "sketchy", "xnor", True),
                              "units": unit})
    normal = ds.finalize_row({**ds.base_row(ds.parse_args(argv + ["--epochs", "30"]), "sketchy", "xnor", True),
                              "units": [{**unit[0], "acc": 15.0}]})
    assert longer["variant"] == "epochs=120" and normal["variant"] is None
    table = ds.table2([normal, longer])
    assert "15.00" in table and "40.00" not in table
