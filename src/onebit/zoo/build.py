"""Build a zoo entry from a trainer checkpoint (``benchmarks/build_zoo.py`` is the command line).

``build_entry(checkpoint, name)`` writes ``NAME.safetensors`` (the weights, see
:mod:`onebit.zoo.weights`), ``NAME.onebit`` (the engine file, unless the model does not export or
``engine=False``) and ``NAME.json`` (the metadata) into the zoo's entries folder, and measures the
test accuracy it records: on the checkpoint's own test split and data protocol (its ``data``
config: dataset, point count, sampling), through the engine where the entry ships a ``.onebit``
file, else with the torch model in float64. Protocols that re-draw the test points at every
evaluation (``bipointnet``) are measured on one fixed, seeded draw (``test_seed``) so that the
number can be reproduced exactly: ``tests/test_zoo.py`` re-measures it. Nothing is typed in.

Rebuilding from the same checkpoint gives the same files (no timestamps), so a rebuild is one
command per entry, and only an entry's own files are replaced.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from onebit.zoo import BUDGET_BYTES, ENTRIES_DIR, ZooError, total_bytes

__all__ = ["build_entry", "eval_split", "predict", "parity_clouds"]

CHECK_SHAPES = 128
"""How many of the first test shapes get their predictions stored (``check``): a cheap re-measurement."""


def eval_split(cfg: dict, data_root: str | None = None, test_seed: int = 0):
    """The checkpoint config's test split under its protocol, with a fixed (seeded) point draw.

    Returns ``(dataset, description)``; the description goes into the entry's ``protocol``.
    """
    from onebit.train.config import resolve
    from onebit.train.trainer import build_datasets

    cfg = copy.deepcopy(cfg)
    d = cfg["data"]
    d["eval_subset"] = None  # always the full test split
    if data_root is not None:
        d["options"] = {**(d.get("options") or {}), "root": str(data_root)}
    _, ds, _ = build_datasets(resolve(cfg), train=False)
    base = getattr(ds, "dataset", ds)
    fixed = None
    if getattr(base, "resample", False):  # e.g. the bipointnet protocol: a new test draw at every epoch
        base.resample, base.seed = False, int(test_seed)
        fixed = int(test_seed)
    proto = d.get("protocol")
    if isinstance(proto, str):
        proto = {"name": proto}
    desc = {
        "dataset": d["name"],
        "split": d.get("eval_split", "test"),
        **(proto or {}),
        "points": int(getattr(base, "num_points", 0)) or None,
        "test_sampling": getattr(base, "sampling", None),
        "up_axis": getattr(base, "up_axis", None),
        "test_draw": (f"fixed: the protocol re-draws test points every evaluation; measured on the seeded draw "
                      f"test_seed={fixed} (np.random.default_rng([test_seed, index]) per shape)"
                      if fixed is not None else "fixed"),
        "test_seed": fixed,
        "test_shapes": len(ds),
    }
    return ds, desc


def _arrays(ds, limit: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    n = len(ds) if limit is None else min(limit, len(ds))
    xs, ys = [], []
    for i in range(n):
        x, y = ds[i]
        xs.append(np.asarray(x, dtype=np.float32))
        ys.append(int(y))
    return np.stack(xs), np.asarray(ys, dtype=np.int64)


def predict(clouds: np.ndarray, *, eng=None, model=None, batch: int = 64, threads: int = 1) -> np.ndarray:
    """Logits of ``clouds`` (B, N, C): through the engine ``eng``, else ``model`` in torch float64."""
    outs = []
    if eng is not None:
        for i in range(0, len(clouds), batch):
            outs.append(eng.run(np.ascontiguousarray(clouds[i:i + batch]), threads))
        return np.concatenate(outs)
    import torch

    m64 = copy.deepcopy(model).double().eval()
    with torch.inference_mode():
        for i in range(0, len(clouds), batch):
            outs.append(m64(torch.from_numpy(clouds[i:i + batch]).double()).numpy())
    return np.concatenate(outs)


def _metrics(pred: np.ndarray, labels: np.ndarray, num_classes: int) -> tuple[float, float]:
    oa = 100.0 * float(np.mean(pred == labels))
    accs = [float(np.mean(pred[labels == c] == c)) for c in range(num_classes) if np.any(labels == c)]
    return oa, 100.0 * float(np.mean(accs))


def parity_clouds(points: int, n: int = 3, seed: int = 0) -> np.ndarray:
    """A few built-in clouds (``synthetic_shapes``, no download) for engine-vs-torch parity checks."""
    from onebit.data import get_dataset

    ds = get_dataset("synthetic_shapes", split="test", num_per_class=4, test_per_class=1, num_points=points,
                     seed=seed)
    return np.stack([np.asarray(ds[i][0], dtype=np.float32) for i in range(n)])


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _write_atomic(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o644)  # package data: readable by everyone, like the rest of the tree
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def build_entry(checkpoint: str | Path, name: str, *, out: str | Path | None = None, data_root: str | None = None,
                engine: bool = True, compact: bool = True, schedule: str | None = None, note: str | None = None,
                train_command: str | None = None, build_command: str | None = None, threads: int = 1,
                test_seed: int = 0, check_shapes: int = CHECK_SHAPES, budget: int | None = BUDGET_BYTES,
                log=print) -> dict[str, Any]:
    """Turn ``checkpoint`` into the zoo entry ``name`` in ``out`` (default: the package's entries).

    Returns the metadata written to ``NAME.json``. Raises :class:`ZooError` if the entry would push
    the zoo over ``budget`` bytes (``None``: no limit) or if the shipped files do not reproduce the
    checkpoint's model.
    """
    import torch

    import onebit
    from onebit.export import ExportError
    from onebit.runtime import load as runtime_load
    from onebit.train.amp import cpu_model
    from onebit.train.checkpoint import load_model
    from onebit.zoo.weights import load_weights, save_bytes

    if not name or "/" in name or name.startswith("."):
        raise ZooError(f"bad zoo entry name {name!r}")
    out = Path(out) if out is not None else ENTRIES_DIR
    out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(max(1, threads))
    ckpt_path = Path(checkpoint)
    model, ckpt = load_model(ckpt_path)
    mc, cfg = ckpt["model_config"], ckpt["config"]
    spec = mc.get("binarize")
    preset = "fp" if spec is None else (spec.get("name") if isinstance(spec, dict) else str(spec))

    # 1. the weights file, read back through the same code path as onebit.zoo.load
    wbytes, storage = save_bytes(model, compact)
    shipped = load_weights(mc, wbytes, source=f"{name}.safetensors")
    ds, proto = eval_split(cfg, data_root, test_seed)
    par = parity_clouds(int(proto["points"] or 256))
    ref = predict(par, model=model)
    got = predict(par, model=shipped)
    if not np.allclose(got, ref, rtol=0, atol=1e-6 * max(1.0, float(np.abs(ref).max()))):
        raise ZooError(f"{ckpt_path}: the packed weights do not reproduce the model "
                       f"(max logit difference {float(np.abs(got - ref).max()):.3g})")

    # 2. the engine file
    obytes, engine_note = None, None
    if engine:
        with tempfile.TemporaryDirectory() as tmp:
            try:
                onebit.export(shipped, Path(tmp) / "m.onebit")
                obytes = (Path(tmp) / "m.onebit").read_bytes()
            except (ExportError, NotImplementedError) as e:
                engine_note = f"does not export to the engine: {e}"
    else:
        engine_note = "no .onebit shipped (build_zoo.py --no-engine): the entry runs in PyTorch"

    # 3. the size budget, before anything is replaced
    new_bytes = len(wbytes) + (len(obytes) if obytes else 0)
    others = total_bytes(out, exclude=name)
    if budget is not None and others + new_bytes + 8192 > budget:
        raise ZooError(f"zoo entry {name!r} ({new_bytes:,} B) would take the zoo to {others + new_bytes:,} B, over "
                       f"its {budget:,} B budget: store binary layers as signs (the default), drop the .onebit "
                       "(--no-engine) or remove another entry")

    # 4. measure: the whole test split, through what the entry ships
    clouds, labels = _arrays(ds)
    eng = None
    with tempfile.TemporaryDirectory() as tmp:
        if obytes:
            p = Path(tmp) / f"{name}.onebit"
            p.write_bytes(obytes)
            eng = runtime_load(p)
            eng_par = eng.run(par)
            ref64 = predict(par, model=shipped)
            diff = float(np.abs(eng_par - ref64).max())
            if diff > 1e-4 * max(1.0, float(np.abs(ref64).max())):
                raise ZooError(f"{ckpt_path}: the engine file disagrees with the torch model (max logit "
                               f"difference {diff:.3g} on the parity clouds)")
            logits = predict(clouds, eng=eng, threads=threads)
            measured_with = f"engine (onebit.runtime, isa {eng.isa})"
        else:
            logits = predict(clouds, model=shipped)
            measured_with = "torch float64"
    pred = logits.argmax(-1)
    num_classes = int(mc["num_classes"])
    oa, macc = _metrics(pred, labels, num_classes)
    k = min(check_shapes, len(labels))
    log(f"{name}: OA {oa:.2f} %, mAcc {macc:.2f} % on {len(labels)} test shapes ({measured_with})")

    train_metrics = ckpt.get("metrics") or {}
    best = ckpt.get("best") or {}
    epochs_done = int(ckpt["epoch"]) + 1
    meta: dict[str, Any] = {
        "name": name,
        "model": mc["name"],
        "binarize": preset,
        "num_classes": num_classes,
        "points": proto["points"],
        "in_channels": int(clouds.shape[-1]),
        "input": (f"(B, N, {int(clouds.shape[-1])}) float32 clouds, {proto.get('up_axis') or 'y'}-up as onebit's loaders give "
                  "them (z-up files: `onebit infer --up-axis z`); any N runs, the accuracy is for "
                  f"{proto['points']} points"),
        "oa": round(oa, 2),
        "macc": round(macc, 2),
        "oa_measured_with": measured_with,
        "protocol": proto,
        "check": {"shapes": k, "correct": int(np.sum(pred[:k] == labels[:k])),
                  "predictions": " ".join(str(int(v)) for v in pred[:k]),
                  "about": f"the first {k} shapes of the same fixed test draw (a cheap re-measurement)"},
        "epochs": epochs_done,
        "epochs_planned": int(cfg.get("epochs", epochs_done)),
        "schedule": schedule or ("full" if epochs_done >= 100 else "short"),
        "command": train_command,
        "train": {
            "config": cfg,
            "final_oa": train_metrics.get("oa"),
            "best_oa": (best.get("metrics") or {}).get("oa"),
            "best_epoch": None if best.get("epoch") is None else int(best["epoch"]) + 1,
            "oa_note": "the trainer's own evaluation (its own test draw); `oa` above is the shipped files' number",
            "code_version": ckpt.get("code_version"),
        },
        "checkpoint": {"file": str(checkpoint), "epoch": epochs_done},
        "build_command": build_command,
        "measured_on": cpu_model(),
        "sha256": _sha(wbytes),
        "bytes": len(wbytes),
        "weights": {"file": f"{name}.safetensors", "sha256": _sha(wbytes), "bytes": len(wbytes), **storage},
        "engine": ({"file": f"{name}.onebit", "sha256": _sha(obytes), "bytes": len(obytes), "isa_measured": eng.isa}
                   if obytes else None),
        "engine_note": engine_note,
        "class_names": list(getattr(getattr(ds, "dataset", ds), "class_names", []) or []),
        "model_config": mc,
        "note": note,
    }

    # 5. write: weights, engine file, then the metadata that names them
    _write_atomic(out / f"{name}.safetensors", wbytes)
    if obytes:
        _write_atomic(out / f"{name}.onebit", obytes)
    else:
        (out / f"{name}.onebit").unlink(missing_ok=True)
    _write_atomic(out / f"{name}.json", (json.dumps(meta, indent=1, default=_json_default) + "\n").encode())
    log(f"wrote {out / name}.{{json,safetensors{',onebit' if obytes else ''}}}: weights {len(wbytes):,} B "
        f"({storage['storage']})" + (f", engine file {len(obytes):,} B" if obytes else "")
        + f"; zoo total {total_bytes(out):,} B")
    return meta


def _json_default(o):
    if isinstance(o, Path):
        return str(o)
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, tuple | set):
        return list(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")
