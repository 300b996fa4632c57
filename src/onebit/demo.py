"""``onebit demo``: the first command a newcomer runs.

Generates the seeded synthetic shape set (procedural primitives with random pose, scale and
noise; no download), trains the same small PointNet in full precision and binarized with BNN,
XNOR, BiPointNet (EMA-max + LSR) and DAB (DAB weights, sign activations, EMA-max, LSR), prints
one table (method, accuracy, bits of weights, model size), then exports the BiPointNet model to a
packed-bit ``.onebit`` file and times the onebit engine against PyTorch on the same input.
"""

from __future__ import annotations

import copy
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# One small PointNet, five binarizations: the rows of BiPointNet's Table 2 that matter most,
# plus DAB-Net's two-level weights on the same backbone.
METHODS: dict[str, Any] = {
    "FP32": None,
    "BNN": "bnn",
    "XNOR": "xnor",
    "BiPointNet": "bipointnet",
    "DAB": {
        "name": "dab-points",
        "weight": "dab",
        "input": "ste_sign",
        "scale": "lsr",
        "model_options": {"pool": "ema-max", "act": "hardtanh"},
    },
}


@dataclass
class DemoSettings:
    model: str = "pointnet_vanilla"
    width: float = 0.5
    points: int = 256
    per_class: int = 48
    epochs: int = 12
    batch_size: int = 32
    lr: float = 2e-3
    seed: int = 0
    threads: int = 2


def base_config(s: DemoSettings) -> dict[str, Any]:
    return {
        "model": {"name": s.model, "options": {"width": s.width}},
        "binarize": None,
        "data": {
            "name": "synthetic_shapes",
            "options": {"num_per_class": s.per_class, "num_points": s.points, "seed": s.seed},
        },
        "epochs": s.epochs,
        "batch_size": s.batch_size,
        "seed": s.seed,
        "optim": {"name": "adam", "lr": s.lr},
        "schedule": {"name": "cosine"},
        "threads": s.threads,
        "diagnostics": False,
        "log": {"progress": True, "csv": True, "tensorboard": False},
    }


def _fmt_bytes(n: float) -> str:
    return f"{n / 1024:.1f} KB" if n < 1024 * 1024 else f"{n / 2**20:.2f} MB"


def run_demo(settings: DemoSettings | None = None, out_dir: str | Path | None = None,
             methods: dict[str, Any] | None = None, engine: bool = True) -> dict[str, Any]:
    """Train every method, print the table and the engine comparison; return all numbers."""
    import torch
    from rich.console import Console
    from rich.table import Table

    import onebit
    from onebit.train import run
    from onebit.train.checkpoint import load_model

    s = settings or DemoSettings()
    methods = METHODS if methods is None else methods
    console = Console()
    root = Path(out_dir) if out_dir else Path(tempfile.mkdtemp(prefix="onebit-demo-"))
    console.print(
        f"[bold]onebit demo[/bold]: {s.model} (width {s.width}) on synthetic_shapes "
        f"({s.per_class} clouds per class, {s.points} points), {s.epochs} epochs, {s.threads} threads; "
        f"runs in {root}"
    )
    results: list[dict[str, Any]] = []
    models: dict[str, Any] = {}
    for label, spec in methods.items():
        cfg = copy.deepcopy(base_config(s))
        cfg["binarize"] = spec
        console.print(f"\n[bold cyan]{label}[/bold cyan]")
        t0 = time.perf_counter()
        result = run(cfg, root / label.lower(), progress=True)
        elapsed = time.perf_counter() - t0
        model, _ = load_model(result.last_ckpt)
        points = torch.randn(1, s.points, 3)
        info = onebit.summary(model, points).totals
        models[label] = model
        results.append({
            "method": label,
            "oa": result.final.get("oa"),
            "best_oa": result.best.get("oa"),
            "params_1bit": info["params_1bit"],
            "params_32bit": info["params_32bit"],
            "size_bytes": info["memory_bytes"],
            "fp32_bytes": info["fp32_bytes"],
            "train_s": elapsed,
        })

    table = Table(title=f"onebit demo: {s.model} on synthetic_shapes (test accuracy after {s.epochs} epochs)")
    for col in ("method", "accuracy", "best", "1-bit weights", "32-bit weights", "model size", "vs FP32",
                "train time"):
        table.add_column(col, justify="left" if col == "method" else "right")
    for r in results:
        table.add_row(
            r["method"], f"{r['oa']:.1f} %", f"{r['best_oa']:.1f} %", f"{r['params_1bit']:,}",
            f"{r['params_32bit']:,}", _fmt_bytes(r["size_bytes"]), f"{r['fp32_bytes'] / r['size_bytes']:.1f}x",
            f"{r['train_s']:.0f} s",
        )
    console.print(table)

    report: dict[str, Any] = {"settings": s.__dict__, "results": results, "out_dir": str(root)}
    if engine and "BiPointNet" in models:
        report["engine"] = _engine_step(console, models["BiPointNet"], s, root)
    return report


def _engine_step(console, model, s: DemoSettings, root: Path) -> dict[str, Any]:
    """Export the BiPointNet model to packed bits and time it against PyTorch."""
    import numpy as np
    import torch

    import onebit
    import onebit.runtime
    from onebit.export.bench import compare

    path = root / "bipointnet.onebit"
    onebit.export(model, path)
    engine = onebit.runtime.load(path)
    x = torch.randn(4, s.points, 3)
    with torch.no_grad():
        ref = model.eval()(x).numpy()
    out = engine.run(x.numpy())
    agree = float(np.mean(out.argmax(-1) == ref.argmax(-1)))
    stats = compare(model, torch.randn(1, 1024, 3), threads=1)
    console.print(
        f"\n[bold]Deployment[/bold]: exported {path.name} ({path.stat().st_size / 1024:.1f} KB); "
        f"engine and PyTorch predictions agree on {agree:.0%} of 4 random clouds."
    )
    console.print(
        "Batch 1, 1024 points, 1 thread: PyTorch {torch_ms:.2f} ms, onebit engine {engine_ms:.3f} ms "
        "-> {speedup:.1f}x faster; file {engine_bytes} B vs FP32 {fp32_bytes} B -> {size_ratio:.1f}x smaller."
        .format(**_compare_fields(stats))
    )
    return {"file": str(path), "agreement": agree, **stats}


def _compare_fields(stats: dict[str, Any]) -> dict[str, Any]:
    torch_ms = float(stats["torch_ms"])
    engine_ms = float(stats["engine_ms"])
    fp32_bytes = int(stats["fp32_bytes"])
    engine_bytes = int(stats["engine_bytes"])
    return {
        "torch_ms": torch_ms,
        "engine_ms": engine_ms,
        "speedup": torch_ms / engine_ms,
        "fp32_bytes": fp32_bytes,
        "engine_bytes": engine_bytes,
        "size_ratio": fp32_bytes / engine_bytes,
    }
