"""Benchmark of the onebit 1-bit engine vs FP32 PyTorch (writes benchmarks/results/engine.json).

    python benchmarks/engine.py [--quick] [--sections kernels,models,table4,profile] [--out FILE] [--raw RAW]
    python benchmarks/engine.py --report RAW      # docs/results/engine.md from the raw rows

Sections:
* kernels: binary GEMM microbenchmark (M=1024 points) per ISA, K = 64…1024, thresholded bit output, plus
  the OR-pooled form (max pool before a sign) at K = 128 and 1024 with the early exit disabled;
  G binary-MAC/s from wall time and from the calling thread's CPU time (the host is shared);
* models: pointnet_deploy / pointnet_vanilla / pointnet (bipointnet preset, calibrated BN), threads 1
  and 2, batch 1 and 32, 1024 points: torch eager, FP32 points-major (BN folded, addmm chain; whole
  batch and one cloud at a time), bf16 points-major (batch 1) and the engine, interleaved rounds;
* table4: BiPointNet Table 4 rows (a)-(f) on pointnet_deploy: time and size (accuracy needs a
  trained checkpoint: --checkpoint adds it on ModelNet40 test);
* profile: the engine's per-op native timers (thread CPU time) for each model;
* sketches: Sketch-A-Net (dab-fbin and bnn) and ResNet-18 (dab-fbin) on 225/224-pixel sketch-like images:
  torch eager, the FP32 twin and the engine, batch 1, 1 thread, plus the engine's per-op profile;
* geometric: DGCNN, PointNet++ SSG and MSG (bipointnet preset): torch eager, the FP32 twin (eager) and the
  engine, batch 1, 1 thread, 1024 points, with per-op profiles;
* realdata (needs --checkpoint, a trained pointnet_deploy / pointnet_vanilla / pointnet): engine vs the
  FP32 twin on real ModelNet40 test clouds, batch 1, 1 thread (the OR-pool early exit depends on the data).
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bipointnet_modelnet40 import NO_BN_UNIT_SPEC  # noqa: E402


def machine() -> dict:
    """CPU model, vCPU count and the ISA flags that matter here (figures differ between hosts)."""
    from onebit.train.amp import cpu_flags, cpu_model

    have = cpu_flags()
    info = {"cpu": cpu_model(), "vcpus": os.cpu_count(),
            "flags": [f for f in ("avx2", "avx512f", "avx512_vpopcntdq", "avx512_bf16", "amx_bf16") if f in have]}
    from onebit.runtime import _engine as E

    info["engine_isa"] = E.best_isa()
    return info


def kernels(quick: bool) -> list[dict]:
    from onebit.runtime import _engine as E

    rows = []
    ks = (64, 128, 1024) if quick else (64, 128, 256, 512, 1024)
    for isa in E.supported_isas()[::-1]:
        for threads in ((1, 2) if isa == "avx512" else (1,)):
            for k, pooled in [(k, False) for k in ks] + [(128, True), (1024, True)]:
                n = 1024
                wall, cpu = E.bench_gemm(1024, n, k, isa, 5 if quick else 9, 0.05, threads, pooled)
                macs = 1024 * n * k
                rows.append({"section": "kernels", "isa": isa, "threads": threads, "M": 1024, "N": n, "K": k,
                             "output": "or-pooled" if pooled else "bits",
                             "wall_us": round(wall * 1e6, 2), "cpu_us": round(cpu * 1e6, 2),
                             "gmacs_wall": round(macs / wall / 1e9, 1),
                             "gmacs_cpu": round(macs / cpu / 1e9, 1) if threads == 1 and cpu > 0 else None})
                print(rows[-1], flush=True)
    return rows


def models(quick: bool) -> list[dict]:
    from onebit.export.bench import bench_model, calibrated_model

    rows = []
    names = ("pointnet_deploy",) if quick else ("pointnet_deploy", "pointnet_vanilla", "pointnet")
    for name in names:
        model = calibrated_model(name, "bipointnet", seed=0, points=256)
        for threads in (1, 2):
            for batch in ((1,) if quick else (1, 32)):
                runners = ["torch-eager", "torch-fp32-pm", "engine"]
                if batch > 1:
                    runners.insert(2, "torch-fp32-pm-loop")
                else:
                    runners.insert(2, "torch-bf16-pm")
                r = bench_model(model, threads=threads, batch=batch, points=1024,
                                rounds=3 if (quick or batch > 1) else 7,
                                min_block_s=0.1 if batch == 1 else 0.2, runners=tuple(runners), model_name=name)
                for row in r:
                    row["section"] = "models"
                    print(json.dumps(row), flush=True)
                rows += r
    return rows


TABLE4_RUNS = {  # variant -> run directory (benchmarks/bipointnet_modelnet40.py --runs DIR --rows ...)
    "(a) FP32 (BN folded)": "deploy_fp",
    "(b) FL fp32, LL fp32": "deploy_bipointnet",
    "(c) FL fp32, LL 1-bit": "deploy_ll_binary",
    "(d) FL 1-bit, LL fp32": "deploy_fl_binary",
    "(e) FL 1-bit, LL 1-bit": "deploy_fl_ll_binary",
    "(f) no BN (LSR only)": "deploy_no_bn_unit",
}


def table4_variants() -> dict:
    """BiPointNet Table 4's binarized pointnet_deploy variants (b)-(f): label -> binarize spec ((a) is FP32)."""
    from onebit.convert import resolve_spec

    return {
        "(b) FL fp32, LL fp32": resolve_spec("bipointnet"),
        "(c) FL fp32, LL 1-bit": resolve_spec("bipointnet", keep_float=["first"]),
        "(d) FL 1-bit, LL fp32": resolve_spec("bipointnet", keep_float=["last"]),
        "(e) FL 1-bit, LL 1-bit": resolve_spec("bipointnet", keep_float=[]),
        # no BN after the binary layers (the float first layer keeps its own, which export folds),
        # LSR started at unit variance: the recipe that trains (benchmarks/bipointnet_no_bn_probe.py)
        "(f) no BN (LSR only)": resolve_spec(NO_BN_UNIT_SPEC),
    }


