"""benchmarks/bn_recalibration.py: recalibrated BN statistics are the exact average over the loader."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import torch

BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "bn_recalibration.py"
sys.path.insert(0, str(BENCH.parent))
_spec = importlib.util.spec_from_file_location("bn_recalibration", BENCH)
recal = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(recal)


def test_recalibrated_statistics_are_the_exact_average_and_the_model_is_untouched():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(3, 4, dtype=torch.float64), torch.nn.BatchNorm1d(4, dtype=torch.float64))
    model[1].running_mean.fill_(5.0)
    x = torch.randn(64, 3, dtype=torch.float64) * 3 + 1
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, torch.zeros(64)), batch_size=16)
    m = recal.recalibrated(model, loader)
    h = model[0](x).detach()
    # update_bn averages the per-batch statistics over equal batches: the mean is exact, the variance the
    # mean of the unbiased per-batch variances
    assert torch.allclose(m[1].running_mean, h.mean(0), atol=1e-12)
    per_batch_var = torch.stack([h[i:i + 16].var(0, unbiased=True) for i in range(0, 64, 16)]).mean(0)
    assert torch.allclose(m[1].running_var, per_batch_var, atol=1e-12)
    assert not m.training and float(model[1].running_mean[0]) == 5.0  # a copy: the original is untouched


def test_bn_drift_is_zero_for_identical_statistics_and_measures_a_wrong_sd():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4)).eval()
    same = recal.bn_drift(model, model)
    assert same == {"1": {"mean_shift_max": 0.0, "sd_ratio_median": 1.0, "sd_ratio_max": 1.0}}
    import copy

    off = copy.deepcopy(model)
    off[1].running_var.mul_(4.0)  # running σ twice the reference σ (eps aside)
    d = recal.bn_drift(off, model)["1"]
    assert abs(d["sd_ratio_median"] - 2.0) < 1e-2 and d["mean_shift_max"] == 0.0


def test_a_row_without_checkpoint_is_named_before_any_work(tmp_path, capsys):
    import pytest

    (tmp_path / "done").mkdir()
    (tmp_path / "done" / "last.ckpt").write_bytes(b"")
    with pytest.raises(SystemExit):
        recal.main(["--rows", "done,missing", "--runs", str(tmp_path)])
    assert f"no last.ckpt for ['missing'] under {tmp_path}" in capsys.readouterr().err
