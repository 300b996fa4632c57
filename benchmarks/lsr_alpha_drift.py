"""Why BiPointNet's training loss spikes: LSR's α before a BatchNorm, trained by Adam, drifts through 0.

In training mode BN(α·z) = sign(α)·BN(z) (up to BN's ε), so the loss barely depends on |α|: its
gradient is near zero and mostly noise. Adam divides the gradient by its running RMS, so α still moves
by about the learning rate per step, a random walk of ~lr·√steps that is as large as α itself
(|α₀| ≈ 0.008-0.05 in vanilla PointNet) after a few thousand steps. When α crosses 0 the layer's output flips sign in one
step, every later layer sees negated features, and the loss jumps.

This experiment trains the same model twice from the same seed and data order, logging every LSR α
and the loss every ``--log-every`` steps:

- ``paper``: every α trained (BiPointNet Eq. 10; the official code does the same);
- ``frozen``: the α of layers followed by BatchNorm kept at their Eq. 9 initial value (``BinarizeSpec``
  ``lsr_before_bn="frozen"``): the same function class in training (BN absorbs any positive scale), and
  the same deployed model (α folds into BN).

It writes per-step traces, the zero crossings of every α, the loss spikes (a logged loss above 1.5× the
mean of the 10 before it, with the nearest α sign change) and the final FP32 test OA (fixed test-point
draw 0) into ``--out``, and a figure (``--plot``; ``--variants ""`` redraws it from ``--out``).

    python benchmarks/lsr_alpha_drift.py --model pointnet_vanilla --epochs 20 --t-max 100 --points 256 \
        --out benchmarks/results/lsr_alpha_drift.json --plot docs/results/lsr_alpha_drift.png
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def lsr_layers(model) -> dict:
    """{name: BinaryLinear} of the layers with an LSR scale."""
    return {n: m for n, m in model.named_modules() if getattr(m, "lsr", None) is not None}


def run_variant(variant: str, args) -> dict:
    import torch
    import torch.nn.functional as F

    from onebit.convert import resolve_spec
    from onebit.models import create
    from onebit.train.config import resolve
    from onebit.train.trainer import build_datasets, evaluate
    from onebit.zoo.build import eval_split

    torch.manual_seed(args.seed)
    spec = resolve_spec("bipointnet", lsr_before_bn="frozen" if variant == "frozen" else "train")
    model = create(args.model, 40, binarize=spec)
    cfg = resolve({
        "model": {"name": args.model}, "binarize": spec.to_dict(),
        "data": {"name": "modelnet40", "protocol": {"name": "bipointnet", "num_points": args.points},
                 "options": {"root": args.root} if args.root else {}, "train_subset": args.train_subset},
        "seed": args.seed,
    })
    train_ds, _, _ = build_datasets(cfg, train=True, eval=False)
    g = torch.Generator().manual_seed(args.seed)
    loader = torch.utils.data.DataLoader(train_ds, batch_size=args.batch_size, shuffle=True, drop_last=True,
                                         generator=g)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, lr=args.lr)
    steps_per_epoch = len(loader)
    # the first --epochs of the campaign's cosine schedule over --t-max epochs (per step)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=(args.t_max or args.epochs) * steps_per_epoch)
    layers = lsr_layers(model)
    trace = {"step": [], "loss": [], "alpha": {n: [] for n in layers}}
    window, step, t0 = [], 0, time.time()
    model.train()
    for epoch in range(args.epochs):
        torch.manual_seed(args.seed * 1000 + epoch)  # same point draws in both variants
        for x, y in loader:
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.amp == "bf16"):
                out = model(x)
            loss = F.cross_entropy(out.float(), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            window.append(float(loss))
            step += 1
            if step % args.log_every == 0:
                trace["step"].append(step)
                trace["loss"].append(round(statistics.mean(window), 4))
                window = []
                for n, m in layers.items():
                    trace["alpha"][n].append(round(float(m.lsr.alpha), 5))
        print(f"{variant} epoch {epoch + 1}/{args.epochs} loss {trace['loss'][-1]:.3f} "
              f"{time.time() - t0:.0f} s", flush=True)
    ds, _ = eval_split(cfg, test_seed=0)
    test = evaluate(model, torch.utils.data.DataLoader(ds, batch_size=64), "cls", 40, amp=False)
    frozen = [n for n, m in layers.items() if not m.lsr.alpha.requires_grad]
    return {"variant": variant, "frozen_alphas": frozen, "steps_per_epoch": steps_per_epoch,
            "test_oa": round(test["oa"], 2), "test_macc": round(test["macc"], 2), "wall_s": round(time.time() - t0, 1),
            "crossings": crossings(trace), "spikes": spikes(trace),
            "trace": trace}


def crossings(trace: dict) -> dict:
    """{layer: [step, ...]} where its α changed sign between two logged steps."""
    out = {}
    for n, a in trace["alpha"].items():
        out[n] = [trace["step"][i] for i in range(1, len(a)) if (a[i] > 0) != (a[i - 1] > 0)]
    return out


def spikes(trace: dict, window: int = 10, ratio: float = 1.5) -> list[dict]:
    """Logged points whose loss exceeds ``ratio`` x the mean of the ``window`` points before (one per
    burst), each with the nearest α sign change (step distance, layer)."""
    loss, steps, out = trace["loss"], trace["step"], []
    cross = [(c, n) for n, cs in crossings(trace).items() for c in cs]
    last = -window - 1  # index of the previous spike
    for i in range(window, len(loss)):
        before = statistics.mean(loss[i - window:i])
        if loss[i] > ratio * before and i - last > window:
            last = i
            near = min(cross, key=lambda c: abs(c[0] - steps[i]), default=None)
            out.append({"step": steps[i], "loss_before": round(before, 3), "loss": loss[i],
                        "nearest_crossing": None if near is None else {"layer": near[1], "step": near[0],
                                                                      "distance": abs(near[0] - steps[i])}})
    return out


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = result["runs"]
    fig, axes = plt.subplots(2, len(runs), figsize=(6 * len(runs), 6), sharex=True, squeeze=False)
    for j, r in enumerate(runs):
        t = r["trace"]
        ax = axes[0][j]
        ax.plot(t["step"], t["loss"], lw=0.8)
        ax.set_title(f"{r['variant']}: train loss (test OA {r['test_oa']} %)")
        ax.set_ylabel("cross-entropy")
        ax = axes[1][j]
        for n, a in t["alpha"].items():
            ax.plot(t["step"], a, lw=0.8, label=n)
        ax.axhline(0, color="k", lw=0.5)
        ax.set_ylabel("LSR α")
        ax.set_xlabel("step")
        for cs in r["crossings"].values():
            for c in cs:
                axes[0][j].axvline(c, color="r", lw=0.5, ls=":")
                ax.axvline(c, color="r", lw=0.5, ls=":")
    axes[1][0].legend(fontsize=6)
    fig.suptitle(f"{result['model']} BiPointNet, ModelNet40: LSR α (red: a sign change) and the loss")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="pointnet_vanilla")
    ap.add_argument("--variants", default="paper,frozen")
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--points", type=int, default=256)
    ap.add_argument("--t-max", type=int, default=100,
                    help="cosine period in epochs (default 100: the first --epochs of the campaign's schedule)")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--seed", type=int, default=666)
    ap.add_argument("--train-subset", type=int, default=None)
    ap.add_argument("--amp", choices=("bf16", "off"), default="bf16")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--log-every", type=int, default=10)
    ap.add_argument("--root", default=None, help="ModelNet40 folder (default: ../shared/data/modelnet40)")
    ap.add_argument("--out", default=str(REPO / "benchmarks/results/lsr_alpha_drift.json"))
    ap.add_argument("--plot", metavar="PNG", default=None, help="draw the traces of --out into PNG")
    args = ap.parse_args(argv)
    out = Path(args.out)
    if not args.variants.strip(","):
        if not args.plot or not out.exists():
            ap.error(f"--variants '' redraws --plot from --out, but {out} does not exist" if args.plot
                     else "--variants '' needs --plot PNG (it redraws the figure from --out)")
        plot(json.loads(out.read_text()), Path(args.plot))
        return 0
    import torch

    from onebit.train.amp import cpu_model

    torch.set_num_threads(args.threads)
    result = {"model": args.model, "epochs": args.epochs, "t_max": args.t_max, "points": args.points, "batch_size": args.batch_size,
              "lr": args.lr, "amp": args.amp, "seed": args.seed, "train_subset": args.train_subset,
              "cpu": cpu_model(), "threads": args.threads,
              "command": "python benchmarks/lsr_alpha_drift.py " + " ".join(sys.argv[1:] if argv is None else argv),
              "runs": [run_variant(v.strip(), args) for v in args.variants.split(",") if v.strip()]}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result) + "\n")
    for r in result["runs"]:
        print(json.dumps({k: v for k, v in r.items() if k != "trace"}))
    if args.plot:
        plot(result, Path(args.plot))
    return 0


if __name__ == "__main__":
    sys.exit(main())
