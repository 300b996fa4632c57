"""A/B of two runtime builds on the same .onebit file, in one process, interleaved: the engine time of
`onebit bench`'s setting (pointnet_deploy, BiPointNet, calibrated, exported for 1024 points, Gaussian
clouds) for batch 1 / 32 and 1 / 2 threads.

    python benchmarks/runtime_ab.py --old OLD_TREE [--rounds 15] [--json out.json]

OLD_TREE is a checkout whose ``src/onebit/runtime`` holds a built ``_engine`` (e.g. the commit before
libonebit: ``git worktree add /tmp/old HEAD~N && cd /tmp/old && python setup.py build_ext --inplace``);
it is loaded under another package name beside the installed ``onebit_runtime``. Each round times a
block of calls of one build, then of the other (order alternating), so both see the same machine
state. Reports the median wall time per call and the median process CPU time per call (on a shared
host the CPU time is the steadier figure).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path


def load_old(tree: Path):
    init = tree / "src" / "onebit" / "runtime" / "__init__.py"
    spec = importlib.util.spec_from_file_location("onebit_runtime_old", init,
                                                  submodule_search_locations=[str(init.parent)])
    mod = importlib.util.module_from_spec(spec)
    sys.modules["onebit_runtime_old"] = mod
    spec.loader.exec_module(mod)
    return mod


def block(fn, n):
    w0, c0 = time.perf_counter(), time.process_time()
    for _ in range(n):
        fn()
    return (time.perf_counter() - w0) / n * 1e3, (time.process_time() - c0) / n * 1e3


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--old", type=Path, required=True)
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--block-s", type=float, default=0.1)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    import numpy as np
    import onebit_runtime as new

    import onebit
    from onebit.export.bench import calibrated_model

    old = load_old(args.old)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "m.onebit"
        onebit.export(calibrated_model("pointnet_deploy", "bipointnet", points=1024), path, points=1024)
        models = {"old": old.load(path), "new": new.load(path)}
        assert models["old"].isa == models["new"].isa
        for batch in (1, 32):
            x = np.random.default_rng(0).normal(size=(batch, 1024, 3)).astype(np.float32)
            for threads in (1, 2):
                outs = {k: m.run(x, threads) for k, m in models.items()}
                assert np.array_equal(outs["old"], outs["new"]), "the builds disagree"
                fns = {k: (lambda m=m, x=x, t=threads: m.run(x, t)) for k, m in models.items()}
                for fn in fns.values():  # warm-up + calibration
                    fn()
                t, n = 0.0, 1
                while t < args.block_s:
                    n *= 2
                    t = block(fns["new"], n)[0] * n / 1e3
                res = {k: ([], []) for k in fns}
                for r in range(args.rounds):
                    for k in (("old", "new") if r % 2 == 0 else ("new", "old")):
                        w, c = block(fns[k], n)
                        res[k][0].append(w)
                        res[k][1].append(c)
                row = {"model": "pointnet_deploy", "batch": batch, "threads": threads, "points": 1024,
                       "isa": models["new"].isa, "calls_per_block": n, "rounds": args.rounds}
                for k, (w, c) in res.items():
                    row[f"{k}_wall_ms"] = statistics.median(w)
                    row[f"{k}_cpu_ms"] = statistics.median(c)
                row["wall_new_over_old"] = row["new_wall_ms"] / row["old_wall_ms"]
                row["cpu_new_over_old"] = row["new_cpu_ms"] / row["old_cpu_ms"]
                rows.append(row)
                print(f"batch {batch:>2} threads {threads}: wall old {row['old_wall_ms']:.4f} new {row['new_wall_ms']:.4f} ms "
                      f"({row['wall_new_over_old']:.3f}x); cpu old {row['old_cpu_ms']:.4f} new {row['new_cpu_ms']:.4f} ms "
                      f"({row['cpu_new_over_old']:.3f}x)", flush=True)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
