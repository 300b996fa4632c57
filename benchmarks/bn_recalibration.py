"""Is a binary PointNet's test accuracy limited by its BatchNorm running statistics?

A trained row's checkpoint is evaluated in FP32 four ways:

- ``test``: as trained (eval mode, BN running statistics from training's momentum 0.1 average);
- ``train_split``: the same model on the full training split (one fixed point draw, no augmentation): a
  low number here means the eval-mode model is broken, not that it fails to generalise;
- ``test_recal`` / ``train_split_recal``: after re-estimating every BN's running mean and variance as an exact
  average over one pass of the training split with the weights fixed (``torch.optim.swa_utils.update_bn``,
  training-mode forwards, batch ``--batch-size``).

If recalibration closes the gap between the training-mode accuracy (``train_curve``) and the test accuracy,
the running statistics, not the weights, were at fault. ``bn_drift`` says which BN layers' running statistics
are off, in units of the recalibrated standard deviation.

    python benchmarks/bn_recalibration.py --rows pointnet_xnor,pointnet_xnor_ema \
        --out benchmarks/results/bn_recalibration.json
"""

from __future__ import annotations

import argparse
import copy
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bipointnet_modelnet40 import add_checkpoint_row_args, fixed_train_split, measure_checkpoint_rows  # noqa: E402


def splits(cfg: dict, seed: int = 0):
    """(test draw ``seed``, training split with the test split's fixed sampling and no augmentation)."""
    from onebit.zoo.build import eval_split

    return eval_split(cfg, test_seed=seed)[0], fixed_train_split(cfg, seed)[0]


def recalibrated(model, loader):
    """A copy of ``model`` whose BN running statistics are the exact average over ``loader`` (weights fixed)."""
    import torch

    m = copy.deepcopy(model)
    with torch.no_grad():
        torch.optim.swa_utils.update_bn(loader, m)
    return m.eval()


def bn_drift(model, recal) -> dict:
    """Per BN layer, how far the trained running statistics are from the recalibrated ones, in units of the
    recalibrated σ: the largest |μ_run − μ| / σ over channels, and the median and largest σ_run / σ."""
    import torch

    out = {}
    bns = dict(recal.named_modules())
    for name, bn in model.named_modules():
        if isinstance(bn, torch.nn.modules.batchnorm._BatchNorm) and bn.running_var is not None:
            ref = bns[name]
            sd = (ref.running_var.double() + ref.eps).sqrt()
            ratio = (bn.running_var.double() + bn.eps).sqrt() / sd
            out[name] = {"mean_shift_max": round(float(((bn.running_mean.double() - ref.running_mean.double()).abs()
                                                        / sd).max()), 3),
                         "sd_ratio_median": round(float(ratio.median()), 3),
                         "sd_ratio_max": round(float(ratio.max()), 3)}
    return out


def measure(run_dir: Path, batch_size: int, threads: int) -> dict:
    import torch

    from onebit.train.checkpoint import load_model
    from onebit.train.trainer import evaluate

    torch.set_num_threads(threads)
    model, ck = load_model(run_dir / "last.ckpt")
    test, train = splits(ck["config"])
    n = int(model.onebit_config["num_classes"])

    def oa(m, ds):
        return round(evaluate(m, torch.utils.data.DataLoader(ds, batch_size=64), "cls", n, amp=False)["oa"], 2)

    t0 = time.time()
    g = torch.Generator().manual_seed(0)
    loader = torch.utils.data.DataLoader(train, batch_size=batch_size, shuffle=True, drop_last=True, generator=g)
    recal = recalibrated(model, loader)
    return {"epochs": int(ck["epoch"]) + 1, "test": oa(model, test), "train_split": oa(model, train),
            "test_recal": oa(recal, test), "train_split_recal": oa(recal, train),
            "test_shapes": len(test), "train_shapes": len(train), "bn_drift": bn_drift(model, recal),
            "wall_s": round(time.time() - t0, 1)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_checkpoint_row_args(ap)
    ap.add_argument("--batch-size", type=int, default=32, help="batch of the recalibration pass (training's)")
    args = ap.parse_args(argv)
    return measure_checkpoint_rows(
        ap, args, argv, "bn_recalibration.py", lambda run_dir: measure(run_dir, args.batch_size, args.threads),
        lambda res: f"test {res['test']:.2f} -> {res['test_recal']:.2f} recalibrated; training split "
                    f"{res['train_split']:.2f} -> {res['train_split_recal']:.2f}")


if __name__ == "__main__":
    raise SystemExit(main())
