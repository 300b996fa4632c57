"""Train-step time A/B of two implementations of the same maths, for the sketch models of issue 14.

``--ab padding``: a binary convolution pads sign(x) with ``pad_value`` (±1, what a packed-bit engine
computes). The layer used to build the padded input and run a padding-free convolution
(``before``); it now runs the zero-padded convolution and adds ``pad_value`` × (border mask ⊛ Σ_c W)
(``after``), the same sum (``tests/test_nn_layers.py`` checks output and gradients in float64).

``--ab optimizer``: torch's per-parameter optimizer loop (``before``) against its fused kernel
(``after``, ``optim.fused: true``, the default; ``tests/test_train.py`` checks the updates agree).

One trainer-equivalent step (forward, CE, backward, Adam, DAB-Net Algorithm 2;
``dab_sketch_amp.build_step``) is timed both ways in one process, one thread, batch 64, alternating
the order each round. The medians of process CPU time (the better figure on a shared host) and
their range go to ``benchmarks/results/train_step_ab.json`` (a rerun replaces the rows of its
``ab``, CPU and case).

``--ab maxpool`` (issue 18's point clouds): max pooling as ``x.max(dim).values`` (``before``: torch's
element-wise max-with-indices over the points dim, backward by autograd's scatter) or as
``onebit.nn.pool.max_over`` (``after``: a 1-D max pool of the (outer, inner, n) view, backward by
``index_put_`` at the argmax's flat positions); values, indices and gradients are identical
(``tests/test_nn_pool.py`` checks them with ties, in float64 and bf16).

``--ab allocator``: glibc malloc as the process starts (``before``, config ``allocator: system``)
against ``allocator: reuse`` (``after``; ``onebit.train.allocator``). malloc cannot be put back in
one process, so each round times each mode in a fresh child process, alternating the order.

The point-cloud cases time the trainer's step for ``POINT_CASES`` (forward under bf16 autocast,
CE + the T-Net regulariser, backward, fused Adam) at batch 32 × 256 points.

    nice python benchmarks/train_step_ab.py --ab padding --rounds 4 --steps 3
    nice python benchmarks/train_step_ab.py --ab optimizer --rounds 4 --steps 3
    nice python benchmarks/train_step_ab.py --ab maxpool --rounds 4 --steps 5
    nice python benchmarks/train_step_ab.py --ab allocator --rounds 4 --steps 5
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

CASES = (
    # (model, input size, width, setting, bf16 autocast, classes): the issue-14 campaign's geometries
    ("resnet18", 32, 1.0, "xnor", False, 10),
    ("resnet18", 32, 1.0, "dab-fbin", False, 10),
    ("sketch_a_net", 28, 0.5, "dab-fbin", True, 10),
    ("sketch_a_net", 64, 0.5, "dab-fbin", True, 125),
)

POINT_CASES = (
    # (model, setting, bf16 autocast, points): issue 18's ModelNet40 rows
    ("pointnet", "bipointnet", True, 256),
    ("pointnet_vanilla", "bipointnet", True, 256),
    ("pointnet", "fp", True, 256),
)
POINT_ABS = ("maxpool", "allocator")


def build_point_step(model_name: str, setting: str, points: int, batch: int, seed: int = 0):
    """One trainer-equivalent ModelNet40 step (bf16 forward, CE + T-Net regulariser, fused Adam)."""
    import torch
    import torch.nn.functional as F

    from onebit.models import create
    from onebit.train.config import resolve
    from onebit.train.trainer import build_optimizer, resolve_binarize

    torch.manual_seed(seed)
    binarize = None if setting == "fp" else setting
    cfg = resolve({"model": {"name": model_name}, "binarize": binarize, "data": {"name": "synthetic_shapes"},
                   "optim": {"name": "adam", "lr": 1e-3}})
    model = create(model_name, num_classes=40, task="cls", binarize=resolve_binarize(cfg["binarize"]))
    opt = build_optimizer(model, cfg)
    x = torch.randn(batch, points, 3)
    y = torch.randint(0, 40, (batch,))
    model.train()

    def step(amp: bool) -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=amp):
            out = model(x)
        loss = F.cross_entropy(out.float(), y) + cfg["loss"]["tnet_reg"] * model.regularizer()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return step


def _ab_row(ab: str, times: dict[str, list[float]], rounds: int, steps: int, **case) -> dict:
    """One result row: the case's fields, median and range of ms per step before / after, speed-up."""
    import torch

    b, a = statistics.median(times["before"]), statistics.median(times["after"])
    return {"ab": ab, "before": ABS[ab][0], "after": ABS[ab][1], **case, "rounds": rounds, "steps_per_round": steps,
            "before_ms": round(b, 1), "before_range_ms": [round(min(times["before"]), 1), round(max(times["before"]), 1)],
            "after_ms": round(a, 1), "after_range_ms": [round(min(times["after"]), 1), round(max(times["after"]), 1)],
            "speedup": round(b / a, 3), "threads": torch.get_num_threads(), "torch": torch.__version__}


