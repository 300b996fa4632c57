"""benchmarks/bipointnet_no_bn_probe.py: the probe measures what it says on a small synthetic batch."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import torch

BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "bipointnet_no_bn_probe.py"
sys.path.insert(0, str(BENCH.parent))
_spec = importlib.util.spec_from_file_location("bipointnet_no_bn_probe", BENCH)
probe_mod = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(probe_mod)


def test_probe_separates_the_dead_no_bn_net_from_the_unit_init_one():
    from onebit.models import create

    torch.manual_seed(0)
    x = torch.rand(8, 128, 3) * 2 - 1
    y = torch.arange(8) % 4
    out = {}
    for v in ("no_bn", "no_bn_unit", "no_bn_max"):
        torch.manual_seed(0)
        model = create("pointnet_deploy", 4, binarize=probe_mod.VARIANTS[v])
        out[v] = probe_mod.probe(model, x, y)
    dead, unit, mx = out["no_bn"], out["no_bn_unit"], out["no_bn_max"]
    assert dead["pooled"]["in_ste_window"] == 0.0 and dead["encoder_grad_abs_mean"] == 0.0
    assert dead["pooled"]["sign_entropy_bits"] == 0.0
    assert unit["pooled"]["in_ste_window"] > 0.5 and unit["encoder_grad_abs_mean"] > 0.0
    # unit init: every binary layer's output starts with σ = 1 (bias aside)
    assert all(abs(layer["out_std"] - 1.0) < 0.1 for layer in unit["layers"].values())
    # plain max pooling of unnormalised features: every pooled sign is +1 (no information)
    assert mx["pooled"]["positive"] == 1.0


def test_bad_checkpoint_argument_names_the_problem(tmp_path, capsys):
    import pytest

    missing = tmp_path / "none.ckpt"
    with pytest.raises(SystemExit):
        probe_mod.main(["--checkpoint", f"no_bn={missing}"])
    assert f"{missing} is not a file" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        probe_mod.main(["--checkpoint", "nobn"])
    assert "VARIANT=PATH" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        probe_mod.main(["--variants", "bn,nobn"])
    assert "unknown variant(s) ['nobn']" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        probe_mod.main(["--variants", "bn", "--train", "no_bn_unit", "--epochs", "1"])
    assert "--train ['no_bn_unit'] not in --variants" in capsys.readouterr().err
