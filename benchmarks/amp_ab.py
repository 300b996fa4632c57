"""bf16 autocast against FP32 training on ModelNet40: same seed, same data, same schedule.

Issue 18's check that ``amp: bf16`` changes the speed, not the result: vanilla PointNet BiPointNet
and XNOR, each trained twice (``--amp bf16`` and ``--amp off``) on a ModelNet40 training subset
for ``--epochs`` (≥ 20), evaluated on the full test split. The rows say how far apart the two
precisions end (compare with the seed-to-seed spread, ``--seeds``) and how much faster bf16 ran.

    python benchmarks/amp_ab.py --epochs 20 --points 256 --train-subset 2000 --seeds 1 \
        --out benchmarks/results/amp_ab.json

Each run is ``benchmarks/bipointnet_modelnet40.py``'s row config (Adam 1e-3, cosine, the T-Net
regulariser, protocol ``bipointnet``) with its amp and seed set; run directories resume.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))

import bipointnet_modelnet40 as campaign  # noqa: E402


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--rows", default="vanilla_bipointnet,vanilla_xnor", help="rows of bipointnet_modelnet40.py")
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--points", type=int, default=256)
    p.add_argument("--train-subset", type=int, default=2000)
    p.add_argument("--test-subset", type=int, default=None, help="a random subset of the 2,468 test shapes")
    p.add_argument("--seeds", type=int, default=1, help="seeds 666, 667, ... per (row, amp)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--runs", default=str(Path.home() / "onebit-runs/amp_ab"))
    p.add_argument("--out", default=str(REPO / "benchmarks/results/amp_ab.json"))
    args = p.parse_args(argv)

    import torch

    torch.set_num_threads(args.threads)
    from onebit.train import run
    from onebit.train.amp import cpu_model, cpu_native_bf16

    base = argparse.Namespace(protocol="bipointnet", points=args.points, root=None, train_subset=args.train_subset,
                              test_subset=args.test_subset, epochs=args.epochs, batch_size=32, seed=666, lr=1e-3,
                              eval_every=5, threads=args.threads, amp="off")
    out_path = Path(args.out)
    doc = json.loads(out_path.read_text()) if out_path.exists() else {"rows": []}
    for key in [k for k in args.rows.split(",") if k]:
        model, method, _ = campaign.ROWS[key]
        res = {}
        for amp in ("bf16", "off"):
            accs, walls = [], []
            for s in range(args.seeds):
                ns = argparse.Namespace(**{**vars(base), "amp": amp, "seed": 666 + s})
                cfg = campaign.row_config(key, ns)
                run_dir = Path(args.runs) / f"{key}_{amp}_s{s}"
                resume = (run_dir / "last.ckpt").exists()
                t0 = time.time()
                r = run(cfg, run_dir, resume=resume, progress=False)
                walls.append(time.time() - t0)
                accs.append(round(r.final["oa"], 2))
                print(f"{key} amp={amp} seed={666 + s}: OA {accs[-1]} in {walls[-1]:.0f} s", file=sys.stderr,
                      flush=True)
            res[amp] = {"oa": accs, "wall_s": [round(w, 1) for w in walls]}
        row = {
            "model": model, "method": method, "epochs": args.epochs, "points": args.points,
            "train_shapes": args.train_subset, "test_shapes": args.test_subset or 2468, "seeds": args.seeds,
            "bf16_oa": res["bf16"]["oa"], "fp32_oa": res["off"]["oa"],
            "oa_diff_bf16_minus_fp32": round(statistics.mean(res["bf16"]["oa"]) - statistics.mean(res["off"]["oa"]), 2),
            "wall_s_bf16": res["bf16"]["wall_s"], "wall_s_fp32": res["off"]["wall_s"],
            "fp32_over_bf16_time": round(statistics.mean(res["off"]["wall_s"]) / statistics.mean(res["bf16"]["wall_s"]), 2),
            "cpu": cpu_model(), "native_bf16": cpu_native_bf16(), "threads": args.threads,
            "command": f"python benchmarks/amp_ab.py --rows {key} --epochs {args.epochs} --points {args.points} "
                       f"--train-subset {args.train_subset} --seeds {args.seeds} --threads {args.threads}"
                       + (f" --test-subset {args.test_subset}" if args.test_subset else ""),
        }
        doc["rows"] = [r for r in doc["rows"] if not (r["model"] == model and r["method"] == method
                                                     and r["cpu"] == row["cpu"])] + [row]
        out_path.write_text(json.dumps(doc, indent=2) + "\n")
        print(json.dumps(row), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
