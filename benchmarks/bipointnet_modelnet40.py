"""BiPointNet Table 1/2 reproduction on the real ModelNet40 (../shared/data/modelnet40).

Rows: vanilla PointNet (no T-Nets) with FP, BNN, XNOR, XNOR + EMA-max, BiPointNet (EMA-max + LSR),
DAB weights + sign activations + EMA-max + LSR; PointNet (with T-Nets) FP and BiPointNet.
Every row is one ``onebit.train.run`` with the same data, seed and schedule; the schedule is a
flag (``--epochs``, ``--points``, ``--train-subset``) so the same script runs the paper's
schedule (``--epochs 200 --points 1024``, Adam 1e-3, cosine) on a GPU and a reduced one on a CPU.

    python benchmarks/bipointnet_modelnet40.py --epochs 4 --points 512 --train-subset 3000 \
        --out benchmarks/results/bipointnet_modelnet40.json

Writes a JSON list of rows ``{"model", "method", "oa", "macc", "epochs", "command", ...}``. A row's
``oa`` is the final model's, in FP32, mean of three fixed test-point draws (``oa_draws``; draw 0 is
the one ``onebit.zoo`` measures); ``curve`` holds the evaluations during training.

The campaign of issue 18 (full training set, >= 100 epochs, one row per process, one thread each, two
side by side; run directories in ``~/onebit-runs`` resume after an interruption):

    python benchmarks/bipointnet_modelnet40.py --status          # done rows, and the command of each missing one
    python benchmarks/bipointnet_modelnet40.py --rows KEY --epochs 100 --points 256 --eval-every 5 --amp auto \
        --out ~/onebit-runs/rows_KEY.json
    python benchmarks/bipointnet_modelnet40.py --merge ~/onebit-runs/rows_KEY.json   # then commit the JSON
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

# paper Table 1/2 (ModelNet40 OA %), PointNet with T-Nets unless "vanilla"
PAPER = {
    ("pointnet_vanilla", "fp"): 86.8,
    ("pointnet_vanilla", "bipointnet"): 85.6,
    ("pointnet", "fp"): 88.2,
    ("pointnet", "bnn"): 7.1,
    ("pointnet", "xnor"): 64.9,
    ("pointnet", "xnor+ema-max"): 81.9,
    ("pointnet", "bnn+ema-max"): 16.2,
    ("pointnet_vanilla", "xnor"): 61.0,
    ("pointnet", "bipointnet"): 86.4,
    ("pointnet", "bnn+lsr"): 4.1,
    ("pointnet", "bipointnet-avg"): 82.5,
    # Table 4 (deployment net, A72/A53 rows): (b) first+last float, (c) last layer 1-bit, (f) no BN
    # The official code's vanilla PointNet (tnet=False) is this 3-64-128-1024 net, not the PointNet paper's
    # 64-64-64-128-1024 (notes b5): Table 3's vanilla rows (FP 86.8, BiPointNet 85.6) come from it
    ("pointnet_deploy", "fp"): 86.8,
    ("pointnet_deploy", "bipointnet"): 85.62,
    ("pointnet_deploy", "bipointnet, last layer 1-bit"): 84.60,
    ("pointnet_deploy", "bipointnet, first layer 1-bit"): 5.31,
    ("pointnet_deploy", "bipointnet, first and last layer 1-bit"): 4.86,
    ("pointnet_deploy", "bipointnet, no BN (LSR only)"): 85.13,
    ("pointnet_deploy", "bipointnet, no BN (LSR only, unit-variance init)"): 85.13,
}

# Table 4 (f): BN after the float first layer only; the binary layers keep their bias and scale by LSR alone
NO_BN_SPEC = {
    "preset": "bipointnet",
    "bias": "keep",
    "model_options": {"pool": "ema-max", "act": "hardtanh", "preact": True, "hidden_bn": False},
}

# The same with LSR's alpha started at 1 / sigma(B_a B_w) instead of Eq. 9: with Eq. 9 the pre-pool features keep the
# float net's sigma (0.23 before the pool), EMA-max's delta* (2.78 at 256 points, derived for N(0, 1)) pushes every pooled
# feature below -1, out of the STE window, and the net never trains (benchmarks/bipointnet_no_bn_probe.py)
NO_BN_UNIT_SPEC = {**NO_BN_SPEC, "lsr_init": "unit"}

DAB_SPEC = {
    "name": "custom",
    "weight": "dab",
    "input": "ste_sign",
    "scale": "lsr",
    "model_options": {"pool": "ema-max", "act": "hardtanh"},
    "dab_preprocess": True,
}

ROWS = {
    # key: (model, method label, binarize)
    "vanilla_fp": ("pointnet_vanilla", "fp", None),
    "vanilla_bnn": ("pointnet_vanilla", "bnn", "bnn"),
    "vanilla_xnor": ("pointnet_vanilla", "xnor", "xnor"),
    "vanilla_xnor_ema": ("pointnet_vanilla", "xnor+ema-max", "xnor+ema-max"),
    "vanilla_bipointnet": ("pointnet_vanilla", "bipointnet", "bipointnet"),
    # the same with the LSR alpha of layers followed by BN frozen at Eq. 9 (benchmarks/lsr_alpha_drift.py:
    # trained, such an alpha walks through zero and every crossing is a loss spike)
    "vanilla_bipointnet_frozen": ("pointnet_vanilla", "bipointnet, LSR alpha before BN frozen",
                                  {"preset": "bipointnet", "lsr_before_bn": "frozen"}),
    # the same without the classifier's dropout: the official BiPointNet code has none in its binary
    # models (notes §b5; its FP model keeps 0.4), while onebit's binarized PointNet inherits the FP 0.4
    "vanilla_bipointnet_nodrop": ("pointnet_vanilla", "bipointnet, no dropout (official code)",
                                  {"preset": "bipointnet",
                                   "model_options": {"pool": "ema-max", "act": "hardtanh", "preact": True,
                                                     "dropout": 0.0}}),
    # BNN + EMA-max without LSR: isolates LSR, which BatchNorm right after each binary layer cancels
    # in training mode (BN(a z) = BN(z) for a > 0)
    "vanilla_bnn_ema": ("pointnet_vanilla", "bnn+ema-max", "bnn+ema-max"),
    "vanilla_dab": ("pointnet_vanilla", "dab+sign+ema-max+lsr", DAB_SPEC),
    "pointnet_fp": ("pointnet", "fp", None),
    "pointnet_bipointnet": ("pointnet", "bipointnet", "bipointnet"),
    "pointnet_bnn": ("pointnet", "bnn", "bnn"),
    "pointnet_bnn_ema": ("pointnet", "bnn+ema-max", "bnn+ema-max"),
    "pointnet_xnor": ("pointnet", "xnor", "xnor"),
    "pointnet_xnor_ema": ("pointnet", "xnor+ema-max", "xnor+ema-max"),
    "pointnet_bnn_lsr": ("pointnet", "bnn+lsr", "bnn+lsr"),
    "pointnet_bipointnet_avg": ("pointnet", "bipointnet-avg", "bipointnet-avg"),
    # the paper's deployment net (Fig. 6 / Table 4: 3-64-128-1024, FC 1024-512-256-40): its checkpoint feeds
    # `benchmarks/engine.py --checkpoint` (Table 4 accuracy, engine early exit on real clouds)
    "deploy_fp": ("pointnet_deploy", "fp", None),
    "deploy_bipointnet": ("pointnet_deploy", "bipointnet", "bipointnet"),
    # Table 4 (c)-(e): the first / last layer binarized too
    "deploy_ll_binary": ("pointnet_deploy", "bipointnet, last layer 1-bit",
                         {"preset": "bipointnet", "keep_float": ["first"]}),
    "deploy_fl_binary": ("pointnet_deploy", "bipointnet, first layer 1-bit",
                         {"preset": "bipointnet", "keep_float": ["last"]}),
    "deploy_fl_ll_binary": ("pointnet_deploy", "bipointnet, first and last layer 1-bit",
                            {"preset": "bipointnet", "keep_float": []}),
    "deploy_no_bn": ("pointnet_deploy", "bipointnet, no BN (LSR only)", NO_BN_SPEC),
    "deploy_no_bn_unit": ("pointnet_deploy", "bipointnet, no BN (LSR only, unit-variance init)", NO_BN_UNIT_SPEC),
}

# issue 18's campaign: every row at >= 100 epochs (Tables 1-4 where the paper reports them)
CAMPAIGN = ("vanilla_fp", "vanilla_xnor", "vanilla_bipointnet", "deploy_bipointnet", "deploy_ll_binary",
            "deploy_no_bn", "deploy_no_bn_unit", "pointnet_fp", "pointnet_bipointnet", "pointnet_bnn", "pointnet_bnn_ema",
            "pointnet_bnn_lsr", "pointnet_xnor", "pointnet_xnor_ema", "pointnet_bipointnet_avg")

DEFAULT_ROWS = ("vanilla_fp", "vanilla_bnn", "vanilla_xnor", "vanilla_xnor_ema", "vanilla_bipointnet", "vanilla_dab",
                "pointnet_fp", "pointnet_bipointnet")


def row_config(key: str, args) -> dict:
    model, _, binarize = ROWS[key]
    return {
        "model": {"name": model},
        "binarize": binarize,
        "data": {
            "name": "modelnet40",
            "protocol": {"name": args.protocol, "num_points": args.points},
            "options": {"root": args.root} if args.root else {},
            "train_subset": args.train_subset,
            "eval_subset": args.test_subset,
        },
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "seed": args.seed,
        "optim": {"name": "adam", "lr": args.lr, "weight_decay": 0.0},
        "schedule": {"name": "cosine", "eta_min": 0.0},
        "loss": {"tnet_reg": 0.001},
        "eval": {"every": args.eval_every or args.epochs},
        "threads": args.threads,
        "amp": args.amp,
        "diagnostics": False,
        "log": {"progress": False, "tensorboard": False},
    }


def _replace_row(results: list[dict], row: dict) -> list[dict]:
    """``results`` with ``row`` in place of the row of the same model, method, schedule, epochs and
    points (a 200-epoch row sits beside the 100-epoch one)."""
    key = ("model", "method", "schedule", "epochs", "points")
    return [r for r in results if any(r.get(k) != row.get(k) for k in key)] + [row]


def _logged_epochs(run_dir: Path) -> list[dict]:
    """The run's per-epoch rows (metrics.jsonl; empty for a run not started)."""
    path = run_dir / "metrics.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def _curve(epochs: list[dict]) -> list[list[float]]:
    """``[epoch, test_oa]`` for every evaluated epoch (1-based epochs)."""
    return [[int(r["epoch"]) + 1, round(float(r["oa"]), 2)] for r in epochs if "oa" in r]