def table4_checkpoint(label: str, runs: Path | None) -> Path | None:
    """The trained checkpoint of a Table 4 variant (``RUNS/<run>/last.ckpt``, see TABLE4_RUNS), if there."""
    ck = runs / TABLE4_RUNS[label] / "last.ckpt" if runs and label in TABLE4_RUNS else None
    return ck if ck is not None and ck.exists() else None


def table4_model(label: str, spec, runs: Path | None = None):
    """A Table 4 variant's model: trained if its checkpoint is in ``runs``, else calibrated (untrained)."""
    from onebit.export.bench import calibrated_model

    ck = table4_checkpoint(label, runs)
    return _load_trained(ck) if ck else calibrated_model("pointnet_deploy", spec, seed=0, points=256)


def table4(quick: bool, checkpoint: str | None, runs: Path | None = None) -> list[dict]:
    """BiPointNet Table 4 on pointnet_deploy: (a) FP32, (b) FL/LL float, (c) LL binary, (d) FL binary,
    (e) both binary, (f) no BN (LSR only: the binary layers have a bias and no BN).

    With ``runs`` holding trained checkpoints (``RUNS/<run>/last.ckpt``, see TABLE4_RUNS), each variant is
    timed on its trained model and gets its accuracy on the ModelNet40 test set (the engine's for the
    binary variants, PyTorch's for FP32); otherwise the models are untrained (calibrated BN)."""
    from onebit.export.bench import bench_model

    limit = 256 if quick else None

    rows = []
    draws: dict[str, tuple] = {}
    first = True
    for label, spec in table4_variants().items():
        model = table4_model(label, spec, runs)
        runners = ("torch-fp32-pm", "engine") if first else ("engine",)
        r = bench_model(model, threads=1, batch=1, points=1024, rounds=3 if quick else 7, min_block_s=0.1,
                        runners=runners, model_name="pointnet_deploy")
        for row in r:
            row["section"] = "table4"
            is_fp = row["runner"] != "engine"
            row["variant"] = "(a) FP32 (BN folded)" if is_fp else label
            ck_row = table4_checkpoint(row["variant"], runs)
            row["accuracy"] = None
            if ck_row is not None:
                row["checkpoint"] = str(ck_row)
                # engine rows: the model just timed (this variant's checkpoint); FP32 row: the FP32 checkpoint.
                # Measured like the campaign's OA column: the training point count, the fixed test draw 0.
                acc_model = model if not is_fp else _load_trained(ck_row)
                # the variants share one test split and draw (the same data section): load it once
                data_key = json.dumps(acc_model.onebit_train_config.get("data"), sort_keys=True, default=str)
                if data_key not in draws:
                    draws[data_key] = checkpoint_test_draw(acc_model, limit)
                clouds = draws[data_key]
                row["accuracy"] = 100 * (torch_accuracy_on(acc_model, *clouds) if is_fp else
                                         engine_accuracy_on(acc_model, *clouds))
                row["accuracy_points"] = int(clouds[0].shape[1])
                row["accuracy_how"] = TABLE4_ACCURACY_HOW
            print(json.dumps(row), flush=True)
        rows += r
        first = False
    timed = {ck.resolve() for ck in (table4_checkpoint(label, runs) for label in TABLE4_RUNS) if ck is not None}
    if checkpoint and Path(checkpoint).expanduser().resolve() not in timed:  # not one of the variants above
        rows += checkpoint_row(checkpoint, quick)
    return rows


TABLE4_ACCURACY_HOW = ("ModelNet40 test OA of the trained checkpoint at its training point count, on the fixed "
                       "test-point draw 0 (onebit.zoo.build.eval_split, test_seed=0): the engine for binary variants, "
                       "PyTorch FP32 for (a)")


def checkpoint_test_draw(model, limit: int | None = None):
    """(clouds (n, N, 3) float32, labels (n,)) of a trained model's own test split: its training config's
    protocol and point count, on the fixed seeded draw 0 (the draw ``onebit.zoo`` and the campaign's
    ``oa_draws[0]`` use). ``limit`` keeps the first shapes."""
    import numpy as np

    from onebit.zoo.build import eval_split

    ds, _ = eval_split(model.onebit_train_config, test_seed=0)
    n = len(ds) if limit is None else min(limit, len(ds))
    items = [ds[i] for i in range(n)]
    pts = np.stack([np.asarray(it[0], np.float32)[:, :3] for it in items])
    return pts, np.array([int(it[1]) for it in items])


def torch_accuracy_on(model, pts, lab) -> float:
    """Overall accuracy of a PyTorch model (FP32, eval mode) on given clouds."""
    import numpy as np
    import torch

    with torch.inference_mode():
        pred = np.concatenate([model(torch.from_numpy(pts[i:i + 64])).argmax(-1).numpy()
                               for i in range(0, len(lab), 64)])
    return float((pred == lab).mean())


def engine_accuracy_on(model, pts, lab) -> float:
    """Export ``model`` for the clouds' point count and measure the engine's accuracy on them."""
    import tempfile

    import numpy as np

    from onebit.export import export
    from onebit.runtime import load

    with tempfile.TemporaryDirectory() as tmp:
        export(model, Path(tmp) / "m.onebit", points=int(pts.shape[1]))
        m = load(Path(tmp) / "m.onebit")
        pred = np.concatenate([m.run(np.ascontiguousarray(pts[i:i + 64]), threads=1).argmax(-1)
                               for i in range(0, len(lab), 64)])
    return float((pred == lab).mean())


def modelnet_test(limit: int | None = None, protocol="bipointnet", points: int = 1024, pick: int | None = None):
    """(points (n, N, 3) float32, labels (n,)) of ModelNet40 test under a data protocol (the same preprocessing
    as training and `onebit eval`); ``pick`` takes that many clouds spread over the set. None if absent.
    Cached: Table 4 evaluates several variants on the same clouds."""
    return _modelnet_test(limit, json.dumps(protocol, sort_keys=True), points, pick)


