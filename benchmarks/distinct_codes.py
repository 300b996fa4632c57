"""How many points of real clouds share a binary code: what the engine's duplicate-row compaction saves.

    python benchmarks/distinct_codes.py --checkpoint runs/bipointnet_modelnet40/deploy_bipointnet/last.ckpt

For each of ``--clouds`` ModelNet40 test clouds (the checkpoint's data protocol), the exported model runs
in the engine's debug mode (no compaction) and every per-point bit buffer is checked for distinct rows.
Prints one line per buffer: distinct rows per cloud (min / median / max) out of the point count, and the
fraction of points that repeat an earlier code. Also runs an untrained (calibrated) model of the same
architecture on Gaussian clouds for contrast.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import engine as bench  # noqa: E402  (benchmarks/engine.py: checkpoint loading and the protocol test set)


def distinct_rows(model_path: Path, clouds: np.ndarray) -> dict[str, list[int]]:
    """{bit buffer name: [distinct rows per cloud]} for the per-point bit outputs of every op."""
    from onebit.runtime import load

    eng = load(model_path)
    counts: dict[str, list[int]] = {}
    for i in range(len(clouds)):
        _, dbg = eng.run_debug(clouds[i:i + 1])
        for name, d in dbg[0].items():
            bits = d.get("bits")
            if bits is not None and bits.shape[0] == clouds.shape[1]:
                counts.setdefault(name, []).append(len(np.unique(bits, axis=0)))
    return counts


def report(label: str, counts: dict[str, list[int]], n_points: int) -> None:
    print(label)
    for name, c in counts.items():
        rep = 1 - statistics.median(c) / n_points
        print(f"  {name:28s} distinct rows {min(c)} / {statistics.median(c):.0f} / {max(c)} of {n_points} "
              f"(min / median / max); median repeats {100 * rep:.0f} %")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--checkpoint", required=True)
    ap.add_argument("--clouds", type=int, default=32)
    ap.add_argument("--points", type=int, default=1024)
    args = ap.parse_args(argv)

    from onebit.export import export
    from onebit.export.bench import calibrated_model

    model = bench._load_trained(args.checkpoint)
    test = bench.modelnet_test(None, bench._protocol_of(model), points=args.points, pick=args.clouds)
    if test is None:
        print("ModelNet40 test set not found (../shared/data/modelnet40)", file=sys.stderr)
        return 1
    pts, _ = test
    name = (getattr(model, "onebit_config", None) or {}).get("name", "pointnet_deploy")
    spec = (getattr(model, "onebit_config", None) or {}).get("binarize") or "bipointnet"
    gauss = np.random.default_rng(0).standard_normal(pts.shape).astype(np.float32)
    with tempfile.TemporaryDirectory() as tmp:
        export(model, Path(tmp) / "m.onebit", points=args.points)
        export(calibrated_model(name, spec), Path(tmp) / "c.onebit", points=args.points)
        report(f"trained {name}, {args.clouds} ModelNet40 test clouds:",
               distinct_rows(Path(tmp) / "m.onebit", pts), args.points)
        report(f"untrained {name} (calibrated BN), {args.clouds} Gaussian clouds:",
               distinct_rows(Path(tmp) / "c.onebit", gauss), args.points)
    return 0


if __name__ == "__main__":
    sys.exit(main())