def _train_curve(epochs: list[dict]) -> list[list[float]]:
    """``[epoch, train_loss, train_acc]`` for every epoch (1-based): the loss spikes and the final fit."""
    return [[int(r["epoch"]) + 1, round(float(r["train_loss"]), 4), round(float(r["train_acc"]), 2)]
            for r in epochs if "train_loss" in r]


def _wall(epochs: list[dict]) -> float:
    """Seconds the logged epochs took (for a resumed run, the ones before this process)."""
    return sum(float(r.get("time_s", 0.0)) for r in epochs)


TEST_DRAWS = (0, 1, 2)
"""Seeds of the fixed test-point draws of ``--reeval`` (the bipointnet protocol re-draws the test points
at every evaluation; draw 0 is the one ``onebit.zoo`` measures)."""


def fp32_eval(run_dir: Path, threads: int = 1, draws=TEST_DRAWS) -> dict:
    """Test OA / mAcc of the run's last.ckpt in FP32 (no autocast), as deployed (the engine computes the
    same function), on fixed seeded test draws: mean over ``draws`` and each draw's OA.

    Runs trained under bf16 before ``eval.amp`` existed were evaluated in bf16 during training."""
    import statistics

    import torch

    from onebit.train.checkpoint import load_model
    from onebit.train.trainer import evaluate
    from onebit.zoo.build import eval_split

    torch.set_num_threads(threads)
    model, ck = load_model(run_dir / "last.ckpt")
    oa, macc = [], []
    for seed in draws:
        ds, _ = eval_split(ck["config"], test_seed=seed)
        loader = torch.utils.data.DataLoader(ds, batch_size=64, shuffle=False)
        m = evaluate(model, loader, "cls", int(model.onebit_config["num_classes"]), amp=False)
        oa.append(round(m["oa"], 2))
        macc.append(m["macc"])
    return {"oa": round(statistics.mean(oa), 2), "macc": round(statistics.mean(macc), 2), "oa_draws": oa,
            "epochs": int(ck["epoch"]) + 1}


