"""Latency benchmarks: FP32 PyTorch (eager, and the best a careful user gets) vs the onebit engine.

Runners (all on (B, N, C) point clouds, ``torch.inference_mode``):

* ``torch-eager``: the model as trained (BN as separate modules);
* ``torch-fp32-pm``: the FP32 net of the same architecture, BN folded, points-major ``addmm`` chain
  (built from the same folded graph the exporter writes), whole batch at once;
* ``torch-fp32-pm-loop``: the same, one cloud at a time (faster at batch 32: the batched
  N×1024 activations spill out of cache);
* ``torch-bf16-pm``: the points-major net in bfloat16 (≈3e-3 relative logit error);
* ``engine``: the exported ``.onebit`` file in ``onebit.runtime``.

Geometric models (``dgcnn``, ``pointnet2_ssg`` / ``_msg``: kNN, FPS, ball query) have no points-major
addmm chain: their FP32 baseline is ``torch-fp32``, the FP32 twin in eager PyTorch (the
``torch-fp32-pm*`` / ``torch-bf16-pm`` runners are mapped onto it, see :func:`geometric_note`).

Timing: every round runs each runner once, in turn (interleaved), for a calibrated block of
iterations; median / min / max are over rounds. The host is shared, so ranges matter.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np


def _block_ms(fn, min_block_s: float) -> tuple[float, float]:
    """(wall ms per call, thread-CPU ms per call) over a block of at least ``min_block_s``."""
    fn()
    iters = 1
    while True:
        w0, c0 = time.perf_counter(), time.thread_time()
        for _ in range(iters):
            fn()
        dw, dc = time.perf_counter() - w0, time.thread_time() - c0
        if dw >= min_block_s or iters >= 1 << 16:
            return dw * 1e3 / iters, dc * 1e3 / iters
        iters = max(iters * 2, int(iters * min_block_s / max(dw, 1e-6)))


def time_interleaved(runners: dict, rounds: int = 5, min_block_s: float = 0.1) -> dict:
    """{name: {"median_ms", "min_ms", "max_ms", "cpu_median_ms", "samples"}} over interleaved rounds."""
    samples = {k: [] for k in runners}
    cpu = {k: [] for k in runners}
    for fn in runners.values():  # warm-up (allocations, caches, plans)
        fn()
    for _ in range(rounds):
        for name, fn in runners.items():
            w, c = _block_ms(fn, min_block_s)
            samples[name].append(w)
            cpu[name].append(c)
    return {k: {"median_ms": statistics.median(v), "min_ms": min(v), "max_ms": max(v),
                "cpu_median_ms": statistics.median(cpu[k]), "samples": v} for k, v in samples.items()}


def points_major(graph: dict, tensors: dict, dtype=None):
    """A torch callable running a *float* exported graph as a points-major addmm chain (BN folded)."""
    import torch

    dtype = dtype or torch.float32
    steps = []
    for op in graph["ops"]:
        if op["op"] == "bmm":
            steps.append(("bmm", op["input"], op["matrix"], op["output"], None))
            continue
        if op["op"] != "linear" or op["product"] != "float" or op["weight_format"] != "f32" or "bias" not in op:
            raise ValueError(f"points_major: op {op['name']!r} is not a float linear layer")
        n = op["out_features"]
        s = tensors[op["scale"]].astype(np.float64) if "scale" in op else np.ones(n)
        w = torch.tensor(tensors[op["weight"]].astype(np.float64) * s[:, None]).to(dtype).T.contiguous()
        b = torch.tensor(tensors[op["bias"]]).to(dtype)
        lo, hi = op.get("clamp", [None, None])
        off = op.get("offset", {"rule": "none"})
        steps.append(("linear", op["input"], None, op["output"], (w, b, lo, hi, op.get("pool", "none"), off)))
    out_name = graph["output"]
    in_name = graph["input"]["name"]

    def run(x):
        bsz, n, c = x.shape
        env = {in_name: x.reshape(bsz * n, c).to(dtype)}
        rows = {in_name: n}
        for kind, a, m, o, p in steps:
            if kind == "bmm":
                k = int(env[m].shape[-1] ** 0.5)
                env[o] = torch.bmm(env[a].view(bsz, -1, k), env[m].view(bsz, k, k)).view(-1, k)
                rows[o] = rows[a]
                continue
            w, b, lo, hi, pool, off = p
            y = torch.addmm(b, env[a], w)
            if lo is not None or hi is not None:
                y = y.clamp_(lo, hi) if not (lo == 0 and hi is None) else y.relu_()
            r = rows[a]
            if pool != "none":
                y = y.view(bsz, r, -1)
                y = y.amax(1) if pool == "max" else y.mean(1)
                if off.get("rule") == "ema":
                    from onebit.export.fold import ema_offset

                    y = y - ema_offset(r)
                r = 1
            env[o], rows[o] = y, r
        return env[out_name].view(bsz, -1) if rows[out_name] == 1 else env[out_name].view(bsz, rows[out_name], -1)

    return run


def float_twin(model):
    """The FP32 model of the same architecture (random weights, eval) for the FP32 baselines."""
    from onebit.models import from_config

    cfg = dict(getattr(model, "onebit_config", None) or {})
    if not cfg:
        raise ValueError("float_twin: the model has no onebit_config (build it with onebit.models.create)")
    cfg["binarize"] = None
    if not _is_sketch(model):
        # the plain FP32 PointNet: max pooling and ReLU (BiPointNet's EMA / Hardtanh are binary-net choices)
        cfg["options"] = {**cfg.get("options", {}), "pool": "max", "act": "relu"}
    twin = from_config(cfg)
    return twin.eval()


def _is_geometric(model) -> bool:
    """A point model whose graph needs the geometric ops (no points-major linear chain)."""
    from onebit.models.dgcnn import DGCNN
    from onebit.models.pointnet2 import PointNet2

    return isinstance(model, DGCNN | PointNet2)


def geometric_note(model) -> str | None:
    """Why the points-major FP32 runners are replaced for this model (None when they apply)."""
    if not _is_geometric(model):
        return None
    return ("note: the points-major FP32 runners (torch-fp32-pm, torch-fp32-pm-loop, torch-bf16-pm) are plain "
            "linear chains and do not apply to a model with kNN / FPS / ball query; torch-fp32 is the FP32 twin "
            "in eager PyTorch instead")


def _is_sketch(model) -> bool:
    """An image model (sketch_a_net, resnet18): images in, no point-major FP32 baselines."""
    from onebit.models.resnet import ResNet
    from onebit.models.sketch_a_net import SketchANet

    return isinstance(model, SketchANet | ResNet)


def _sketch_input(model, batch: int, gen):
    """Sketch-like images (B, C, S, S) in [0, 1] (sparse bright strokes on black) at the model's input size."""
    import torch

    from onebit.export.conv import _input_size
    from onebit.models.sketch_a_net import SketchANet

    if isinstance(model, SketchANet):
        size, cin = _input_size(model), model.conv1.conv.in_channels
    else:  # resnet18: any size; the bench sets model.input_size (default 224)
        size, cin = int(getattr(model, "input_size", 224)), model.conv1.in_channels
    noise = torch.rand(batch, cin, size, size, generator=gen)
    return (noise > 0.9).float() * noise


