"""onebit.summary on small models whose parameters, memory and MACs are counted by hand."""

from __future__ import annotations

import io
import json
from contextlib import redirect_stdout

import pytest
import torch
from torch import nn

import onebit


def hand_model():
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1),  # float (first)
        nn.BatchNorm2d(4),
        nn.Conv2d(4, 8, 3, padding=1, bias=False),  # binary
        nn.Flatten(),
        nn.Linear(8 * 4 * 4, 10),  # binary, bias kept by bnn
        nn.Linear(10, 3),  # float (last)
    )


def test_summary_counts_by_hand_bnn():
    m = onebit.binarize(hand_model(), "bnn")
    s = onebit.summary(m, torch.randn(2, 1, 4, 4))
    rows = {r.name: r for r in s.rows}
    # conv0: 4·1·9 weights + 4 biases, float; MACs = (4·4·4 outputs) · (1·9)
    assert (rows["0"].params_1bit, rows["0"].params_32bit, rows["0"].float_macs) == (0, 40, 576)
    assert rows["1"].params_32bit == 8 and rows["1"].float_macs == 0  # BN γ, β count as float
    # binary conv: 8·4·9 = 288 1-bit weights; MACs = (8·4·4) · (4·9) = 4608, all binary
    assert (rows["2"].params_1bit, rows["2"].params_32bit) == (288, 0)
    assert (rows["2"].binary_macs, rows["2"].float_macs) == (4608, 0)
    assert rows["2"].input_quantizer == "ste_sign" and rows["2"].kernel_quantizer == "ste_sign"
    assert rows["2"].output_shape == (-1, 8, 4, 4)
    # binary linear: 1280 1-bit weights + 10 float biases; 1280 binary MACs
    assert (rows["4"].params_1bit, rows["4"].params_32bit, rows["4"].binary_macs) == (1280, 10, 1280)
    assert (rows["5"].params_32bit, rows["5"].float_macs) == (33, 30)
    t = s.totals
    assert t["params_1bit"] == 1568 and t["params_32bit"] == 91 and t["params"] == 1659
    assert t["memory_bytes"] == (1568 + 32 * 91) / 8  # 560 bytes
    assert t["fp32_bytes"] == 4 * 1659
    assert t["compression_ratio"] == pytest.approx(6636 / 560)
    assert (t["binary_macs"], t["float_macs"], t["macs"]) == (5888, 606, 6494)
    assert t["scale_factors"] == 0
    text = str(s)
    assert "BinaryConv2d" in text and "Total" in text and "ratio" in text
    json.dumps(s.to_dict())  # serialisable


def test_summary_scales_count_as_float():
    m = onebit.binarize(hand_model(), "xnor")
    s = onebit.summary(m, torch.randn(1, 1, 4, 4))
    rows = {r.name: r for r in s.rows}
    # XNOR: α per output channel is stored at 32 bits next to the packed weights
    assert rows["2"].scale_factors == 8 and rows["4"].scale_factors == 10
    assert rows["2"].memory_bits == 288 + 32 * 8
    assert rows["4"].memory_bits == 1280 + 32 * 10 + 32 * 10
    # run-time XNOR input scales: one per output position (16 pixels of conv 2, 1 row of linear 4)
    assert (rows["2"].activation_factors, rows["4"].activation_factors) == (16, 1)
    assert s.totals["activation_factors"] == 17
    m = onebit.binarize(hand_model(), "bipointnet")
    s = onebit.summary(m, torch.randn(1, 1, 4, 4))
    rows = {r.name: r for r in s.rows}
    # LSR: one α per layer, a 32-bit parameter; the bias is dropped
    assert (rows["4"].params_1bit, rows["4"].params_32bit, rows["4"].scale_factors) == (1280, 1, 1)
    assert rows["4"].memory_bits == 1280 + 32


def test_weights_only_macs_are_float():
    m = onebit.binarize(hand_model(), "bwn")
    s = onebit.summary(m, torch.randn(1, 1, 4, 4))
    assert s.totals["binary_macs"] == 0 and s.totals["float_macs"] == 6494
    assert s.totals["params_1bit"] == 1568


def test_point_model_macs_scale_with_points():
    torch.manual_seed(0)
    m = nn.Sequential(nn.Linear(3, 8), nn.Linear(8, 16), nn.Linear(16, 2))
    onebit.binarize(m, "bnn")
    a = onebit.summary(m, torch.randn(2, 100, 3))
    b = onebit.summary(m, torch.randn(2, 200, 3))
    assert a.totals["macs"] == 100 * (3 * 8 + 8 * 16 + 16 * 2)
    assert b.totals["macs"] == 2 * a.totals["macs"]
    assert a.totals["binary_macs"] == 100 * 8 * 16
    assert a.totals["num_points"] == 100 and "number of points" in str(a)


def test_summary_restores_mode_and_rejects_bad_input():
    m = onebit.binarize(hand_model(), "bnn").train()
    onebit.summary(m, torch.randn(1, 1, 4, 4))
    assert m.training
    with pytest.raises(ValueError, match="batched"):
        onebit.summary(m, torch.tensor(1.0))


def test_cli_summary_json():
    from onebit.cli import main

    buf = io.StringIO()
    with redirect_stdout(buf):
        rc = main(["summary", "pointnet", "--binarize", "bipointnet", "--points", "32", "--classes", "4", "--json"])
    assert rc == 0
    d = json.loads(buf.getvalue())
    assert d["totals"]["num_points"] == 32
    assert d["totals"]["params_1bit"] > 0 and d["totals"]["binary_macs"] > 0
    assert any(r["type"] == "BinaryLinear" for r in d["rows"])
    assert main(["summary", "no_such_model"]) == 2


def test_module_and_function_share_the_name():
    import importlib

    mod = importlib.import_module("onebit.summary")
    s = mod(nn.Linear(3, 2), torch.randn(1, 3))  # works even when the attribute is the module
    assert s.totals["params"] == 8 and s.totals["float_macs"] == 6