@functools.lru_cache(maxsize=4)
def _modelnet_test(limit, protocol_json: str, points: int, pick):
    import numpy as np

    protocol = json.loads(protocol_json)

    from onebit.data.points.protocol import build_datasets

    proto = dict(protocol) if isinstance(protocol, dict) else {"name": protocol}
    proto["num_points"] = points
    try:
        test = build_datasets(proto, "modelnet40")[1]
    except (OSError, FileNotFoundError, ValueError) as e:
        print(f"ModelNet40 test set unavailable ({e})", file=sys.stderr)
        return None
    n = len(test) if limit is None else min(limit, len(test))
    idx = np.linspace(0, len(test) - 1, pick).astype(int) if pick else np.arange(n)
    items = [test[int(i)] for i in idx]
    pts = np.stack([np.asarray(it[0], np.float32)[:, :3] for it in items])
    lab = np.array([int(it[1]) for it in items])
    return pts, lab


def _load_trained(path):
    """A checkpoint's model, remembering its training config (for the data protocol)."""
    from onebit.train.checkpoint import load_model

    model, ckpt = load_model(path)
    model.onebit_train_config = ckpt.get("config") or {}
    return model.eval()


def _protocol_of(model):
    cfg = getattr(model, "onebit_train_config", None) or {}
    return ((cfg.get("data") or {}).get("protocol")) or "bipointnet"


def checkpoint_row(checkpoint: str, quick: bool) -> list[dict]:
    """A trained checkpoint as a Table 4 row: time, size and the engine's accuracy on ModelNet40 test
    (measured like the variants: its training point count, test draw 0)."""
    from onebit.export.bench import bench_model

    model = _load_trained(checkpoint)
    h5 = ROOT.parent / "shared" / "data" / "modelnet40" / "test.h5"
    rows = bench_model(model, threads=1, batch=1, points=1024, rounds=3 if quick else 7, runners=("engine",))
    acc = engine_accuracy_on(model, *checkpoint_test_draw(model, 256 if quick else None)) if h5.exists() else None
    spec = (getattr(model, "onebit_config", None) or {}).get("binarize") or {}
    for row in rows:
        row.update(section="table4", variant=f"checkpoint {Path(checkpoint).name} ({spec.get('name', 'fp')})",
                   accuracy=None if acc is None else 100 * acc, accuracy_how=TABLE4_ACCURACY_HOW)
    return rows


def profile(quick: bool) -> list[dict]:
    import tempfile

    import numpy as np

    from onebit.export import export
    from onebit.export.bench import calibrated_model
    from onebit.runtime import load

    rows = []
    for name in ("pointnet_deploy",) if quick else ("pointnet_deploy", "pointnet_vanilla", "pointnet"):
        model = calibrated_model(name, "bipointnet", seed=0, points=256)
        with tempfile.TemporaryDirectory() as tmp:
            export(model, Path(tmp) / "m.onebit")
            m = load(Path(tmp) / "m.onebit")
            x = np.random.default_rng(0).normal(size=(1, 1024, 3)).astype(np.float32)
            for op, us in m.profile(x, threads=1, repeats=30 if quick else 100):
                rows.append({"section": "profile", "model": name, "op": op, "cpu_us": round(us, 2), "isa": m.isa})
                print(rows[-1], flush=True)
    return rows


def sketches(quick: bool) -> list[dict]:
    """Sketch-A-Net and ResNet-18 exports vs torch (images: the FP32 twin runs eager NCHW), with profiles."""
    import tempfile

    import numpy as np

    from onebit.convert import resolve_spec
    from onebit.export import export
    from onebit.export.bench import bench_model, calibrated_model
    from onebit.models import create
    from onebit.runtime import load

    fbin = resolve_spec("dab-fbin", input="ste_sign")
    cases = [("sketch_a_net", "dab-fbin", fbin, {"input_size": 225}),
             ("sketch_a_net", "bnn (preact)", "bnn", {"input_size": 225, "preact": True})]
    if not quick:
        cases.append(("resnet18", "dab-fbin", fbin, {}))
    rows = []
    for name, label, spec, opts in cases:
        if name == "resnet18":
            model = create("resnet18", 250, binarize=spec, **opts)
            model.input_size = 224
            model = calibrated_model(model, spec)
        else:
            model = calibrated_model(name, spec, num_classes=250, **opts)
        r = bench_model(model, threads=1, batch=1, rounds=3 if quick else 5, min_block_s=0.1,
                        runners=("torch-eager", "torch-fp32", "engine"), model_name=name)
        for row in r:
            row.update(section="sketches", preset=label)
            print(json.dumps(row), flush=True)
        rows += r
        with tempfile.TemporaryDirectory() as tmp:
            export(model, Path(tmp) / "m.onebit")
            m = load(Path(tmp) / "m.onebit")
            x = np.random.default_rng(0).random((1, m.input_channels, *m.input_hw)).astype(np.float32)
            for op, us in m.profile(x, threads=1, repeats=5 if quick else 20):
                rows.append({"section": "sketch_profile", "model": name, "preset": label, "op": op,
                             "cpu_us": round(us, 2)})
    return rows


def geometric(quick: bool) -> list[dict]:
    """DGCNN and PointNet++ (bipointnet preset, calibrated BN): torch eager, the FP32 twin (eager: these graphs
    have no points-major linear chain) and the engine, batch 1, 1 thread, 1024 points, plus per-op profiles."""
    import tempfile

    import numpy as np

    from onebit.export import export
    from onebit.export.bench import bench_model, calibrated_model
    from onebit.runtime import load

    rows = []
    for name in ("dgcnn", "pointnet2_ssg") if quick else ("dgcnn", "pointnet2_ssg", "pointnet2_msg"):
        model = calibrated_model(name, "bipointnet", seed=0, points=256)
        r = bench_model(model, threads=1, batch=1, points=1024, rounds=2 if quick else 3, min_block_s=0.1,
                        runners=("torch-eager", "torch-fp32", "engine"), model_name=name)
        for row in r:
            row["section"] = "geometric"
            print(json.dumps(row), flush=True)
        rows += r
        with tempfile.TemporaryDirectory() as tmp:
            export(model, Path(tmp) / "m.onebit", points=1024)
            m = load(Path(tmp) / "m.onebit")
            x = np.random.default_rng(0).normal(size=(1, 1024, 3)).astype(np.float32)
            for op, us in m.profile(x, threads=1, repeats=3 if quick else 10):
                rows.append({"section": "geometric_profile", "model": name, "op": op, "cpu_us": round(us, 2)})
    return rows


