"""``onebit demo``: train a small PointNet in FP32 and binarized on synthetic shapes; print the table."""

from __future__ import annotations

import argparse
import json


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "demo",
        help="train FP32 / BNN / XNOR / BiPointNet / DAB PointNets on synthetic shapes (no download)",
        description=(
            "Generate a seeded synthetic 3-D shape set, train the same small PointNet in full precision "
            "and binarized (BNN, XNOR, BiPointNet EMA-max + LSR, DAB), print accuracy, bits and size, then "
            "export the BiPointNet model and time the onebit engine against PyTorch."
        ),
    )
    p.add_argument("--out", default=None, help="directory for the runs (default: a temporary directory)")
    p.add_argument("--epochs", type=int, default=None, help="epochs per method")
    p.add_argument("--points", type=int, default=None, help="points per cloud")
    p.add_argument("--per-class", type=int, default=None, help="training clouds per class")
    p.add_argument("--threads", type=int, default=None, help="torch threads")
    p.add_argument("--no-engine", action="store_true", help="skip the export / engine step")
    p.add_argument("--json", default=None, metavar="FILE", help="also write every number to FILE")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from onebit.demo import DemoSettings, run_demo

    s = DemoSettings()
    for field, value in (("epochs", args.epochs), ("points", args.points), ("per_class", args.per_class),
                         ("threads", args.threads)):
        if value is not None:
            setattr(s, field, value)
    report = run_demo(s, out_dir=args.out, engine=not args.no_engine)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=2, default=str)
    return 0
