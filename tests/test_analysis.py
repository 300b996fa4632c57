"""Unit tests of onebit.analysis: every quantity on tiny hand-checkable inputs."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from onebit.analysis import (
    FlipTracker,
    PoolCapture,
    binary_entropy,
    collect,
    filter_histogram,
    filter_stats,
    flip_ratio,
    frobenius_regularizer,
    layer_scale,
    levels_from_factors,
    pooled_entropy,
    positive_fraction,
    sign_entropy,
    std_ratio,
    tnet_regularizer,
    weight_factors,
    zero_grad_ratio,
)

nn_layers = pytest.importorskip("onebit.nn")


def _blinear(w, iq="ste_sign", kq="ste_sign", **kw):
    layer = nn_layers.BinaryLinear(w.shape[1], w.shape[0], bias=False, input_quantizer=iq, kernel_quantizer=kq, **kw)
    with torch.no_grad():
        layer.weight.copy_(w)
    return layer


# ---------------------------------------------------------------------------------------- entropy


def test_binary_entropy_values():
    assert binary_entropy(0.5) == pytest.approx(1.0)
    assert binary_entropy(0.0) == 0.0 and binary_entropy(1.0) == 0.0
    # H(1/4) = 1/4·2 + 3/4·log2(4/3)
    assert binary_entropy(0.25) == pytest.approx(0.5 + 0.75 * math.log2(4 / 3))
    t = binary_entropy(torch.tensor([0.0, 0.5, 0.25]))
    assert torch.allclose(t, torch.tensor([0.0, 1.0, 0.5 + 0.75 * math.log2(4 / 3)], dtype=torch.float64))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        binary_entropy(1.5)


def test_sign_entropy_known_pattern_and_sign_of_zero():
    # channel 0: signs +, −, + (0 counts as +1), − → p = 1/2 → 1 bit; channel 1: all +1 → 0 bits
    y = torch.tensor([[1.0, 1.0], [-1.0, 2.0], [0.0, 0.5], [-2.0, 0.0]])
    assert sign_entropy(y, per_channel=True).tolist() == [1.0, 0.0]
    assert sign_entropy(y) == pytest.approx(0.5)
    # grouped features (B, S, C) count all B·S rows per channel
    assert sign_entropy(y.reshape(2, 2, 2)) == pytest.approx(0.5)
    with pytest.raises(ValueError):
        sign_entropy(torch.empty(0, 3))


class _PoolNet(nn.Module):
    def __init__(self, kind):
        super().__init__()
        self.local_pool = nn_layers.make_pool("max")
        self.pool = nn_layers.make_pool(kind)

    def forward(self, x):
        self.local_pool(x[:, : x.shape[1] // 2])
        return self.pool(x)


def test_pooled_entropy_max_vs_ema_max_on_bn_like_input():
    """BiPointNet Theorem 1 / Sec. 3.2.2: max of N(0,1) over 1024 points is ~always > 0 (H ≈ 0);
    EMA-max shifts by δ*(n) so that half the pooled values are negative (H ≈ 1 bit)."""
    x = torch.randn(400, 1024, 8, generator=torch.Generator().manual_seed(0))
    h_max = pooled_entropy(_PoolNet("max"), x)
    h_ema = pooled_entropy(_PoolNet("ema-max"), x)
    assert list(h_max) == ["local_pool", "pool"]  # call order; the last is the global feature
    assert h_max["pool"] == 0.0  # P(max of 1024 N(0,1) < 0) = 2^-1024
    assert h_ema["pool"] > 0.98
    avg = pooled_entropy(_PoolNet("ema-avg"), x)["pool"]
    assert avg > 0.98


def test_pool_capture_removes_hooks_and_restores_mode():
    net = _PoolNet("max").train()
    with PoolCapture(net) as cap:
        net(torch.ones(2, 4, 3))
    assert cap.positive["pool"] == [1.0] and cap.global_name == "pool"
    assert not net.pool._forward_hooks
    net.local_pool.eval()  # a submodule deliberately in eval mode keeps it
    pooled_entropy(net, torch.ones(2, 4, 3))
    assert net.training and net.pool.training and not net.local_pool.training


# ---------------------------------------------------------------------------------- scale distortion


def test_scale_distortion_one_layer_by_hand():
    # x rows: sign → [1, −1], [1, 1]; sign(W) = [1, −1] → binary out [2, 0], σ = 1
    # float out: 0.5·0.3 + (−2)(−0.7) = 1.55 and 1.5·0.3 + 0.25·(−0.7) = 0.275, σ = 0.6375
    w = torch.tensor([[0.3, -0.7]])
    x = torch.tensor([[0.5, -2.0], [1.5, 0.25]])
    layer = _blinear(w)
    y = layer(x)
    assert y.flatten().tolist() == [2.0, 0.0]
    s = layer_scale(layer, x, y)
    assert s["std_binary"] == pytest.approx(1.0)
    assert s["std_float"] == pytest.approx(0.6375)
    assert s["ratio"] == pytest.approx(1 / 0.6375)
    rec = collect(nn.Sequential(layer), (x, torch.zeros(2)))
    d = rec["layers"]["0"]
    assert d["scale_ratio"] == pytest.approx(1 / 0.6375)
    assert d["zero_grad"] == pytest.approx(0.5)  # |−2.0| and |1.5| exceed 1
    assert d["act_pos"] == pytest.approx(0.75)
    assert d["weight_pos"] == pytest.approx(0.5)
    assert rec["zero_grad"] == pytest.approx(0.5)


def test_std_ratio_and_subsampling_of_big_linear_layers():
    assert math.isnan(std_ratio(torch.ones(3), torch.ones(3))["ratio"])
    torch.manual_seed(0)
    layer = _blinear(torch.randn(16, 64), iq="ste_sign", kq="ste_sign")
    x = torch.randn(4, 5000, 64)
    y = layer(x)
    full = layer_scale(layer, x, y, max_rows=10**9)
    sub = layer_scale(layer, x, y, max_rows=2000)
    # Theorem 2: σ(B_a ⊙ B_w) ≈ √m = 8 for m = 64 balanced ±1 inputs and weights
    assert full["std_binary"] == pytest.approx(8.0, rel=0.05)
    assert sub["ratio"] == pytest.approx(full["ratio"], rel=0.05)


def test_scale_distortion_conv_layer_uses_zero_padded_float_conv():
    conv = nn_layers.BinaryConv2d(2, 3, 3, padding=1, bias=False, input_quantizer="ste_sign",
                                  kernel_quantizer="ste_sign")
    x = torch.randn(2, 2, 5, 5)
    rec = collect(nn.Sequential(conv), x)
    d = rec["layers"]["0"]
    with torch.no_grad():
        ref_fp = torch.nn.functional.conv2d(x, conv.weight, None, padding=1)
        ref_bin = conv(x)
    assert d["std_float"] == pytest.approx(float(ref_fp.double().std(unbiased=False)), rel=1e-6)
    assert d["std_binary"] == pytest.approx(float(ref_bin.double().std(unbiased=False)), rel=1e-6)
    assert d["type"] == "BinaryConv2d"


# ------------------------------------------------------------------------------ activations, flips


def test_zero_grad_ratio_and_positive_fraction():
    x = torch.tensor([-1.5, -1.0, 0.0, 0.99, 1.0, 1.01])
    assert zero_grad_ratio(x) == pytest.approx(2 / 6)  # |x| = 1 still passes the STE
    assert positive_fraction(x) == pytest.approx(4 / 6)  # sign(0) = +1
    with pytest.raises(ValueError):
        zero_grad_ratio(torch.empty(0))


def test_flip_ratio_two_known_tensors():
    a = torch.tensor([1.0, -1.0, 1.0, 1.0])
    b = torch.tensor([1.0, 1.0, -1.0, 1.0])
    assert flip_ratio(a, b) == 0.5
    assert flip_ratio(a >= 0, a >= 0) == 0.0
    with pytest.raises(ValueError, match="shapes differ"):
        flip_ratio(a, b[:3])


def test_flip_tracker_follows_binarized_weight():
    layer = _blinear(torch.tensor([[0.5, -0.5, 0.2, -0.1]]))
    model = nn.Sequential(layer)
    t = FlipTracker()
    assert t.update(model) == {}  # first record: nothing to compare with
    with torch.no_grad():
        layer.weight[0, 1] = 0.3  # one of four signs flips
    assert t.update(model) == {"0": 0.25}
    assert t.update(model) == {"0": 0.0}


# ------------------------------------------------------------------------------------------- DAB


def test_dab_levels_two_clusters_by_hand():
    w = torch.tensor([[3.0, 3.0, -1.0, -1.0, -1.0], [1.0, -1.0, 1.0, -1.0, 1.0]])
    layer = _blinear(w, iq=None, kq="dab")
    st = filter_stats(layer)
    assert st["K"].tolist() == [2, 3] and st["n"] == 5
    assert st["alpha"].tolist() == [3.0, 1.0] and st["beta"].tolist() == [-1.0, -1.0]
    assert st["k_norm"].tolist() == [0.4, 0.6]


def test_dab_stats_consistent_with_quantizer():
    dab = pytest.importorskip("onebit.quantizers.dab")
    torch.manual_seed(1)
    w = torch.randn(6, 4, 3, 3) * torch.rand(6, 1, 1, 1) + 0.2 * torch.rand(6, 1, 1, 1)
    conv = nn_layers.BinaryConv2d(4, 6, 3, bias=False, kernel_quantizer="dab")
    with torch.no_grad():
        conv.weight.copy_(w)
    st = filter_stats(conv, "conv")
    ref = dab.dab_stats(w)
    assert torch.equal(st["K"], ref["K"])
    assert torch.allclose(st["alpha"], ref["alpha"].double(), atol=1e-6)
    assert torch.allclose(st["beta"], ref["beta"].double(), atol=1e-6)
    # the levels reproduce the quantizer's forward: W̃ = α on the K-group, β elsewhere
    signs, a, b, _ = weight_factors(conv)
    lv = levels_from_factors(signs, a, b)
    wq = conv.kernel_quantizer(w)
    rebuilt = torch.where(signs > 0, lv["alpha"].view(-1, 1, 1, 1), lv["beta"].view(-1, 1, 1, 1)).float()
    assert torch.allclose(rebuilt, wq, atol=1e-6)


def test_xnor_levels_are_symmetric_and_k_counts_nonnegative_weights():
    w = torch.tensor([[0.5, -0.25, 0.0, -1.25]])
    st = filter_stats(_blinear(w, iq=None, kq="bwn"))
    assert st["K"].tolist() == [2]  # 0.5 and 0.0 (sign(0) = +1)
    assert st["alpha"].tolist() == [0.5] and st["beta"].tolist() == [-0.5]  # α = mean|w|


def test_filter_histogram_counts_all_weights():
    w = torch.arange(12.0).reshape(2, 6)
    h = filter_histogram(w, 1, bins=3)
    assert sum(h["counts"]) == 6 and h["range"] == [6.0, 11.0]
    assert filter_histogram(torch.ones(1, 4), 0, bins=4)["range"] == [0.5, 1.5]
    with pytest.raises(IndexError):
        filter_histogram(w, 2)


def test_weight_factors_rejects_float_layer_with_its_name():
    with pytest.raises(ValueError, match="'head'"):
        weight_factors(nn.Linear(2, 2), "head")


# ------------------------------------------------------------------------------------------- T-Net


def test_frobenius_regularizer_by_hand():
    assert frobenius_regularizer(torch.eye(3).expand(2, 3, 3)) == 0.0
    # ‖I − (2I)(2I)ᵀ‖_F = ‖−3I‖_F = 3·√3
    assert frobenius_regularizer(2 * torch.eye(3)) == pytest.approx(3 * math.sqrt(3))
    with pytest.raises(ValueError):
        frobenius_regularizer(torch.ones(2, 3, 4))


def test_tnet_regularizer_matches_pointnet_model():
    models = pytest.importorskip("onebit.models")
    torch.manual_seed(0)
    m = models.create("pointnet", num_classes=3, binarize="bipointnet", width=0.125).eval()
    assert tnet_regularizer(m) is None  # no forward yet
    with torch.no_grad():
        m(torch.randn(2, 64, 3))
    z = m.last_transforms["feature"]
    assert tnet_regularizer(m) == pytest.approx(frobenius_regularizer(z), rel=1e-5)
    assert tnet_regularizer(nn.Linear(2, 2)) is None


def test_collect_on_float_model_and_bad_batch():
    rec = collect(nn.Sequential(nn.Linear(3, 2)), torch.randn(4, 3))
    assert rec["layers"] == {} and rec["pooled_entropy"] is None and rec["zero_grad"] is None
    with pytest.raises(ValueError, match="length 3"):
        collect(nn.Sequential(nn.Linear(3, 2)), (torch.randn(4, 3), 1, 2))
    # weights only (no batch): no activation statistics, but the weight ones
    rec = collect(nn.Sequential(_blinear(torch.tensor([[1.0, -2.0, 3.0]]))))
    assert rec["layers"]["0"]["weight_pos"] == pytest.approx(2 / 3) and "scale_ratio" not in rec["layers"]["0"]
