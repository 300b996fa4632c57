"""benchmarks/pooled_entropy.py: per-channel sign counts over a whole loader, and the entropy they give."""

from __future__ import annotations

import importlib.util
import math
import sys
from pathlib import Path

import pytest
import torch

BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "pooled_entropy.py"
sys.path.insert(0, str(BENCH.parent))
_spec = importlib.util.spec_from_file_location("pooled_entropy_bench", BENCH)
pe = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(pe)


def test_counts_span_batches_and_entropy_is_exact():
    """p is estimated per channel over every cloud of the loader, not per batch: channel 0 is +1 in the
    first batch only (p = 1/2 overall, 1 bit), channel 1 always (0 bits, constant), channel 2 in 1 of 4."""
    from onebit.nn import MaxPool

    pool = MaxPool()
    model = torch.nn.Sequential(pool)
    pts = torch.full((8, 5, 3), -1.0)
    pts[:4, 0, 0] = 1.0  # channel 0 positive for clouds 0-3 (batch 1)
    pts[:, 2, 1] = 1.0  # channel 1 positive for every cloud
    pts[0, 3, 2] = 1.0
    pts[4, 3, 2] = 1.0  # channel 2 positive for clouds 0 and 4
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(pts, torch.zeros(8)), batch_size=4)
    counts = pe.sign_counts(model, loader)
    (pos, n), = counts.values()
    assert n == 8 and pos.tolist() == [4.0, 8.0, 2.0]
    s = pe.entropy_stats(pos, n)
    h2 = -(0.25 * math.log2(0.25) + 0.75 * math.log2(0.75))
    assert s["entropy_bits"] == round((1.0 + 0.0 + h2) / 3, 4)
    assert s["p_plus"] == round(14 / 24, 4) and s["constant_channels"] == round(1 / 3, 4)
    assert s["channels"] == 3 and s["rows"] == 8
    assert not pool._forward_hooks  # the hooks are removed


def test_a_row_without_checkpoint_is_named_before_any_work(tmp_path, capsys):
    with pytest.raises(SystemExit):
        pe.main(["--rows", "missing", "--runs", str(tmp_path)])
    assert f"no last.ckpt for ['missing'] under {tmp_path}" in capsys.readouterr().err
