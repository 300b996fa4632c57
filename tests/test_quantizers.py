"""Tests of onebit.quantizers: registry, sign convention and every non-DAB binarizer vs its formula."""
import math

import pytest
import torch
from torch import nn

from onebit import quantizers as Q
from onebit.quantizers.irnet import ede_params, ede_sign_fn
from onebit.quantizers.xnor import xnor_input_scale

torch.set_num_threads(1)

WEIGHT_SPECS = [("ste_sign", {}), ("approx_sign", {}), ("bwn", {}), ("xnor", {}), ("xnor++", {}),
                ("irnet", {}), ("bireal_weight", {}), ("bireal", {"role": "weight"}), ("dab", {}),
                ("dab", {"variant": "official"})]
ACT_SPECS = [("ste_sign", {}), ("approx_sign", {}), ("bireal", {}), ("xnor_act", {}),
             ("xnor", {"role": "activation"}), ("irnet_act", {}), ("irnet", {"role": "activation"}),
             ("dab_act", {}), ("dab_act", {"per": "row"})]


def _build(name, opts, shape=None):
    q = Q.get(name, **opts)
    if hasattr(q, "bind") and shape is not None:
        q.bind(shape)
    return q


def _grad(q, x, g=None):
    x = x.clone().requires_grad_(True)
    y = q(x)
    y.backward(torch.ones_like(y) if g is None else g)
    return y.detach(), x.grad


# ---------------------------------------------------------------- registry and conventions
def test_sign_zero_is_plus_one():
    assert Q.sign(torch.tensor([-2.0, -0.0, 0.0, 3.0])).tolist() == [-1.0, 1.0, 1.0, 1.0]


def test_registry_lists_all_required_names():
    need = {"ste_sign", "approx_sign", "bwn", "xnor", "xnor_act", "xnor++", "abc", "abc_act", "irnet",
            "irnet_act", "bireal", "bireal_weight", "dab", "dab_act"}
    assert need <= set(Q.names())
    assert Q.names() == sorted(Q.names())


def test_registry_errors_are_clear():
    with pytest.raises(KeyError, match="unknown quantizer 'nope'.*ste_sign"):
        Q.get("nope")
    with pytest.raises(TypeError, match="bad options for quantizer 'bwn'"):
        Q.get("bwn", bogus=1)
    with pytest.raises(ValueError, match="role"):
        Q.get("xnor", role="bias")
    with pytest.raises(ValueError, match="already registered"):
        Q.register_quantizer("bwn")(lambda: None)


@pytest.mark.parametrize("name,opts", WEIGHT_SPECS + ACT_SPECS + [("abc", {}), ("abc_act", {})])
def test_every_quantizer_has_bits_and_kind(name, opts):
    q = Q.get(name, **opts)
    assert isinstance(q, Q.Quantizer) and isinstance(q, nn.Module)
    assert q.bits == 1 and q.kind in ("weight", "activation", "both")


@pytest.mark.parametrize("name,opts", WEIGHT_SPECS)
def test_weight_quantizers_factorize_and_never_output_zero(name, opts):
    g = torch.Generator().manual_seed(0)
    w = torch.randn(6, 3, 3, 3, generator=g)
    w[0, 0, 0, 0] = 0.0  # an exact zero must still map to a non-zero level
    w[1] = 0.0 if name != "dab" else w[1]
    w[1, 0, 0, 0] = 0.0
    q = _build(name, opts, w.shape)
    y = q(w)
    assert y.shape == w.shape and torch.isfinite(y).all()
    signs, a, b = q.factorize(w)
    assert set(signs.unique().tolist()) <= {-1.0, 1.0}
    assert a.shape == (6,) and b.shape == (6,)
    torch.testing.assert_close(a.view(-1, 1, 1, 1) * signs + b.view(-1, 1, 1, 1), y)
    rows_nonzero_scale = (a.abs() + b.abs()) > 0
    assert (y[rows_nonzero_scale] != 0).all()


@pytest.mark.parametrize("name,opts", ACT_SPECS)
def test_activation_quantizers_never_output_zero(name, opts):
    x = torch.randn(2, 3, 4, 5, generator=torch.Generator().manual_seed(1))
    x[0, 0, 0, :2] = 0.0
    y = _build(name, opts)(x)
    assert y.shape == x.shape and (y != 0).all()


def test_abc_factorize_raises_clearly():
    with pytest.raises(NotImplementedError, match="bases"):
        Q.get("abc").factorize(torch.randn(2, 3))


