"""``onebit demo``: the first command a newcomer runs, telling BiPointNet's story in under 3 minutes.

1. On the seeded synthetic shape set (procedural primitives with random pose, scale and noise; no
   download) it trains the paper's deployment PointNet (``pointnet_deploy``, half width) in full
   precision and binarized three ways, all on one schedule: **BNN** (1-bit weights and activations,
   max pooling), **BNN + EMA-max** (BiPointNet's entropy-maximizing aggregation) and **BiPointNet**
   (EMA-max + layer-wise scale recovery, LSR). The table shows the BNN collapsing to chance (max
   pooling of binary features makes nearly every pooled bit +1) and EMA and LSR bringing the binary
   model back within a few points of FP32.
2. It exports the BiPointNet model it just trained to a packed-bit ``.onebit`` file and checks the
   engine against PyTorch on the test clouds.
3. It loads the zoo's ModelNet40 deployment model (``onebit.zoo``) in the engine and prints its file
   size and its speed against the best FP32 PyTorch on the same network (the BN-folded points-major
   ``addmm`` chain of ``onebit.export.bench``), with its ModelNet40 test accuracy from the zoo's
   metadata (measured through the engine when the entry was built).

On a terminal, each training run shows a live bar; elsewhere (CI, a log file) one line per epoch.
"""

from __future__ import annotations

import copy
import json
import os
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# label -> binarize spec; the default rows are DEFAULT_METHODS, the others are available by name
METHODS: dict[str, Any] = {
    "FP32": None,
    "BNN": "bnn",
    "BNN + EMA-max": "bnn+ema-max",
    "BiPointNet": "bipointnet",
    "XNOR": "xnor",
    "XNOR + EMA-max": "xnor+ema-max",
    "DAB": {
        "name": "dab-points",
        "weight": "dab",
        "input": "ste_sign",
        "scale": "lsr",
        "model_options": {"pool": "ema-max", "act": "hardtanh"},
    },
}
"""Row label -> ``binarize`` value (a preset name or a spec dict) of the models ``onebit demo`` can train."""
DEFAULT_METHODS = ("FP32", "BNN", "BNN + EMA-max", "BiPointNet")
"""The rows trained by default: the BNN collapse, EMA-max alone, and BiPointNet (EMA-max + LSR)."""
ZOO_ENTRY = "pointnet_deploy-bipointnet-modelnet40"
"""The ``onebit.zoo`` entry of the deployment step (ModelNet40, run in the engine)."""


@dataclass
class DemoSettings:
    """Size of the demo run: backbone, width, points per cloud, training / test clouds per class, epochs,
    batch size, learning rate, test evaluation interval, seed, torch threads (0: :func:`auto_threads`), bf16 autocast, progress
    display and the zoo entry of the deployment step.
    """

    model: str = "pointnet_deploy"
    width: float = 0.5
    points: int = 256
    per_class: int = 64
    test_per_class: int = 40
    epochs: int = 40
    batch_size: int = 32
    lr: float = 1e-2
    eval_every: int = 5
    seed: int = 0
    threads: int = 0  # 0: the idle cores (2 on an idle 2-core host; 1 when other work keeps the cores busy)
    amp: str = "auto"  # bf16 autocast where the CPU has native bf16 units (the trainer decides)
    progress: str = "auto"  # "bars" (live, terminal), "lines" (one line per epoch), "auto": bars on a TTY
    zoo_entry: str | None = ZOO_ENTRY


def base_config(s: DemoSettings) -> dict[str, Any]:
    """The ``onebit.train`` configuration shared by every demo row (``binarize`` set per row)."""
    return {
        "model": {"name": s.model, "options": {"width": s.width}},
        "binarize": None,
        "data": {
            "name": "synthetic_shapes",
            "options": {"num_per_class": s.per_class, "test_per_class": s.test_per_class, "num_points": s.points,
                        "seed": s.seed},
        },
        "epochs": s.epochs,
        "batch_size": s.batch_size,
        "seed": s.seed,
        "optim": {"name": "adam", "lr": s.lr},
        "schedule": {"name": "cosine"},
        "eval": {"every": s.eval_every},  # and always after the last epoch
        "threads": s.threads,
        "amp": s.amp,
        "diagnostics": False,
        "log": {"progress": False, "csv": False, "tensorboard": False},
    }


def auto_threads() -> int:
    """Torch threads for the demo: the cores not already busy (1-minute load average), at least 1.

    On cores that other processes keep busy, a second torch thread mostly waits for the scheduler:
    every parallel region then ends in a wait, and an epoch can take many times longer.
    """
    n = os.cpu_count() or 1
    try:
        load = os.getloadavg()[0]
    except (OSError, AttributeError):
        load = 0.0
    return max(1, min(n, int(n - load + 0.5)))


