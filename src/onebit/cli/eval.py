"""``onebit eval CHECKPOINT [--data NAME_OR_PATH] [--split test] [--json]``."""

from __future__ import annotations

import argparse
import json
import sys


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "eval", help="evaluate a checkpoint on a dataset split",
        description="Evaluate a training checkpoint. By default on the dataset and options it was "
                    "trained with; --data names another registered dataset, or a path used as that "
                    "dataset's root.")
    p.add_argument("checkpoint", help="a .ckpt file written by `onebit train`")
    p.add_argument("--data", default=None, metavar="NAME_OR_PATH",
                   help="dataset name, or a directory/file passed as the dataset's root option")
    p.add_argument("--split", default=None, help="split to evaluate (default: the run's eval split)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a key of the stored run config, e.g. data.eval_options.ten_crop=true")
    p.add_argument("--batch-size", type=int, default=None)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--json", action="store_true", help="print the metrics as JSON on stdout")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    import torch

    from onebit.train.checkpoint import CheckpointError, load_model
    from onebit.train.config import ConfigError, apply_overrides, resolve
    from onebit.train.trainer import _category_parts, build_datasets, evaluate

    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        model, ckpt = load_model(args.checkpoint)
        cfg = resolve(apply_overrides(ckpt["config"], args.overrides), source=f"{args.checkpoint} (stored config)")
        if args.data:
            from onebit.data import dataset_names, load_all

            load_all()
            if args.data in dataset_names():
                if args.data != cfg["data"]["name"]:
                    cfg["data"]["options"] = {}
                    cfg["data"]["eval_options"] = {}
                cfg["data"]["name"] = args.data
            elif Path(args.data).exists():
                cfg["data"]["options"]["root"] = args.data
            else:
                raise ConfigError(f"--data {args.data!r}: neither a registered dataset "
                                  f"({', '.join(dataset_names())}) nor an existing path")
        if args.split:
            cfg["data"]["eval_split"] = args.split
        _, ds, task = build_datasets(cfg, train=False)
        task = ckpt.get("task") or model.onebit_config.get("task", task)
        from onebit.data import dataset_entry

        loader = torch.utils.data.DataLoader(ds, batch_size=args.batch_size or cfg["eval_batch_size"]
                                             or cfg["batch_size"], shuffle=False)
        cp, ncat = _category_parts(ds)
        metrics = evaluate(model, loader, task, int(model.onebit_config["num_classes"]),
                           domain=dataset_entry(cfg["data"]["name"]).domain, category_parts=cp,
                           num_categories=ncat)
    except (CheckpointError, ConfigError) as e:
        print(f"onebit eval: error: {e}", file=sys.stderr)
        return 2
    result = {"checkpoint": str(args.checkpoint), "dataset": cfg["data"]["name"],
              "split": cfg["data"]["eval_split"], "epoch": ckpt.get("epoch"), **metrics}
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(f"{args.checkpoint} on {result['dataset']}/{result['split']} (epoch {result['epoch']}):")
        for k, v in metrics.items():
            print(f"  {k:>14}: {v:.4f}")
    return 0
