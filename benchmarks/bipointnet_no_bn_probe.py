"""Why BiPointNet without BatchNorm (paper Table 4 (f)) does not train, and what makes it train.

The deployment net ``pointnet_deploy`` (3-64-128-1024, FC 1024-512-256-40, first and last layer float)
is built four ways from the same seed and fed the same first training batch (train mode, so LSR's α is
initialised from it):

- ``bn``: Table 4 (b), binary linear → BN → Hardtanh, EMA-max (the reference that trains);
- ``no_bn``: Table 4 (f) as the paper states it: no BN after the binary layers, LSR α from Eq. 9, EMA-max;
- ``no_bn_max``: the same with plain max pooling (δ = 0);
- ``no_bn_unit``: the same as ``no_bn`` with ``lsr_init="unit"``: α₀ = 1 / σ(B_a ⊙ B_w), unit-variance
  output, the scale EMA-max's δ* is derived for.

For each it records every binary layer's α and output σ, the global pooled feature (mean, σ, the share
inside the sign's STE window |y| ≤ 1 where a gradient passes, the share ≥ 0, H(sign)), and the gradient
that one cross-entropy backward leaves on the encoder's binary weights. With ``--epochs N`` it also trains
each variant N epochs on the full ModelNet40 training split (``onebit.train.run``, the campaign's recipe)
and records the test OA. ``--checkpoint VARIANT=PATH`` probes a trained checkpoint as well (for instance the
campaign's 100-epoch ``deploy_no_bn`` run); with ``--engine`` each checkpoint is also exported and its test OA
measured in the engine and in torch float64 (the zoo's fixed test draw 0).

    python benchmarks/bipointnet_no_bn_probe.py --epochs 10 --train no_bn_max --engine \
        --checkpoint no_bn=~/onebit-runs/bipointnet_modelnet40/deploy_no_bn/last.ckpt \
        --checkpoint no_bn_unit=~/onebit-runs/bipointnet_modelnet40/deploy_no_bn_unit/last.ckpt \
        --out benchmarks/results/bipointnet_no_bn_probe.json
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bipointnet_modelnet40 import NO_BN_SPEC, NO_BN_UNIT_SPEC  # noqa: E402

VARIANTS = {
    "bn": "bipointnet",
    "no_bn": NO_BN_SPEC,
    "no_bn_max": {**NO_BN_SPEC, "model_options": {**NO_BN_SPEC["model_options"], "pool": "max"}},
    "no_bn_unit": NO_BN_UNIT_SPEC,
}


def base_config(binarize, args) -> dict:
    from onebit.train.config import resolve

    return resolve({
        "model": {"name": "pointnet_deploy"}, "binarize": binarize,
        "data": {"name": "modelnet40", "protocol": {"name": "bipointnet", "num_points": args.points},
                 "options": {"root": args.root} if args.root else {}, "num_classes": 40},
        "epochs": args.epochs or 1, "batch_size": args.batch_size, "seed": args.seed,
        "optim": {"name": "adam", "lr": 1e-3, "weight_decay": 0.0},
        "schedule": {"name": "cosine", "eta_min": 0.0},
        "eval": {"every": args.epochs or 1}, "threads": args.threads, "amp": args.amp,
        "log": {"progress": False, "tensorboard": False},
    })


def probe(model, x, y) -> dict:
    """One train-mode forward and backward of (x, y) on a copy of ``model`` (its BN statistics and LSR state
    stay as they were): per-layer scales, the pooled feature, the gradients."""
    import copy

    import torch
    import torch.nn.functional as F

    from onebit.analysis.entropy import sign_entropy
    from onebit.convert import iter_binary_layers

    model = copy.deepcopy(model)
    torch.manual_seed(0)  # the classifier's dropout: the same mask on every call
    layers = dict(iter_binary_layers(model))
    outs, pooled = {}, {}
    hooks = [m.register_forward_hook(lambda mod, i, o, n=n: outs.__setitem__(n, o.detach()))
             for n, m in layers.items()]
    hooks.append(model.pool.register_forward_hook(lambda mod, i, o: pooled.__setitem__("y", o.detach())))
    model.train()
    model.zero_grad(set_to_none=True)
    loss = F.cross_entropy(model(x), y)
    loss.backward()
    for h in hooks:
        h.remove()
    g = pooled["y"].double()
    encoder = [m.weight.grad for n, m in layers.items() if n.startswith("mlp")]
    return {
        "loss": round(float(loss.detach()), 4),
        "layers": {n: {"alpha": round(float(m.lsr.alpha.detach()), 5) if m.lsr is not None else None,
                       "out_std": round(float(outs[n].double().std()), 4)} for n, m in layers.items()},
        "pooled": {"mean": round(float(g.mean()), 4), "std": round(float(g.std()), 4),
                   "in_ste_window": round(float((g.abs() <= 1).double().mean()), 4),
                   "positive": round(float((g >= 0).double().mean()), 4),
                   "sign_entropy_bits": round(sign_entropy(g), 4)},
        "encoder_grad_abs_mean": float(torch.stack([w.abs().mean() for w in encoder if w is not None]).mean())
        if any(w is not None for w in encoder) else 0.0,
    }


def engine_vs_torch(model, cfg) -> dict:
    """Test OA of ``model`` exported to the engine and in torch float64, on the zoo's fixed test draw 0."""
    import numpy as np

    import onebit.export
    from onebit.runtime import load as runtime_load
    from onebit.zoo.build import _arrays, eval_split, predict

    ds, _ = eval_split(cfg, test_seed=0)
    clouds, labels = _arrays(ds)
    with tempfile.TemporaryDirectory() as d:
        onebit.export.export(model, Path(d) / "m.onebit", points=clouds.shape[1])
        eng = runtime_load(Path(d) / "m.onebit")
        engine = predict(clouds, eng=eng).argmax(-1)
    ref = predict(clouds, model=model).argmax(-1)
    return {"test_clouds": int(len(labels)), "points": int(clouds.shape[1]),
            "engine_oa": round(100 * float(np.mean(engine == labels)), 2),
            "torch_float64_oa": round(100 * float(np.mean(ref == labels)), 2),
            "disagreements": int(np.sum(engine != ref))}