# ---------------------------------------------------------------- sign family
def test_ste_sign_forward_backward():
    x = torch.tensor([-2.0, -1.0, -0.5, 0.0, 0.5, 1.0, 2.0])
    y, gx = _grad(Q.get("ste_sign"), x)
    assert y.tolist() == [-1, -1, -1, 1, 1, 1, 1]
    assert gx.tolist() == [0, 1, 1, 1, 1, 1, 0]


def test_approx_sign_backward_is_bireal_polynomial():
    x = torch.tensor([-1.5, -1.0, -0.5, -0.25, 0.0, 0.5, 1.0, 1.5])
    y, gx = _grad(Q.get("approx_sign"), x)
    assert y.tolist() == [-1, -1, -1, -1, 1, 1, 1, 1]
    torch.testing.assert_close(gx, torch.tensor([0.0, 0.0, 1.0, 1.5, 2.0, 1.0, 0.0, 0.0]))
    _, gb = _grad(Q.get("bireal"), x)
    torch.testing.assert_close(gb, gx)
    assert Q.get("bireal").kind == "activation"


# ---------------------------------------------------------------- BWN / XNOR
W23 = torch.tensor([[1.0, -2.0, 0.5], [-0.3, 0.0, 0.6]])


def test_bwn_forward_by_hand():
    y = Q.get("bwn")(W23)
    a0, a1 = 3.5 / 3, 0.3
    torch.testing.assert_close(y, torch.tensor([[a0, -a0, a0], [-a1, a1, a1]]))
    torch.testing.assert_close(Q.get("xnor")(W23), y)


def test_bwn_backward_modes_by_hand():
    a0, a1 = 3.5 / 3, 0.3
    _, g = _grad(Q.get("bwn"), W23)  # paper: 1/n + α·1(|w|<=1)
    torch.testing.assert_close(g, torch.tensor([[1 / 3 + a0, 1 / 3, 1 / 3 + a0], [1 / 3 + a1] * 3]))
    _, g = _grad(Q.get("bwn", backward="detached"), W23)
    torch.testing.assert_close(g, torch.tensor([[a0, 0.0, a0], [a1] * 3]))
    _, g = _grad(Q.get("bireal_weight"), W23)
    torch.testing.assert_close(g, torch.tensor([[a0, 0.0, a0], [a1] * 3]))
    # autograd: (1/n)·d|w_j|/dw_j·Σ_i sign(w_i) + α·ste, with d|w|/dw = 0 at w = 0 (torch's subgradient)
    _, g = _grad(Q.get("bwn", backward="autograd"), W23)
    torch.testing.assert_close(g, torch.tensor([[1 / 3 + a0, -1 / 3, 1 / 3 + a0],
                                                [-1 / 3 + a1, a1, 1 / 3 + a1]]))


def test_bwn_center_option():
    y = Q.get("bwn", center=True)(torch.tensor([[1.0, 2.0, 3.0, 6.0]]))  # centred: -2,-1,0,3
    torch.testing.assert_close(y, torch.tensor([[-1.5, -1.5, 1.5, 1.5]]))


def test_xnor_act_row_scale_by_hand():
    x = torch.tensor([[1.0, -2.0, 3.0], [0.0, -0.5, 0.25]])
    q = Q.get("xnor", role="activation")
    y, g = _grad(q, x)
    torch.testing.assert_close(y, torch.tensor([[2.0, -2.0, 2.0], [0.25, -0.25, 0.25]]))
    torch.testing.assert_close(g, torch.tensor([[2.0, 0.0, 0.0], [0.25, 0.25, 0.25]]))  # scale · 1(|x|<=1)
    y_sign = Q.get("xnor_act", mode="sign")(x)
    assert y_sign.tolist() == [[1, -1, 1], [1, -1, 1]]


