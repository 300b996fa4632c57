"""Train-step time of binary convolutions: explicit ±1 padding against the border-corrected form.

A binary convolution pads sign(x) with ``pad_value`` (±1, what a packed-bit engine computes). The
layer used to build the padded input and run a padding-free convolution; it now runs the
zero-padded convolution and adds ``pad_value`` × (border mask ⊛ Σ_c W) — the same sum
(``tests/test_nn_layers.py`` checks output and gradients in float64). This script times one
trainer-equivalent step (forward, CE, backward, Adam, DAB-Net Algorithm 2; ``dab_sketch_amp.build_step``)
both ways in one process, one thread, batch 64, alternating the order each round, and writes the
medians (process CPU time, the better figure on a shared host) with the range to
``benchmarks/results/binary_conv_padding.json``.

    nice python benchmarks/binary_conv_padding.py --rounds 4 --steps 3
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


def measure(case, rounds: int, steps: int, batch: int) -> dict:
    import torch

    import dab_sketch_amp
    from onebit.nn import layers

    model, size, width, setting, amp, classes = case
    corrected = layers._BinaryConvNd._padded_conv
    step = dab_sketch_amp.build_step(model, size, width, setting, batch, classes)
    times: dict[str, list[float]] = {"explicit": [], "corrected": []}
    try:
        for r in range(rounds):
            for name in (("explicit", "corrected") if r % 2 == 0 else ("corrected", "explicit")):
                layers._BinaryConvNd._padded_conv = _explicit if name == "explicit" else corrected
                step(amp)  # untimed warm-up
                t = time.process_time()
                for _ in range(steps):
                    step(amp)
                times[name].append((time.process_time() - t) / steps * 1e3)
    finally:
        layers._BinaryConvNd._padded_conv = corrected
    e, c = statistics.median(times["explicit"]), statistics.median(times["corrected"])
    return {"model": model, "size": size, "width": width, "setting": setting, "amp": "bf16" if amp else "off",
            "batch": batch, "rounds": rounds, "steps_per_round": steps,
            "explicit_ms": round(e, 1), "explicit_range_ms": [round(min(times["explicit"]), 1),
                                                             round(max(times["explicit"]), 1)],
            "corrected_ms": round(c, 1), "corrected_range_ms": [round(min(times["corrected"]), 1),
                                                               round(max(times["corrected"]), 1)],
            "speedup": round(e / c, 3), "threads": torch.get_num_threads(), "torch": torch.__version__}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--cases", default=None, help="comma list of indices into CASES (default: all)")
    ap.add_argument("--out", default=str(Path(__file__).resolve().parent / "results" / "binary_conv_padding.json"))
    args = ap.parse_args(argv)
    import torch

    import dab_sketch_amp
    from onebit.train.amp import cpu_model

    torch.set_num_threads(1)
    picked = CASES if args.cases is None else [CASES[int(i)] for i in args.cases.split(",")]
    rows = []
    for case in picked:
        load = dab_sketch_amp._loadavg()
        r = measure(case, args.rounds, args.steps, args.batch)
        r.update(loadavg_before=load, cpu=cpu_model(), machine=platform.machine(), date=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                 command="python benchmarks/binary_conv_padding.py " + " ".join(argv if argv is not None else sys.argv[1:]))
        rows.append(r)
        print(f"{r['model']} {r['size']}px {r['setting']} amp={r['amp']}: explicit {r['explicit_ms']} ms "
              f"{r['explicit_range_ms']}, corrected {r['corrected_ms']} ms {r['corrected_range_ms']}, "
              f"{r['speedup']:.2f}x", flush=True)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(rows, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