def fixed_train_split(cfg: dict, seed: int = 0):
    """A run config's full training split with its test split's sampling: one fixed seeded point draw, no
    augmentation. Returns ``(dataset, protocol)``."""
    from onebit.data import get_dataset, load_all
    from onebit.data.points.protocol import get_protocol

    d = cfg["data"]
    p = get_protocol(d["protocol"])
    load_all()
    ds = get_dataset(d["name"], "train", num_points=p.num_points, use_normals=p.use_normals, up_axis=p.up_axis,
                     sampling=p.test_sampling, resample=False, seed=int(seed), **(d.get("options") or {}))
    return ds, p


def add_checkpoint_row_args(ap: argparse.ArgumentParser) -> None:
    """The options of a script that measures trained campaign rows from their checkpoints (``RUNS/ROW/last.ckpt``)."""
    ap.add_argument("--rows", required=True, help="comma list of run names under --runs (the campaign's row keys)")
    ap.add_argument("--runs", type=Path, default=Path.home() / "onebit-runs/bipointnet_modelnet40")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", type=Path, default=None, help="merge the results into this JSON ({row: result})")


def measure_checkpoint_rows(ap: argparse.ArgumentParser, args, argv, script: str, measure, describe) -> int:
    """Run ``measure(run_dir)`` for each of ``args.rows`` (all checked for a last.ckpt before any work), stamp each
    result with the CPU and the command, print ``ROW: describe(result)`` and merge it into ``args.out`` as it lands."""
    rows = [r for r in args.rows.split(",") if r]
    missing = [r for r in rows if not (args.runs / r / "last.ckpt").is_file()]
    if missing:
        ap.error(f"no last.ckpt for {missing} under {args.runs}")
    from onebit.train.amp import cpu_model

    command = f"python benchmarks/{script} " + " ".join(argv if argv is not None else sys.argv[1:])
    results = json.loads(args.out.read_text()) if args.out and args.out.exists() else {}
    for r in rows:
        res = measure(args.runs / r)
        res.update(cpu=cpu_model(), command=command)
        print(f"{r}: {describe(res)}", flush=True)
        results[r] = res
        if args.out:
            args.out.write_text(json.dumps(results, indent=1) + "\n")
    return 0


