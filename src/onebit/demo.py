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
"""Row label -> ``binarize`` value (a preset name or a spec dict) of the models ``onebit demo`` trains."""


@dataclass
class DemoSettings:
    """Size of the demo run: backbone, width, points per cloud, clouds per class, epochs, batch size,
    learning rate, seed and torch threads.
    """
    model: str = "pointnet_vanilla"
    width: float = 0.5
    points: int = 256
    per_class: int = 64
    epochs: int = 20
    batch_size: int = 32
    lr: float = 2e-3
    seed: int = 0
    threads: int = 2


def base_config(s: DemoSettings) -> dict[str, Any]:
    """The ``onebit.train`` configuration shared by every demo row (``binarize`` set per row)."""
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
    console = Console(width=max(Console().width, 120))  # keep the table readable in logs and CI
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
    if engine and {"BiPointNet", "FP32"} <= set(models):
        report["engine"] = _engine_step(console, models, s, root)
    return report


def _engine_step(console, models: dict[str, Any], s: DemoSettings, root: Path) -> dict[str, Any]:
    """Export the BiPointNet model to packed bits; check it on the test set; time it against FP32 PyTorch."""
    import io

    import numpy as np
    import torch

    import onebit
    import onebit.runtime
    from onebit.data import get_dataset
    from onebit.export.bench import time_interleaved

    binary, fp32 = models["BiPointNet"].eval(), models["FP32"].eval()
    path = root / "bipointnet.onebit"
    onebit.export(binary, path)
    engine = onebit.runtime.load(path)

    test = get_dataset("synthetic_shapes", split="test", num_per_class=s.per_class, num_points=s.points,
                       seed=s.seed)
    clouds = np.stack([np.asarray(test[i][0], dtype=np.float32) for i in range(len(test))])
    labels = np.array([int(test[i][1]) for i in range(len(test))])
    with torch.no_grad():
        ref = binary(torch.from_numpy(clouds)).numpy()
    out = engine.run(clouds)
    agree = float(np.mean(out.argmax(-1) == ref.argmax(-1)))
    engine_acc = 100.0 * float(np.mean(out.argmax(-1) == labels))

    torch.set_num_threads(1)
    x = torch.randn(1, 1024, 3)
    xn = x.numpy()
    with torch.inference_mode():
        timing = time_interleaved({"torch": lambda: fp32(x), "engine": lambda: engine.run(xn, 1)}, rounds=5)
    buf = io.BytesIO()
    torch.save(fp32.state_dict(), buf)
    fp32_bytes, engine_bytes = buf.getbuffer().nbytes, path.stat().st_size
    t_ms, e_ms = timing["torch"]["median_ms"], timing["engine"]["median_ms"]
    console.print(
        f"\n[bold]Deployment[/bold]: exported {path} ({engine_bytes / 1024:.1f} KB). On the {len(labels)} test "
        f"clouds the engine agrees with PyTorch on {agree:.1%} of predictions (engine accuracy {engine_acc:.1f} %)."
    )
    console.print(
        f"Batch 1, 1024 points, 1 thread, interleaved rounds: FP32 PyTorch (eager) {t_ms:.2f} ms "
        f"[{timing['torch']['min_ms']:.2f}-{timing['torch']['max_ms']:.2f}], onebit engine {e_ms:.3f} ms "
        f"[{timing['engine']['min_ms']:.3f}-{timing['engine']['max_ms']:.3f}] -> {t_ms / e_ms:.1f}x faster; "
        f"file {engine_bytes:,} B vs FP32 state_dict {fp32_bytes:,} B -> {fp32_bytes / engine_bytes:.1f}x smaller."
    )
    return {"file": str(path), "agreement": agree, "engine_accuracy": engine_acc, "torch_ms": t_ms,
            "engine_ms": e_ms, "speedup": t_ms / e_ms, "fp32_bytes": fp32_bytes, "engine_bytes": engine_bytes,
            "timing": {k: {kk: vv for kk, vv in v.items() if kk != "samples"} for k, v in timing.items()}}