def realdata(checkpoint: str, quick: bool) -> list[dict]:
    """A trained point model on real ModelNet40 test clouds, batch 1, 1 thread: the engine (whose OR-pooled
    layers stop scanning points once a channel is set, so its time depends on the data) vs the FP32 twin
    (points-major, BN folded) on the same clouds; plus the engine's accuracy on those clouds."""
    import statistics
    import tempfile

    import numpy as np
    import torch

    from onebit.export import build_graph, export
    from onebit.export.bench import _block_ms, calibrated_model, float_twin, points_major
    from onebit.runtime import load

    h5 = ROOT.parent / "shared" / "data" / "modelnet40" / "test.h5"
    if not h5.exists():
        print(f"realdata: {h5} is missing, section skipped", file=sys.stderr)
        return []
    model = _load_trained(checkpoint)
    model.eval()
    name = (getattr(model, "onebit_config", None) or {}).get("name", type(model).__name__)
    n_clouds = 8 if quick else 32
    pts, lab = modelnet_test(None, _protocol_of(model), pick=n_clouds)
    rand = np.random.default_rng(0).standard_normal(pts.shape).astype(np.float32)
    twin = float_twin(model)
    g, t = build_graph(twin)
    pm = points_major(g, t)
    # the same architecture untrained (calibrated BN on random clouds), for the data dependence of the exit
    cal = calibrated_model(name, (getattr(model, "onebit_config", None) or {}).get("binarize") or "bipointnet")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        export(model, Path(tmp) / "m.onebit", points=1024)
        export(cal, Path(tmp) / "cal.onebit", points=1024)
        eng, eng_cal = load(Path(tmp) / "m.onebit"), load(Path(tmp) / "cal.onebit")
        acc = float((eng.run(pts, threads=1).argmax(-1) == lab).mean())
        cases = {"engine (trained, ModelNet40 clouds)": lambda i: eng.run(pts[i:i + 1], 1),
                 "engine (trained, Gaussian clouds)": lambda i: eng.run(rand[i:i + 1], 1),
                 "engine (untrained, ModelNet40 clouds)": lambda i: eng_cal.run(pts[i:i + 1], 1),
                 "torch-fp32-pm (ModelNet40 clouds)": lambda i: pm(torch.from_numpy(pts[i:i + 1]))}
        samples = {k: [] for k in cases}
        with torch.inference_mode():
            for _ in range(2 if quick else 3):  # interleaved: every case on every cloud, in turn
                for i in range(n_clouds):
                    for k, fn in cases.items():
                        samples[k].append(_block_ms(functools.partial(fn, i), 0.02)[1])  # thread CPU ms per call
    for k, v in samples.items():
        rows.append({"section": "realdata", "model": name, "runner": k, "threads": 1, "batch": 1, "points": 1024,
                     "median_ms": round(statistics.median(v), 4), "min_ms": round(min(v), 4),
                     "max_ms": round(max(v), 4), "cpu_median_ms": round(statistics.median(v), 4),
                     "clouds": n_clouds, "engine_accuracy_on_clouds": round(100 * acc, 2),
                     "checkpoint": str(checkpoint)})
        print(json.dumps(rows[-1]), flush=True)
    return rows