def _fmt_bytes(n: float) -> str:
    return f"{n / 1024:.1f} KB" if n < 1024 * 1024 else f"{n / 2**20:.2f} MB"


def resolve_methods(names: str | list[str] | None) -> dict[str, Any]:
    """The rows to train: ``None`` = the default four, ``"all"``, or labels (case-insensitive, comma list)."""
    if names is None:
        return {k: METHODS[k] for k in DEFAULT_METHODS}
    if isinstance(names, str):
        if names.strip().lower() == "all":
            return dict(METHODS)
        names = [n for n in names.split(",") if n.strip()]
    by_key = {k.lower().replace(" ", ""): k for k in METHODS}
    out = {}
    for n in names:
        k = by_key.get(n.strip().lower().replace(" ", ""))
        if k is None:
            raise ValueError(f"unknown demo method {n!r}; known: {', '.join(METHODS)}")
        out[k] = METHODS[k]
    return out


class _EpochWatch:
    """Follows a run's ``metrics.jsonl`` while the trainer runs: one printed line per epoch (``lines``),
    or a live bar advancing per epoch (``bars``, a terminal only)."""

    def __init__(self, run_dir: Path, label: str, epochs: int, console, mode: str):
        self.path, self.label, self.epochs, self.console, self.mode = run_dir / "metrics.jsonl", label, epochs, console, mode
        self._stop = threading.Event()
        self._pos = 0
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._progress = self._task = None

    def __enter__(self):
        if self.mode == "bars":
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self._progress = Progress(TextColumn(f"  {self.label:<15}"), BarColumn(), MofNCompleteColumn(),
                                      TextColumn("{task.fields[info]}"), TimeElapsedColumn(),
                                      console=self.console, transient=False)
            self._task = self._progress.add_task("train", total=self.epochs, info="")
            self._progress.start()
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self._poll()
        if self._progress is not None:
            self._progress.stop()

    def _loop(self):
        while not self._stop.wait(0.25):
            self._poll()

    def _poll(self):
        try:
            with open(self.path) as f:
                f.seek(self._pos)
                chunk = f.read()
        except OSError:
            return
        done = chunk[: chunk.rfind("\n") + 1]  # complete lines only (the trainer may be mid-write)
        self._pos += len(done)
        for line in done.splitlines():
            if line.strip():
                self._show(json.loads(line))

    def _show(self, row: dict):
        ep = int(row["epoch"]) + 1
        test = f"  test {row['oa']:5.1f} %" if row.get("oa") is not None else ""
        info = f"loss {row.get('train_loss', float('nan')):.3f}  train {row.get('train_acc', float('nan')):5.1f} %{test}"
        if self._progress is not None:
            self._progress.update(self._task, completed=ep, info=info)
        else:
            self.console.print(f"  {self.label:<15} epoch {ep:>3}/{self.epochs}  {info}  "
                               f"{row.get('time_s', 0.0):.1f} s", highlight=False, soft_wrap=True)