def test_xnor_input_scale_linear_conv2d_conv1d():
    x = torch.tensor([[1.0, -2.0, 3.0], [0.0, -0.5, 0.25]])
    torch.testing.assert_close(xnor_input_scale(x), torch.tensor([[2.0], [0.25]]))
    x = torch.stack([torch.ones(3, 3), -3 * torch.ones(3, 3)]).unsqueeze(0)  # A = 2 everywhere
    k = xnor_input_scale(x, "conv2d", kernel_size=3, padding=1)
    assert k.shape == (1, 1, 3, 3)
    torch.testing.assert_close(k[0, 0], torch.tensor([[8 / 9, 4 / 3, 8 / 9], [4 / 3, 2.0, 4 / 3],
                                                      [8 / 9, 4 / 3, 8 / 9]]))
    x = torch.randn(2, 4, 9, 11)
    k = xnor_input_scale(x, "conv2d", kernel_size=(3, 2), stride=2, padding=1, dilation=(1, 2))
    ref = nn.Conv2d(4, 8, (3, 2), stride=2, padding=1, dilation=(1, 2))(x)
    assert k.shape == (2, 1) + ref.shape[2:]
    x1 = torch.tensor([[[1.0, 2.0, 3.0]], [[-1.0, 0.0, 1.0]]])  # (B=2, C=1, L=3)
    k1 = xnor_input_scale(x1, "conv1d", kernel_size=2)
    torch.testing.assert_close(k1, torch.tensor([[[1.5, 2.5]], [[0.5, 0.5]]]))
    with pytest.raises(ValueError, match="kind"):
        xnor_input_scale(x, "conv3d")


# ---------------------------------------------------------------- XNOR++
def test_xnorpp_learned_scale_by_hand():
    w = torch.tensor([[0.5, -2.0], [0.0, -0.1]])
    q = Q.get("xnor++", weight_shape=w.shape)
    assert isinstance(q.scale, nn.Parameter) and q.scale.shape == (2,)
    assert any(p is q.scale for p in q.parameters())
    with torch.no_grad():
        q.scale.copy_(torch.tensor([2.0, 3.0]))
    y, gw = _grad(q, w, torch.tensor([[1.0, 2.0], [3.0, 4.0]]))
    torch.testing.assert_close(y, torch.tensor([[2.0, -2.0], [3.0, -3.0]]))
    torch.testing.assert_close(gw, torch.tensor([[2.0, 0.0], [9.0, 12.0]]))
    torch.testing.assert_close(q.scale.grad, torch.tensor([-1.0, -1.0]))


def test_xnorpp_layer_granularity_and_bind():
    q = Q.get("xnor++", granularity="layer")
    with pytest.raises(RuntimeError, match="bind"):
        q(torch.randn(3, 2))
    q.bind((3, 2))
    assert q.scale.shape == (1,)
    q.bind((3, 2))  # idempotent
    y = q(torch.tensor([[1.0, -1.0]] * 3))
    assert y.tolist() == [[1.0, -1.0]] * 3
    with pytest.raises(ValueError, match="channel"):
        Q.get("xnor++", weight_shape=(4, 2))(torch.randn(3, 2))


# ---------------------------------------------------------------- IR-Net
def test_ede_schedule_values():
    assert ede_params(0.0) == pytest.approx((0.1, 10.0))
    assert ede_params(0.5) == pytest.approx((1.0, 1.0))
    assert ede_params(1.0) == pytest.approx((10.0, 1.0))
    t, k = ede_params(0.25)
    assert t == pytest.approx(0.1 * 10 ** 0.5) and k == pytest.approx(1 / t)
    with pytest.raises(ValueError):
        ede_params(1.5)


def test_ede_backward_formula():
    x = torch.tensor([-2.0, -0.5, 0.0, 0.7, 3.0], requires_grad=True)
    t, k = 2.0, 1.0
    y = ede_sign_fn(x, t, k)
    y.sum().backward()
    assert y.tolist() == [-1, -1, 1, 1, 1]
    torch.testing.assert_close(x.grad, k * t * (1 - torch.tanh(t * x.detach()) ** 2))


def test_update_schedules_visits_every_ede_quantizer():
    m = nn.ModuleDict({"a": Q.get("irnet"), "b": Q.get("irnet_act"), "c": Q.get("bwn")})
    assert Q.update_schedules(m, 0.5) == 2
    assert (m["a"].t, m["a"].k) == pytest.approx((1.0, 1.0)) and m["b"].t == pytest.approx(1.0)
    Q.update_schedules(m, 0.0)
    assert m["b"].k == pytest.approx(10.0)
    with pytest.raises(ValueError):
        Q.update_schedules(m, -0.1)


def test_irnet_libra_pb_forward_by_hand():
    w = torch.tensor([[1.0, 2.0, 3.0, 6.0]])  # centred -2,-1,0,3; std = sqrt(14/3); mean|Ŵ| = 0.694 -> 2^-1
    y = Q.get("irnet")(w)
    torch.testing.assert_close(y, torch.tensor([[-0.5, -0.5, 0.5, 0.5]]))
    s, a, b = Q.get("irnet").factorize(w)
    assert a.tolist() == [0.5] and b.tolist() == [0.0]
    y = Q.get("irnet")(torch.full((2, 3), 4.0))  # constant rows: Ŵ = 0, scale 0, no NaN
    assert (y == 0).all()