def _targets(rows) -> list[str]:
    """The issue's targets, each with the measured value (wall median; thread-CPU in brackets)."""
    def find(model, runner, threads, batch, section="models"):
        return next((r for r in rows if r.get("section") == section and r.get("model") == model
                     and r.get("runner") == runner and r.get("threads") == threads and r.get("batch") == batch), None)

    def best_fp(model, threads, batch):
        c = [r for r in rows if r.get("section") == "models" and r.get("model") == model
             and str(r.get("runner", "")).startswith("torch-fp32") and r["threads"] == threads and r["batch"] == batch]
        return (min(c, key=lambda r: r["median_ms"]), min(c, key=lambda r: r["cpu_median_ms"])) if c else (None, None)

    lines = ["## Targets", "", "| target | measured | met? |", "|---|---|---|"]
    e = find("pointnet_deploy", "engine", 1, 1)
    if e:
        us_w, us_c = 1e3 * e["median_ms"], 1e3 * e["cpu_median_ms"]
        lines.append(f"| pointnet_deploy, batch 1, 1 thread ≤ 190 µs (stretch 150) | {us_w:.0f} µs wall "
                     f"[{1e3 * e['min_ms']:.0f}–{1e3 * e['max_ms']:.0f}], {us_c:.0f} µs cpu | "
                     f"{'yes' if us_w <= 190 else 'cpu: yes' if us_c <= 190 else 'no'} |")
        bw, bc = best_fp("pointnet_deploy", 1, 1)
        if bw:
            sw, sc = bw["median_ms"] / e["median_ms"], bc["cpu_median_ms"] / e["cpu_median_ms"]
            lines.append(f"| ≥ 20× best FP32 PyTorch, same net, batch 1, 1 thread | {sw:.1f}× wall, {sc:.1f}× cpu "
                         f"({bw['runner']}) | {'yes' if min(sw, sc) >= 20 else 'partly' if max(sw, sc) >= 20 else 'no'} |")
        lines.append(f"| file ≤ 150 KB (fixed 1024 points) | {e['file_bytes']:,} B | {'yes' if e['file_bytes'] <= 150_000 else 'no'} |")
    rd = [r for r in rows if r.get("section") == "realdata" and r.get("model") == "pointnet_deploy"]
    er = next((r for r in rd if r["runner"].startswith("engine (trained, ModelNet40")), None)
    fr = next((r for r in rd if r["runner"].startswith("torch")), None)
    if er and fr:
        us = 1e3 * er["median_ms"]
        lines.append(f"| same, trained checkpoint on real ModelNet40 test clouds: ≤ 190 µs (stretch 150) | {us:.0f} µs cpu "
                     f"[{1e3 * er['min_ms']:.0f}–{1e3 * er['max_ms']:.0f}] | {'yes' if us <= 150 else 'yes (not the stretch)' if us <= 190 else 'no'} |")
        sp = fr["median_ms"] / er["median_ms"]
        lines.append(f"| same, ≥ 20× the FP32 twin (points-major) on those clouds | {sp:.1f}× cpu | {'yes' if sp >= 20 else 'no'} |")
    c = next((r for r in rows if r.get("section") == "table4" and str(r.get("variant", "")).startswith("(c)")), None)
    if c:
        lines.append(f"| file ≤ 110 KB with the last layer binary | {c['file_bytes']:,} B | "
                     f"{'yes' if c['file_bytes'] <= 110_000 else 'no'} |")
    for k, goal in ((128, 650), (1024, 1000)):
        for out in ("bits", "or-pooled"):
            r = next((r for r in rows if r.get("section") == "kernels" and r["isa"] == "avx512" and r["threads"] == 1
                      and r["K"] == k and r.get("output", "bits") == out), None)
            if r:
                ok = 'yes' if r['gmacs_wall'] >= goal else 'cpu: yes' if (r['gmacs_cpu'] or 0) >= goal else 'no'
                lines.append(f"| AVX-512 kernel ≥ {goal / 1000:.2f} T bit-MAC/s at K = {k} ({out}) | "
                             f"{r['gmacs_wall']:.0f} G wall, {r['gmacs_cpu']:.0f} G cpu | {ok} |")
    for model, t, b, goal in (("pointnet_deploy", 2, 32, 15), ("pointnet", 1, 1, 15), ("pointnet", 2, 32, 15)):
        e2 = find(model, "engine", t, b)
        bw, bc = best_fp(model, t, b)
        if e2 and bw:
            sw, sc = bw["median_ms"] / e2["median_ms"], bc["cpu_median_ms"] / e2["cpu_median_ms"]
            lines.append(f"| {model}, batch {b}, {t} thread(s) ≥ {goal}× best FP32 | {sw:.1f}× wall, {sc:.1f}× cpu | "
                         f"{'yes' if sw >= goal else 'cpu: yes' if sc >= goal else 'no'} |")
    return lines + [""]


def _speedup(r: dict, eng: dict | None) -> str:
    """'wall / cpu' speed-up of the engine row over row r (empty for the engine itself)."""
    if not eng or r is eng:
        return ""
    return f"{r['median_ms'] / eng['median_ms']:.1f}x / {r['cpu_median_ms'] / eng['cpu_median_ms']:.1f}x"


def _top_ops(prof: list[dict], key) -> list[str]:
    """One line per model (``key(row)`` groups rows): total engine time and its six largest ops."""
    lines = []
    for k in dict.fromkeys(key(r) for r in prof):
        grp = sorted([r for r in prof if key(r) == k], key=lambda r: -r["cpu_us"])
        tot = sum(r["cpu_us"] for r in grp) or 1
        top = ", ".join(f"{r['op']} {r['cpu_us']:.0f} ({100 * r['cpu_us'] / tot:.0f}%)" for r in grp[:6])
        lines.append(f"* {' '.join(k) if isinstance(k, tuple) else k}: total {tot:.0f} µs; {top}")
    return lines + [""]