def run_demo(settings: DemoSettings | None = None, out_dir: str | Path | None = None,
             methods: dict[str, Any] | None = None, engine: bool = True) -> dict[str, Any]:
    """Train every method, print the table, the story and the deployment numbers; return all numbers."""
    import torch
    from rich.console import Console
    from rich.table import Table

    import onebit
    from onebit.train import run
    from onebit.train.checkpoint import load_model

    t_start = time.perf_counter()
    s = copy.copy(settings or DemoSettings())
    auto = not s.threads
    if auto:
        s.threads = auto_threads()
    methods = resolve_methods(None) if methods is None else methods
    console = Console(width=max(Console().width, 130))  # keep the table readable in logs and CI
    mode = s.progress if s.progress in ("bars", "lines") else ("bars" if console.is_terminal else "lines")
    root = Path(out_dir) if out_dir else Path(tempfile.mkdtemp(prefix="onebit-demo-"))
    console.print(
        f"[bold]onebit demo[/bold]: {s.model} (width {s.width}) on synthetic_shapes (10 classes, {s.per_class} "
        f"training / {s.test_per_class} test clouds per class, {s.points} points), {s.epochs} epochs each "
        f"(Adam {s.lr:g}, cosine), {s.threads} thread{'s' if s.threads > 1 else ''}{' (auto)' if auto else ''}, "
        f"amp {s.amp}; runs in {root}", highlight=False, soft_wrap=True)
    results: list[dict[str, Any]] = []
    models: dict[str, Any] = {}
    for label, spec in methods.items():
        cfg = copy.deepcopy(base_config(s))
        cfg["binarize"] = spec
        run_dir = root / label.lower().replace(" + ", "_").replace(" ", "_")
        t0 = time.perf_counter()
        with _EpochWatch(run_dir, label, s.epochs, console, mode):
            result = run(cfg, run_dir, progress=False)
        elapsed = time.perf_counter() - t0
        model, _ = load_model(result.last_ckpt)
        info = onebit.summary(model, torch.randn(1, s.points, 3)).totals
        models[label] = model
        amp = getattr(result, "amp", None)
        results.append({
            "method": label,
            "binarize": spec if isinstance(spec, str | None) else spec.get("name"),
            "oa": result.final.get("oa"),
            "best_oa": result.best.get("oa"),
            "train_acc": (result.history[-1].get("train_acc") if result.history else None),
            "params_1bit": info["params_1bit"],
            "params_32bit": info["params_32bit"],
            "size_bytes": info["memory_bytes"],
            "fp32_bytes": info["fp32_bytes"],
            "train_s": elapsed,
            "amp": None if amp is None else ("bf16" if amp else "off"),
        })

    table = Table(title=f"{s.model} on synthetic_shapes: test accuracy after {s.epochs} epochs "
                        f"({10 * s.test_per_class} test clouds, chance 10 %)")
    for col in ("method", "pooling", "test acc.", "best", "train acc.", "1-bit weights", "32-bit weights",
                "model size", "vs FP32", "train time"):
        table.add_column(col, justify="left" if col in ("method", "pooling") else "right",
                         no_wrap=col in ("method", "pooling"))
    for r in results:
        spec = methods[r["method"]]
        pool = "EMA-max" if (isinstance(spec, str) and ("ema-max" in spec or spec == "bipointnet")) or (
            isinstance(spec, dict) and (spec.get("model_options") or {}).get("pool") == "ema-max") else "max"
        table.add_row(
            r["method"], pool, f"{r['oa']:.1f} %", f"{r['best_oa']:.1f} %",
            "-" if r["train_acc"] is None else f"{r['train_acc']:.1f} %", f"{r['params_1bit']:,}",
            f"{r['params_32bit']:,}", _fmt_bytes(r["size_bytes"]), f"{r['fp32_bytes'] / r['size_bytes']:.1f}x",
            f"{r['train_s']:.0f} s",
        )
    console.print(table)
    story = _story(results)
    for line in story:
        console.print(line, highlight=False, soft_wrap=True)

    report: dict[str, Any] = {"settings": dict(s.__dict__), "results": results, "story": story, "out_dir": str(root)}
    if engine and "BiPointNet" in models:
        report["export"] = _export_step(console, models["BiPointNet"], s, root)
    if engine and s.zoo_entry:
        report["zoo"] = _zoo_step(console, s.zoo_entry)
    report["wall_s"] = time.perf_counter() - t_start
    console.print(f"\ndemo finished in {report['wall_s']:.0f} s", highlight=False, soft_wrap=True)
    return report


def _story(results: list[dict]) -> list[str]:
    """What the table shows, in words, from the measured numbers (no claim the numbers do not back)."""
    by = {r["method"]: r["oa"] for r in results}
    fp, lines = by.get("FP32"), []
    if "BNN" in by:
        collapsed = by["BNN"] < 20.0
        lines.append(f"BNN (1-bit weights and activations, max pooling): {by['BNN']:.1f} % -"
                     + (" collapsed to chance: the max of n binary features is +1 almost always, so the pooled "
                        "global feature carries (almost) no information." if collapsed
                        else " below FP32 but not collapsed on this run."))
    for label, what in (("BNN + EMA-max", "EMA-max (entropy-maximizing aggregation) alone"),
                        ("BiPointNet", "BiPointNet (EMA-max + LSR)")):
        if label in by and fp is not None:
            gap = fp - by[label]
            lines.append(f"{what}: {by[label]:.1f} %, {gap:.1f} points below FP32 ({fp:.1f} %)"
                         + (" - within 10 points." if gap <= 10 else " - more than 10 points below."))
    return lines


