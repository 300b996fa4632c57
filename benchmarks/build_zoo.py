"""Turn a trainer checkpoint into an ``onebit.zoo`` entry (weights, .onebit export, metadata JSON).

    python benchmarks/build_zoo.py --checkpoint ~/onebit-runs/bipointnet_modelnet40/deploy_bipointnet/last.ckpt \
        --name pointnet_deploy-bipointnet-modelnet40 \
        --train-command "python benchmarks/bipointnet_modelnet40.py --rows deploy_bipointnet --epochs 100 ..."

Writes ``src/onebit/zoo/entries/NAME.{safetensors,onebit,json}`` (``--out`` elsewhere) and measures the
entry's test accuracy on the real test split of the checkpoint's dataset (ModelNet40:
``../shared/data/modelnet40`` or ``--data-root``) under the checkpoint's own data protocol, through the
engine (torch float64 for ``--no-engine`` entries or models that do not export). Running the same
command again rebuilds the same files; ``docs/zoo.md`` lists the command of every shipped entry.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--checkpoint", required=True, help="a trainer checkpoint (last.ckpt / best.ckpt)")
    p.add_argument("--name", required=True, help="entry name, e.g. pointnet_deploy-bipointnet-modelnet40")
    p.add_argument("--out", default=None, help="entries folder (default: src/onebit/zoo/entries of the package)")
    p.add_argument("--data-root", default=None, help="dataset folder (default: the checkpoint's, else ../shared/data)")
    p.add_argument("--no-engine", action="store_true", help="ship no .onebit file (the entry runs in PyTorch)")
    p.add_argument("--latent", action="store_true",
                   help="store the FP32 latent weights of binary layers (default: signs + scales where exact)")
    p.add_argument("--schedule", default=None, help="label: full | short | placeholder (default: by epochs)")
    p.add_argument("--train-command", default=None, help="the command that trained the checkpoint (recorded)")
    p.add_argument("--note", default=None, help="free text recorded in the metadata")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--test-seed", type=int, default=0, help="seed of the fixed test draw (re-drawing protocols)")
    p.add_argument("--no-budget", action="store_true", help="do not enforce the zoo's 20 MB budget")
    args = p.parse_args(argv)

    from onebit.zoo import BUDGET_BYTES
    from onebit.zoo.build import build_entry

    cmd = "python benchmarks/build_zoo.py " + " ".join(shlex.quote(a) for a in (argv if argv is not None
                                                                                else sys.argv[1:]))
    build_entry(args.checkpoint, args.name, out=args.out, data_root=args.data_root, engine=not args.no_engine,
                compact=not args.latent, schedule=args.schedule, note=args.note, train_command=args.train_command,
                build_command=cmd, threads=args.threads, test_seed=args.test_seed,
                budget=None if args.no_budget else BUDGET_BYTES)
    return 0


if __name__ == "__main__":
    sys.exit(main())
