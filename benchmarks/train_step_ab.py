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

    nice python benchmarks/train_step_ab.py --ab padding --rounds 4 --steps 3
    nice python benchmarks/train_step_ab.py --ab optimizer --rounds 4 --steps 3
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


def _explicit(self, xb, w):
    """The former path: build pad(xb, pad_value), then a padding-free convolution."""
    import torch.nn.functional as F

    return self._conv(F.pad(xb, self._fpad(), value=self.pad_value), w)


ABS = {
    "padding": ("explicit ±1 padded input, padding-free conv", "zero-padded conv + pad_value × (border ⊛ Σ_c W)"),
    "optimizer": ("torch optimizer, per-parameter loop", "torch optimizer, fused kernel (optim.fused)"),
}


def measure(case, rounds: int, steps: int, batch: int, ab: str = "padding") -> dict:
    import torch

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
                step = steps_of[name]
                step(amp)  # untimed warm-up
                t = time.process_time()
                for _ in range(steps):
                    step(amp)
                times[name].append((time.process_time() - t) / steps * 1e3)
    finally:
        layers._BinaryConvNd._padded_conv = corrected
    b, a = statistics.median(times["before"]), statistics.median(times["after"])
    return {"ab": ab, "before": ABS[ab][0], "after": ABS[ab][1],
            "model": model, "size": size, "width": width, "setting": setting, "amp": "bf16" if amp else "off",
            "batch": batch, "rounds": rounds, "steps_per_round": steps,
            "before_ms": round(b, 1), "before_range_ms": [round(min(times["before"]), 1),
                                                         round(max(times["before"]), 1)],
            "after_ms": round(a, 1), "after_range_ms": [round(min(times["after"]), 1), round(max(times["after"]), 1)],
            "speedup": round(b / a, 3), "threads": torch.get_num_threads(), "torch": torch.__version__}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--ab", default="padding", choices=tuple(ABS), help="which implementation choice to time")
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--cases", default=None, help="comma list of indices into CASES (default: all)")
    ap.add_argument("--out", default=str(Path(__file__).resolve().parent / "results" / "train_step_ab.json"))
    args = ap.parse_args(argv)
    import torch

    import dab_sketch_amp
    from onebit.train.amp import cpu_model

    torch.set_num_threads(1)
    picked = CASES if args.cases is None else [CASES[int(i)] for i in args.cases.split(",")]
    out = Path(args.out)
    rows = json.loads(out.read_text()) if out.exists() else []
    key = ("ab", "cpu", "model", "size", "width", "setting", "amp")
    for case in picked:
        load = dab_sketch_amp._loadavg()
        r = measure(case, args.rounds, args.steps, args.batch, args.ab)
        r.update(loadavg_before=load, cpu=cpu_model(), machine=platform.machine(),
                 date=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                 command="python benchmarks/train_step_ab.py " + " ".join(argv if argv is not None else sys.argv[1:]))
        rows = [x for x in rows if tuple(x.get(k) for k in key) != tuple(r[k] for k in key)] + [r]
        print(f"{args.ab}: {r['model']} {r['size']}px {r['setting']} amp={r['amp']}: before {r['before_ms']} ms "
              f"{r['before_range_ms']}, after {r['after_ms']} ms {r['after_range_ms']}, {r['speedup']:.2f}x", flush=True)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(rows, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