def _export_step(console, binary, s: DemoSettings, root: Path) -> dict[str, Any]:
    """Export the BiPointNet model just trained; check the engine against PyTorch on the test clouds."""
    import numpy as np
    import torch

    import onebit
    import onebit.runtime
    from onebit.data import get_dataset

    binary = binary.eval()
    path = root / "bipointnet.onebit"
    onebit.export(binary, path)
    eng = onebit.runtime.load(path)
    test = get_dataset("synthetic_shapes", split="test", num_per_class=s.per_class, test_per_class=s.test_per_class,
                       num_points=s.points, seed=s.seed)
    clouds = np.stack([np.asarray(test[i][0], dtype=np.float32) for i in range(len(test))])
    labels = np.array([int(test[i][1]) for i in range(len(test))])
    with torch.no_grad():
        ref = binary(torch.from_numpy(clouds)).numpy()
    out = eng.run(clouds)
    agree = float(np.mean(out.argmax(-1) == ref.argmax(-1)))
    acc = 100.0 * float(np.mean(out.argmax(-1) == labels))
    console.print(f"\n[bold]Export[/bold]: the BiPointNet model above -> {path.name} ({path.stat().st_size / 1024:.1f} KB); "
                  f"on the {len(labels)} test clouds the onebit engine agrees with PyTorch on {agree:.1%} of the "
                  f"predictions (engine accuracy {acc:.1f} %).", highlight=False, soft_wrap=True)
    return {"file": str(path), "bytes": path.stat().st_size, "agreement": agree, "engine_accuracy": acc}


def _zoo_step(console, name: str) -> dict[str, Any] | None:
    """The zoo's ModelNet40 deployment model in the engine: size, speed vs the best FP32 PyTorch, accuracy."""
    import numpy as np
    import torch

    from onebit import zoo
    from onebit.export import build_graph
    from onebit.export.bench import float_twin, points_major, time_interleaved

    if name not in zoo.names():
        console.print(f"\n[bold]Deployment[/bold]: zoo entry {name!r} is not installed; skipped.", soft_wrap=True)
        return None
    meta = zoo.info(name)
    eng = zoo.engine(name)
    model = zoo.load(name)
    twin = float_twin(model)  # the FP32 net of the same architecture (max pooling, ReLU), eval mode
    g, t = build_graph(twin)
    pm = points_major(g, t)  # BN folded, points-major addmm chain: the fastest FP32 PyTorch here
    points = int(meta["points"])
    prev = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        x = torch.randn(1, points, 3, generator=torch.Generator().manual_seed(0))
        xn = np.ascontiguousarray(x.numpy())
        with torch.inference_mode():
            timing = time_interleaved({"torch-fp32-eager": lambda: twin(x), "torch-fp32-pm": lambda: pm(x),
                                       "engine": lambda: eng.run(xn, 1)}, rounds=5)
    finally:
        torch.set_num_threads(prev)
    best_fp = min(("torch-fp32-eager", "torch-fp32-pm"), key=lambda k: timing[k]["median_ms"])
    t_ms, e_ms = timing[best_fp]["median_ms"], timing["engine"]["median_ms"]
    fp32_bytes, eng_bytes = _state_dict_bytes(twin), int(meta["engine"]["bytes"])
    label = {"torch-fp32-eager": "eager", "torch-fp32-pm": "BN folded, points-major addmm"}[best_fp]
    sched = meta.get("schedule")
    console.print(
        f"\n[bold]Deployment[/bold]: onebit.zoo {name!r} ({meta['model']}, {meta['binarize']}, trained "
        f"{meta['epochs']} epochs{', ' + sched + ' schedule' if sched else ''}) in the onebit engine (isa {eng.isa}).\n"
        f"  ModelNet40 test accuracy {meta['oa']:.2f} % on {meta['protocol'].get('test_shapes')} test shapes, "
        f"{points} points ({meta['oa_measured_with'].split(' (')[0]}, from the zoo metadata)\n"
        f"  file {eng_bytes / 1024:.0f} KB vs FP32 state_dict {fp32_bytes / 2**20:.2f} MB -> "
        f"{fp32_bytes / eng_bytes:.1f}x smaller\n"
        f"  batch 1, {points} random points (as onebit.export.bench), 1 thread: engine {e_ms:.3f} ms vs best FP32 PyTorch ({label}) "
        f"{t_ms:.3f} ms -> {t_ms / e_ms:.1f}x faster (median of 5 interleaved rounds)",
        highlight=False, soft_wrap=True)
    return {"name": name, "oa": meta["oa"], "epochs": meta["epochs"], "schedule": sched, "points": points,
            "engine_bytes": eng_bytes, "fp32_bytes": fp32_bytes, "engine_ms": e_ms, "fp32_ms": t_ms,
            "fp32_runner": best_fp, "speedup": t_ms / e_ms, "isa": eng.isa,
            "timing": {k: {kk: vv for kk, vv in v.items() if kk != "samples"} for k, v in timing.items()}}


def _state_dict_bytes(model) -> int:
    import io

    import torch

    buf = io.BytesIO()
    torch.save(model.state_dict(), buf)
    return buf.tell()
