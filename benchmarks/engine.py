"""Benchmark of the onebit 1-bit engine vs FP32 PyTorch (writes benchmarks/results/engine.json).

    python benchmarks/engine.py [--quick] [--sections kernels,models,table4,profile] [--out FILE]

Sections:
* kernels: binary GEMM microbenchmark (M=1024 points, thresholded bit output) per ISA, K = 64…1024;
  G binary-MAC/s from wall time and from the calling thread's CPU time (the host is shared);
* models: pointnet_deploy / pointnet_vanilla / pointnet (bipointnet preset, calibrated BN), threads 1
  and 2, batch 1 and 32, 1024 points: torch eager, FP32 points-major (BN folded, addmm chain; whole
  batch and one cloud at a time), bf16 points-major (batch 1) and the engine, interleaved rounds;
* table4: BiPointNet Table 4 rows (a)-(f) on pointnet_deploy: time and size (accuracy needs a
  trained checkpoint: --checkpoint adds it on ModelNet40 test);
* profile: the engine's per-op native timers (thread CPU time) for each model.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def kernels(quick: bool) -> list[dict]:
    from onebit.runtime import _engine as E

    rows = []
    ks = (64, 128, 1024) if quick else (64, 128, 256, 512, 1024)
    for isa in E.supported_isas()[::-1]:
        for threads in ((1, 2) if isa == "avx512" else (1,)):
            for k in ks:
                n = 1024
                wall, cpu = E.bench_gemm(1024, n, k, isa, 5 if quick else 9, 0.05, threads)
                macs = 1024 * n * k
                rows.append({"section": "kernels", "isa": isa, "threads": threads, "M": 1024, "N": n, "K": k,
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


def table4(quick: bool, checkpoint: str | None) -> list[dict]:
    """BiPointNet Table 4 on pointnet_deploy: (a) FP32, (b) FL/LL float, (c) LL binary, (d) FL binary,
    (e) both binary, (f) no BN (LSR only; here BN set to identity, which the engine folds away)."""
    import torch

    from onebit.convert import resolve_spec
    from onebit.export.bench import bench_model, calibrated_model

    variants = {
        "(b) FL fp32, LL fp32": resolve_spec("bipointnet"),
        "(c) FL fp32, LL 1-bit": resolve_spec("bipointnet", keep_float=["first"]),
        "(d) FL 1-bit, LL fp32": resolve_spec("bipointnet", keep_float=["last"]),
        "(e) FL 1-bit, LL 1-bit": resolve_spec("bipointnet", keep_float=[]),
        "(f) no BN (LSR only)": resolve_spec("bipointnet"),
    }
    rows = []
    first = True
    for label, spec in variants.items():
        model = calibrated_model("pointnet_deploy", spec, seed=0, points=256)
        if label.startswith("(f)"):
            for m in model.modules():
                if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                    m.running_mean.zero_()
                    m.running_var.fill_(1.0 - m.eps)
                    m.weight.data.fill_(1.0)
                    m.bias.data.zero_()
        runners = ("torch-fp32-pm", "engine") if first else ("engine",)
        r = bench_model(model, threads=1, batch=1, points=1024, rounds=3 if quick else 7, min_block_s=0.1,
                        runners=runners, model_name="pointnet_deploy")
        for row in r:
            row["section"] = "table4"
            row["variant"] = "(a) FP32 (BN folded)" if row["runner"] != "engine" else label
            row["accuracy"] = None
            print(json.dumps(row), flush=True)
        rows += r
        first = False
    if checkpoint:
        rows.append({"section": "table4", "note": f"accuracy from {checkpoint} not evaluated in this version"})
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


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--sections", default="kernels,models,table4,profile")
    ap.add_argument("--checkpoint", default=None)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "engine.json"))
    ap.add_argument("--raw", action="store_true", help="also write all rows (kernels, profile) next to --out")
    args = ap.parse_args(argv)
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
            rows += table4(args.quick, args.checkpoint)
        elif sec == "profile":
            rows += profile(args.quick)
        else:
            print(f"unknown section {sec!r}", file=sys.stderr)
            return 2
    meta = {"host": platform.node(), "python": platform.python_version(), "torch": torch.__version__,
            "seconds": round(time.time() - t0, 1), "date": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())}
    # engine.json: the latency rows (model, runner, threads, batch, points, median/min/max ms, file bytes)
    latency = [dict(r, date=meta["date"]) for r in rows if r.get("section") in ("models", "table4") and "runner" in r]
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(latency, indent=1))
    # everything (kernel rates, per-op profile, meta) for docs/results/engine.md
    raw = out.with_name(out.stem + ".raw.json") if args.raw else None
    if raw:
        raw.write_text(json.dumps(rows + [dict(meta, section="meta")], indent=1))
    print(f"wrote {out} ({len(latency)} latency rows, {meta['seconds']} s)" + (f" and {raw}" if raw else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
