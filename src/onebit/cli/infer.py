"""``onebit infer model.onebit INPUT.(h5|npy) [--json]``: run an exported model (no torch)."""

from __future__ import annotations

import argparse
import json
import sys


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "infer", help="run a .onebit model on point clouds with the native engine (no torch)",
        description="Run an exported model on an .npy array ((N, C) or (B, N, C)) or an HDF5 file with a "
                    "'points' or 'data' dataset (B, N, C); with a 'label' dataset the accuracy is "
                    "reported too.")
    p.add_argument("model", help="a .onebit file written by `onebit export`")
    p.add_argument("input", help="input points: .npy or .h5")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--isa", choices=("avx512", "avx2", "scalar"), default=None,
                   help="force a kernel path (default: $ONEBIT_ISA or the best this CPU has)")
    p.add_argument("--limit", type=int, default=None, help="use only the first LIMIT clouds")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--json", action="store_true", help="print predictions (and logits) as JSON")
    p.set_defaults(func=run)


def _read_input(path: str, limit):
    from pathlib import Path

    import numpy as np

    suffix = Path(path).suffix.lower()
    labels = None
    if suffix == ".npy":
        try:
            x = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as e:
            raise ValueError(f"{path}: cannot read the .npy array: {e}") from None
    elif suffix in (".h5", ".hdf5"):
        import h5py

        try:
            with h5py.File(path, "r") as f:
                key = "points" if "points" in f else "data" if "data" in f else None
                if key is None:
                    raise ValueError(f"{path}: no 'points' or 'data' dataset (found {sorted(f)})")
                n = f[key].shape[0] if limit is None else min(limit, f[key].shape[0])
                x = f[key][:n]
                if "label" in f:
                    labels = np.asarray(f["label"][:n]).reshape(-1)
        except OSError as e:
            raise ValueError(f"{path}: cannot read HDF5: {e}") from None
    elif suffix == ".png":
        raise ValueError(f"{path}: image input is for sketch models; this engine version exports point models only")
    else:
        raise ValueError(f"{path}: unsupported input type {suffix!r} (expected .npy or .h5)")
    if x.ndim == 2:
        x = x[None]
    if limit is not None:
        x = x[:limit]
    return x, labels


def run(args: argparse.Namespace) -> int:
    import numpy as np

    from onebit.runtime import FormatError, load

    try:
        model = load(args.model, isa=args.isa)
        x, labels = _read_input(args.input, args.limit)
        outs = [model.run(x[i:i + args.batch_size], threads=args.threads)
                for i in range(0, len(x), max(1, args.batch_size))]
        logits = np.concatenate(outs) if outs else np.zeros((0, model.output_channels), np.float32)
    except (FormatError, ValueError) as e:
        print(f"onebit infer: {e}", file=sys.stderr)
        return 1
    pred = logits.argmax(-1)
    acc = float((pred == labels[:len(pred)]).mean()) if labels is not None and len(pred) else None
    if args.json:
        print(json.dumps({"model": args.model, "isa": model.isa, "predictions": pred.tolist(),
                          "logits": np.round(logits, 6).tolist(), "accuracy": acc}))
    else:
        for i, p in enumerate(pred[:20]):
            print(f"{i}: class {int(p)}" + (f" (label {int(labels[i])})" if labels is not None else ""))
        if len(pred) > 20:
            print(f"... {len(pred)} clouds")
        if acc is not None:
            print(f"accuracy: {acc:.4f} on {len(pred)} clouds")
    return 0