def _time_steps(step, amp: bool, steps: int) -> float:
    step(amp)  # untimed warm-up
    t = time.process_time()
    for _ in range(steps):
        step(amp)
    return (time.process_time() - t) / steps * 1e3


def _child_allocator(mode: str, case_index: int, steps: int, batch: int) -> None:
    """Child of ``--ab allocator``: set malloc per ``mode``, print ms per step of one point case."""
    import torch

    from onebit.train.allocator import resolve_allocator

    torch.set_num_threads(1)
    applied = resolve_allocator(mode, torch.device("cpu"))
    model, setting, amp, points = POINT_CASES[case_index]
    step = build_point_step(model, setting, points, batch)
    step(amp)  # the first steps grow the heap / the mmap threshold
    print(json.dumps({"ms": _time_steps(step, amp, steps), "reuse": applied}), flush=True)


def measure_points(case_index: int, rounds: int, steps: int, batch: int, ab: str) -> dict:
    import subprocess

    import torch

    from onebit.nn import pool

    model, setting, amp, points = POINT_CASES[case_index]
    times: dict[str, list[float]] = {"before": [], "after": []}
    if ab == "maxpool":
        from onebit.train.allocator import resolve_allocator

        resolve_allocator("auto", torch.device("cpu"))  # as the trainer: page faults would blur the A/B
        fast = pool.max_over
        plain = lambda x, dim, keepdim=False: x.max(dim=dim, keepdim=keepdim).values  # noqa: E731
        step = build_point_step(model, setting, points, batch)
        try:
            for r in range(rounds):
                for name in (("before", "after") if r % 2 == 0 else ("after", "before")):
                    pool.max_over = plain if name == "before" else fast
                    times[name].append(_time_steps(step, amp, steps))
        finally:
            pool.max_over = fast
    else:
        for r in range(rounds):
            for name in (("before", "after") if r % 2 == 0 else ("after", "before")):
                mode = "system" if name == "before" else "reuse"
                out = subprocess.run([sys.executable, __file__, "--child-allocator", mode, "--cases", str(case_index),
                                      "--steps", str(steps), "--batch", str(batch)],
                                     check=True, capture_output=True, text=True)
                times[name].append(json.loads(out.stdout.strip().splitlines()[-1])["ms"])
    return _ab_row(ab, times, rounds, steps, model=model, size=points, width=1.0, setting=setting,
                   amp="bf16" if amp else "off", batch=batch)


def _explicit(self, xb, w):
    """The former path: build pad(xb, pad_value), then a padding-free convolution."""
    import torch.nn.functional as F

    return self._conv(F.pad(xb, self._fpad(), value=self.pad_value), w)


