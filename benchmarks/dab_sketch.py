"""DAB-Net Table 2 on the real sketches in shared/data: the five settings for Sketch-A-Net and ResNet-18.

Settings (onebit.convert presets): fp (FPrec), bwn (WBin BWN), xnor (FBin XNOR-Net), dab-wbin,
dab-fbin. Datasets: the QuickDraw bitmaps (10 classes, 28x28) and the Sketchy subset (125 classes
x 25 sketches, k-fold cross validation, 20 train / 5 test per class for k = 5). Ten-crop test
accuracy (4 corners + centre of the image and its mirror, log-probabilities averaged), taken
after the last epoch (no selection on the test set). Adam, no weight decay, the DAB-Net step
schedule (lr halves every ``--interval`` epochs from ``--lr`` down to ``--min-lr``; paper
supplement: 2e-3 -> 5e-5).

One command runs one row -- one (model, dataset, setting) -- over its seeds (QuickDraw,
``--seeds``) or folds (Sketchy, ``--folds``), each an ``onebit.train.run`` in its own run
directory (default ``~/onebit-runs/dab_sketch/...``, outside the work tree), which resumes from
its ``last.ckpt`` when a run was interrupted. Every finished seed / fold is written into the
row at once (``--json``, under a file lock, atomically), so a row grows seed by seed, also over
several sessions: seeds / folds already in the row are skipped. A row's ``acc`` is the mean over
its seeds / folds, ``acc_std`` their standard deviation, ``seed_accs`` / ``fold_accs`` the
values, ``schedule`` is ``full`` when it meets issue 14's schedule (``partial`` while seeds /
folds are missing, ``short`` below it). QuickDraw with ``--train-per-class``: the test set is the
last ``--test-per-class`` of the first ``--pool-per-class`` (3,000, the smallest class) drawings
of every class, training takes the first ``--train-per-class``; so every model and training size
shares one test set and no drawing is in both.

    # one row of the full schedule (QuickDraw, Sketch-A-Net, 3 seeds)
    nice python benchmarks/dab_sketch.py --model sketch_a_net --dataset quickdraw --settings dab-fbin \\
        --seeds 0,1,2 --epochs 30 --size 28 --width 0.5 --train-per-class 2000 --test-per-class 500
    # the reduced schedule of docs/results/dabnet.md (short rows)
    python benchmarks/dab_sketch.py --dataset quickdraw --epochs 8 --subset 300 --size 28 --width 0.5
    # reading the results
    python benchmarks/dab_sketch.py --table
    python benchmarks/dab_sketch.py --plot docs/results/dab_table2.png
    python benchmarks/dab_sketch.py --figures RUN_DIR       # K/n, alpha, beta over training (Figs. 3, 5)
    python benchmarks/dab_sketch.py --merge a.json b.json   # rows written side by side into other files

The whole schedule (35 jobs, ~10 core-hours) is driven by ``benchmarks/dab_sketch_campaign.py``.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SETTINGS = ("fp", "bwn", "xnor", "dab-wbin", "dab-fbin")
MODELS = ("sketch_a_net", "resnet18")
# DAB-Net Table 2 (TU-Berlin, Sketchy), top-1 %
PAPER_T2 = {
    "sketch_a_net": {"fp": (72.9, 85.9), "bwn": (73.0, 85.6), "xnor": (59.6, 68.6), "dab-wbin": (72.4, 84.0),
                     "dab-fbin": (60.4, 70.6)},
    "resnet18": {"fp": (74.1, 88.7), "bwn": (73.4, 89.3), "xnor": (68.8, 82.8), "dab-wbin": (73.5, 88.8),
                 "dab-fbin": (71.3, 84.2)},
    "googlenet": {"fp": (75.0, 90.0), "bwn": (74.8, 89.8), "xnor": (72.2, 86.8), "dab-wbin": (75.7, 90.1),
                  "dab-fbin": (73.7, 87.4)},
}
PAPER = PAPER_T2["sketch_a_net"]  # DAB-Net Table 2, Sketch-A-Net column (TU-Berlin, Sketchy)
LABELS = {"fp": "FPrec", "bwn": "WBin BWN", "xnor": "FBin XNOR-Net", "dab-wbin": "WBin DAB-Net",
          "dab-fbin": "FBin DAB-Net"}
REPO = Path(__file__).resolve().parents[1]
DEFAULT_JSON = REPO / "benchmarks" / "results" / "dab_sketch.json"
DEFAULT_RUNS = Path.home() / "onebit-runs" / "dab_sketch"
DATASET_NAMES = {"quickdraw": "quickdraw_bitmap", "sketchy": "sketchy_subset"}
# onebit's resnet18 has one stem, the ImageNet one; at 32x32 it leaves 8x8 maps at layer1 (1x1 at layer4)
RESNET_STEM = "imagenet: conv1 7x7/2 + maxpool 3/2 (32x32 input -> 8x8 at layer1, 1x1 at layer4)"
QD_POOL = 3000  # drawings per class of the smallest shared QuickDraw classes
# issue 14's schedule per (model, dataset): minimum epochs, size, width, training drawings per class,
# test drawings per class, and the seeds (QuickDraw) / folds (Sketchy) of a full row
FULL_SCHEDULE = {
    ("sketch_a_net", "quickdraw_bitmap"): {"epochs": 30, "size": 28, "width": 0.5, "train_per_class": 2000,
                                           "test_per_class": 500, "seeds": 3},
    ("resnet18", "quickdraw_bitmap"): {"epochs": 20, "size": 32, "width": 1.0, "train_per_class": 1000,
                                       "test_per_class": 500, "seeds": 3},
    ("sketch_a_net", "sketchy_subset"): {"epochs": 30, "size": 64, "width": 0.5, "classes": 125, "k": 5,
                                         "folds": (1, 2, 3, 4, 5)},
}


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__.split("\n\n", 1)[1],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", choices=MODELS, default="sketch_a_net",
                    help=f"sketch_a_net (small-input geometry) or resnet18 (stem: {RESNET_STEM})")
    ap.add_argument("--dataset", choices=("quickdraw", "sketchy", "both"), default="both")
    ap.add_argument("--settings", default=",".join(SETTINGS), help="comma-separated presets")
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--size", type=int, default=None,
                    help="crop / input size (default 28 for QuickDraw with Sketch-A-Net, 32 with ResNet-18, 64 for "
                         "Sketchy); images are resized to size * 8/7 first (256 -> 224 in the paper)")
    ap.add_argument("--subset", type=int, default=None,
                    help="QuickDraw (without --train-per-class): drawings per class (train+test, test = last 1/6); "
                         "Sketchy: number of classes (first N of 125). Default: all")
    ap.add_argument("--train-per-class", type=int, default=None,
                    help="QuickDraw: training drawings per class (the first N of each class)")
    ap.add_argument("--test-per-class", type=int, default=500,
                    help="QuickDraw with --train-per-class: test drawings per class, the last N of the pool")
    ap.add_argument("--pool-per-class", type=int, default=QD_POOL,
                    help="QuickDraw with --train-per-class: the first N drawings of each class form the pool whose "
                         "last --test-per-class are the test set")
    ap.add_argument("--seeds", default=None, help="QuickDraw: comma-separated seeds, one run each (default: --seed)")
    ap.add_argument("--folds", default="1", help="Sketchy folds to run, e.g. 1,2,3,4,5")
    ap.add_argument("--k", type=int, default=5, help="Sketchy k-fold (5: 20 train / 5 test per class)")
    ap.add_argument("--width", type=float, default=1.0, help="channel width multiplier")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--lr", type=float, default=2e-3, help="max lr (paper 2e-3; DAB logs 5e-4)")
    ap.add_argument("--min-lr", type=float, default=5e-5, help="min lr (paper 5e-5; DAB logs 1e-5)")
    ap.add_argument("--interval", type=int, default=None, help="epochs per lr halving (default epochs // 4)")
    ap.add_argument("--fbin-input", default=None,
                    help="input binarizer for xnor/dab-fbin (default: the presets'; 'ste_sign' = official plain sign)")
    ap.add_argument("--override", action="append", default=[], metavar="FIELD=YAML",
                    help="ablation: override a BinarizeSpec field of every non-fp setting, e.g. "
                         "dab_preprocess=false (repeatable; recorded in the row's 'variant')")
    ap.add_argument("--amp", choices=("auto", "bf16", "off"), default="auto",
                    help="bf16 autocast: auto (where the CPU has native bf16), bf16, off; see the JSON's 'amp' "
                         "measurements (benchmarks/dab_sketch_amp.py) for which model gains")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", "--runs", dest="out", default=str(DEFAULT_RUNS),
                    help="run directories (outside the work tree); an interrupted run resumes from its last.ckpt")
    ap.add_argument("--fresh", action="store_true",
                    help="retrain seeds / folds already in the row and ignore run directories' checkpoints")
    ap.add_argument("--json", default=str(DEFAULT_JSON),
                    help="results file; each finished seed / fold goes into its row at once")
    ap.add_argument("--commit", action="store_true",
                    help="git-commit --json (that path only) after each finished seed / fold")
    ap.add_argument("--quickdraw-paths", nargs="+", default=None, help="QuickDraw bitmap files (default: shared data)")
    ap.add_argument("--sketchy-path", default=None, help="Sketchy subset h5 (default: shared data)")
    ap.add_argument("--no-diagnostics", action="store_true")
    ap.add_argument("--stats", nargs="+", metavar="RUN_DIR", default=None,
                    help="only print the K/alpha/beta and DAB-vs-BWN error summary of finished runs' last.ckpt")
    ap.add_argument("--merge", nargs="+", metavar="JSON", default=None,
                    help="merge the rows (and amp entries) of these files into --json and exit")
    ap.add_argument("--table", action="store_true", help="print --json as markdown next to the paper and exit")
    ap.add_argument("--plot", metavar="PNG", default=None,
                    help="accuracy per setting with error bars, one panel per (model, dataset), and exit")
    ap.add_argument("--schedule", default="full,partial",
                    help="rows --table's Table 2 and --plot show: comma list of full, partial, short, or 'any'")
    ap.add_argument("--figures", metavar="RUN_DIR", default=None,
                    help="K/n, alpha, beta over training of one run (DAB-Net Figs. 3 and 5) and exit")
    ap.add_argument("--figures-out", default=str(REPO / "docs" / "results"), help="folder for --figures")
    ap.add_argument("--figures-prefix", default="dab_fig", help="file name prefix for --figures")
    return ap.parse_args(argv)


# ---------------------------------------------------------------------------------- configs


def _seeds(args) -> list[int]:
    return [int(s) for s in args.seeds.split(",")] if args.seeds else [args.seed]


def _folds(args) -> list[int]:
    return [int(f) for f in str(args.folds).split(",")]


def default_size(args, dataset: str) -> int:
    if args.size:
        return args.size
    if dataset == "sketchy":
        return 64
    return 32 if args.model == "resnet18" else 28


def dataset_config(args, dataset: str, fold: int) -> tuple[dict, int]:
    size = default_size(args, dataset)
    resize = round(size * 8 / 7)
    common = {"resize": resize, "crop": size}
    if dataset == "quickdraw":
        opts = dict(common)
        if args.train_per_class:
            opts.update(per_class=args.pool_per_class, test_per_class=args.test_per_class,
                        train_per_class=args.train_per_class)
        elif args.subset:
            opts["per_class"] = args.subset
        if args.quickdraw_paths:
            opts["paths"] = [str(p) for p in args.quickdraw_paths]
        return {"name": "quickdraw_bitmap", "options": opts, "eval_options": {"ten_crop": True}}, size
    opts = {**common, "folds": args.k, "fold": fold}
    if args.subset:
        opts["num_classes"] = args.subset
    if args.sketchy_path:
        opts["path"] = str(args.sketchy_path)
    return {"name": "sketchy_subset", "options": opts, "eval_options": {"ten_crop": True}}, size


def run_config(args, dataset: str, setting: str, fold: int, seed: int | None = None) -> dict:
    data, size = dataset_config(args, dataset, fold)
    binarize = None if setting == "fp" else setting
    if args.fbin_input and setting in ("xnor", "dab-fbin"):
        binarize = {"preset": setting, "input": args.fbin_input}
    if args.override and binarize is not None:
        import yaml

        binarize = binarize if isinstance(binarize, dict) else {"preset": setting}
        for item in args.override:
            key, sep, value = item.partition("=")
            if not sep:
                raise SystemExit(f"dab_sketch: --override takes FIELD=VALUE, got {item!r}")
            binarize[key.strip()] = yaml.safe_load(value)
    interval = args.interval or max(1, args.epochs // 4)
    model = getattr(args, "model", "sketch_a_net")
    options = {"input_size": size, "width": args.width} if model == "sketch_a_net" else {"width": args.width}
    return {
        "model": {"name": model, "options": options},
        "binarize": binarize,
        "data": data,
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "eval_batch_size": max(1, args.batch_size // 4),
        "seed": args.seed if seed is None else seed,
        "optim": {"name": "adam", "lr": args.lr, "weight_decay": 0.0},
        "schedule": {"name": "step", "interval": interval, "min_lr": args.min_lr},
        "loss": {"name": "ce"},
        "eval": {"every": args.epochs},
        "threads": args.threads,
        "amp": getattr(args, "amp", "auto"),
        "diagnostics": (not args.no_diagnostics) and setting != "fp",
        "log": {"progress": False, "tensorboard": False},
    }


def dab_summary(ckpt_path: Path) -> dict:
    """K/n, alpha, beta of the optimal DAB fit (paper Thm 1-2) of the final latent weights of every
    binarized layer, averaged over filters, and the relative squared error of that fit and of
    BWN's alpha*sign(w) (the trainer's per-epoch diagnostics do not run on ten-crop batches)."""
    import torch

    from onebit.quantizers.dab import dab_stats
    from onebit.train.checkpoint import load_model

    model, _ = load_model(ckpt_path)
    out = {}
    for name, m in model.named_modules():
        if getattr(m, "kernel_quantizer", None) is None:
            continue
        w = m.weight.detach()
        w2 = w.reshape(w.shape[0], -1)
        st = dab_stats(w)
        k_frac = (st["K"].float() / st["n"].float())
        # relative squared error of the DAB fit and of BWN's alpha*sign(w) on the same weights
        a = w2.abs().mean(1, keepdim=True)
        sse_bwn = ((w2 - a * torch.where(w2 >= 0, 1.0, -1.0)) ** 2).sum()
        norm = (w2**2).sum()
        out[name] = {"K_over_n": round(float(k_frac.mean()), 4), "alpha": round(float(st["alpha"].mean()), 5),
                     "beta": round(float(st["beta"].mean()), 5),
                     "alpha_plus_beta": round(float((st["alpha"] + st["beta"]).abs().mean()), 5),
                     "sse_dab_rel": round(float(st["sse"].sum() / norm), 4),
                     "sse_bwn_rel": round(float(sse_bwn / norm), 4)}
    return out


def row_command(args, dataset: str, setting: str, units: list[int] | None = None) -> str:
    """The command that reproduces the row (``units``: its seeds / folds; default the args')."""
    model = getattr(args, "model", "sketch_a_net")
    argv = ["python", "benchmarks/dab_sketch.py"] + (["--model", model] if model != "sketch_a_net" else [])
    argv += ["--dataset", dataset, "--settings", setting,
             "--epochs", str(args.epochs), "--width", str(args.width), "--batch-size", str(args.batch_size),
             "--lr", str(args.lr), "--min-lr", str(args.min_lr)]
    if dataset == "quickdraw":
        seeds = units if units is not None else _seeds(args)
        argv += ["--seeds" if (len(seeds) > 1 or getattr(args, "seeds", None)) else "--seed",
                 ",".join(map(str, seeds))]
    else:
        argv += ["--seed", str(args.seed)]
    if args.size:
        argv += ["--size", str(args.size)]
    if dataset == "quickdraw" and getattr(args, "train_per_class", None):
        argv += ["--train-per-class", str(args.train_per_class), "--test-per-class", str(args.test_per_class)]
        if args.pool_per_class != QD_POOL:
            argv += ["--pool-per-class", str(args.pool_per_class)]
    elif args.subset:
        argv += ["--subset", str(args.subset)]
    if args.interval:
        argv += ["--interval", str(args.interval)]
    if args.fbin_input:
        argv += ["--fbin-input", args.fbin_input]
    for item in args.override:
        argv += ["--override", item]
    if getattr(args, "amp", "auto") != "auto":
        argv += ["--amp", args.amp]
    if dataset == "quickdraw" and getattr(args, "quickdraw_paths", None):
        argv += ["--quickdraw-paths", *map(str, args.quickdraw_paths)]
    if dataset == "sketchy":
        if getattr(args, "sketchy_path", None):
            argv += ["--sketchy-path", str(args.sketchy_path)]
        folds = units if units is not None else _folds(args)
        argv += ["--folds", ",".join(map(str, folds)), "--k", str(args.k)]
    return shlex.join(argv)


def config_id(args, dataset: str, setting: str, amp_on: bool) -> str:
    """Identity of a row's configuration: its command without the seeds / folds, and the amp in force."""
    argv = shlex.split(row_command(args, dataset, setting, units=[]))
    for flag in ("--seeds", "--seed", "--folds", "--amp"):
        if flag in argv and not (flag == "--seed" and dataset == "sketchy"):
            i = argv.index(flag)
            del argv[i: i + 2]
    key = shlex.join(argv) + f" amp={'bf16' if amp_on else 'off'}"
    return hashlib.sha1(key.encode()).hexdigest()[:10]


def row_schedule(row: dict) -> str:
    """``full`` if the row meets issue 14's schedule with all its seeds / folds, ``partial`` if it
    meets it with some missing, ``short`` otherwise (or for a row of the reduced reruns)."""
    spec = FULL_SCHEDULE.get((row.get("model", "sketch_a_net"), row.get("dataset")))
    if spec is None or row.get("epochs", 0) < spec["epochs"] or (row.get("size") or 0) < spec["size"] \
            or (row.get("width") or 0) < spec["width"]:
        return "short"
    if row["dataset"] == "quickdraw_bitmap":
        if (row.get("train_per_class") or 0) < spec["train_per_class"] or \
                (row.get("test_per_class") or 0) < spec["test_per_class"] or "seed_accs" not in row:
            return "short"
        return "full" if len(set(row.get("seeds") or [])) >= spec["seeds"] else "partial"
    if row.get("classes") != spec["classes"] or row.get("k") != spec["k"] or "folds" not in row:
        return "short"
    return "full" if set(spec["folds"]) <= set(row["folds"]) else "partial"


# ---------------------------------------------------------------------------------- results file


def load_doc(path: Path) -> dict:
    """``{"rows": [...], "amp": [...]}`` from the results file (a bare list: the older row-only format)."""
    path = Path(path)
    if not path.is_file():
        return {"rows": [], "amp": []}
    doc = json.loads(path.read_text())
    if isinstance(doc, list):
        doc = {"rows": doc}
    doc.setdefault("rows", [])
    doc.setdefault("amp", [])
    return doc


def save_doc(path: Path, doc: dict) -> None:
    """Write atomically (temporary file + rename), so a reader never sees half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    out = {"description": "DAB-Net Table 2 on real sketches: rows from benchmarks/dab_sketch.py (one per model, "
                          "dataset, setting; units = its seeds / folds), amp = bf16-vs-FP32 train-step timings from "
                          "benchmarks/dab_sketch_amp.py",
           **{k: v for k, v in doc.items() if k != "description"}}
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", dir=path.parent)
    with os.fdopen(fd, "w") as f:
        f.write(json.dumps(out, indent=1) + "\n")
    os.replace(tmp, path)


@contextlib.contextmanager
def locked(path: Path):
    """An exclusive lock for read-modify-write of ``path`` (a lock file in the temp folder, not the work tree)."""
    import fcntl

    key = hashlib.sha1(str(Path(path).resolve()).encode()).hexdigest()[:12]
    with open(Path(tempfile.gettempdir()) / f"dab_sketch_{key}.lock", "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def finalize_row(row: dict) -> dict:
    """Recompute the row's aggregate fields from its units (seeds or folds)."""
    units = sorted(row.get("units") or [], key=lambda u: (u.get("seed") or 0, u.get("fold") or 0))
    row["units"] = units
    accs = [u["acc"] for u in units]
    if row["dataset"] == "quickdraw_bitmap":
        row["seeds"] = [u["seed"] for u in units]
        row["seed_accs"] = accs
    else:
        row["folds"] = [u["fold"] for u in units]
        row["fold_accs"] = accs
    row["acc"] = round(statistics.fmean(accs), 2) if accs else None
    row["acc_std"] = round(statistics.stdev(accs), 2) if len(accs) > 1 else None
    row["seconds"] = round(sum(u.get("seconds", 0.0) for u in units), 1)
    row["cpu_seconds"] = round(sum(u.get("cpu_seconds", 0.0) for u in units), 1)
    row["cpu"] = "; ".join(sorted({u["cpu"] for u in units if u.get("cpu")})) or None
    if row.get("command_template"):
        unit_list = ",".join(str(u["seed"] if row["dataset"] == "quickdraw_bitmap" else u["fold"]) for u in units)
        row["command"] = row["command_template"].replace("{UNITS}", unit_list)
    row["schedule"] = row_schedule(row)
    return row


def merge_row(rows: list[dict], row: dict) -> list[dict]:
    """``rows`` with ``row`` merged in: a row with the same ``config_id`` gains its units (a unit of
    the same seed / fold is replaced); a row without one replaces the row of the same command."""
    cid = row.get("config_id")
    for i, old in enumerate(rows):
        if cid and old.get("config_id") == cid:
            units = {(u.get("seed"), u.get("fold")): u for u in old.get("units") or []}
            units.update({(u.get("seed"), u.get("fold")): u for u in row.get("units") or []})
            rows[i] = finalize_row({**old, **{k: v for k, v in row.items() if k != "units"},
                                    "units": list(units.values())})
            return rows
        if not cid and not old.get("config_id") and old.get("command") == row.get("command"):
            rows[i] = row
            return rows
    rows.append(finalize_row(row) if cid else row)
    return rows


def record_unit(path: Path, base: dict, unit: dict, commit: bool = False) -> dict:
    """Add one finished seed / fold to its row in ``path`` (locked, atomic); the row as written."""
    with locked(path):
        doc = load_doc(path)
        doc["rows"] = merge_row(doc["rows"], {**base, "units": [unit]})
        save_doc(path, doc)
        row = next(r for r in doc["rows"] if r.get("config_id") == base["config_id"])
        if commit:
            what = f"seed {unit['seed']}" if unit.get("fold") is None else f"fold {unit['fold']}"
            git_commit(path, f"dab_sketch: {row['model']} {row['dataset']} {row['setting']} {what}: "
                             f"{unit['acc']:.2f} % ten-crop (row {row['schedule']}, {len(row['units'])} unit(s), "
                             f"mean {row['acc']:.2f})")
    return row


def put_amp(doc: dict, entry: dict) -> None:
    """Put one bf16-vs-FP32 timing into ``doc["amp"]``, replacing the same case on the same CPU."""
    key = ("cpu", "model", "size", "width", "setting", "batch")
    doc["amp"] = [e for e in doc["amp"] if any(e.get(k) != entry.get(k) for k in key)] + [entry]


def record_amp(path: Path, entry: dict) -> None:
    """``put_amp`` into the results file (locked, atomic)."""
    with locked(path):
        doc = load_doc(path)
        put_amp(doc, entry)
        save_doc(path, doc)


def git_commit(paths, message: str, tries: int = 6) -> bool:
    """Commit ``paths`` alone (``git commit --only``: others' staged changes stay staged); new files are
    added first; retries while another git process holds the index."""
    paths = [Path(p).resolve() for p in ([paths] if isinstance(paths, (str, Path)) else paths)]
    cwd = str(paths[0].parent)
    r = None
    for i in range(tries):
        r = subprocess.run(["git", "-C", cwd, "add", "--", *map(str, paths)], capture_output=True, text=True)
        if r.returncode == 0:
            r = subprocess.run(["git", "-C", cwd, "commit", "--only", "-m", message, "--", *map(str, paths)],
                               capture_output=True, text=True)
            if r.returncode == 0:
                return True
            if "nothing to commit" in r.stdout + r.stderr or "no changes added" in r.stdout + r.stderr:
                return False
        time.sleep(2 + 3 * i)
    print(f"dab_sketch: git commit of {[str(p) for p in paths]} failed: {(r.stderr or r.stdout).strip()[:300]}",
          file=sys.stderr)
    return False


def _earlier_wall(run_dir: Path) -> float:
    """Seconds the epochs logged in metrics.jsonl took (the part of a resumed run done before)."""
    path = run_dir / "metrics.jsonl"
    if not path.exists():
        return 0.0
    total = 0.0
    for line in path.read_text().splitlines():
        with contextlib.suppress(json.JSONDecodeError):
            total += float(json.loads(line).get("time_s", 0.0))
    return total


# ---------------------------------------------------------------------------------- running


def _sketchy_classes(path) -> int:
    """Number of classes of the Sketchy subset file (125 for the shared one)."""
    if path is None:
        from onebit.data.sketches.datasets import default_data_root

        path = default_data_root() / "sketches" / "sketchy" / "sketchy_subset25.h5"
    try:
        import h5py

        with h5py.File(path, "r") as f:
            return len(json.loads(f.attrs["classes"]))
    except (OSError, KeyError, ValueError):
        return 125


def base_row(args, dataset: str, setting: str, amp_on: bool) -> dict:
    """The fields of a row that do not depend on its seeds / folds."""
    ds_name = DATASET_NAMES[dataset]
    spec = FULL_SCHEDULE.get((args.model, ds_name))
    # a longer schedule than issue 14's is a side experiment: its own row, kept out of Table 2
    longer = [f"epochs={args.epochs}"] if spec and args.epochs > spec["epochs"] else []
    row = {
        "model": args.model,
        "dataset": ds_name,
        "setting": setting,
        "variant": ", ".join(args.override + ([f"input={args.fbin_input}"] if args.fbin_input else []) + longer)
        or None,
        "epochs": args.epochs,
        "size": default_size(args, dataset),
        "width": args.width,
        "batch_size": args.batch_size,
        "lr": args.lr,
        "min_lr": args.min_lr,
        "interval": args.interval or max(1, args.epochs // 4),
        "amp": "bf16" if amp_on else "off",
        "threads": args.threads,
    }
    if args.model == "resnet18":
        row["stem"] = RESNET_STEM
    if dataset == "quickdraw":
        if args.train_per_class:
            row.update(train_per_class=args.train_per_class, test_per_class=args.test_per_class,
                       pool_per_class=args.pool_per_class)
        else:
            per = args.subset
            row.update(subset=per, train_per_class=(per - max(1, round(per / 6))) if per else None,
                       test_per_class=max(1, round(per / 6)) if per else None)
    else:
        row.update(classes=args.subset or _sketchy_classes(args.sketchy_path), k=args.k, train_per_class=round(25 * (args.k - 1) / args.k),
                   test_per_class=round(25 / args.k))
    if args.quickdraw_paths and dataset == "quickdraw":
        row["data_paths"] = [str(p) for p in args.quickdraw_paths]
    if args.sketchy_path and dataset == "sketchy":
        row["data_paths"] = [str(args.sketchy_path)]
    row["config_id"] = config_id(args, dataset, setting, amp_on)
    marker = "{UNITS}"
    tmpl = row_command(args, dataset, setting, units=[0, 0])  # two units: always the plural flag
    flag = "--seeds" if dataset == "quickdraw" else "--folds"
    parts = shlex.split(tmpl)
    parts[parts.index(flag) + 1] = marker
    row["command_template"] = shlex.join(parts).replace(shlex.quote(marker), marker)
    return row


def run_row(args, dataset: str, setting: str) -> dict | None:
    """Train the row's seeds / folds that the results file lacks; each is written as it ends."""
    from onebit.train import run
    from onebit.train.amp import cpu_model, resolve_amp

    amp_on = resolve_amp(args.amp, "cpu")
    base = base_row(args, dataset, setting, amp_on)
    json_path = Path(args.json)
    old = next((r for r in load_doc(json_path)["rows"] if r.get("config_id") == base["config_id"]), None)
    done = set() if (args.fresh or old is None) else {(u.get("seed"), u.get("fold")) for u in old.get("units", [])}
    if dataset == "quickdraw":
        todo = [(s, None) for s in _seeds(args)]
    else:
        if args.seeds and len(_seeds(args)) > 1:
            raise SystemExit("dab_sketch: Sketchy rows take one --seed and several --folds")
        todo = [(_seeds(args)[0], f) for f in _folds(args)]
    row = old
    for seed, fold in todo:
        what = f"seed {seed}" if fold is None else f"fold {fold}"
        if (seed, fold) in done:
            print(f"{args.model} {dataset} {setting} {what}: already in {json_path.name}, skipped", flush=True)
            continue
        cfg = run_config(args, dataset, setting, fold or 1, seed=seed)
        run_dir = Path(args.out) / args.model / dataset / f"{setting}-{base['config_id']}" / (
            f"seed{seed}" if fold is None else f"fold{fold}")
        resume = not args.fresh and (run_dir / "last.ckpt").exists()
        earlier = _earlier_wall(run_dir) if resume else 0.0
        t0, c0 = time.time(), time.process_time()
        res = run(cfg, run_dir, resume=resume, progress=False)
        acc = float(res.final["oa"])
        unit = {"seed": seed, "fold": fold, "acc": round(acc, 2),
                "seconds": round(time.time() - t0 + earlier, 1),
                # CPU seconds of this process (a resumed run: this part only); the wall clock on a shared host
                # also counts the time other processes had the core
                "cpu_seconds": round(time.process_time() - c0, 1), "resumed": resume,
                "cpu": cpu_model(), "amp": "bf16" if res.amp else "off", "run_dir": str(run_dir),
                "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        if setting != "fp":
            unit["dab_stats"] = dab_summary(run_dir / "last.ckpt")
        row = record_unit(json_path, base, unit, commit=args.commit)
        print(f"{args.model} {dataset} {setting} {what}: ten-crop acc {acc:.2f}% ({unit['seconds']:.0f}s"
              f"{', resumed' if resume else ''}); row: {row['acc']:.2f}"
              + (f" ± {row['acc_std']:.2f}" if row.get("acc_std") is not None else "")
              + f" over {len(row['units'])}, {row['schedule']}", flush=True)
    return row


def main(argv=None) -> int:
    args = parse_args(argv)
    json_path = Path(args.json)
    if args.merge:
        with locked(json_path):
            doc = load_doc(json_path)
            for f in args.merge:
                other = load_doc(Path(f))
                for row in other["rows"]:
                    doc["rows"] = merge_row(doc["rows"], row)
                for entry in other["amp"]:
                    put_amp(doc, entry)
            save_doc(json_path, doc)
        print(f"merged {len(args.merge)} file(s) into {json_path}: {len(doc['rows'])} rows")
        return 0
    if args.table:
        rows = load_doc(json_path)["rows"]
        print(table2(select_rows(rows, args.schedule)))
        print()
        print(fit_table(select_rows(rows, args.schedule)))
        print()
        print(markdown_table(rows))
        return 0
    if args.plot:
        plot_table2(select_rows(load_doc(json_path)["rows"], args.schedule), Path(args.plot))
        print(f"wrote {args.plot}")
        return 0
    if args.figures:
        for name, path in run_figures(Path(args.figures), Path(args.figures_out), args.figures_prefix).items():
            print(f"{name}: {path}")
        return 0
    import torch

    torch.set_num_threads(args.threads)
    if args.stats:
        for run_dir in args.stats:
            print(run_dir, json.dumps(dab_summary(Path(run_dir) / "last.ckpt"), indent=1))
        return 0

    datasets = ["quickdraw", "sketchy"] if args.dataset == "both" else [args.dataset]
    settings = [s.strip() for s in args.settings.split(",") if s.strip()]
    bad = [s for s in settings if s not in SETTINGS]
    if bad:
        raise SystemExit(f"dab_sketch: unknown setting(s) {bad}; choose from {SETTINGS}")
    if args.train_per_class and args.train_per_class + args.test_per_class > args.pool_per_class:
        raise SystemExit(f"dab_sketch: --train-per-class {args.train_per_class} + --test-per-class "
                         f"{args.test_per_class} exceed --pool-per-class {args.pool_per_class}: train and test "
                         "would overlap")
    rows = []
    for dataset in datasets:
        for setting in settings:
            row = run_row(args, dataset, setting)
            if row is not None:
                rows.append(row)
    print(markdown_table(rows))
    return 0


# ---------------------------------------------------------------------------------- reading


def select_rows(rows: list[dict], schedule: str) -> list[dict]:
    """Rows whose ``schedule`` is in the comma list (``any``: all rows; rows without one count as short)."""
    if schedule == "any":
        return list(rows)
    wanted = {s.strip() for s in schedule.split(",")}
    return [r for r in rows if r.get("schedule", "short") in wanted]


def _acc(r: dict) -> str:
    return f"{r['acc']:.2f}" + (f" ± {r['acc_std']:.2f}" if r.get("acc_std") is not None else "")


def markdown_table(rows: list[dict]) -> str:
    """Every row, with the paper's Table 2 numbers for its model and its schedule."""
    lines = ["| model | dataset | setting | ours (ten-crop %) | paper TU-Berlin | paper Sketchy | epochs | size | width "
             "| train/class | seeds or folds | amp | schedule | wall s | command |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        model = r.get("model", "sketch_a_net")
        tb, sk = PAPER_T2.get(model, {}).get(r["setting"], ("–", "–"))
        units = r.get("seeds") if r.get("seed_accs") is not None else r.get("folds")
        units = ",".join(map(str, units)) if units else "–"
        variant = f" ({r['variant']})" if r.get("variant") else ""
        lines.append(f"| {model} | {r['dataset']} | {r['setting']}{variant} | {_acc(r)} | {tb} | {sk} | {r['epochs']} | "
                     f"{r.get('size', '')} | {r.get('width', '')} | {r.get('train_per_class') or r.get('subset') or ''} "
                     f"| {units} | {r.get('amp', '–')} | {r.get('schedule', 'short')} | {r.get('seconds', '')} | "
                     f"`{r.get('command', '')}` |")
    return "\n".join(lines)


def _column_name(model: str, dataset: str, rows: list[dict]) -> str:
    r = rows[0]
    if dataset == "quickdraw_bitmap":
        n = max(len(x.get("seeds") or []) for x in rows)
        return f"{model} QuickDraw-10 ({r.get('train_per_class')}/class, {r['epochs']} ep, {n} seed{'s' * (n != 1)})"
    n = max(len(x.get("folds") or []) for x in rows)
    return f"{model} Sketchy-{r.get('classes', 125)} ({r['epochs']} ep, {n} fold{'s' * (n != 1)})"


def _complete(row: dict) -> bool:
    """A row with all its seeds / folds (a short run of one seed counts as complete)."""
    return row.get("schedule") != "partial"


def table2(rows: list[dict]) -> str:
    """Issue 14's Table 2: settings down, (model, dataset) across, the paper's columns beside,
    the DAB − XNOR line and the two targets (WBin within 1.5 of FPrec; DAB-FBin above XNOR by
    more than twice the larger standard deviation)."""
    rows = [r for r in rows if not r.get("variant")]
    if not rows:
        return "(no rows of the selected schedule yet)"
    cols = sorted({(r.get("model", "sketch_a_net"), r["dataset"]) for r in rows},
                  key=lambda c: (MODELS.index(c[0]) if c[0] in MODELS else 9, c[1]))
    by = {}
    for r in rows:
        by.setdefault((r.get("model", "sketch_a_net"), r["dataset"]), {})[r["setting"]] = r
    models = [m for m in MODELS if any(c[0] == m for c in cols)]
    head = ["setting"] + [f"paper {m} TU-Berlin / Sketchy" for m in models] + [
        _column_name(m, d, list(by[(m, d)].values())) for m, d in cols]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for s in SETTINGS:
        cells = [f"{LABELS[s]} (`{s}`)"] + [" / ".join(map(str, PAPER_T2[m][s])) for m in models]
        cells += [_acc(by[c][s]) if s in by[c] else "–" for c in cols]
        lines.append("| " + " | ".join(cells) + " |")
    diff = ["DAB − XNOR (FBin)"] + [f"{PAPER_T2[m]['dab-fbin'][0] - PAPER_T2[m]['xnor'][0]:+.1f} / "
                                    f"{PAPER_T2[m]['dab-fbin'][1] - PAPER_T2[m]['xnor'][1]:+.1f}" for m in models]
    wbin = ["target: WBin within 1.5 of FPrec"] + ["" for _ in models]
    fbin = ["target: DAB-FBin − XNOR > 2·max σ"] + ["" for _ in models]
    for c in cols:
        got = by[c]
        if "dab-fbin" in got and "xnor" in got:
            d = got["dab-fbin"]["acc"] - got["xnor"]["acc"]
            sig = max(got["dab-fbin"].get("acc_std") or 0.0, got["xnor"].get("acc_std") or 0.0)
            diff.append(f"{d:+.2f}")
            if not all(_complete(got[s]) for s in ("dab-fbin", "xnor")):
                fbin.append(f"pending: a row still lacks seeds / folds ({d:+.2f} so far)")
            else:
                fbin.append(f"{'met' if d > 2 * sig else 'NOT met'} ({d:+.2f} vs 2σ = {2 * sig:.2f})")
        else:
            diff.append("–")
            fbin.append("–")
        if "fp" in got and ("bwn" in got or "dab-wbin" in got):
            gaps = {s: got[s]["acc"] - got["fp"]["acc"] for s in ("bwn", "dab-wbin") if s in got}
            ok = all(abs(g) <= 1.5 or g > 0 for g in gaps.values())
            shown = ", ".join(f"{s} {g:+.2f}" for s, g in gaps.items())
            if not all(_complete(got[s]) for s in ("fp", "bwn", "dab-wbin") if s in got) or len(gaps) < 2:
                wbin.append(f"pending: a row still lacks seeds / folds ({shown} so far)")
            else:
                wbin.append(f"{'met' if ok else 'NOT met'} ({shown})")
        else:
            wbin.append("–")
    for line in (diff, wbin, fbin):
        lines.append("| " + " | ".join(line) + " |")
    return "\n".join(lines)


def fit_table(rows: list[dict]) -> str:
    """How far the optimal DAB fit of each trained net's final latent weights is from α·sign(W): per
    (model, dataset, setting), the mean over layers and seeds / folds of the units' ``dab_stats``
    (relative squared errors ‖W − W̃‖²/‖W‖² of both fits, the share of α·sign(W)'s error that DAB
    removes, K/n and |α + β|). FBin's DAB and XNOR binarize activations alike, so DAB's FBin gain can
    only come from that weight difference."""
    lines = ["| model | dataset | setting | units | rel. error DAB fit | rel. error α·sign(W) | "
             "share of α·sign(W)'s error DAB removes | K/n | mean \\|α+β\\| |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        stats = [u["dab_stats"] for u in r.get("units", []) if u.get("dab_stats")]
        if not stats:
            continue
        layers = [v for st in stats for v in st.values()]
        dab = statistics.fmean(v["sse_dab_rel"] for v in layers)
        bwn = statistics.fmean(v["sse_bwn_rel"] for v in layers)
        variant = f" ({r['variant']})" if r.get("variant") else ""
        lines.append(f"| {r.get('model', 'sketch_a_net')} | {r['dataset']} | {r['setting']}{variant} | {len(stats)} | "
                     f"{dab:.4f} | {bwn:.4f} | {100 * (1 - dab / bwn):.2f} % | "
                     f"{statistics.fmean(v['K_over_n'] for v in layers):.3f} | "
                     f"{statistics.fmean(v['alpha_plus_beta'] for v in layers):.4f} |")
    return "\n".join(lines) if len(lines) > 2 else "(no row carries dab_stats yet)"


def plot_table2(rows: list[dict], path: Path) -> None:
    """Accuracy per setting (bars: mean, error bars: std over seeds / folds, dots: each seed / fold),
    one panel per (model, dataset); the paper's Sketchy number as a diamond on Sketchy panels."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in rows if not r.get("variant")]
    cols = sorted({(r.get("model", "sketch_a_net"), r["dataset"]) for r in rows},
                  key=lambda c: (MODELS.index(c[0]) if c[0] in MODELS else 9, c[1]))
    if not cols:
        raise SystemExit("dab_sketch --plot: no rows of the selected schedule (see --schedule)")
    fig, axes = plt.subplots(1, len(cols), figsize=(4.6 * len(cols), 4.0), squeeze=False)
    for ax, (model, dataset) in zip(axes[0], cols, strict=True):
        got = {r["setting"]: r for r in rows if r.get("model", "sketch_a_net") == model and r["dataset"] == dataset}
        xs = [i for i, s in enumerate(SETTINGS) if s in got]
        colors = ["0.45" if s == "fp" else ("C0" if s in ("bwn", "xnor") else "C3") for s in SETTINGS]
        for i in xs:
            r = got[SETTINGS[i]]
            ax.bar(i, r["acc"], color=colors[i], alpha=0.75, width=0.7)
            if r.get("acc_std") is not None:
                ax.errorbar(i, r["acc"], yerr=r["acc_std"], color="k", capsize=4, lw=1.2)
            pts = r.get("seed_accs") if r.get("seed_accs") is not None else r.get("fold_accs") or []
            ax.plot([i] * len(pts), pts, "o", ms=3, color="k", alpha=0.6)
            ax.text(i, r["acc"] + (r.get("acc_std") or 0) + 1, f"{r['acc']:.1f}", ha="center", fontsize=7)
            if dataset == "sketchy_subset" and model in PAPER_T2:
                ax.plot(i, PAPER_T2[model][SETTINGS[i]][1], "D", mfc="none", color="C2", ms=6)
        ax.set_xticks(range(len(SETTINGS)), SETTINGS, fontsize=8)
        ax.set_xlim(-0.6, len(SETTINGS) - 0.4)
        ax.set_ylabel("ten-crop top-1 %")
        ax.set_title(_column_name(model, dataset, list(got.values())), fontsize=8)
        lo = min(r["acc"] - (r.get("acc_std") or 0) for r in got.values())
        ax.set_ylim(max(0, lo - 10), 100)
        ax.grid(axis="y", alpha=0.3)
    import textwrap

    note = textwrap.fill("bars: mean; error bars: std over seeds / folds; dots: each seed / fold; green diamond: the "
                         "paper's Sketchy (full set) number. python benchmarks/dab_sketch.py --plot " + path.name,
                         width=int(95 * len(cols)))
    fig.text(0.01, 0.01, note, fontsize=6.5)
    fig.tight_layout(rect=(0, 0.035 * (note.count("\n") + 1) + 0.01, 1, 1))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


FIGURE_FILES = {"dab_alpha_beta": "alpha_beta", "dab_filter_hist": "filters", "dab_k": "k"}
"""onebit.analysis figure -> suffix of the file --figures writes (Fig. 3: alpha_beta, filters; Fig. 5: k)."""


def run_figures(run_dir: Path, out_dir: Path, prefix: str = "dab_fig") -> dict[str, Path]:
    """DAB-Net Figs. 3 and 5 for one run: α and β, a filter's histogram with its two levels, and
    K/n per binarized layer over training, from the run's ``diagnostics.jsonl`` (written when the
    run had diagnostics on, the default for binarized settings), via ``onebit.analysis.plots``
    (the figures ``onebit analyze RUN_DIR`` draws among others). Also prints the first and last
    K/n, α, β of each layer."""
    import shutil

    from onebit.analysis.plots import latest_per_epoch, plot_records
    from onebit.analysis.recorder import DIAGNOSTICS_FILE, read_jsonl

    diag = run_dir / DIAGNOSTICS_FILE
    if not diag.is_file():
        raise SystemExit(f"dab_sketch --figures: {diag} not found (the run needs diagnostics on)")
    records = latest_per_epoch(read_jsonl(diag))
    with tempfile.TemporaryDirectory() as tmp:
        written = plot_records(records, tmp)
        out_dir.mkdir(parents=True, exist_ok=True)
        out = {}
        for name, suffix in FIGURE_FILES.items():
            if name in written:
                out[name] = out_dir / f"{prefix}_{suffix}.png"
                shutil.copyfile(written[name], out[name])
    if not out:
        raise SystemExit(f"dab_sketch --figures: {diag} has no K/alpha/beta records (an fp run?)")
    first, last = records[0], records[-1]
    for layer, st in (last.get("layers") or {}).items():
        a = (first.get("layers") or {}).get(layer, {})
        if "k_norm" in st:
            print(f"{layer}: K/n {a.get('k_norm', float('nan')):.3f} -> {st['k_norm']:.3f}, "
                  f"alpha {a.get('alpha', float('nan')):.4g} -> {st['alpha']:.4g}, "
                  f"beta {a.get('beta', float('nan')):.4g} -> {st['beta']:.4g} "
                  f"(epochs {first.get('epoch')} -> {last.get('epoch')})")
    return out


if __name__ == "__main__":
    sys.exit(main())
