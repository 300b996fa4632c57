"""``onebit bench [CHECKPOINT | --model NAME] --threads T --batch B --points N [--json FILE]``.

``--model sketch_a_net`` / ``--model resnet18`` benchmark the image models on sketch-like images
(``--input-size``, ``--width``; default preset dab-fbin with the plain sign input) against the
binarized model and its FP32 twin in eager PyTorch."""

from __future__ import annotations

import argparse
import json
import sys


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "bench", help="latency of FP32 PyTorch vs the onebit 1-bit engine (same machine, interleaved rounds)",
        description="Benchmark a checkpoint (or a calibrated untrained model, default pointnet_deploy "
                    "binarized with the bipointnet preset) against FP32 PyTorch: eager, and BN folded + "
                    "points-major addmm (whole batch and one cloud at a time). Rounds are interleaved; "
                    "median and range are reported. --profile adds the engine's per-op native timers.")
    p.add_argument("checkpoint", nargs="?", default=None, help="a .ckpt file (default: --model)")
    p.add_argument("--model", default="pointnet_deploy", help="model name when no checkpoint is given")
    p.add_argument("--binarize", default=None,
                   help="preset for --model (default: bipointnet; sketch_a_net: dab-fbin with input=ste_sign)")
    p.add_argument("--input-size", type=int, default=None,
                   help="sketch_a_net / resnet18: input size (default 225 / 224)")
    p.add_argument("--width", type=float, default=1.0, help="sketch_a_net / resnet18: channel width multiplier")
    p.add_argument("--preact", action="store_true", default=None,
                   help="sketch_a_net / resnet18: force the FBin block order BN -> conv (default: the preset's)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--points", type=int, default=1024)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--min-block", type=float, default=0.1, help="seconds per timed block")
    p.add_argument("--runners", default="torch-eager,torch-fp32-pm,torch-fp32-pm-loop,engine",
                   help="comma list of torch-eager, torch-fp32-pm, torch-fp32-pm-loop, torch-bf16-pm, engine")
    p.add_argument("--isa", choices=("avx512", "avx2", "scalar"), default=None)
    p.add_argument("--profile", action="store_true", help="print the engine's per-op time")
    p.add_argument("--json", default=None, metavar="FILE", help="write the rows as a JSON list")
    p.set_defaults(func=run)


def _bench_model(args, calibrated_model):
    if args.model in ("sketch_a_net", "resnet18"):
        from onebit.convert import resolve_spec

        spec = args.binarize or resolve_spec("dab-fbin", input="ste_sign")
        opts = {"preact": True} if args.preact else {}
        if args.model == "sketch_a_net":
            opts["input_size"] = args.input_size or 225
            return calibrated_model("sketch_a_net", spec, num_classes=250, width=args.width, **opts)
        from onebit.models import create

        model = create("resnet18", 250, binarize=spec, width=args.width, **opts)
        model.input_size = args.input_size or 224  # read by the exporter and the benchmark's inputs
        return calibrated_model(model, spec)
    return calibrated_model(args.model, args.binarize or "bipointnet")


def run(args: argparse.Namespace) -> int:
    import os

    # short OpenMP spin before sleeping (torch and the engine): a shared host makes long spins very costly
    os.environ.setdefault("GOMP_SPINCOUNT", "20000")
    import torch

    from onebit.export import ExportError
    from onebit.export.bench import bench_model, calibrated_model

    torch.set_num_threads(args.threads)
    try:
        if args.checkpoint:
            from onebit.train.checkpoint import load_model

            model, _ = load_model(args.checkpoint)
        else:
            model = _bench_model(args, calibrated_model)
        runners = tuple(r.strip() for r in args.runners.split(",") if r.strip())
        rows = bench_model(model, threads=args.threads, batch=args.batch, points=args.points, rounds=args.rounds,
                           min_block_s=args.min_block, runners=runners, isa=args.isa)
    except (ExportError, ValueError, OSError) as e:
        print(f"onebit bench: {e}", file=sys.stderr)
        return 1
    from onebit.export.bench import geometric_note

    note = geometric_note(model)
    if note and any(r.startswith("torch-fp32-pm") or r.startswith("torch-bf16") for r in runners):
        print(note)
    eng = next((r for r in rows if r["runner"] == "engine"), None)
    torch_rows = [r for r in rows if r["runner"].startswith("torch-fp32")]
    best = min(torch_rows, key=lambda r: r["median_ms"]) if torch_rows else None
    print(f"{'model':18} {'runner':20} {'T':>2} {'B':>3} {'N':>5} {'median ms':>10} {'range ms':>19} "
          f"{'cpu ms':>8} {'bytes':>10} {'speed-up':>8}")
    for r in rows:
        sp = f"{r['median_ms'] / eng['median_ms']:.1f}x" if eng and r is not eng else ""
        print(f"{r['model']:18} {r['runner']:20} {r['threads']:>2} {r['batch']:>3} {r['points']:>5} "
              f"{r['median_ms']:>10.3f} {r['min_ms']:>9.3f}-{r['max_ms']:<9.3f} {r['cpu_median_ms']:>8.3f} "
              f"{r['file_bytes']:>10,} {sp:>8}")
    if eng and best:
        print(f"engine vs best FP32 PyTorch ({best['runner']}): {best['median_ms'] / eng['median_ms']:.1f}x "
              "(speed-up column: runner time / engine time)")
    if args.profile:
        import tempfile
        from pathlib import Path

        import numpy as np

        from onebit.export import export
        from onebit.runtime import load

        with tempfile.TemporaryDirectory() as tmp:
            export(model, Path(tmp) / "m.onebit")
            m = load(Path(tmp) / "m.onebit", isa=args.isa)
            if m.input_hw is not None:
                x = np.random.default_rng(0).random((args.batch, m.input_channels, *m.input_hw)).astype(np.float32)
            else:
                x = np.random.default_rng(0).normal(size=(args.batch, args.points, m.input_channels)).astype(np.float32)
            prof = m.profile(x, threads=args.threads, repeats=50)
        total = sum(us for _, us in prof) or 1.0
        print(f"\nengine per-op time (native timers, {m.isa}, µs per cloud):")
        for name, us in prof:
            print(f"  {name:28} {us:9.1f}  {100 * us / total:5.1f}%")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)
    return 0
