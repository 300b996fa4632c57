"""``onebit demo``: BiPointNet's story on built-in synthetic shapes, then the zoo's ModelNet40 model in the engine."""

from __future__ import annotations

import argparse
import json
import sys


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "demo",
        help="FP32 vs BNN vs BNN + EMA-max vs BiPointNet on synthetic shapes (no download), then the engine",
        description=(
            "Generate a seeded synthetic 3-D shape set, train the same small PointNet in full precision and "
            "binarized (BNN with max pooling, BNN + EMA-max, BiPointNet = EMA-max + LSR) on one schedule, print "
            "accuracy, bits and size; export the BiPointNet model and check the engine; then run the zoo's "
            "ModelNet40 deployment model in the engine (size, speed against FP32 PyTorch, test accuracy). "
            "On a terminal each run shows a live bar, elsewhere one line per epoch."
        ),
    )
    p.add_argument("--out", default=None, help="directory for the runs (default: a temporary directory)")
    p.add_argument("--methods", default=None,
                   help="comma list of rows (FP32, BNN, 'BNN + EMA-max', BiPointNet, XNOR, 'XNOR + EMA-max', DAB) "
                        "or 'all' (default: the first four)")
    p.add_argument("--epochs", type=int, default=None, help="epochs per method")
    p.add_argument("--points", type=int, default=None, help="points per cloud")
    p.add_argument("--per-class", type=int, default=None, help="training clouds per class")
    p.add_argument("--threads", type=int, default=None, help="torch threads")
    p.add_argument("--amp", choices=("auto", "bf16", "off"), default=None,
                   help="bf16 autocast (default auto: where the CPU has native bf16 units)")
    p.add_argument("--progress", choices=("auto", "bars", "lines"), default="auto",
                   help="live bars (a terminal) or one line per epoch (default: bars only on a terminal)")
    p.add_argument("--zoo", default=None, metavar="NAME", help="zoo entry for the deployment step")
    p.add_argument("--no-engine", action="store_true", help="skip the export / engine / zoo steps")
    p.add_argument("--json", default=None, metavar="FILE", help="also write every number to FILE")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from onebit.demo import DemoSettings, resolve_methods, run_demo

    s = DemoSettings()
    for field, value in (("epochs", args.epochs), ("points", args.points), ("per_class", args.per_class),
                         ("threads", args.threads), ("amp", args.amp), ("progress", args.progress),
                         ("zoo_entry", args.zoo)):
        if value is not None:
            setattr(s, field, value)
    try:
        methods = resolve_methods(args.methods)
    except ValueError as e:
        print(f"onebit demo: {e}", file=sys.stderr)
        return 2
    report = run_demo(s, out_dir=args.out, methods=methods, engine=not args.no_engine)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=2, default=str)
    return 0