def _file_size_torch(model) -> int:
    import io

    import torch

    buf = io.BytesIO()
    torch.save(model.state_dict(), buf)
    return buf.tell()


def bench_model(model, *, threads: int = 1, batch: int = 1, points: int = 1024, rounds: int = 5,
                min_block_s: float = 0.1, runners=None, model_name: str | None = None, isa: str | None = None,
                seed: int = 0, fixed_points: bool = True) -> list[dict]:
    """Benchmark rows ``{"model", "runner", "threads", "batch", "points", "median_ms", "min_ms", "max_ms",
    "file_bytes", ...}`` for ``model`` (binarized or not) against FP32 PyTorch baselines."""
    import torch
    from onebit_runtime.format import write

    from onebit.export import build_graph, export
    from onebit.runtime import load

    torch.set_num_threads(threads)
    model = model.eval()
    name = model_name or (getattr(model, "onebit_config", None) or {}).get("name", type(model).__name__)
    gen = torch.Generator().manual_seed(seed)
    sketch = _is_sketch(model)
    eager_twin = sketch or _is_geometric(model)
    if sketch:  # images: the point-major FP32 baselines do not apply; the FP32 twin runs eager (NCHW)
        x = _sketch_input(model, batch, gen)
        points = x.shape[-1]
        fixed_points = False
        runners = tuple("torch-fp32" if r.startswith("torch-fp32") or r.startswith("torch-bf16") else r
                        for r in (runners or ("torch-eager", "torch-fp32", "engine")))
        runners = tuple(dict.fromkeys(runners))
    else:
        cin = getattr(model, "in_channels", 3)
        x = torch.randn(batch, points, cin, generator=gen)
        if eager_twin:  # DGCNN / PointNet++: no points-major chain, the FP32 twin runs eager
            runners = tuple(dict.fromkeys(
                "torch-fp32" if r.startswith("torch-fp32") or r.startswith("torch-bf16") else r
                for r in (runners or ("torch-eager", "torch-fp32", "engine"))))
    xn = x.numpy()
    wanted = runners or ("torch-eager", "torch-fp32-pm", "torch-fp32-pm-loop", "engine")
    fns, sizes = {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        if "engine" in wanted:
            path = Path(tmp) / "model.onebit"
            # deployment export: the point count is fixed, so EMA-max offsets fold into integer thresholds
            sizes["engine"] = export(model, path, points=points if fixed_points else None)["file_bytes"]
            eng = load(path, isa=isa)
            fns["engine"] = lambda: eng.run(xn, threads)
        twin = None
        if eager_twin and "torch-fp32" in wanted:
            twin = float_twin(model)
            sizes["torch-fp32"] = _file_size_torch(twin)
            fns["torch-fp32"] = lambda: twin(x)
        elif any(r.startswith("torch-fp32") or r.startswith("torch-bf16") for r in wanted):
            twin = float_twin(model)
            g, t = build_graph(twin)
            fp_size = write(Path(tmp) / "fp32.onebit", t, g)
            pm = points_major(g, t)
            pm16 = points_major(g, t, torch.bfloat16) if "torch-bf16-pm" in wanted else None
            xs = [x[i:i + 1] for i in range(batch)]
            for r in wanted:
                if r.startswith("torch-fp32") or r.startswith("torch-bf16"):
                    sizes[r] = _file_size_torch(twin)
            if "torch-fp32-pm" in wanted:
                fns["torch-fp32-pm"] = lambda: pm(x)
            if "torch-fp32-pm-loop" in wanted:
                fns["torch-fp32-pm-loop"] = lambda: [pm(xi) for xi in xs]
            if pm16 is not None:
                fns["torch-bf16-pm"] = lambda: pm16(x)
            del fp_size
        if "torch-eager" in wanted:
            sizes["torch-eager"] = _file_size_torch(model)
            fns["torch-eager"] = lambda: model(x)
        with torch.inference_mode():
            res = time_interleaved({k: fns[k] for k in wanted if k in fns}, rounds, min_block_s)
    rows = []
    for r, v in res.items():
        rows.append({"model": name, "runner": r, "threads": threads, "batch": batch, "points": points,
                     "median_ms": round(v["median_ms"], 4), "min_ms": round(v["min_ms"], 4),
                     "max_ms": round(v["max_ms"], 4), "cpu_median_ms": round(v["cpu_median_ms"], 4),
                     "file_bytes": int(sizes.get(r, 0)), "rounds": rounds})
    return rows


def compare(model, example_input, threads: int = 1, rounds: int = 5, min_block_s: float = 0.05) -> dict:
    """Torch (the model as given, eager) vs the onebit engine on ``example_input`` (B, N, C).

    Returns ``{"torch_ms", "engine_ms", "speedup", "torch_min_ms", "engine_min_ms", "torch_bytes",
    "file_bytes", "size_ratio", "max_abs_diff", "same_predictions", "isa", "threads"}`` (median ms over
    interleaved rounds; sizes: ``torch.save(state_dict)`` vs the .onebit file).
    """
    import torch

    from onebit.export import export
    from onebit.runtime import load

    torch.set_num_threads(threads)
    model = model.eval()
    x = torch.as_tensor(example_input, dtype=torch.float32)
    xn = np.ascontiguousarray(x.numpy())
    fd, tmp = tempfile.mkstemp(suffix=".onebit")
    os.close(fd)
    try:
        info = export(model, tmp)
        eng = load(tmp)
        with torch.inference_mode():
            ref = model(x).numpy()
            out = eng.run(xn, threads)
            res = time_interleaved({"torch": lambda: model(x), "engine": lambda: eng.run(xn, threads)},
                                   rounds, min_block_s)
    finally:
        os.unlink(tmp)
    tb = _file_size_torch(model)
    return {"torch_ms": res["torch"]["median_ms"], "engine_ms": res["engine"]["median_ms"],
            "torch_min_ms": res["torch"]["min_ms"], "engine_min_ms": res["engine"]["min_ms"],
            "speedup": res["torch"]["median_ms"] / res["engine"]["median_ms"],
            "torch_bytes": tb, "file_bytes": info["file_bytes"], "size_ratio": tb / info["file_bytes"],
            "max_abs_diff": float(np.abs(out - ref).max()),
            "same_predictions": bool((out.argmax(-1) == ref.argmax(-1)).all()), "isa": eng.isa,
            "threads": threads}


def calibrated_model(name: str = "pointnet_deploy", binarize="bipointnet", num_classes: int = 40, seed: int = 0,
                     points: int = 256, **options):
    """A model with realistic, non-trivial BN statistics and LSR scales (untrained weights).

    Runs a few training-mode forward passes on random clouds (cumulative BN averages, LSR's
    data-driven α init), then perturbs BN's γ (some negative, so flip bits are exercised) and β.
    """
    import torch

    from onebit.models import create

    torch.manual_seed(seed)
    # ``name`` may also be an already built model (e.g. a resnet18 with its benchmark input_size set)
    model = name if isinstance(name, torch.nn.Module) else create(name, num_classes, binarize=binarize, **options)
    sketch = _is_sketch(model)
    bns = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    for bn in bns:
        bn.reset_running_stats()
        bn.momentum = None
    model.train()
    cin = getattr(model, "in_channels", 3)
    with torch.no_grad():
        for _ in range(3):
            model(_sketch_input(model, 4, None) if sketch else torch.randn(4, points, cin))
        for bn in bns:
            bn.weight.copy_(torch.randn_like(bn.weight))
            bn.bias.copy_(0.3 * torch.randn_like(bn.bias))
    return model.eval()