def report(raw_path: Path, md_path: Path, png_path: Path | None = None) -> None:
    """Render docs/results/engine.md (and the Table 4 speed/size figure) from the raw rows."""
    rows = json.loads(Path(raw_path).read_text())
    meta = next((r for r in rows if r.get("section") == "meta"), {})
    cpu = meta.get("cpu", "?")
    flags = ", ".join(meta.get("flags", [])) or "?"
    out = ["# onebit engine: measured results", "",
           f"Measured {meta.get('date', '?')} on {meta.get('vcpus', '?')} vCPUs of {cpu} (flags: {flags}; engine "
           f"ISA {meta.get('engine_isa', '?')}), load average {meta.get('loadavg_end', ['?'])[0]} at the end of the "
           f"run, torch {meta.get('torch', '?')}, {meta.get('seconds', '?')} s. Reproduce with "
           "`python benchmarks/engine.py --raw /tmp/engine.raw.json && python benchmarks/engine.py --report "
           "/tmp/engine.raw.json` (add `--checkpoint CKPT` and the `realdata` section for a trained model). "
           "Latency = median over interleaved rounds (range in brackets); *cpu* = CPU time of the calling thread, "
           "the better estimate of 1-thread cost on a shared host. Speed-up = FP32 time / engine time, same column "
           "(wall or cpu), same threads and batch. Figures from other hosts differ: rerun the command.", ""]
    out += _targets(rows)
    kern = [r for r in rows if r.get("section") == "kernels"]
    if kern:
        out += ["## Binary GEMM kernels (M = 1024 points, N = 1024 outputs)", "",
                "*bits*: thresholded, packed bit output per point (a hidden layer); *or-pooled*: max pool over the "
                "points before a sign, i.e. an OR of the per-point bits (a min of popcounts), with a threshold no "
                "point reaches so the early exit never fires (the kernel's full-scan rate).", "",
                "| ISA | threads | K | output | µs (wall) | µs (cpu) | G bit-MAC/s (wall) | G bit-MAC/s (cpu) |",
                "|---|---|---|---|---|---|---|---|"]
        for r in kern:
            out.append(f"| {r['isa']} | {r['threads']} | {r['K']} | {r.get('output', 'bits')} | {r['wall_us']:.0f} | "
                       f"{r['cpu_us']:.0f} | "
                       f"{r['gmacs_wall']:.0f} | {r['gmacs_cpu'] if r['gmacs_cpu'] is not None else '—'} |")
        out.append("")
    lat = [r for r in rows if r.get("section") == "models"]
    if lat:
        out += ["## Latency: FP32 PyTorch vs the engine (1024 points, bipointnet preset)", "",
                "| model | threads | batch | runner | median ms [min–max] | cpu ms | file bytes | speed-up (wall / cpu) |",
                "|---|---|---|---|---|---|---|---|"]
        for key in sorted({(r["model"], r["threads"], r["batch"]) for r in lat},
                          key=lambda k: (["pointnet_deploy", "pointnet_vanilla", "pointnet"].index(k[0])
                                         if k[0] in ("pointnet_deploy", "pointnet_vanilla", "pointnet") else 9, k[1], k[2])):
            grp = [r for r in lat if (r["model"], r["threads"], r["batch"]) == key]
            eng = next((r for r in grp if r["runner"] == "engine"), None)
            for r in grp:
                out.append(f"| {r['model']} | {r['threads']} | {r['batch']} | {r['runner']} | {r['median_ms']:.3f} "
                           f"[{r['min_ms']:.3f}–{r['max_ms']:.3f}] | {r['cpu_median_ms']:.3f} | {r['file_bytes']:,} | "
                           f"{_speedup(r, eng)} |")
        out.append("")
    t4 = [r for r in rows if r.get("section") == "table4" and "runner" in r]
    if t4:
        fp = next((r for r in t4 if r["runner"] != "engine"), None)
        out += ["## BiPointNet Table 4 on pointnet_deploy (batch 1, 1 thread, 1024 points)", "",
                "| variant | median ms [min–max] | cpu ms | bytes | size ratio | speed-up vs FP32 (wall / cpu) | accuracy |",
                "|---|---|---|---|---|---|---|"]
        for r in t4:
            ratio = f"{fp['file_bytes'] / r['file_bytes']:.1f}x" if fp else ""
            sp = (f"{fp['median_ms'] / r['median_ms']:.1f}x / {fp['cpu_median_ms'] / r['cpu_median_ms']:.1f}x"
                  if fp and r is not fp else "1x")
            acc = "—" if r.get("accuracy") is None else f"{r['accuracy']:.2f}"
            out.append(f"| {r['variant']} | {r['median_ms']:.3f} [{r['min_ms']:.3f}–{r['max_ms']:.3f}] | "
                       f"{r['cpu_median_ms']:.3f} | {r['file_bytes']:,} | {ratio} | {sp} | {acc} |")
        out.append("")
        if png_path is not None and fp:
            import matplotlib

            matplotlib.use("Agg")
            import matplotlib.pyplot as plt

            with_acc = [r for r in t4 if r.get("accuracy") is not None]
            fig, ax = plt.subplots(figsize=(6, 4))
            if with_acc:  # the paper's speed-accuracy figure: latency vs ModelNet40 accuracy, size as marker area
                for r in with_acc:
                    ax.scatter(r["cpu_median_ms"], r["accuracy"], s=20 + r["file_bytes"] / 5e3)
                    ax.annotate(f"{r['variant'].split(' ')[0]} {r['file_bytes'] / 1e3:.0f} KB",
                                (r["cpu_median_ms"], r["accuracy"]))
                ax.set_xscale("log")
                ax.set_xlabel("latency, ms (thread CPU time, batch 1, 1 thread, 1024 points)")
                ax.set_ylabel("ModelNet40 test OA, % (trained checkpoints, test draw 0)")
                ax.set_title("BiPointNet Table 4 variants: speed vs accuracy (marker area: file size)")
            else:
                for r in t4:
                    ax.scatter(r["cpu_median_ms"], r["file_bytes"] / 1e3)
                    ax.annotate(r["variant"].split(" ")[0], (r["cpu_median_ms"], r["file_bytes"] / 1e3))
                ax.set_xscale("log")
                ax.set_yscale("log")
                ax.set_xlabel("latency, ms (thread CPU time, batch 1, 1 thread)")
                ax.set_ylabel("file size, KB")
                ax.set_title("BiPointNet Table 4 variants, this machine (untrained)")
            fig.tight_layout()
            fig.savefig(png_path, dpi=110)
            plt.close(fig)
            out += [f"![Table 4 variants: speed vs accuracy and size]({png_path.name})", ""]
    prof = [r for r in rows if r.get("section") == "profile"]
    if prof:
        out += ["## Where the engine's time goes (native per-op timers, thread CPU time, batch 1, 1 thread)", "",
                "| model | op | µs | share |", "|---|---|---|---|"]
        for model in dict.fromkeys(r["model"] for r in prof):
            grp = [r for r in prof if r["model"] == model]
            tot = sum(r["cpu_us"] for r in grp) or 1
            for r in grp:
                out.append(f"| {model} | {r['op']} | {r['cpu_us']:.1f} | {100 * r['cpu_us'] / tot:.0f}% |")
        out.append("")
    sk = [r for r in rows if r.get("section") == "sketches"]
    if sk:
        out += ["## Sketch models (batch 1, 1 thread, 225×225 / 224×224 single-channel images)", "",
                "| model | preset | runner | median ms [min–max] | cpu ms | file bytes | speed-up (wall / cpu) |",
                "|---|---|---|---|---|---|---|"]
        for key in dict.fromkeys((r["model"], r["preset"]) for r in sk):
            grp = [r for r in sk if (r["model"], r["preset"]) == key]
            eng = next((r for r in grp if r["runner"] == "engine"), None)
            for r in grp:
                out.append(f"| {r['model']} | {r['preset']} | {r['runner']} | {r['median_ms']:.3f} "
                           f"[{r['min_ms']:.3f}–{r['max_ms']:.3f}] | {r['cpu_median_ms']:.3f} | {r['file_bytes']:,} | "
                           f"{_speedup(r, eng)} |")
        out.append("")
        skp = [r for r in rows if r.get("section") == "sketch_profile"]
        if skp:
            out += ["Engine per-op time, sketch models (thread CPU time, top ops, µs):", ""]
            out += _top_ops(skp, lambda r: (r["model"], r["preset"]))
    geo = [r for r in rows if r.get("section") == "geometric"]
    if geo:
        out += ["## DGCNN and PointNet++ (bipointnet preset, batch 1, 1 thread, 1024 points)", "",
                "The FP32 twin runs eager: these graphs (kNN, FPS, ball query, grouping) have no points-major "
                "linear chain. The engine runs kNN / FPS / ball query / grouping natively "
                "(`csrc/geometry_ops.cpp`).", "",
                "| model | runner | median ms [min–max] | cpu ms | file bytes | speed-up (wall / cpu) |",
                "|---|---|---|---|---|---|"]
        for model in dict.fromkeys(r["model"] for r in geo):
            grp = [r for r in geo if r["model"] == model]
            eng = next((r for r in grp if r["runner"] == "engine"), None)
            for r in grp:
                out.append(f"| {model} | {r['runner']} | {r['median_ms']:.3f} [{r['min_ms']:.3f}–{r['max_ms']:.3f}] | "
                           f"{r['cpu_median_ms']:.3f} | {r['file_bytes']:,} | {_speedup(r, eng)} |")
        out.append("")
        gp = [r for r in rows if r.get("section") == "geometric_profile"]
        if gp:
            out += ["Engine per-op time (thread CPU time, top ops, µs):", ""]
            out += _top_ops(gp, lambda r: r["model"])
    rd = [r for r in rows if r.get("section") == "realdata"]
    if rd:
        fp = next((r for r in rd if r["runner"].startswith("torch")), None)
        out += [f"## A trained checkpoint on real ModelNet40 test clouds (batch 1, 1 thread, {rd[0]['clouds']} clouds)",
                "", f"Checkpoint `{rd[0]['checkpoint']}` ({rd[0]['model']}); the engine's accuracy on these clouds: "
                f"{rd[0]['engine_accuracy_on_clouds']:.1f} %. Thread CPU time per cloud, median over clouds and "
                "rounds (range in brackets).", "",
                "| runner | median ms [min–max] | speed-up vs FP32 |", "|---|---|---|"]
        for r in rd:
            sp = f"{fp['median_ms'] / r['median_ms']:.1f}x" if fp and r is not fp else ""
            out.append(f"| {r['runner']} | {r['median_ms']:.3f} [{r['min_ms']:.3f}–{r['max_ms']:.3f}] | {sp} |")
        out.append("")
    out += _notes(rows)
    Path(md_path).write_text("\n".join(out) + "\n")


