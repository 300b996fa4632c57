"""Overhead of DAB-Net's exact two-level binarizer vs BWN (onebit.quantizers).

(1) quantizer forward + backward on the 20 binarized convs of a ResNet-18 (the 16 3x3 convs, the
    3 1x1 downsample convs and a 1x1 classifier conv 512->250, as DAB-Net's ResNet-18 binarizes them);
(2) one full training step (forward, loss, backward, Adam) of a small weight-binarized CNN
    (batch 32, 3x32x32, four binary 3x3 convs 64-128-256-256 with BN + ReLU), DAB vs BWN weights.

Variants run side by side in interleaved rounds; medians and ranges over rounds are reported.
Writes benchmarks/results/dab_overhead.json and prints a table.

    python benchmarks/dab_overhead.py [--rounds 15] [--threads 2] [--out PATH]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from onebit import quantizers as Q

RESNET18_CONVS = (
    [(64, 64, 3)] * 4
    + [(128, 64, 3), (128, 128, 3), (128, 128, 3), (128, 128, 3), (128, 64, 1)]
    + [(256, 128, 3), (256, 256, 3), (256, 256, 3), (256, 256, 3), (256, 128, 1)]
    + [(512, 256, 3), (512, 512, 3), (512, 512, 3), (512, 512, 3), (512, 256, 1)]
    + [(250, 512, 1)]
)


def _timeit(fn, reps: int) -> tuple[float, float]:
    """(wall seconds, process CPU seconds) per call. On a shared, oversubscribed machine the CPU
    time (all threads of this process) is far less disturbed by other jobs than the wall time."""
    t0, c0 = time.perf_counter(), time.process_time()
    for _ in range(reps):
        fn()
    return (time.perf_counter() - t0) / reps, (time.process_time() - c0) / reps


def _summary(xs):
    return {"median_s": statistics.median(xs), "min_s": min(xs), "max_s": max(xs), "rounds": len(xs),
            "all_s": [round(x, 6) for x in xs]}


def _interleaved(variants: dict, run, rounds: int, reps: int) -> tuple[dict, dict]:
    """Time every variant once per round; the order rotates each round so no variant always goes
    first. Returns ({variant: [wall s]}, {variant: [cpu s]})."""
    names = list(variants)
    wall, cpu = {k: [] for k in names}, {k: [] for k in names}
    for r in range(rounds):
        for k in names[r % len(names):] + names[:r % len(names)]:
            w, c = _timeit(lambda k=k: run(variants[k]), reps)
            wall[k].append(w)
            cpu[k].append(c)
    return wall, cpu


def _ratios(num, den):
    rs = [a / b for a, b in zip(num, den)]
    return {"median": statistics.median(rs), "min": min(rs), "max": max(rs),
            "of_medians": statistics.median(num) / statistics.median(den), "of_minima": min(num) / min(den)}


def _report(wall, cpu, num="dab", den="bwn") -> dict:
    out = {k: {"wall": _summary(wall[k]), "cpu": _summary(cpu[k])} for k in wall}
    out[f"ratio_{num}_over_{den}"] = {"wall": _ratios(wall[num], wall[den]), "cpu": _ratios(cpu[num], cpu[den])}
    return out


SMALL_CNN_CONVS = [(64, 3, 3), (128, 64, 3), (256, 128, 3), (256, 256, 3)]


def bench_quantizers(rounds: int, reps: int, convs=RESNET18_CONVS) -> dict:
    g = torch.Generator().manual_seed(0)
    weights = [(torch.randn(o, i, k, k, generator=g) * (2.0 / (i * k * k)) ** 0.5).requires_grad_(True)
               for o, i, k in convs]
    variants = {"bwn": Q.get("bwn"), "dab": Q.get("dab"), "dab_jacobian": Q.get("dab", backward="jacobian")}

    def step(q):
        for w in weights:
            y = q(w)
            y.backward(torch.ones_like(y))
            w.grad = None

    for q in variants.values():  # warm-up
        step(q)
    out = _report(*_interleaved(variants, step, rounds, reps))
    out["n_weights"] = sum(w.numel() for w in weights)
    out["n_convs"] = len(weights)
    return out


class SmallCNN(nn.Module):
    """Four weight-binarized 3x3 convs (64-128-256-256) with BN + ReLU, float avgpool + linear head."""

    def __init__(self, kernel_quantizer: str, in_ch: int = 3, classes: int = 10):
        super().__init__()
        chans, strides = [64, 128, 256, 256], [1, 2, 2, 2]
        self.convs, self.bns = nn.ModuleList(), nn.ModuleList()
        c = in_ch
        for co, s in zip(chans, strides):
            self.convs.append(_binary_conv(c, co, s, kernel_quantizer))
            self.bns.append(nn.BatchNorm2d(co))
            c = co
        self.fc = nn.Linear(c, classes)

    def forward(self, x):
        for conv, bn in zip(self.convs, self.bns):
            x = F.relu(bn(conv(x)))
        return self.fc(x.mean((2, 3)))


class _QConv(nn.Conv2d):
    """Fallback when onebit.nn is unavailable: F.conv2d on the quantized weight."""

    def __init__(self, ci, co, stride, q):
        super().__init__(ci, co, 3, stride=stride, padding=1, bias=False)
        self.q = Q.get(q)

    def forward(self, x):
        return F.conv2d(x, self.q(self.weight), None, self.stride, self.padding)


def _binary_conv(ci, co, stride, q):
    try:
        from onebit.nn import BinaryConv2d
        return BinaryConv2d(ci, co, 3, stride=stride, padding=1, bias=False, input_quantizer=None,
                            kernel_quantizer=q, scale="none")
    except ImportError:
        return _QConv(ci, co, stride, q)


def bench_train_step(rounds: int, reps: int, batch: int = 32) -> dict:
    g = torch.Generator().manual_seed(1)
    x = torch.randn(batch, 3, 32, 32, generator=g)
    y = torch.randint(0, 10, (batch,), generator=g)
    setups = {}
    for name, q, pre in (("bwn", "bwn", False), ("dab", "dab", False), ("dab+center_clamp", "dab", True)):
        torch.manual_seed(0)
        model = SmallCNN(q)
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        setups[name] = (model, opt, pre)

    def step(model, opt, pre):
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), y).backward()
        opt.step()
        if pre:  # DAB-Net Algorithm 2 preprocessing of the latent weights
            for conv in model.convs:
                Q.center_and_clamp_(conv.weight)

    for s in setups.values():
        step(*s)
    out = _report(*_interleaved(setups, lambda s: step(*s), rounds, reps))
    out["layers"] = "onebit.nn.BinaryConv2d" if not isinstance(setups["dab"][0].convs[0], _QConv) else "F.conv2d fallback"
    out["batch"] = batch
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--reps", type=int, default=2, help="steps timed per round and variant")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--only", choices=("quantizer", "step"), default=None, help="run one part only")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "dab_overhead.json"))
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    res = {
        "command": "python benchmarks/dab_overhead.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "machine": {"platform": platform.platform(), "processor": platform.processor(),
                    "cpu_count": os.cpu_count(), "torch": torch.__version__, "threads": args.threads,
                    "loadavg_start": os.getloadavg()},
        "date_utc": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime()),
    }
    if args.only in (None, "quantizer"):
        res["quantizer_resnet18"] = bench_quantizers(args.rounds, max(1, args.reps // 2))
    if args.only in (None, "step"):
        # the quantizer alone on the small CNN's four weights: DAB's added cost in isolation
        res["quantizer_small_cnn"] = bench_quantizers(args.rounds, 4 * args.reps, SMALL_CNN_CONVS)
        res["train_step_small_cnn"] = bench_train_step(args.rounds, args.reps)
    res["machine"]["loadavg_end"] = os.getloadavg()
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(res, indent=2))
    q, t = res.get("quantizer_resnet18"), res.get("train_step_small_cnn")
    if q:
        _print_quantizer(q, args)
    if t:
        qs = res["quantizer_small_cnn"]
        print(f"(1b) quantizer fwd+bwd on the small CNN's {qs['n_convs']} conv weights ({qs['n_weights']:,} weights)")
        _print_table(qs, ("bwn", "dab", "dab_jacobian"))
        _print_step(t)
    print(f"wrote {args.out}")
    return res


def _print_table(res, keys):
    print(f"    {'variant':<18}{'wall median':>12}{'wall min':>10}{'wall max':>10}"
          f"{'cpu median':>12}{'cpu min':>10}{'cpu max':>10}   (ms)")
    for k in keys:
        w, c = res[k]["wall"], res[k]["cpu"]
        print(f"    {k:<18}{w['median_s'] * 1e3:>12.1f}{w['min_s'] * 1e3:>10.1f}{w['max_s'] * 1e3:>10.1f}"
              f"{c['median_s'] * 1e3:>12.1f}{c['min_s'] * 1e3:>10.1f}{c['max_s'] * 1e3:>10.1f}")
    for kind in ("wall", "cpu"):
        r = res["ratio_dab_over_bwn"][kind]
        print(f"    dab/bwn {kind}: median of per-round ratios {r['median']:.3f}x (range {r['min']:.3f}-"
              f"{r['max']:.3f}), ratio of medians {r['of_medians']:.3f}x, ratio of minima {r['of_minima']:.3f}x")


def _print_quantizer(q, args):
    print(f"(1) quantizer fwd+bwd, {q['n_convs']} ResNet-18 convs ({q['n_weights']:,} weights), "
          f"{args.threads} threads, {args.rounds} rounds")
    _print_table(q, ("bwn", "dab", "dab_jacobian"))


def _print_step(t):
    print(f"(2) training step, small binary CNN, batch {t['batch']}, 3x32x32, layers: {t['layers']} "
          "(target: dab/bwn <= 1.15x)")
    _print_table(t, ("bwn", "dab", "dab+center_clamp"))


if __name__ == "__main__":
    main()