def first_batch(cfg, batch_size: int):
    import torch

    from onebit.train.trainer import build_datasets

    train_ds, _, _ = build_datasets(cfg, train=True, eval=False)
    g = torch.Generator().manual_seed(cfg["seed"])
    idx = torch.randperm(len(train_ds), generator=g)[:batch_size].tolist()
    items = [train_ds[i] for i in idx]
    return torch.stack([it[0] for it in items]), torch.as_tensor([int(it[1]) for it in items])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--variants", default=",".join(VARIANTS), help=f"comma list of {list(VARIANTS)}")
    ap.add_argument("--epochs", type=int, default=0, help="also train variants this many epochs (0: probe only)")
    ap.add_argument("--train", default=None, help="comma list of the variants to train (default: all of --variants)")
    ap.add_argument("--points", type=int, default=256)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--seed", type=int, default=666)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--amp", default="auto", choices=("auto", "bf16", "off"))
    ap.add_argument("--root", default=None, help="ModelNet40 root (default: ../shared/data/modelnet40)")
    ap.add_argument("--checkpoint", action="append", default=[], metavar="VARIANT=PATH",
                    help="also probe this trained checkpoint (repeatable)")
    ap.add_argument("--engine", action="store_true",
                    help="also export each --checkpoint and compare the engine's test OA with torch's (test draw 0)")
    ap.add_argument("--out", type=Path, default=None, help="write the JSON here")
    args = ap.parse_args(argv)

    import torch

    from onebit.train import run
    from onebit.train.amp import cpu_model
    from onebit.train.checkpoint import load_model
    from onebit.train.trainer import build_model

    torch.set_num_threads(args.threads)
    names = [v for v in args.variants.split(",") if v]
    bad = [v for v in names if v not in VARIANTS]
    if bad:
        ap.error(f"unknown variant(s) {bad}; choose from {list(VARIANTS)}")
    trained_names = names if args.train is None else [v for v in args.train.split(",") if v]
    if set(trained_names) - set(names):
        ap.error(f"--train {sorted(set(trained_names) - set(names))} not in --variants")
    checkpoints = []
    for spec in args.checkpoint:  # checked before any work
        v, _, path = spec.partition("=")
        if v not in VARIANTS or not path:
            ap.error(f"--checkpoint expects VARIANT=PATH with VARIANT in {list(VARIANTS)}, got {spec!r}")
        if not Path(path).expanduser().is_file():
            ap.error(f"--checkpoint {v}: {path} is not a file")
        checkpoints.append((v, Path(path).expanduser()))
    x, y = first_batch(base_config("bipointnet", args), args.batch_size)
    result = {"cpu": cpu_model(), "points": args.points, "batch_size": args.batch_size, "seed": args.seed,
              "epochs": args.epochs, "command": "python benchmarks/bipointnet_no_bn_probe.py " + " ".join(
                  argv if argv is not None else sys.argv[1:]), "variants": {}}
    for v in names:
        cfg = base_config(VARIANTS[v], args)
        torch.manual_seed(args.seed)
        model = build_model(cfg, [(x[0], y[0])], "cls")
        row = {"binarize": cfg["binarize"], "init": probe(model, x, y)}
        print(f"{v:11s} init: pooled mean {row['init']['pooled']['mean']:+.3f} std {row['init']['pooled']['std']:.3f}"
              f"  in STE window {row['init']['pooled']['in_ste_window']:.3f}"
              f"  positive {row['init']['pooled']['positive']:.3f}", flush=True)
        if args.epochs and v in trained_names:
            t0 = time.time()
            with tempfile.TemporaryDirectory() as d:
                res = run(cfg, d, progress=False)
                trained, _ = load_model(res.last_ckpt)
                row["trained"] = probe(trained, x, y)
            row["test_oa"] = round(float(res.final["oa"]), 2)
            row["train_acc"] = [round(float(h["train_acc"]), 2) for h in res.history if "train_acc" in h]
            row["wall_s"] = round(time.time() - t0, 1)
            print(f"{v:11s} {args.epochs} epochs: test OA {row['test_oa']:.2f} %, train acc {row['train_acc'][-1]:.2f} %"
                  f"  ({row['wall_s']:.0f} s)", flush=True)
        result["variants"][v] = row
    for v, path in checkpoints:
        trained, ckpt = load_model(path)
        row = {"epochs": ckpt.get("epoch"), **probe(trained, x, y)}
        if args.engine:
            row["engine"] = engine_vs_torch(trained.eval(), base_config(VARIANTS[v], args))
            print(f"{v:11s} checkpoint: engine {row['engine']['engine_oa']:.2f} %, torch float64 "
                  f"{row['engine']['torch_float64_oa']:.2f} %", flush=True)
        result["variants"].setdefault(v, {})["checkpoint"] = row
    text = json.dumps(result, indent=1)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")
        print(f"wrote {args.out}")
    else:
        print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