def _notes(rows) -> list[str]:
    prof = [r for r in rows if r.get("section") == "profile" and r.get("model") == "pointnet_deploy"]
    top = max(prof, key=lambda r: r["cpu_us"]) if prof else None
    share = f"{100 * top['cpu_us'] / sum(r['cpu_us'] for r in prof):.0f}%" if top else "?"
    meta = next((r for r in rows if r.get("section") == "meta"), {})
    bf16 = "avx512_bf16" in meta.get("flags", [])
    return [
        "## Reading these numbers", "",
        _kernel_note(rows),
        f"* **Where the time goes.** The pooled 128→1024 layer ({top['op'] if top else '?'}) is {share} of the "
        "pointnet_deploy forward. It never stores its 1024×1024 output: the max pool before a sign is an OR of "
        "per-point bits, i.e. a running minimum of popcounts per channel (docs/runtime.md).",
        "* **Data-dependent savings (exact).** Two things make real clouds cheaper than the random clouds of the "
        "latency table: (1) duplicate rows — after the first binarized layer many points share the same code "
        "(a median 51 % of the points of 32 ModelNet40 test clouds, 21 % of Gaussian clouds; `python benchmarks/distinct_codes.py --checkpoint CKPT`), and every later per-point layer up to the max/OR pool runs once per "
        "distinct code; (2) the OR pool's early exit with compaction — a pooled channel stops scanning points once "
        "one point sets it, and the still-unset channels are regrouped into dense panels between stages. Both are "
        "exact (tests compare against the uncompacted debug run bit for bit). The realdata section measures them "
        "on a trained checkpoint; the latency table uses Gaussian clouds and an untrained, calibrated model, "
        "which benefit less.",
        "* **FP32 baselines.** `torch-fp32-pm` is the FP32 net of the same architecture with BN folded, run as a "
        "points-major addmm chain (the best PyTorch FP32 measured; torch.compile and TorchScript freeze were not "
        "faster at batch 1 in notes/engine-performance.md). `torch-fp32-pm-loop` runs a batch one cloud at a time "
        "(faster at batch 32, whose batched activations leave the cache). "
        + ("bf16 is native on this CPU; `torch-bf16-pm` is listed but is not FP32." if bf16 else
           "This host's CPU flags have no AVX512-BF16, so torch's bf16 matmul is emulated and slower than FP32 "
           "(`torch-bf16-pm`); it is not a useful baseline here."),
        "* **Threads.** `GOMP_SPINCOUNT=20000` for torch and the engine alike: with libgomp's default long spin an "
        "idle worker keeps spinning after each parallel region and steals the core from the next runner on a "
        "2-vCPU host. At batch 1 the engine splits points (bit outputs) or channel panels (OR pools) across "
        "threads; at batch 32 clouds go to threads.",
        "* The *cpu* column is the calling thread's CPU time: meaningful for 1-thread rows; for 2-thread rows it "
        "leaves out the second thread, so compare wall times there.",
        "* `pointnet` (T-Nets): three pooled 128→1024 layers (input T-Net, feature T-Net, main), two float "
        "transforms (bmm) and the float 3→64 layer whose output feeds both a float bmm and the binary T-Net.",
        "* File sizes are for exports with a fixed point count (`--points 1024`), where EMA-max's offset folds "
        "into integer bounds; without it the pooled layer keeps a float scale and bias per channel so the "
        "runtime can fold δ*(n) for any n (about 6 KB more for pointnet_deploy).",
        _table4_note(rows),
        "",
    ]