ABS = {
    "padding": ("explicit ±1 padded input, padding-free conv", "zero-padded conv + pad_value × (border ⊛ Σ_c W)"),
    "optimizer": ("torch optimizer, per-parameter loop", "torch optimizer, fused kernel (optim.fused)"),
    "maxpool": ("x.max(dim).values: autograd scatters the gradient along the points dim",
                "onebit.nn.pool.max_over: 1-D max pool of the (outer, inner, n) view; gradient index_put_ at the argmax"),
    "allocator": ("glibc malloc as started (allocator: system)",
                  "malloc keeps freed memory for reuse (allocator: reuse)"),
}


def measure(case, rounds: int, steps: int, batch: int, ab: str = "padding") -> dict:
    import dab_sketch_amp
    from onebit.nn import layers

    model, size, width, setting, amp, classes = case
    corrected = layers._BinaryConvNd._padded_conv
    if ab == "padding":
        step = dab_sketch_amp.build_step(model, size, width, setting, batch, classes)
        steps_of = {"before": step, "after": step}
    else:  # the same model and data (same seed), the optimizer without / with the fused kernel
        steps_of = {name: dab_sketch_amp.build_step(model, size, width, setting, batch, classes, fused=fused)
                    for name, fused in (("before", False), ("after", True))}
    times: dict[str, list[float]] = {"before": [], "after": []}
    try:
        for r in range(rounds):
            for name in (("before", "after") if r % 2 == 0 else ("after", "before")):
                if ab == "padding":
                    layers._BinaryConvNd._padded_conv = _explicit if name == "before" else corrected
                times[name].append(_time_steps(steps_of[name], amp, steps))
    finally:
        layers._BinaryConvNd._padded_conv = corrected
    return _ab_row(ab, times, rounds, steps, model=model, size=size, width=width, setting=setting,
                   amp="bf16" if amp else "off", batch=batch)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--ab", default="padding", choices=tuple(ABS), help="which implementation choice to time")
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--batch", type=int, default=None, help="batch size (default 64 for sketches, 32 for points)")
    ap.add_argument("--cases", default=None,
                    help="comma list of indices into CASES, or POINT_CASES for maxpool / allocator (default: all)")
    ap.add_argument("--child-allocator", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--out", default=str(Path(__file__).resolve().parent / "results" / "train_step_ab.json"))
    args = ap.parse_args(argv)
    if args.batch is None:
        args.batch = 32 if args.ab in POINT_ABS or args.child_allocator else 64
    import torch

    import dab_sketch_amp
    from onebit.train.amp import cpu_model

    if args.child_allocator:
        _child_allocator(args.child_allocator, int(args.cases), args.steps, args.batch)
        return 0
    torch.set_num_threads(1)
    points = args.ab in POINT_ABS
    table = POINT_CASES if points else CASES
    picked = list(range(len(table))) if args.cases is None else [int(i) for i in args.cases.split(",")]
    out = Path(args.out)
    rows = json.loads(out.read_text()) if out.exists() else []
    key = ("ab", "cpu", "model", "size", "width", "setting", "amp")
    for case in picked:
        load = dab_sketch_amp._loadavg()
        if points:
            r = measure_points(case, args.rounds, args.steps, args.batch, args.ab)
        else:
            r = measure(table[case], args.rounds, args.steps, args.batch, args.ab)
        r.update(loadavg_before=load, cpu=cpu_model(), machine=platform.machine(),
                 date=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                 command="python benchmarks/train_step_ab.py " + " ".join(argv if argv is not None else sys.argv[1:]))
        rows = [x for x in rows if tuple(x.get(k) for k in key) != tuple(r[k] for k in key)] + [r]
        print(f"{args.ab}: {r['model']} {r['size']}{'pts' if points else 'px'} {r['setting']} amp={r['amp']}: before {r['before_ms']} ms "
              f"{r['before_range_ms']}, after {r['after_ms']} ms {r['after_range_ms']}, {r['speedup']:.2f}x", flush=True)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(rows, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