def fp32_train_eval(run_dir: Path, threads: int = 1, seed: int = 0) -> dict:
    """OA of the run's last.ckpt on the full *training* split, in eval mode and FP32 (no dropout, BN running
    statistics, no augmentation, one fixed seeded point draw with the test split's sampling).

    The ``train_curve`` accuracy is measured in training mode (dropout on, batch statistics) on ever new
    draws, so it mixes fit with training-time noise; this one tells underfitting from a generalisation gap."""
    import torch

    from onebit.train.checkpoint import load_model
    from onebit.train.trainer import evaluate

    torch.set_num_threads(threads)
    model, ck = load_model(run_dir / "last.ckpt")
    ds, p = fixed_train_split(ck["config"], seed)
    loader = torch.utils.data.DataLoader(ds, batch_size=64, shuffle=False)
    m = evaluate(model, loader, "cls", int(model.onebit_config["num_classes"]), amp=False)
    return {"train_oa_eval": round(m["oa"], 2), "train_shapes_eval": len(ds),
            "train_oa_eval_how": f"FP32, eval mode, full training split, fixed draw seed={seed}, "
                                 f"{p.num_points} points, {p.test_sampling} sampling, no augmentation"}


def _set_final(row: dict, m: dict) -> None:
    """The row's final ``oa`` / ``macc``: FP32 on the fixed test draws (``fp32_eval``)."""
    row.update(oa=m["oa"], macc=m["macc"], eval_amp="off", oa_draws=m["oa_draws"],
               test_draws=f"FP32, fixed test-point draws test_seed={list(TEST_DRAWS)} (onebit.zoo.build.eval_split); "
                          "oa is their mean")


