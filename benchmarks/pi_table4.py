"""BiPointNet's Table 4 timing on an ARM board (Raspberry Pi 4B): onebit-run on the pointnet_deploy variants.

BiPointNet measured its 14.7x speed-up (and 18.9x storage saving) on a Raspberry Pi 4B. This reproduces the
timing half on your board with onebit's NEON engine, in two steps.

1. On any machine with onebit and torch (``pip install -e .``), export the variants and their inputs:

       python benchmarks/pi_table4.py export --out pi_table4 [--runs runs/table4]

   (a) FP32 (pointnet_deploy without binarization, BN folded: the engine's float layers, NEON FMA GEMMs) and the
   binarized variants (b)-(f) of benchmarks/engine.py, trained if ``--runs`` holds their checkpoints (see
   benchmarks/bipointnet_modelnet40.py), else untrained with calibrated BatchNorms (same speed up to the OR
   pool's early exit, which depends on the data); 1024-point clouds: ModelNet40 test clouds if the data set is
   there, else Gaussian ones. Copy the ``pi_table4`` directory to the board.

2. On the board (64-bit OS, e.g. Raspberry Pi OS 64-bit: ``sudo apt install cmake g++ python3``), in a checkout of
   this repository:

       python3 benchmarks/pi_table4.py time --models pi_table4

   builds onebit-run (``cmake -S . -B build-pi -DCMAKE_BUILD_TYPE=Release``, target onebit-run; or pass
   ``--onebit-run PATH``, e.g. a binary cross-built with cmake/aarch64-linux-gnu.cmake) and times every variant:
   onebit-run on a batch of 1 cloud and on a batch of B (1 thread), best of ``--repeats`` runs each; the time
   per cloud is (t_B - t_1) / (B - 1), so process start-up and model loading cancel. Prints a markdown table (ms
   per cloud, speed-up over (a), file size and storage saving over (a)) and writes ``pi_table4/results.json``.
   Needs only Python's standard library on the board.

On an x86 host the same ``time`` step measures the AVX-512 / AVX2 engine; ``--wrapper "qemu-aarch64 -L
/usr/aarch64-linux-gnu"`` runs an aarch64 binary under qemu, which checks the steps but times nothing useful.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FP32 = "(a) FP32 (BN folded)"


def export(out: Path, runs: Path | None, points: int, batch: int) -> None:
    """Write the variants (<slug>.onebit), the inputs (x1.npy, xB.npy) and manifest.json into ``out``."""
    import numpy as np

    import onebit

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import engine as bench  # benchmarks/engine.py: the Table 4 variants, their checkpoints, ModelNet40 test

    out.mkdir(parents=True, exist_ok=True)
    variants = {FP32: "fp", **bench.table4_variants()}
    manifest = {"points": points, "batch": batch, "variants": []}
    for i, (label, spec) in enumerate(variants.items()):
        model = bench.table4_model(label, spec, runs)
        name = f"{'abcdef'[i]}.onebit"
        onebit.export(model, out / name)
        manifest["variants"].append({"label": label, "file": name, "bytes": (out / name).stat().st_size,
                                     "trained": bench.table4_checkpoint(label, runs) is not None})
        print(f"{label}: {name}, {(out / name).stat().st_size} bytes", flush=True)
    test = bench.modelnet_test(pick=1 + batch, points=points)
    if test is not None:
        clouds, manifest["clouds"] = test[0], "ModelNet40 test"
    else:
        clouds = np.random.default_rng(0).normal(size=(1 + batch, points, 3)).astype(np.float32)
        manifest["clouds"] = "Gaussian"
    np.save(out / "x1.npy", clouds[:1])
    np.save(out / "xB.npy", clouds[1:])
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1))
    print(f"wrote {out} ({manifest['clouds']} clouds, {points} points); copy it to the board")


def build_onebit_run(build_dir: Path) -> Path:
    """onebit-run from the CMake project, built natively (Release)."""
    if shutil.which("cmake") is None:
        sys.exit("cmake not found (sudo apt install cmake g++), or pass --onebit-run PATH")
    subprocess.run(["cmake", "-S", str(ROOT), "-B", str(build_dir), "-DCMAKE_BUILD_TYPE=Release",
                    "-DONEBIT_EXAMPLES=OFF"], check=True)
    subprocess.run(["cmake", "--build", str(build_dir), "--target", "onebit-run", "-j", str(os.cpu_count() or 2)],
                   check=True)
    return build_dir / "onebit-run"


def best_time(cmd: list[str], repeats: int, env: dict) -> float:
    """Best wall time of ``repeats`` runs of cmd (seconds)."""
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, env=env)
        best = min(best, time.perf_counter() - t0)
    return best


def time_variants(models: Path, runner: list[str], repeats: int, threads: int, isa: str | None) -> list[dict]:
    manifest = json.loads((models / "manifest.json").read_text())
    batch = manifest["batch"]
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), GOMP_SPINCOUNT="20000")
    extra = ["--threads", str(threads)] + (["--isa", isa] if isa else [])
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        out = str(Path(tmp) / "out.npy")
        for v in manifest["variants"]:
            model = str(models / v["file"])
            info = json.loads(subprocess.run(runner + ["--info", model] + (["--isa", isa] if isa else []),
                                             check=True, capture_output=True, text=True, env=env).stdout)
            run = runner + [model]
            t1 = best_time(run + [str(models / "x1.npy"), "--out", out] + extra, repeats, env)
            tb = best_time(run + [str(models / "xB.npy"), "--out", out] + extra, repeats, env)
            t1b = best_time(run + [str(models / "x1.npy"), "--out", out] + extra, repeats, env)  # drift check
            t1 = min(t1, t1b)
            rows.append({"variant": v["label"], "file": v["file"], "bytes": v["bytes"], "trained": v["trained"],
                         "isa": info.get("isa"), "ms_per_cloud": 1e3 * max(tb - t1, 0.0) / (batch - 1),
                         "process_ms_batch1": 1e3 * t1})
            print(json.dumps(rows[-1]), flush=True)
    return rows


def table(rows: list[dict], manifest: dict) -> str:
    fp = next((r for r in rows if r["variant"] == FP32), None)
    lines = [f"onebit-run, {manifest['points']} points, batch 1 ({manifest['clouds']} clouds), "
             f"ISA {rows[0]['isa']}, {platform.machine()}, {platform.node()}", "",
             "| variant | ms / cloud | speed-up vs (a) | file bytes | storage saving vs (a) | trained |",
             "|---|---|---|---|---|---|"]
    for r in rows:
        sp = f"{fp['ms_per_cloud'] / r['ms_per_cloud']:.1f}x" if fp and r["ms_per_cloud"] > 0 else "-"
        st = f"{fp['bytes'] / r['bytes']:.1f}x" if fp else "-"
        lines.append(f"| {r['variant']} | {r['ms_per_cloud']:.2f} | {sp} | {r['bytes']} | {st} | "
                     f"{'yes' if r['trained'] else 'no'} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    e = sub.add_parser("export", help="export the variants and inputs (needs onebit + torch)")
    e.add_argument("--out", type=Path, default=Path("pi_table4"))
    e.add_argument("--runs", type=Path, default=None,
                   help="run directories of trained variants (benchmarks/bipointnet_modelnet40.py --runs DIR)")
    e.add_argument("--points", type=int, default=1024)
    e.add_argument("--batch", type=int, default=64, help="clouds B of the large batch (per cloud: (t_B - t_1) / (B - 1))")
    t = sub.add_parser("time", help="time the exported variants with onebit-run (standard library only)")
    t.add_argument("--models", type=Path, default=Path("pi_table4"))
    t.add_argument("--onebit-run", type=Path, default=None, help="an onebit-run binary (default: build one)")
    t.add_argument("--build-dir", type=Path, default=ROOT / "build-pi")
    t.add_argument("--wrapper", default="", help='prefix for the binary, e.g. "qemu-aarch64 -L /usr/aarch64-linux-gnu"')
    t.add_argument("--repeats", type=int, default=7)
    t.add_argument("--threads", type=int, default=1)
    t.add_argument("--isa", default=None, help="force a kernel path (neon, scalar, ...); default: the best")
    args = ap.parse_args(argv)
    if args.cmd == "export":
        export(args.out, args.runs, args.points, args.batch)
        return 0
    exe = args.onebit_run or build_onebit_run(args.build_dir)
    runner = shlex.split(args.wrapper) + [str(exe)]
    rows = time_variants(args.models, runner, args.repeats, args.threads, args.isa)
    manifest = json.loads((args.models / "manifest.json").read_text())
    md = table(rows, manifest)
    print(md)
    (args.models / "results.json").write_text(json.dumps({"machine": platform.machine(), "node": platform.node(),
                                                          "rows": rows, "table": md}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