def _kernel_note(rows) -> str:
    """The kernel-rate note, from this run's AVX-512 rows (the ceiling depends on the core: how many 512-bit
    integer ops it issues per cycle, and its clock)."""
    k = [r for r in rows if r.get("section") == "kernels" and r.get("isa") == "avx512"]
    one = [r["gmacs_wall"] for r in k if r["threads"] == 1]
    two = [r["gmacs_wall"] for r in k if r["threads"] == 2]
    if not one:
        return "* **Kernel rate.** No AVX-512 kernel rows in this run."
    return ("* **Kernel rate.** A binary MAC costs xor + popcount + add per 512-bit word: three vector ops, so the "
            "rate is set by how many 512-bit integer ops a core issues per cycle, and by its clock. Here one thread "
            f"runs {min(one):.0f}–{max(one):.0f} G bit-MAC/s over K = 64…1024 and both output forms"
            + (f", two threads {min(two):.0f}–{max(two):.0f} G" if two else "")
            + ": flat in K, so the kernels are compute-bound, not memory-bound. (An Intel Xeon host with two "
            "512-bit integer ops per cycle at 3.05 GHz measured about 1.0 T per thread on 2026-11-25.)")


def _table4_note(rows) -> str:
    """The Table 4 note: where its accuracies come from (the rows say which checkpoint each has)."""
    t4 = [r for r in rows if r.get("section") == "table4" and "runner" in r]
    trained = [r["variant"].split(" ")[0] for r in t4 if r.get("accuracy") is not None]
    untrained = [r["variant"].split(" ")[0] for r in t4 if r.get("accuracy") is None]
    pts = sorted({r["accuracy_points"] for r in t4 if r.get("accuracy_points")})
    if not trained:
        return "* Table 4: no trained checkpoints were given (`--table4-runs`), so the variants are timed untrained."
    return ("* **Table 4 accuracy.** The variants' trained checkpoints of the ModelNet40 campaign "
            "(`python benchmarks/bipointnet_modelnet40.py --rows deploy_fp,deploy_bipointnet,deploy_ll_binary,"
            "deploy_no_bn_unit --epochs 100 --points 256`, docs/results/bipointnet.md), passed with `--table4-runs "
            "~/onebit-runs/bipointnet_modelnet40`: " + ", ".join(trained) + ". Each is measured at its training point "
            f"count ({', '.join(map(str, pts))}) on the fixed test draw 0, the campaign's `oa_draws[0]`: the engine for "
            "the binary variants, PyTorch FP32 for (a). Latency and size are at 1,024 points, the paper's setting. "
            + (f"No trained model for {', '.join(untrained)}: timed untrained (calibrated BN). " if untrained else "")
            + "With the first layer binarized ((d), (e)) a point's code is the sign of its xyz, at most 8 distinct "
            "rows, so duplicate compaction skips almost all the work; the paper reports that accuracy collapses (5.31 and 4.86 %).")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--sections", default="kernels,models,table4,profile,sketches,geometric",
                    help="comma list: kernels, models, table4, profile, sketches, geometric, realdata (needs "
                         "--checkpoint)")
    ap.add_argument("--checkpoint", default=None)
    ap.add_argument("--table4-runs", default=str(ROOT / "runs" / "table4"),
                    help="run directories of the trained Table 4 variants (benchmarks/bipointnet_modelnet40.py "
                         "--runs DIR --rows deploy_fp,deploy_bipointnet,...); missing ones are timed untrained")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "engine.json"))
    ap.add_argument("--raw", default=None, metavar="FILE", help="also write all rows (kernels, profile, meta) to FILE")
    ap.add_argument("--report", default=None, metavar="RAW",
                    help="render docs/results/engine.md (+ engine_table4.png) from a --raw FILE and exit")
    args = ap.parse_args(argv)
    if args.report:
        md = ROOT / "docs" / "results" / "engine.md"
        md.parent.mkdir(parents=True, exist_ok=True)
        report(Path(args.report), md, md.with_name("engine_table4.png"))
        print(f"wrote {md}")
        return 0
    # short OpenMP spin before sleeping, for torch and the engine alike: with the default long spin, 2-thread
    # runs on this shared, oversubscribed host spend milliseconds per barrier (measured: 32 ms vs 0.8 ms)
    os.environ.setdefault("GOMP_SPINCOUNT", "20000")
    import torch

    torch.set_num_threads(1)
    rows: list[dict] = []
    t0 = time.time()
    for sec in args.sections.split(","):
        sec = sec.strip()
        if sec == "kernels":
            rows += kernels(args.quick)
        elif sec == "models":
            rows += models(args.quick)
        elif sec == "table4":
            rows += table4(args.quick, args.checkpoint, Path(args.table4_runs) if args.table4_runs else None)
        elif sec == "profile":
            rows += profile(args.quick)
        elif sec == "sketches":
            rows += sketches(args.quick)
        elif sec == "geometric":
            rows += geometric(args.quick)
        elif sec == "realdata":
            if not args.checkpoint:
                print("section realdata needs --checkpoint (a trained point model)", file=sys.stderr)
                return 2
            rows += realdata(args.checkpoint, args.quick)
        else:
            print(f"unknown section {sec!r}", file=sys.stderr)
            return 2
    meta = {"host": platform.node(), "python": platform.python_version(), "torch": torch.__version__, **machine(),
            "loadavg_end": [round(v, 1) for v in os.getloadavg()],
            "seconds": round(time.time() - t0, 1), "date": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())}
    # engine.json: the latency rows (model, runner, threads, batch, points, median/min/max ms, file bytes)
    latency = [dict(r, date=meta["date"]) for r in rows
               if r.get("section") in ("models", "table4", "sketches", "geometric", "realdata") and "runner" in r]
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(latency, indent=1))
    # everything (kernel rates, per-op profile, meta) for docs/results/engine.md
    raw = Path(args.raw) if args.raw else None
    if raw:
        raw.write_text(json.dumps(rows + [dict(meta, section="meta")], indent=1))
    print(f"wrote {out} ({len(latency)} latency rows, {meta['seconds']} s)" + (f" and {raw}" if raw else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