def reeval_rows(results: list[dict], keys: list[str], args) -> list[dict]:
    """Re-measure the final OA / mAcc of finished rows in FP32 from their run's last.ckpt (``--reeval``).

    A row whose final evaluation ran under bf16 keeps that number as ``oa_bf16``; its ``curve`` (and
    ``best_oa``) stay as evaluated during training, which ``curve_amp`` records."""
    for key in keys:
        model, method, _ = ROWS[key]
        run_dir = Path(args.runs) / key
        if not (run_dir / "last.ckpt").exists():
            print(f"--reeval {key}: no {run_dir / 'last.ckpt'}; skipped", file=sys.stderr)
            continue
        m = fp32_eval(run_dir, args.threads)
        match = [r for r in results if (r["model"], r["method"], r["epochs"], r["points"]) ==
                 (model, method, m["epochs"], args.points)]
        if not match:
            print(f"--reeval {key}: no row for {model} {method} at {m['epochs']} epochs, {args.points} points",
                  file=sys.stderr)
            continue
        row = match[-1]
        if row.get("eval_amp", row.get("amp")) == "bf16" and "oa_bf16" not in row:
            row["oa_bf16"], row["macc_bf16"] = row["oa"], row["macc"]
            row["curve_amp"] = "bf16"
        _set_final(row, m)
        row["train_curve"] = _train_curve(_logged_epochs(run_dir))
        row["paper_oa"] = PAPER.get((model, method))
        if args.train_oa:
            t = fp32_train_eval(run_dir, args.threads)
            row.update(t)
            print(f"{key}: train split OA (eval mode, FP32) {t['train_oa_eval']}", flush=True)
        print(f"{key}: FP32 OA {m['oa']} {m['oa_draws']} (bf16 eval {row.get('oa_bf16')}), mAcc {m['macc']}",
              flush=True)
    return results


def campaign_status(results: list[dict], epochs: int, points: int) -> list[str]:
    """One line per campaign row: done (its OA) or the command that runs it (``--status``)."""
    lines = []
    for key in CAMPAIGN:
        model, method, _ = ROWS[key]
        done = [r for r in results if (r["model"], r["method"], r.get("schedule")) == (model, method, "full")
                and r["epochs"] >= epochs and r["points"] == points]
        if done:
            r = max(done, key=lambda r: r["epochs"])
            lines.append(f"done  {key:<24} {r['oa']:6.2f} % OA at {r['epochs']} epochs ({r.get('cpu', '?')})")
        else:
            lines.append(f"todo  {key:<24} python benchmarks/bipointnet_modelnet40.py --rows {key} --epochs {epochs} "
                         f"--points {points} --eval-every 5 --amp auto --out ~/onebit-runs/rows_{key}.json")
    return lines


