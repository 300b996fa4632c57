"""``onebit infer model.onebit INPUT.(h5|npy|png) [--json]``: run an exported model (no torch)."""

from __future__ import annotations

import argparse
import json
import sys


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "infer", help="run a .onebit model on point clouds or sketches with the native engine (no torch)",
        description="Run an exported model on an .npy array ((N, C) or (B, N, C); sketch models: (B, H, W) or "
                    "(B, C, H, W) images) or an HDF5 file with a 'points', 'data' or 'images' dataset; with a "
                    "'label' dataset the accuracy is reported too. Sketch models also take image files "
                    "(.png, .jpg, ...): converted to grayscale with the ink as foreground (1 = ink, inverted "
                    "when the border is light, as in training) and resized to the model's input size.")
    p.add_argument("model", help="a .onebit file written by `onebit export`, or a zoo name (`onebit zoo`)")
    p.add_argument("input", help="input: .npy or .h5 (points or images), or an image file for sketch models")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--isa", choices=("avx512", "avx2", "scalar"), default=None,
                   help="force a kernel path (default: $ONEBIT_ISA or the best this CPU has)")
    p.add_argument("--limit", type=int, default=None, help="use only the first LIMIT clouds")
    p.add_argument("--up-axis", choices=("y", "z"), default="y",
                   help="the input clouds' up axis: onebit's models (and the zoo) take y-up clouds, as the Stanford "
                        "HDF5 files; z swaps y and z first, as onebit's loaders do for z-up data "
                        "(../shared/data/modelnet40)")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--json", action="store_true", help="print predictions (and logits) as JSON")
    p.set_defaults(func=run)


IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp")


def _read_image(path: str, model):
    """One sketch image → (1, C, H, W) float32 in [0, 1], ink = 1, at the model's input size (no torch)."""
    import numpy as np
    from PIL import Image, UnidentifiedImageError

    if model.input_hw is None:
        raise ValueError(f"{path}: image input needs a sketch model; {model.path.name} takes point clouds")
    h, w = model.input_hw
    try:
        img = Image.open(path)
        img.load()
    except (OSError, UnidentifiedImageError) as e:
        raise ValueError(f"{path}: cannot read the image: {e}") from None
    if img.mode in ("RGBA", "LA", "P"):  # transparent background: composite on white, as a viewer shows it
        img = img.convert("RGBA")
        bg = Image.new("RGBA", img.size, (255, 255, 255, 255))
        img = Image.alpha_composite(bg, img)
    a = np.asarray(img.convert("L"), np.float32) / 255.0
    border = np.concatenate([a[0], a[-1], a[:, 0], a[:, -1]])
    if float(np.median(border)) > 0.5:  # dark ink on a light background (Sketchy / TU-Berlin PNGs)
        a = 1.0 - a
    small = Image.fromarray(np.round(a * 255).astype(np.uint8)).resize((w, h), Image.BILINEAR)
    x = np.asarray(small, np.float32) / 255.0
    c = model.input_channels
    return np.repeat(x[None, None], c, axis=1), None


def _read_input(path: str, limit, model=None):
    from pathlib import Path

    import numpy as np

    suffix = Path(path).suffix.lower()
    labels = None
    if suffix in IMAGE_SUFFIXES:
        return _read_image(path, model)
    if suffix == ".npy":
        try:
            x = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as e:
            raise ValueError(f"{path}: cannot read the .npy array: {e}") from None
    elif suffix in (".h5", ".hdf5"):
        import h5py

        try:
            with h5py.File(path, "r") as f:
                key = next((k for k in ("points", "data", "images") if k in f), None)
                if key is None:
                    raise ValueError(f"{path}: no 'points', 'data' or 'images' dataset (found {sorted(f)})")
                n = f[key].shape[0] if limit is None else min(limit, f[key].shape[0])
                x = f[key][:n]
                if key == "images" and x.dtype == np.uint8:
                    x = x.astype(np.float32) / 255.0
                if "label" in f:
                    labels = np.asarray(f["label"][:n]).reshape(-1)
        except OSError as e:
            raise ValueError(f"{path}: cannot read HDF5: {e}") from None
    else:
        raise ValueError(f"{path}: unsupported input type {suffix!r} (expected .npy or .h5)")
    if x.ndim == 2 and getattr(model, "input_hw", None) is None:
        x = x[None]
    if limit is not None:
        x = x[:limit]
    return x, labels


def _load_model(name: str, isa):
    """``(model, class names or None)``: a .onebit file, or the engine file of a zoo entry (sha256-checked)
    when no such file exists."""
    import os

    from onebit.runtime import load

    if not os.path.exists(name):
        from onebit import zoo

        if name in zoo.names():
            return zoo.engine(name, isa=isa), zoo.info(name).get("class_names") or None
        if not name.endswith(".onebit"):
            raise ValueError(f"{name}: no such file, and not a zoo entry (known: {', '.join(zoo.names()) or 'none'})")
    return load(name, isa=isa), None


def run(args: argparse.Namespace) -> int:
    import numpy as np

    from onebit.runtime import FormatError
    from onebit.zoo import ZooError

    try:
        model, class_names = _load_model(args.model, args.isa)
        x, labels = _read_input(args.input, args.limit, model)
        if args.up_axis == "z" and model.input_hw is None and x.shape[-1] >= 3:
            perm = [0, 2, 1, 3, 5, 4] if x.shape[-1] == 6 else [0, 2, 1, *range(3, x.shape[-1])]
            x = x[..., perm]
    except (FormatError, ValueError, ZooError) as e:
        print(f"onebit infer: {e}", file=sys.stderr)
        return 1
    outs, step = [], max(1, args.batch_size)
    for i in range(0, len(x), step):
        try:
            outs.append(model.run(x[i:i + step], threads=args.threads))
        except ValueError as e:  # the data itself (shape, non-finite values): name the file and the batch
            where = f" (batch of items {i}..{min(len(x), i + step) - 1}; cloud indices count from its start)" if i else ""
            print(f"onebit infer: {args.input}: {e}{where}", file=sys.stderr)
            return 1
    logits = np.concatenate(outs) if outs else np.zeros((0, model.output_channels), np.float32)
    pred = logits.argmax(-1)
    acc = float((pred == labels[:len(pred)]).mean()) if labels is not None and len(pred) else None
    if args.json:
        print(json.dumps({"model": args.model, "isa": model.isa, "predictions": pred.tolist(),
                          "logits": np.round(logits, 6).tolist(), "accuracy": acc}))
    else:
        for i, p in enumerate(pred[:20]):
            named = f" {class_names[int(p)]}" if class_names and int(p) < len(class_names) else ""
            print(f"{i}: class {int(p)}{named}" + (f" (label {int(labels[i])})" if labels is not None else ""))
        if len(pred) > 20:
            print(f"... {len(pred)} clouds")
        if acc is not None:
            print(f"accuracy: {acc:.4f} on {len(pred)} clouds")
    return 0
