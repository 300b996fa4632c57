"""bf16 autocast against FP32 train steps for the models of DAB-Net's Table 2 campaign (issue 14).

One process, one thread, batch 64, the trainer's step (forward + CE + backward + Adam + DAB-Net
Algorithm 2 for DAB layers) on random sketch-shaped inputs. For every (model, setting) the two
precisions alternate in rounds (off, bf16, bf16, off, ...), so a load change on a shared host hits
both alike; each round times ``--steps`` steps after one untimed warm-up step. Wall and process
CPU time are recorded (the CPU time is the better figure on a loaded host), with the load
average before and after. Results go to the ``amp`` list of ``benchmarks/results/dab_sketch.json``
(one entry per CPU, model, size, width and setting; rerunning replaces it), which
``benchmarks/dab_sketch_campaign.py`` reads to pick ``--amp`` per model.

    nice python benchmarks/dab_sketch_amp.py --rounds 6 --steps 5
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import dab_sketch  # noqa: E402

# (model, size, width, setting): the geometry of each campaign row, fp and the costliest setting
CASES = (
    ("sketch_a_net", 28, 0.5, "fp"),
    ("sketch_a_net", 28, 0.5, "dab-fbin"),
    ("resnet18", 32, 1.0, "fp"),
    ("resnet18", 32, 1.0, "dab-fbin"),
    ("sketch_a_net", 64, 0.5, "fp"),
    ("sketch_a_net", 64, 0.5, "dab-fbin"),
)


def _loadavg() -> list[float]:
    try:
        return [float(x) for x in Path("/proc/loadavg").read_text().split()[:3]]
    except OSError:
        return []


def build_step(model_name: str, size: int, width: float, setting: str, batch: int, classes: int, seed: int = 0,
               fused: bool = True):
    """A closure doing one trainer-equivalent training step under a given amp flag (``fused``: optim.fused)."""
    import torch
    import torch.nn.functional as F

    from onebit.models import create
    from onebit.quantizers.dab import center_and_clamp_
    from onebit.train.config import resolve
    from onebit.train.trainer import _dab_layers, build_optimizer, resolve_binarize

    torch.manual_seed(seed)
    options = {"input_size": size, "width": width} if model_name == "sketch_a_net" else {"width": width}
    cfg = resolve({"model": {"name": model_name, "options": options},
                   "binarize": None if setting == "fp" else setting,
                   "data": {"name": "synthetic_sketches"}, "optim": {"name": "adam", "lr": 2e-3, "weight_decay": 0.0, "fused": fused}})
    model = create(model_name, num_classes=classes, task="cls", binarize=resolve_binarize(cfg["binarize"]), **options)
    opt = build_optimizer(model, cfg)
    dab, mode = _dab_layers(model, model.onebit_config.get("binarize"))
    x = torch.randn(batch, 1, size, size)
    y = torch.randint(0, classes, (batch,))
    model.train()

    def step(amp: bool) -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=amp):
            loss = F.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        with torch.no_grad():
            for m in dab:
                center_and_clamp_(m.weight, mode)

    return step


def measure(case, rounds: int, steps: int, batch: int) -> dict:
    """Median / min seconds per step, wall and CPU, for amp off and bf16, interleaved by round."""
    model, size, width, setting = case
    classes = 125 if size >= 64 else 10
    step = build_step(model, size, width, setting, batch, classes)
    times = {"off": {"wall": [], "cpu": []}, "bf16": {"wall": [], "cpu": []}}
    load0 = _loadavg()
    for r in range(rounds):
        for amp in (("off", "bf16") if r % 2 == 0 else ("bf16", "off")):
            step(amp == "bf16")  # warm-up: oneDNN primitive caches of this precision
            for _ in range(steps):
                w0, c0 = time.perf_counter(), time.process_time()
                step(amp == "bf16")
                times[amp]["wall"].append(time.perf_counter() - w0)
                times[amp]["cpu"].append(time.process_time() - c0)
    load1 = _loadavg()
    out = {"model": model, "size": size, "width": width, "setting": setting, "batch": batch, "classes": classes,
           "rounds": rounds, "steps_per_round": steps}
    for amp, t in times.items():
        out[f"{amp}_wall_s"] = round(statistics.median(t["wall"]), 4)
        out[f"{amp}_wall_min_s"] = round(min(t["wall"]), 4)
        out[f"{amp}_cpu_s"] = round(statistics.median(t["cpu"]), 4)
    out["bf16_speedup_wall"] = round(out["off_wall_s"] / out["bf16_wall_s"], 3)
    out["bf16_speedup_cpu"] = round(out["off_cpu_s"] / out["bf16_cpu_s"], 3)
    # minutes per 100k training samples (the issue's budget unit), from the CPU medians
    for amp in ("off", "bf16"):
        out[f"{amp}_cpu_min_per_100k"] = round(out[f"{amp}_cpu_s"] / batch * 1e5 / 60, 2)
    out["loadavg_before"], out["loadavg_after"] = load0, load1
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cases", default="all",
                    help="comma list of MODEL:SIZE:WIDTH:SETTING (default: the campaign's geometries, fp and dab-fbin)")
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--steps", type=int, default=5, help="timed steps per round and precision")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--json", default=str(dab_sketch.DEFAULT_JSON))
    ap.add_argument("--dry", action="store_true", help="print, do not write the JSON")
    args = ap.parse_args(argv)
    import torch

    torch.set_num_threads(1)
    from onebit.train.amp import cpu_model, cpu_native_bf16

    if args.cases == "all":
        cases = CASES
    else:
        cases = []
        for c in args.cases.split(","):
            m, s, w, st = c.split(":")
            cases.append((m, int(s), float(w), st))
    cmd = ("nice python benchmarks/dab_sketch_amp.py" + (f" --cases {args.cases}" if args.cases != "all" else "")
           + f" --rounds {args.rounds} --steps {args.steps} --batch {args.batch}")
    for case in cases:
        row = measure(case, args.rounds, args.steps, args.batch)
        row.update({"cpu": cpu_model(), "native_bf16": cpu_native_bf16(), "threads": 1, "torch": torch.__version__,
                    "nproc": os.cpu_count(), "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                    "command": cmd})
        print(f"{row['model']} {row['size']}x{row['size']} w{row['width']} {row['setting']}: "
              f"fp32 {row['off_cpu_s'] * 1e3:.0f} ms/step cpu ({row['off_wall_s'] * 1e3:.0f} wall), "
              f"bf16 {row['bf16_cpu_s'] * 1e3:.0f} ms cpu ({row['bf16_wall_s'] * 1e3:.0f} wall): "
              f"bf16 speed-up {row['bf16_speedup_cpu']:.2f}x cpu, {row['bf16_speedup_wall']:.2f}x wall; "
              f"load {row['loadavg_before']} -> {row['loadavg_after']}", flush=True)
        if not args.dry:
            dab_sketch.record_amp(Path(args.json), row)
    return 0


if __name__ == "__main__":
    sys.exit(main())
