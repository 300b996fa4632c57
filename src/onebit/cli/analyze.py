"""``onebit analyze RUN_DIR_OR_CHECKPOINT``: plot the diagnostics of a run or of a checkpoint.

A run directory (with ``diagnostics.jsonl`` and/or ``metrics.jsonl``) gets every quantity plotted
over training; a checkpoint file (or a directory holding only ``last.ckpt``/``best.ckpt``) gets
the static diagnostics measured on one batch of its dataset (or ``--data``) and plotted per layer.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "analyze",
        help="plot entropy, scale distortion, T-Net regulariser, sign balance, flips, DAB K/α/β",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("path", metavar="RUN_DIR_OR_CHECKPOINT", help="training output directory or .ckpt file")
    p.add_argument("--out", default=None, help="folder for the PNGs (default: RUN_DIR/analysis or CKPT_analysis)")
    p.add_argument("--data", default=None, help="dataset name for a checkpoint (default: the one it was trained on)")
    p.add_argument("--split", default=None, help="dataset split for a checkpoint (default: the config's eval split)")
    p.add_argument("--batch-size", type=int, default=32, help="batch size of the one batch measured (default 32)")
    p.add_argument("--json", action="store_true", help="print a JSON summary instead of the table")
    p.set_defaults(func=run)


def _fail(msg: str) -> int:
    print(f"onebit analyze: {msg}", file=sys.stderr)
    return 2


def _checkpoint_record(ckpt_path: Path, args) -> dict:
    import torch

    from onebit.analysis import collect
    from onebit.train.checkpoint import load_model

    torch.set_num_threads(max(1, min(torch.get_num_threads(), 4)))
    model, ckpt = load_model(ckpt_path)
    cfg = ckpt.get("config") or {}
    data_cfg = cfg.get("data") or {}
    name = args.data or data_cfg.get("name")
    if not name:
        raise ValueError(f"{ckpt_path}: the checkpoint's config names no dataset; pass --data NAME")
    from onebit.data import get_dataset

    try:
        from onebit.data import load_all

        load_all()
    except ImportError:
        pass
    split = args.split or data_cfg.get("eval_split") or "test"
    if name == data_cfg.get("name") and data_cfg.get("protocol") is not None:
        ds = _protocol_split(cfg, split, ckpt_path)
    else:
        options = {}
        if name == data_cfg.get("name"):  # the run's dataset options (no augmentation: eval options)
            options.update(data_cfg.get("options") or {})
            options.update(data_cfg.get("eval_options") or {})
        ds = get_dataset(name, split, **options)
    if len(ds) == 0:
        raise ValueError(f"dataset {name!r} split {split!r} is empty")
    if args.batch_size < 1:
        raise ValueError(f"--batch-size must be >= 1, got {args.batch_size}")
    loader = torch.utils.data.DataLoader(ds, batch_size=min(args.batch_size, len(ds)), shuffle=False)
    inputs, targets = next(iter(loader))
    if inputs.dim() == 5:  # multi-crop evaluation items (B, crops, C, H, W): probe the first crop
        inputs = inputs[:, 0]
    rec = collect(model, (inputs, targets))
    rec = {"epoch": ckpt.get("epoch"), **rec, "source": str(ckpt_path), "data": name, "split": split}
    return rec


def _protocol_split(cfg: dict, split: str, ckpt_path: Path):
    """A split of a run whose data protocol (``data.protocol``, e.g. ``bipointnet``) builds its datasets:
    the test split as the run evaluates it, on the fixed point draw 0 where the protocol re-draws test
    points every evaluation; the train split as the run trained on it."""
    from onebit.train.config import resolve
    from onebit.train.trainer import build_datasets
    from onebit.zoo.build import eval_split

    data_cfg = cfg["data"]
    if split == (data_cfg.get("eval_split") or "test"):
        return eval_split(cfg, test_seed=0)[0]
    if split == (data_cfg.get("train_split") or "train"):
        return build_datasets(resolve(cfg), eval=False)[0]
    raise ValueError(f"{ckpt_path}: the run's data protocol builds only its train and test splits, not {split!r}")


def run(args) -> int:
    from onebit.analysis.plots import plot_records
    from onebit.analysis.recorder import DIAGNOSTICS_FILE, read_jsonl
    from onebit.analysis.report import summarize, summary_table

    path = Path(args.path)
    if not path.exists():
        return _fail(f"{path}: no such file or directory")
    metrics: list[dict] = []
    if path.is_dir():
        diag, met = path / DIAGNOSTICS_FILE, path / "metrics.jsonl"
        ckpts = [path / n for n in ("last.ckpt", "best.ckpt") if (path / n).is_file()]
        if diag.is_file() or met.is_file():
            records = read_jsonl(diag) if diag.is_file() else []
            metrics = read_jsonl(met) if met.is_file() else []
            out = Path(args.out) if args.out else path / "analysis"
        elif ckpts:
            path = ckpts[0]
            records = None
            out = Path(args.out) if args.out else path.parent / "analysis"
        else:
            return _fail(f"{path}: neither {DIAGNOSTICS_FILE}, metrics.jsonl nor a checkpoint (last.ckpt) found")
    else:
        records = None
        out = Path(args.out) if args.out else path.with_name(path.stem + "_analysis")
    if records is None:
        try:
            records = [_checkpoint_record(path, args)]
        except Exception as e:  # CheckpointError, DataError, bad options: one clear line
            return _fail(f"{type(e).__name__}: {e}")
    if not records and not metrics:
        return _fail(f"{path}: the diagnostics and metrics files hold no records")
    written = plot_records(records, out, metrics=metrics)
    summary = summarize(records, metrics)
    summary["figures"] = {k: str(v) for k, v in written.items()}
    if args.json:
        print(json.dumps(summary, indent=1, default=str))
    else:
        print(summary_table(summary))
        print(f"\n{len(written)} figure(s) written to {out}:")
        for p in written.values():
            print(f"  {p}")
    return 0