def test_irnet_backward_is_ede_through_standardisation():
    w = torch.randn(3, 8, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    g = torch.randn(3, 8, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    q = Q.get("irnet", progress=0.3)
    _, gw = _grad(q, w, g)
    # reference: the same graph with sign replaced by k·tanh(t·x), whose derivative is EDE's
    wr = w.clone().requires_grad_(True)
    wc = wr - wr.mean(1, keepdim=True)
    wh = wc / wc.std(1, keepdim=True)
    scale = torch.exp2(torch.round(torch.log2(wh.detach().abs().mean(1, keepdim=True))))
    (g * scale * q.k * torch.tanh(q.t * wh)).sum().backward()
    torch.testing.assert_close(gw, wr.grad)


# ---------------------------------------------------------------- ABC-Net
def test_abc_single_base_by_hand():
    w = torch.tensor([[1.0, 2.0, 3.0, 6.0]])  # B = sign(w - 3) = [-1,-1,+1,+1]; α = 6/4
    y, g = _grad(Q.get("abc", bases=1), w)
    torch.testing.assert_close(y, torch.tensor([[-1.5, -1.5, 1.5, 1.5]]))
    torch.testing.assert_close(g, torch.full_like(w, 1.5))  # Σ α_m · g


@pytest.mark.parametrize("per", ["layer", "channel"])
def test_abc_least_squares_alpha(per):
    w = torch.randn(4, 3, 3, 3, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    q = Q.get("abc", bases=3, per=per)
    assert q.u.tolist() == [-1.0, 0.0, 1.0]
    b, alpha = q.bases_and_alpha(w)
    groups = 1 if per == "layer" else 4
    assert b.shape == (groups, w.numel() // groups, 3) and alpha.shape == (groups, 3)
    w2 = w.reshape(groups, -1)
    mean, std = w2.mean(1, keepdim=True), w2.std(1, keepdim=True)
    torch.testing.assert_close(b[..., 0], Q.sign(w2 - mean - std))
    resid = w2 - (b * alpha.unsqueeze(1)).sum(-1)
    torch.testing.assert_close(torch.einsum("gnm,gn->gm", b, resid), torch.zeros(groups, 3, dtype=torch.float64),
                               atol=1e-9, rtol=0)  # normal equations: Bᵀ(w − Bα) = 0
    y = q(w)
    torch.testing.assert_close(y.reshape(groups, -1), w2 - resid)
    assert ((y - w) ** 2).sum() < ((Q.get("bwn")(w) - w) ** 2).sum()


def test_abc_act_by_hand():
    q = Q.get("abc", role="activation", bases=2)  # thresholds at -1 and +1 (v = 1.5, -0.5), β = 0.5
    torch.testing.assert_close(q.shift.detach(), torch.tensor([1.5, -0.5]))
    x = torch.tensor([-0.8, 0.3, 1.2, -1.2], requires_grad=True)
    y = q(x)
    torch.testing.assert_close(y.detach(), torch.tensor([0.0, 0.0, 1.0, -1.0]))
    y.sum().backward()
    torch.testing.assert_close(x.grad, torch.tensor([0.5, 0.0, 0.5, 0.5]))  # Σ β_n 1(0 <= x+v_n <= 1)
    torch.testing.assert_close(q.shift.grad, torch.tensor([1.0, 0.5]))  # β_n · #{0 <= x+v_n <= 1}
    torch.testing.assert_close(q.beta.grad, torch.tensor([2.0, -2.0]))
    one = Q.get("abc_act", bases=1)(torch.tensor([-0.1, 0.0, 2.0]))
    assert one.tolist() == [-1.0, 1.0, 1.0]  # N = 1 is plain sign with sign(0) = +1


def test_non_finite_weight_names_the_layer():
    for name in ("bwn", "irnet", "xnor++", "abc"):
        q = Q.get(name)
        if hasattr(q, "bind"):
            q.bind((2, 2))
        q.layer_name = "features.3"
        with pytest.raises(ValueError, match=r"features\.3"):
            q(torch.tensor([[1.0, math.nan], [0.0, 1.0]]))
