"""``onebit summary MODEL_NAME``: per-layer bits, memory and MACs of a registered model.

Builds the model with ``onebit.models.create`` (optionally binarized with a preset such as
``bipointnet``, ``xnor+ema-max`` or ``dab-fbin``), runs one example through it and prints the
table of ``onebit.summary``: parameters by bit width, packed memory, binary vs float MACs, and the
FP32 vs binarized size. Point models take ``--points N`` (MACs scale with N), sketch models
``--size H W``.
"""

from __future__ import annotations

import argparse
import json
import sys


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "summary",
        help="per-layer parameters by bit width, packed memory and binary/float MACs of a model",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("model", metavar="MODEL_NAME", help="registered model name (see onebit.models.names())")
    p.add_argument("--binarize", default=None, metavar="PRESET",
                   help="binarization preset, e.g. bipointnet, xnor+ema-max, dab-wbin (default: full precision)")
    shape = p.add_mutually_exclusive_group()
    shape.add_argument("--points", type=int, default=None, metavar="N", help="points per cloud (point models; default 1024)")
    shape.add_argument("--size", type=int, nargs=2, default=None, metavar=("H", "W"),
                       help="image size (sketch models; default 225 225)")
    p.add_argument("--classes", type=int, default=40, metavar="C", help="number of classes (default 40)")
    p.add_argument("--task", default="cls", help="task the model is built for (default cls)")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.set_defaults(func=run)


def _fail(msg: str) -> int:
    print(f"onebit summary: {msg}", file=sys.stderr)
    return 2


def run(args) -> int:
    import torch

    from onebit.convert import SpecError
    from onebit.models import create, entry
    from onebit.summary import summary

    torch.set_num_threads(1)
    try:
        e = entry(args.model)
    except KeyError as err:
        return _fail(err.args[0])
    if args.classes < 1:
        return _fail(f"--classes must be >= 1, got {args.classes}")
    try:
        model = create(args.model, num_classes=args.classes, task=args.task, binarize=args.binarize)
    except (SpecError, ValueError, TypeError, KeyError) as err:
        return _fail(f"cannot build {args.model!r}: {err}")
    if e.domain == "points":
        if args.size is not None:
            return _fail(f"{args.model!r} is a point model: use --points N, not --size")
        n = 1024 if args.points is None else args.points
        if n < 1:
            return _fail(f"--points must be >= 1, got {n}")
        channels = int(model.onebit_config.get("options", {}).get("in_channels", 3) or 3)
        x = torch.randn(1, n, channels)
    else:
        if args.points is not None:
            return _fail(f"{args.model!r} is a {e.domain} model: use --size H W, not --points")
        h, w = (225, 225) if args.size is None else args.size
        if h < 1 or w < 1:
            return _fail(f"--size must be positive, got {h} {w}")
        x = torch.randn(1, 1, h, w)
    title = args.model + (f" [{args.binarize}]" if args.binarize else " [fp]")
    try:
        s = summary(model, x, title=title)
    except (RuntimeError, ValueError) as err:
        return _fail(f"forward of {args.model!r} on input {tuple(x.shape)} failed: {err}")
    if args.json:
        print(json.dumps(s.to_dict(), indent=1))
    else:
        print(s)
    return 0