def markdown_table(rows: list[dict]) -> str:
    """The results as a markdown table next to the paper's numbers."""
    lines = ["| model | method | OA % | OA per test draw | mAcc % | best OA % (epoch) | paper OA % | epochs | points | "
             "train shapes | amp | wall s | CPU |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        paper = "–" if r.get("paper_oa") is None else f"{r['paper_oa']}"
        best = f"{r['best_oa']:.2f} ({r.get('best_epoch', '')})" if "best_oa" in r else "–"
        draws = " / ".join(f"{x:.2f}" for x in r["oa_draws"]) if r.get("oa_draws") else "–"
        lines.append(f"| {r['model']} | {r['method']} | {r['oa']:.2f} | {draws} | {r['macc']:.2f} | {best} | {paper} | "
                     f"{r['epochs']} | {r.get('points', '')} | {r.get('train_shapes', '')} | {r.get('amp', '–')} | "
                     f"{r.get('wall_s', '')} | {r.get('cpu', '–')} |")
    return "\n".join(lines)


def plot_curves(rows: list[dict], path: Path, entropy: dict | None = None) -> None:
    """Test OA against epoch for every full-schedule row with a curve, one panel per model, the
    paper's OA as a dotted line in the row's colour. With ``entropy`` (benchmarks/pooled_entropy.py's
    JSON, {row key: result}) a last panel shows each row's pooled-feature entropy after training:
    the end point of the paper's Figure 7."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in rows if r.get("curve") and r.get("schedule") == "full"]
    models = sorted({r["model"] for r in rows})
    if not models:
        raise SystemExit("no full-schedule rows with curves to plot")
    ent = {k: v for k, v in (entropy or {}).items() if k in ROWS}
    n = len(models) + bool(ent)
    ncols = 2 if n == 4 else n  # four panels as 2 x 2
    nrows = -(-n // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(5.5 * ncols, 4.2 * nrows), squeeze=False)
    axes = axes.ravel()
    if ent:
        _entropy_panel(axes[n - 1], ent)
    for ax, model in zip(axes, models, strict=False):
        mine = [r for r in rows if r["model"] == model]
        for i, r in enumerate(mine):
            ep, oa = zip(*r["curve"], strict=True)
            color = f"C{i}"
            # the same method at two schedules: say which curve is which
            twice = sum(x["method"] == r["method"] for x in mine) > 1
            when = f", {r['epochs']} epochs" if twice else ""
            label = f"{r['method']}{when} ({r['oa']:.1f})"
            ax.plot(ep, oa, "-o", ms=2.5, color=color, label=label)
            if r.get("paper_oa") is not None:
                ax.axhline(r["paper_oa"], color=color, ls=":", lw=1)
        ax.set_title(f"{model} on ModelNet40 ({rows[0]['points']} points)")
        ax.set_xlabel("epoch")
        ax.set_ylabel("test OA %")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="lower right")
    fig.text(0.01, 0.01, "dotted: the paper's OA · python benchmarks/bipointnet_modelnet40.py --plot PNG"
             + (" (entropy: benchmarks/results/pooled_entropy.json)" if ent else ""), fontsize=7)
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)


def _entropy_panel(ax, entropy: dict) -> None:
    """Grouped bars: per row (x), the entropy of each pool's sign over the test set (T-Nets' pools, then the
    global feature), one model's rows only (the first model in ``entropy``)."""
    model = ROWS[next(iter(entropy))][0]
    keys = [k for k in entropy if ROWS[k][0] == model]
    pools = list(dict.fromkeys(p for k in keys for p in entropy[k]["pools"]))
    width = 0.8 / max(1, len(pools))
    for j, pool in enumerate(pools):
        h = [entropy[k]["pools"].get(pool, {}).get("entropy_bits", float("nan")) for k in keys]
        ax.bar([i + (j - (len(pools) - 1) / 2) * width for i in range(len(keys))], h, width,
               label="global feature (pool)" if pool == "pool" else pool, color=f"C{j}")
    ax.set_xticks(range(len(keys)), [ROWS[k][1] for k in keys], rotation=30, ha="right", fontsize=8)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("H(sign(pooled)), bits")
    ax.set_title(f"{model}: pooled-feature entropy after training (Fig. 7's end point)", fontsize=9)
    ax.grid(alpha=0.3, axis="y")
    ax.legend(fontsize=7, loc="upper left")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--rows", default=",".join(DEFAULT_ROWS), help=f"comma list of rows: {', '.join(ROWS)}")
    p.add_argument("--epochs", type=int, default=None, help="default 200 (--status: 100, the campaign's)")
    p.add_argument("--points", type=int, default=None, help="default 1024 (--status: 256, the campaign's)")
    p.add_argument("--train-subset", type=int, default=None, help="random subset of the 9843 training shapes")
    p.add_argument("--test-subset", type=int, default=None, help="random subset of the 2468 test shapes")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--seed", type=int, default=666)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--eval-every", type=int, default=None, help="evaluate every k epochs (default: last only)")
    p.add_argument("--protocol", default="bipointnet", help="data protocol: bipointnet | common")
    p.add_argument("--root", default=None, help="ModelNet40 folder (default: ../shared/data/modelnet40)")
    p.add_argument("--amp", default="auto", choices=("auto", "bf16", "off"),
                   help="bf16 autocast: auto (where the CPU/GPU has native bf16), bf16, off")
    p.add_argument("--runs", default=str(Path.home() / "onebit-runs/bipointnet_modelnet40"),
                   help="run directories go here (outside the work tree); an unfinished run resumes")
    p.add_argument("--fresh", action="store_true", help="start over instead of resuming a run's last.ckpt")
    p.add_argument("--out", default=str(REPO / "benchmarks/results/bipointnet_modelnet40.json"))
    p.add_argument("--table", action="store_true", help="print the JSON at --out as a markdown table and exit")
    p.add_argument("--plot", metavar="PNG", default=None,
                   help="draw the learning curves of the full-schedule rows at --out into PNG and exit")
    p.add_argument("--entropy", metavar="JSON", default=str(REPO / "benchmarks/results/pooled_entropy.json"),
                   help="with --plot: add the pooled-feature entropy panel from this file "
                        "(benchmarks/pooled_entropy.py) when it exists")
    p.add_argument("--status", action="store_true",
                   help="list the campaign's rows at --epochs (default 100 here) / --points (256): done or the "
                        "command that runs it, and exit")
    p.add_argument("--reeval", action="store_true",
                   help="re-measure the final OA of the --rows at --out in FP32 from their runs' last.ckpt and exit")
    p.add_argument("--train-oa", action="store_true",
                   help="with --reeval: also the OA on the full training split in eval mode, FP32 (train_oa_eval)")
    p.add_argument("--merge", nargs="+", metavar="JSON", default=None,
                   help="merge the rows of these JSON files into --out (a row replaces the one with the same model, "
                        "method and schedule) and exit: runs side by side write their own files")
    args = p.parse_args(argv)
    if args.table:
        print(markdown_table(json.loads(Path(args.out).read_text())))
        return 0
    if args.plot:
        ent = Path(args.entropy)
        plot_curves(json.loads(Path(args.out).read_text()), Path(args.plot),
                    json.loads(ent.read_text()) if ent.is_file() else None)
        return 0
    if args.epochs is None:
        args.epochs = 100 if args.status else 200
    if args.points is None:
        args.points = 256 if args.status else 1024
    if args.status:
        print("\n".join(campaign_status(json.loads(Path(args.out).read_text()), args.epochs, args.points)))
        return 0
    if args.reeval:
        out_path = Path(args.out)
        keys = [k.strip() for k in args.rows.split(",") if k.strip()]
        results = reeval_rows(json.loads(out_path.read_text()), keys, args)
        out_path.write_text(json.dumps(results, indent=2) + "\n")
        return 0
    if args.merge:
        out_path = Path(args.out)
        results = json.loads(out_path.read_text()) if out_path.exists() else []
        for f in args.merge:
            for row in json.loads(Path(f).read_text()):
                results = _replace_row(results, row)
        out_path.write_text(json.dumps(results, indent=2) + "\n")
        return 0

    import torch

    torch.set_num_threads(args.threads)
    from onebit.train import run

    keys = [k.strip() for k in args.rows.split(",") if k.strip()]
    bad = [k for k in keys if k not in ROWS]
    if bad:
        p.error(f"unknown rows {bad}; known: {', '.join(ROWS)}")
    out_path = Path(args.out)
    results = json.loads(out_path.read_text()) if out_path.exists() else []
    flags = (f"--epochs {args.epochs} --points {args.points} --batch-size {args.batch_size} --lr {args.lr} "
             f"--seed {args.seed} --threads {args.threads} --protocol {args.protocol}"
             + (f" --train-subset {args.train_subset}" if args.train_subset else "")
             + (f" --test-subset {args.test_subset}" if args.test_subset else "")
             + (f" --eval-every {args.eval_every}" if args.eval_every else "")
             + f" --amp {args.amp}")
    from onebit.train.amp import cpu_model
    for key in keys:
        model, method, _ = ROWS[key]
        cfg = row_config(key, args)
        t0 = time.time()
        run_dir = Path(args.runs) / key
        resume = not args.fresh and (run_dir / "last.ckpt").exists()
        earlier = _wall(_logged_epochs(run_dir)) if resume else 0.0
        res = run(cfg, run_dir, resume=resume, progress=False)
        wall = time.time() - t0 + earlier
        curve = _curve(_logged_epochs(run_dir))
        row = {
            "model": model,
            "method": method,
            "oa": round(res.final["oa"], 2),
            "macc": round(res.final["macc"], 2),
            "best_oa": round(res.best.get("oa", float("nan")), 2),
            "best_epoch": res.best_epoch + 1,
            "epochs": args.epochs,
            "points": args.points,
            "train_shapes": args.train_subset or 9843,
            "test_shapes": args.test_subset or 2468,
            "paper_oa": PAPER.get((model, method)),
            "wall_s": round(wall, 1),
            "cpu": cpu_model(),
            "threads": args.threads,
            "amp": "bf16" if res.amp else "off",
            "curve_amp": "bf16" if res.amp and cfg["eval"].get("amp") else "off",
            "curve": curve,
            "train_curve": _train_curve(_logged_epochs(run_dir)),
            "schedule": "full" if args.epochs >= 100 else "short",
            "command": f"python benchmarks/bipointnet_modelnet40.py --rows {key} {flags}",
        }
        _set_final(row, fp32_eval(run_dir, args.threads))
        results = _replace_row(results, row)
        out_path.parent.mkdir(parents=True, exist_ok=True)
        out_path.write_text(json.dumps(results, indent=2) + "\n")
        print(json.dumps(row), flush=True)
    print(f"wrote {out_path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
