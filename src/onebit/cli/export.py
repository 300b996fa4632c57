"""``onebit export CHECKPOINT -o model.onebit [--json]``: write a checkpoint for the 1-bit engine."""

from __future__ import annotations

import argparse
import json
import sys


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "export", help="export a checkpoint to a .onebit file for the native 1-bit engine",
        description="Fold BN, scales and pooling offsets into integer thresholds, pack binary weights "
                    "into bits and write one .onebit file (docs/format.md) that `onebit infer` and "
                    "onebit.runtime run without torch.")
    p.add_argument("checkpoint", help="a .ckpt file written by `onebit train`")
    p.add_argument("-o", "--output", required=True, help="the .onebit file to write")
    p.add_argument("--points", type=int, default=None,
                   help="fix the points per cloud: EMA-max offsets fold into integer thresholds (smaller file; "
                        "the model then accepts only that point count)")
    p.add_argument("--input-size", type=int, default=None,
                   help="image models: the input side the engine will take (resnet18: default 224; "
                        "sketch_a_net: the size it was built for)")
    p.add_argument("--json", action="store_true", help="print the export summary as JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from onebit.export import ExportError, export
    from onebit.train.checkpoint import CheckpointError, load_model

    try:
        model, _ = load_model(args.checkpoint)
        info = export(model, args.output, points=args.points, input_size=args.input_size)
    except (CheckpointError, ExportError, OSError) as e:
        print(f"onebit export: {e}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(info, indent=2))
    else:
        print(f"wrote {info['path']}: {info['file_bytes']:,} bytes, {info['binary_layers']} binary and "
              f"{info['float_layers']} float layers, {info['ops']} ops")
    return 0
