"""Binary layers of onebit.nn: shapes, padding with the binarized pad value, scales, conversion."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from onebit.nn import BinaryConv1d, BinaryConv2d, BinaryLinear


def sgn(x):
    return torch.where(x >= 0, 1.0, -1.0)


def test_linear_point_input_shapes_and_value():
    torch.manual_seed(0)
    layer = BinaryLinear(6, 5)
    x = torch.randn(2, 7, 6)  # (B, N, C): one GEMM over B·N rows
    y = layer(x)
    assert y.shape == (2, 7, 5)
    assert torch.allclose(y, F.linear(sgn(x), sgn(layer.weight), layer.bias), atol=1e-6)


def test_sign_of_zero_is_plus_one():
    layer = BinaryLinear(4, 2, bias=False)
    with torch.no_grad():
        layer.weight.fill_(0.0)
    y = layer(torch.zeros(1, 4))
    assert torch.equal(y, torch.full((1, 2), 4.0))


@pytest.mark.parametrize("pad_value", [-1.0, 1.0])
def test_conv2d_pads_binarized_input_with_pad_value(pad_value):
    torch.manual_seed(1)
    conv = BinaryConv2d(3, 4, 3, padding=1, bias=False, pad_value=pad_value)
    x = torch.randn(2, 3, 5, 6)
    ref = F.conv2d(F.pad(sgn(x), (1, 1, 1, 1), value=pad_value), sgn(conv.weight))
    assert torch.allclose(conv(x), ref, atol=1e-5)
    zero_pad = F.conv2d(sgn(x), sgn(conv.weight), padding=1)
    assert not torch.allclose(conv(x), zero_pad)  # the border differs from zero padding


@pytest.mark.parametrize("pad_value", [-1.0, 1.0])
@pytest.mark.parametrize("kw", [{"padding": 1}, {"padding": 1, "stride": 2}, {"padding": 2, "dilation": 2},
                                {"padding": (0, 1), "groups": 2}, {"padding": 1, "groups": 4}])
def test_binary_conv_border_equals_explicit_padding_with_gradients(kw, pad_value):
    """The layer computes pad(sign(x), pad_value) ⊛ sign(W) without building the padded input:
    output and both gradients equal the explicit-padding reference in float64 (1×1 maps included)."""
    torch.manual_seed(7)
    for shape in [(2, 4, 7, 6), (3, 4, 1, 1), (4, 2, 2)]:  # batched, 1×1 map, unbatched
        conv = BinaryConv2d(4, 8, 3, bias=False, pad_value=pad_value, **kw).double()
        if any(n + b + a < conv.dilation[0] * 2 + 1 for n, (b, a) in zip(shape[-2:], conv.pad_amounts(), strict=True)):
            continue  # the padded map is smaller than the kernel: no valid convolution
        x = torch.randn(*shape, dtype=torch.float64, requires_grad=True)
        y = conv(x)
        g = torch.randn_like(y)
        y.backward(g)
        gx, gw = x.grad.clone(), conv.weight.grad.clone()
        x.grad, w = None, conv.weight.detach().clone().requires_grad_()
        ste = lambda t: t + (sgn(t) - t).detach()  # noqa: E731  sign forward, identity backward
        pads = [p for p in conv.pad_amounts()[::-1] for p in p]
        ref = F.conv2d(F.pad(ste(x), pads, value=pad_value), ste(w), None, conv.stride, 0, conv.dilation,
                       conv.groups)
        ref.backward(g)
        assert torch.allclose(y, ref, atol=1e-12), (kw, shape)
        clip_x, clip_w = (x.detach().abs() <= 1), (w.detach().abs() <= 1)  # the STE's clipped gradients
        assert torch.allclose(gx, x.grad * clip_x, atol=1e-12), (kw, shape)
        assert torch.allclose(gw, w.grad * clip_w, atol=1e-12), (kw, shape)
    conv1 = BinaryConv1d(3, 5, 3, padding=1, bias=False, pad_value=pad_value).double()
    x1 = torch.randn(2, 3, 1, dtype=torch.float64)
    ref1 = F.conv1d(F.pad(sgn(x1).double(), (1, 1), value=pad_value), sgn(conv1.weight).double())
    assert torch.allclose(conv1(x1), ref1, atol=1e-12)


@pytest.mark.filterwarnings("ignore:Using padding='same'")
def test_conv_geometry_matches_torch():
    x = torch.randn(2, 4, 9, 8)
    for kw in ({"stride": 2, "padding": 1}, {"dilation": 2, "padding": 2}, {"groups": 2, "padding": (0, 1)},
               {"padding": "same"}, {"padding": "valid"}):
        ref = nn.Conv2d(4, 6, 3, **kw)
        conv = BinaryConv2d.from_float(ref)
        assert conv(x).shape == ref(x).shape, kw
    # asymmetric 'same' (even kernel): weights-only layer pads zeros exactly like torch
    ref = nn.Conv2d(4, 6, 4, padding="same", dilation=1)
    conv = BinaryConv2d.from_float(ref, input_quantizer=None)
    assert torch.allclose(conv(x), F.conv2d(x, sgn(ref.weight), ref.bias, padding="same"), atol=1e-5)
    # and the binary-input version is the same op on an explicitly padded sign(x)
    conv_b = BinaryConv2d.from_float(ref, bias=False)
    before, after = conv_b.pad_amounts()[0]
    assert (before, after) == (1, 2)
    # the same split as torch's own 'same' padding (extra element at the end)
    assert torch.allclose(F.conv2d(x, ref.weight, padding="same"), F.conv2d(F.pad(x, (1, 2, 1, 2)), ref.weight), atol=1e-5)
    manual = F.conv2d(F.pad(sgn(x), (1, 2, 1, 2), value=-1.0), sgn(ref.weight))
    assert torch.allclose(conv_b(x), manual, atol=1e-5)


def test_conv1d_points_and_padding():
    torch.manual_seed(2)
    conv = BinaryConv1d(3, 8, 3, padding=1)
    x = torch.randn(2, 3, 10)  # (B, C, L)
    ref = F.conv1d(F.pad(sgn(x), (1, 1), value=-1.0), sgn(conv.weight), conv.bias)
    assert torch.allclose(conv(x), ref, atol=1e-5)
    assert BinaryConv1d(3, 8, 1)(x).shape == (2, 8, 10)


def test_weights_only_uses_real_input_and_zero_padding():
    torch.manual_seed(3)
    conv = BinaryConv2d(2, 3, 3, padding=1, input_quantizer=None)
    x = torch.randn(1, 2, 4, 4)
    assert torch.allclose(conv(x), F.conv2d(x, sgn(conv.weight), conv.bias, padding=1), atol=1e-5)
    assert "pad_value" not in repr(conv)


def test_channel_scale_is_mean_abs_weight_detached():
    torch.manual_seed(4)
    layer = BinaryLinear(5, 3, scale="channel")
    x = torch.randn(4, 5)
    alpha = layer.weight.abs().mean(1)
    assert torch.allclose(layer(x), F.linear(sgn(x), sgn(layer.weight)) * alpha + layer.bias, atol=1e-6)
    conv = BinaryConv2d(2, 3, 3, scale="channel", bias=False)
    xc = torch.randn(1, 2, 5, 5)
    a = conv.weight.abs().mean((1, 2, 3)).view(1, -1, 1, 1)
    assert torch.allclose(conv(xc), F.conv2d(sgn(xc), sgn(conv.weight)) * a, atol=1e-5)
    # detached: the weight gradient is the STE gradient times α only (no 1/n term through α)
    w = layer.weight
    layer(x).sum().backward()
    g_out = torch.ones(4, 3)
    expected = (g_out.t() @ sgn(x)) * alpha.detach()[:, None] * (w.abs() <= 1)
    assert torch.allclose(w.grad, expected, atol=1e-5)


def test_xnor_input_scaling_linear_and_conv():
    torch.manual_seed(5)
    lin = BinaryLinear(6, 4, input_quantizer="xnor", kernel_quantizer="xnor", bias=False)
    x = torch.randn(3, 6)
    k = x.abs().mean(-1, keepdim=True)
    a = lin.weight.abs().mean(1)
    assert torch.allclose(lin(x), F.linear(sgn(x), sgn(lin.weight) * a[:, None]) * k, atol=1e-5)

    conv = BinaryConv2d(3, 4, 3, padding=1, input_quantizer="xnor", kernel_quantizer="xnor", bias=False)
    xc = torch.randn(2, 3, 6, 5)
    amap = xc.abs().mean(1, keepdim=True)
    kmap = F.conv2d(amap, torch.full((1, 1, 3, 3), 1 / 9), padding=1)  # XNOR-Net's K, zero padded
    wq = sgn(conv.weight) * conv.weight.abs().mean((1, 2, 3)).view(-1, 1, 1, 1)
    ref = F.conv2d(F.pad(sgn(xc), (1, 1, 1, 1), value=-1.0), wq) * kmap
    assert torch.allclose(conv(xc), ref, atol=1e-5)
    assert conv.xnor_input and "xnor_input_scale=True" in repr(conv)


def test_from_float_copies_and_bias_policy():
    torch.manual_seed(6)
    lin = nn.Linear(4, 3)
    b = BinaryLinear.from_float(lin)
    assert torch.equal(b.weight, lin.weight) and torch.equal(b.bias, lin.bias)
    assert b.weight.data_ptr() != lin.weight.data_ptr()
    nb = BinaryLinear.from_float(lin, bias="drop")
    assert nb.bias is None
    conv = nn.Conv2d(2, 5, (3, 1), stride=(2, 1), padding=(1, 0), dilation=1, groups=1, bias=False)
    bc = BinaryConv2d.from_float(conv, scale="channel")
    assert bc.kernel_size == (3, 1) and bc.stride == (2, 1) and bc.padding == (1, 0) and bc.bias is None
    with pytest.raises(TypeError, match="nn.Linear"):
        BinaryLinear.from_float(conv)


def test_float_state_dict_loads_and_round_trip():
    torch.manual_seed(7)
    lin = nn.Linear(8, 4)
    b = BinaryLinear(8, 4, bias=False, scale="lsr")
    b.load_state_dict(lin.state_dict())  # strict: float bias dropped, LSR keys left to the first batch
    assert torch.equal(b.weight, lin.weight) and not b.lsr.is_initialized
    b.train()
    x = torch.randn(16, 8)
    b(x)
    sd = b.state_dict()
    assert set(sd) == {"weight", "lsr.alpha", "lsr.initialized"}
    c = BinaryLinear(8, 4, bias=False, scale="lsr")
    c.load_state_dict(sd)
    b.eval()
    c.eval()
    assert torch.equal(b(x), c(x))


def test_gradients_flow_through_ste():
    conv = BinaryConv2d(2, 3, 3, padding=1)
    x = (torch.randn(1, 2, 4, 4) * 0.5).requires_grad_()
    conv(x).sum().backward()
    assert conv.weight.grad is not None and conv.weight.grad.abs().sum() > 0
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_other_quantizers_and_factorize():
    torch.manual_seed(8)
    pp = BinaryConv2d(3, 4, 3, kernel_quantizer={"name": "xnor++", "granularity": "channel"})
    names = [n for n, _ in pp.named_parameters()]
    assert "kernel_quantizer.scale" in names  # learnable Γ exists before any optimizer is built
    for spec in ("bwn", "irnet", "bireal", "dab"):
        layer = BinaryConv2d(3, 4, 3, kernel_quantizer=spec, scale="none")
        signs, a, b = layer.factorize()
        rebuilt = a.view(-1, 1, 1, 1) * signs + b.view(-1, 1, 1, 1)
        assert torch.allclose(rebuilt, layer.binary_weight(), atol=1e-6), spec
    ch = BinaryLinear(5, 3, scale="channel")
    signs, a, b = ch.factorize()
    assert torch.allclose(a, ch.weight.abs().mean(1)) and torch.equal(signs, sgn(ch.weight))


def test_layer_name_reaches_quantizers_and_errors_name_layer():
    conv = BinaryConv2d(3, 4, 3)
    conv.set_layer_name("features.3")
    assert conv.kernel_quantizer.layer_name == "features.3"
    with pytest.raises(ValueError, match="features.3"):
        conv(torch.randn(1, 5, 8, 8))
    with pytest.raises(ValueError, match="pad_value"):
        BinaryConv2d(3, 4, 3, pad_value=0.0)
    with pytest.raises(ValueError, match="nope"):
        BinaryLinear(3, 4, kernel_quantizer="nope")
    with pytest.raises(ValueError, match="activation quantizer"):
        BinaryLinear(3, 4, kernel_quantizer="xnor_act")
    with pytest.raises(ValueError, match="scale"):
        BinaryLinear(3, 4, scale="row")
    with pytest.raises(ValueError, match="padding_mode"):
        BinaryConv2d(3, 4, 3, padding=1, padding_mode="reflect")
    with pytest.raises(ValueError, match="name"):
        BinaryLinear(3, 4, input_quantizer={"bases": 2})
    r = repr(BinaryLinear(3, 4, input_quantizer=None))
    assert "input_quantizer=None" in r and "kernel_quantizer='ste_sign'" in r


@pytest.mark.filterwarnings("ignore:Using padding='same'")
def test_xnor_map_with_asymmetric_same_padding():
    torch.manual_seed(9)
    conv = BinaryConv2d(2, 3, 4, padding="same", input_quantizer="xnor", kernel_quantizer="ste_sign", bias=False)
    x = torch.randn(1, 2, 5, 5)
    amap = F.pad(x.abs().mean(1, keepdim=True), (1, 2, 1, 2))
    kmap = F.conv2d(amap, torch.full((1, 1, 4, 4), 1 / 16))
    ref = F.conv2d(F.pad(sgn(x), (1, 2, 1, 2), value=-1.0), sgn(conv.weight)) * kmap
    out = conv(x)
    assert out.shape == (1, 3, 5, 5) and torch.allclose(out, ref, atol=1e-5)


@settings(max_examples=25, deadline=None)
@given(
    k=st.integers(1, 4), stride=st.integers(1, 2), dilation=st.integers(1, 2), pad=st.integers(0, 2),
    pad_value=st.sampled_from([-1.0, 1.0]), size=st.integers(7, 9), seed=st.integers(0, 2**16),
)
def test_conv2d_equals_padded_sign_conv_property(k, stride, dilation, pad, pad_value, size, seed):
    torch.manual_seed(seed)
    conv = BinaryConv2d(2, 3, k, stride=stride, padding=pad, dilation=dilation, bias=False, pad_value=pad_value)
    x = torch.randn(1, 2, size, size)
    ref = F.conv2d(F.pad(sgn(x), (pad,) * 4, value=pad_value), sgn(conv.weight), stride=stride, dilation=dilation)
    assert torch.allclose(conv(x), ref, atol=1e-5)


def test_double_scaling_warns():
    with pytest.warns(UserWarning, match="own scale"):
        BinaryLinear(3, 2, kernel_quantizer="bwn", scale="channel")


@pytest.mark.parametrize("kq,scale", [("ste_sign", "lsr"), ("ste_sign", "channel"), ("dab", "none")])
def test_eval_accumulates_first_then_scales(kq, scale):
    """Eval mode: integer accumulator, then a·acc + b·Σx + bias (the engine's order). Identical
    input rows give bit-identical outputs at every row position, and the value equals float64."""
    from onebit.nn import BinaryLinear

    torch.manual_seed(0)
    layer = BinaryLinear(37, 24, input_quantizer="ste_sign", kernel_quantizer=kq, scale=scale)
    layer.train()
    layer(torch.randn(64, 37))  # LSR initialises on the first training batch
    layer.eval()
    row = torch.randn(1, 37)
    x = torch.cat([torch.randn(200, 37), row.expand(300, -1), torch.randn(9, 37)])
    with torch.no_grad():
        out = layer(x)
        ref = copy.deepcopy(layer).double()(x.double())
    same = out[200:500]
    assert (same == same[0]).all()
    torch.testing.assert_close(out.double(), ref, rtol=1e-6, atol=1e-6)
    signs, a, b = layer.factorize()
    acc = torch.where(x >= 0, 1.0, -1.0).double() @ signs.double().T
    want = acc * a.double() + torch.where(x >= 0, 1.0, -1.0).double().sum(-1, keepdim=True) * b.double()
    if layer.bias is not None:
        want = want + layer.bias.double()
    torch.testing.assert_close(out.double(), want, rtol=1e-6, atol=1e-6)
