"""Train-step time of vanilla PointNet, FP32 vs binarized (bipointnet preset), side by side.

One step = forward + cross-entropy + backward + Adam step on a (batch, points, 3) batch. Variants
are measured in interleaved rounds (this VM is shared and noisy) and reported as median and range:

- ``eager``: plain eager PyTorch (the trainer's default);
- ``bf16``: ``torch.autocast("cpu", torch.bfloat16)`` (config ``amp: true``);
- ``compile``: ``torch.compile(model)`` (config ``compile: true``), when a compiler is available;
- ``loader``: eager step with the batch coming from a DataLoader worker process (data loading off
  the main thread) instead of a pre-built tensor.

A profile of the binarized step attributes its time to quantizers, binary layers, pooling, BN.

    python benchmarks/train_step.py --rounds 5 --steps 3 --threads 2 \
        --out benchmarks/results/train_step.json

``--append`` keeps the file's earlier measurements: the run becomes one entry of its ``rows`` list
(same fields, plus ``cpu``, ``model`` and ``epoch_s``: the median step × the steps of one
ModelNet40 epoch, 9,843 shapes / batch), so before/after measurements of a speed-up and other
hosts sit side by side.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path

from onebit.train.allocator import ALLOCATOR_MODES, resolve_allocator

REPO = Path(__file__).resolve().parents[1]


def make(binarize, model="pointnet_vanilla", num_classes=40):
    from onebit.models import create

    return create(model, num_classes=num_classes, binarize=binarize)


class _Step:
    def __init__(self, model, batch, points, amp=False, compile_=False, loader=False):
        import torch

        self.model = model
        self.opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        self.amp = amp
        self.fwd = torch.compile(model) if compile_ else model
        g = torch.Generator().manual_seed(0)
        self.x = torch.randn(batch, points, 3, generator=g)
        self.y = torch.randint(0, 40, (batch,), generator=g)
        self.iter = None
        if loader:
            ds = torch.utils.data.TensorDataset(torch.randn(batch * 64, points, 3), torch.randint(0, 40, (batch * 64,)))
            self.dl = torch.utils.data.DataLoader(ds, batch_size=batch, shuffle=True, num_workers=1,
                                                  persistent_workers=True, prefetch_factor=2)
            self.iter = iter(self.dl)
        model.train()

    def __call__(self):
        import torch
        import torch.nn.functional as F

        if self.iter is not None:
            try:
                x, y = next(self.iter)
            except StopIteration:
                self.iter = iter(self.dl)
                x, y = next(self.iter)
        else:
            x, y = self.x, self.y
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.amp):
            out = self.fwd(x)
        loss = F.cross_entropy(out.float(), y)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        return float(loss)


def profile_breakdown(model, batch, points, steps=2):
    """Self CPU time of the binarized step grouped by the module kind that ran it (forward and
    backward via profiler stacks of module names), plus the top ops."""
    import torch
    import torch.nn.functional as F
    from torch.profiler import ProfilerActivity, profile, record_function

    from onebit.quantizers import Quantizer

    kinds = {}
    for name, m in model.named_modules():
        cls = type(m).__name__
        if isinstance(m, Quantizer):
            kinds[name] = f"quantizer:{cls}"
        elif "Pool" in cls or "pool" in name.split(".")[-1]:
            kinds[name] = f"pool:{cls}"
        elif cls.startswith("Binary"):
            kinds[name] = f"layer:{cls}"
        elif "BatchNorm" in cls:
            kinds[name] = "batchnorm"
        elif cls in ("Linear",):
            kinds[name] = "layer:Linear(fp)"
        elif cls in ("Hardtanh", "ReLU"):
            kinds[name] = "activation"
        elif "LSR" in cls:
            kinds[name] = f"lsr:{cls}"
    # wrap each leaf-ish module forward in a record_function so forward time is attributable
    handles = []
    for name, m in model.named_modules():
        if name in kinds:
            def pre(mod, inp, _n=name):
                mod._rf = record_function(f"onebit::{kinds[_n]}")
                mod._rf.__enter__()

            def post(mod, inp, out):
                mod._rf.__exit__(None, None, None)

            handles.append(m.register_forward_pre_hook(pre))
            handles.append(m.register_forward_hook(post))
    x = torch.randn(batch, points, 3)
    y = torch.randint(0, 40, (batch,))
    opt = torch.optim.Adam(model.parameters())
    model.train()
    F.cross_entropy(model(x), y).backward()  # warm-up (LSR init)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(steps):
            with record_function("onebit::forward"):
                out = model(x)
                loss = F.cross_entropy(out, y)
            with record_function("onebit::backward"):
                opt.zero_grad()
                loss.backward()
            with record_function("onebit::optimizer"):
                opt.step()
    for h in handles:
        h.remove()
    groups = defaultdict(float)
    for e in prof.key_averages():
        if e.key.startswith("onebit::"):
            groups[e.key[len("onebit::"):]] += e.cpu_time_total / 1e3 / steps  # inclusive, ms per step
    top = sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)[:12]
    return {
        "inclusive_ms_per_step": {k: round(v, 2) for k, v in sorted(groups.items(), key=lambda kv: -kv[1])},
        "top_ops_self_ms_per_step": {e.key: round(e.self_cpu_time_total / 1e3 / steps, 2) for e in top},
        "note": "forward-only groups are inclusive (nested groups overlap); backward/optimizer are whole phases",
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--points", type=int, default=1024)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--steps", type=int, default=3, help="timed steps per variant per round")
    p.add_argument("--variants", default="eager,bf16,compile,loader")
    p.add_argument("--no-profile", action="store_true")
    p.add_argument("--model", default="pointnet_vanilla", help="pointnet_vanilla, pointnet, pointnet_deploy")
    p.add_argument("--binarize", default="bipointnet", help="the binarized variant's preset")
    p.add_argument("--allocator", default="auto", choices=ALLOCATOR_MODES,
                   help="host malloc as the trainer's config 'allocator' (onebit.train.allocator)")
    p.add_argument("--append", action="store_true",
                   help="add this run to the file's 'rows' list instead of replacing the file")
    p.add_argument("--out", default=str(REPO / "benchmarks/results/train_step.json"))
    args = p.parse_args(argv)

    import torch

    torch.set_num_threads(args.threads)
    malloc_reuse = resolve_allocator(args.allocator, torch.device("cpu"))  # what the trainer does
    torch.manual_seed(0)
    variants = [v for v in args.variants.split(",") if v]
    setups = {}
    skipped = {}
    for prec, binarize in (("fp32", None), ("binary", args.binarize)):
        for v in variants:
            key = f"{prec}/{v}"
            try:
                step = _Step(make(binarize, args.model), args.batch, args.points, amp=v == "bf16", compile_=v == "compile",
                             loader=v == "loader")
                step()  # warm-up (compilation, LSR data init, allocator)
                step()
                setups[key] = step
            except Exception as e:  # e.g. torch.compile without a working C++ toolchain
                skipped[key] = f"{type(e).__name__}: {str(e).splitlines()[0][:200]}"
                print(f"skip {key}: {skipped[key]}", file=sys.stderr)
    times = defaultdict(list)
    for r in range(args.rounds):
        for key, step in setups.items():
            for _ in range(args.steps):
                t0 = time.perf_counter()
                step()
                times[key].append(time.perf_counter() - t0)
        print(f"round {r + 1}/{args.rounds}: " + ", ".join(
            f"{k}={statistics.median(v[-args.steps:]):.3f}s" for k, v in times.items()), file=sys.stderr)
    result = {
        "benchmark": f"{args.model} train step (fwd + CE + bwd + Adam), binary = {args.binarize}",
        "batch": args.batch, "points": args.points, "threads": args.threads, "rounds": args.rounds,
        "steps_per_round": args.steps, "torch": torch.__version__, "allocator": args.allocator,
        "malloc_reuse": malloc_reuse,
        "command": f"python benchmarks/train_step.py --rounds {args.rounds} --steps {args.steps} "
                   f"--threads {args.threads} --batch {args.batch} --points {args.points} --variants {args.variants}"
                   + (f" --model {args.model}" if args.model != "pointnet_vanilla" else "")
                   + (f" --binarize {args.binarize}" if args.binarize != "bipointnet" else "")
                   + (f" --allocator {args.allocator}" if args.allocator != "auto" else "")
                   + (" --no-profile" if args.no_profile else "") + (" --append" if args.append else ""),
        "variants": {k: {"median_s": round(statistics.median(v), 4), "min_s": round(min(v), 4),
                         "max_s": round(max(v), 4), "n": len(v)} for k, v in times.items()},
        "skipped": skipped,
    }
    ratios = {}
    for v in variants:
        a, b = times.get(f"binary/{v}"), times.get(f"fp32/{v}")
        if a and b:
            ratios[v] = round(statistics.median(a) / statistics.median(b), 3)
    result["binary_over_fp32"] = ratios
    if "fp32/eager" in times:
        fp = statistics.median(times["fp32/eager"])
        result["speedup_vs_fp32_eager"] = {k: round(fp / statistics.median(v), 3) for k, v in times.items()}
    if not args.no_profile:
        result["profile_binary_eager"] = profile_breakdown(make(args.binarize, args.model), args.batch, args.points)
        result["profile_fp32_eager"] = profile_breakdown(make(None, args.model), args.batch, args.points)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if args.append:
        from onebit.train.amp import cpu_model

        steps_per_epoch = 9843 // args.batch
        result = {"model": args.model, "cpu": cpu_model(), "load_avg_1m": round(os.getloadavg()[0], 2), **result,
                  "epoch_s": {k: round(statistics.median(v) * steps_per_epoch, 1) for k, v in times.items()}}
        doc = json.loads(out.read_text()) if out.exists() else {}
        doc.setdefault("rows", []).append(result)
        out.write_text(json.dumps(doc, indent=2) + "\n")
    else:
        out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: result[k] for k in ("variants", "binary_over_fp32", "skipped")}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
