"""``onebit train CONFIG.yaml [--set key=value ...] --out DIR [--resume]``."""

from __future__ import annotations

import argparse
import json
import os
import sys


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "train", help="train a model from a YAML config (single process or under torchrun)",
        description="Train a model from a YAML config (schema: docs/training.md). Writes DIR/last.ckpt "
                    "(every epoch), DIR/best.ckpt, DIR/metrics.jsonl, DIR/metrics.csv and DIR/config.yaml. "
                    "Run under `torchrun --nproc_per_node K -m onebit.cli train ...` for DDP.")
    p.add_argument("config", help="YAML config file")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a dotted config key, value parsed as YAML (repeatable)")
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--resume", action="store_true", help="continue from DIR/last.ckpt (error if corrupt)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars / per-epoch lines")
    p.add_argument("--json", action="store_true", help="print the final result as JSON on stdout")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from onebit.train.checkpoint import CheckpointError
    from onebit.train.config import ConfigError, load
    from onebit.train.trainer import run as train_run

    try:
        cfg = load(args.config, args.overrides)
        result = train_run(cfg, args.out, resume=args.resume, progress=not args.no_progress)
    except (ConfigError, CheckpointError) as e:
        print(f"onebit train: error: {e}", file=sys.stderr)
        return 2
    if int(os.environ.get("RANK", "0")) != 0:
        return _leave(0)
    summary = {
        "out_dir": str(result.out_dir), "final": result.final, "best": result.best,
        "best_epoch": result.best_epoch, "select": result.select,
    }
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        fin = ", ".join(f"{k}={v:.2f}" for k, v in result.final.items() if isinstance(v, float))
        print(f"done: {result.out_dir} | final {fin} | best {result.select}="
              f"{result.best.get(result.select, float('nan')):.2f} at epoch {result.best_epoch}")
    return _leave(0)


def _leave(code: int) -> int:
    """``code``; under torchrun, end the process right here once the output is flushed.

    After a gloo DDP run, a worker's interpreter shutdown sometimes aborts in a C++ static destructor
    ("terminate called without an active exception", SIGABRT, no Python frame left) even though every
    file was written; torchrun then reports the run as failed. All work is on disk at this point (the
    checkpoints are written atomically), so skipping the interpreter's teardown loses nothing."""
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    return code
