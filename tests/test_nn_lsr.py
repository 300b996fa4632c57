"""Layer-wise Scale Recovery (BiPointNet Eq. 9-10): data init, optimizer membership, gradient, resume."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from onebit.nn import BinaryConv2d, BinaryLinear, LSRScale


def sgn(x):
    return torch.where(x >= 0, 1.0, -1.0)


def test_lsr_init_is_std_ratio_on_first_training_batch():
    torch.manual_seed(0)
    layer = BinaryLinear(16, 8, bias=False, scale="lsr")
    x = torch.randn(32, 16)
    w = layer.weight.detach().clone()
    real = x @ w.t()
    binary = sgn(x) @ sgn(w).t()
    expected = real.std() / binary.std()  # α₀ = σ(A·W) / σ(B_a·B_w)
    layer.train()
    y = layer(x)
    assert layer.lsr.is_initialized
    assert layer.lsr.alpha.item() == pytest.approx(float(expected), rel=1e-5)
    assert torch.allclose(y, layer.lsr.alpha.detach() * binary, atol=1e-5)
    # a second batch does not re-initialise
    layer(torch.randn(32, 16) * 10)
    assert layer.lsr.alpha.item() == pytest.approx(float(expected), rel=1e-5)


def test_lsr_eval_before_training_does_not_init():
    layer = BinaryLinear(4, 2, scale="lsr").eval()
    layer(torch.randn(3, 4))
    assert not layer.lsr.is_initialized and layer.lsr.alpha.item() == 1.0


def test_lsr_alpha_in_optimizer_and_trained():
    torch.manual_seed(1)
    layer = BinaryLinear(12, 6, bias=False, scale="lsr")
    opt = torch.optim.SGD(layer.parameters(), lr=0.1)  # built before any forward
    assert any(p is layer.lsr.alpha for g in opt.param_groups for p in g["params"])
    x = torch.randn(20, 12)
    g = torch.randn(20, 6)
    y = layer(x)
    (y * g).sum().backward()
    # Eq. 10: g_α = Σ g_Z ⊙ (B_a ⊙ B_w)
    expected = (g * (sgn(x) @ sgn(layer.weight.detach()).t())).sum()
    assert float(layer.lsr.alpha.grad) == pytest.approx(float(expected), rel=1e-5)
    a0 = layer.lsr.alpha.item()
    opt.step()
    assert layer.lsr.alpha.item() == pytest.approx(a0 - 0.1 * float(expected), rel=1e-5)


def test_lsr_resume_does_not_reinit():
    torch.manual_seed(2)
    a = BinaryLinear(8, 4, scale="lsr").train()
    a(torch.randn(10, 8))
    with torch.no_grad():
        a.lsr.alpha.fill_(0.123)  # as if trained
    b = BinaryLinear(8, 4, scale="lsr").train()
    b.load_state_dict(a.state_dict())
    b(torch.randn(10, 8))
    assert b.lsr.alpha.item() == pytest.approx(0.123)


def test_lsr_center_weights_official():
    torch.manual_seed(3)
    layer = BinaryLinear(10, 5, bias=False, scale="lsr", center_weights=True)
    with torch.no_grad():
        layer.weight.add_(0.3)  # a weight mean far from 0
    x = torch.randn(16, 10)
    wc = layer.weight.detach() - layer.weight.detach().mean()
    expected = (x @ wc.t()).std() / (sgn(x) @ sgn(wc).t()).std()
    y = layer.train()(x)
    assert layer.lsr.alpha.item() == pytest.approx(float(expected), rel=1e-5)
    assert torch.allclose(y, layer.lsr.alpha.detach() * (sgn(x) @ sgn(wc).t()), atol=1e-5)
    with pytest.raises(ValueError, match="lsr"):
        BinaryLinear(3, 2, center_weights=True)


def test_lsr_conv_uses_real_conv_and_binary_padded_conv():
    torch.manual_seed(4)
    conv = BinaryConv2d(3, 4, 3, padding=1, bias=False, scale="lsr").train()
    x = torch.randn(2, 3, 6, 6)
    w = conv.weight.detach()
    real = F.conv2d(x, w, padding=1)
    binary = F.conv2d(F.pad(sgn(x), (1, 1, 1, 1), value=-1.0), sgn(w))
    conv(x)
    assert conv.lsr.alpha.item() == pytest.approx(float(real.std() / binary.std()), rel=1e-5)


def test_lsr_degenerate_batch_falls_back_to_weights():
    torch.manual_seed(5)
    layer = BinaryLinear(6, 3, bias=False, scale="lsr").train()
    layer(torch.zeros(4, 6))  # real output all zero: no information in the batch
    w = layer.weight.detach()
    assert layer.lsr.alpha.item() == pytest.approx(float(w.std() / sgn(w).std()), rel=1e-5)
    s = LSRScale()
    assert s.initialize_(torch.zeros(5), torch.zeros(5)) == 1.0


def test_lsr_loading_an_uninitialised_state_resets_the_flag():
    torch.manual_seed(6)
    a = BinaryLinear(8, 4, scale="lsr").train()
    a(torch.randn(10, 8))
    fresh = BinaryLinear(8, 4, scale="lsr")
    a.load_state_dict(fresh.state_dict())  # initialized=False comes back with it
    assert not a.lsr.is_initialized
    a(torch.randn(10, 8))
    assert a.lsr.is_initialized and a.lsr.alpha.item() != 1.0


def test_lsr_before_bn_frozen_keeps_eq9_value_and_trains_the_rest():
    from onebit.convert import SpecError, resolve_spec
    from onebit.models import create

    def alphas(model):
        return {n: m.lsr for n, m in model.named_modules() if getattr(m, "lsr", None) is not None}

    torch.manual_seed(3)
    frozen = create("pointnet", 5, binarize=resolve_spec("bipointnet", lsr_before_bn="frozen"), width=0.25)
    paper = create("pointnet", 5, binarize="bipointnet", width=0.25)
    # every LSR layer of the main path and T-Net MLPs is Linear -> BN; the T-Nets' k x k outputs have no BN
    still = sorted(n for n, lsr in alphas(frozen).items() if lsr.alpha.requires_grad)
    assert still == ["feature_tnet.out", "input_tnet.out"]
    assert all(lsr.alpha.requires_grad for lsr in alphas(paper).values())
    for model in (frozen, paper):
        opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-2)
        model.train()
        x, y = torch.randn(8, 32, 3), torch.randint(0, 5, (8,))
        model(x)  # first batch: Eq. 9 init
        init = {n: lsr.alpha.item() for n, lsr in alphas(model).items()}
        for _ in range(3):
            loss = F.cross_entropy(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
        moved = {n for n, lsr in alphas(model).items() if lsr.alpha.item() != init[n]}
        if model is frozen:
            assert moved == {"feature_tnet.out", "input_tnet.out"}
        else:
            assert moved == set(init)
    assert frozen.onebit_config["binarize"]["lsr_before_bn"] == "frozen"
    with pytest.raises(SpecError, match="lsr_before_bn"):
        resolve_spec("bipointnet", lsr_before_bn="fixed")


def test_lsr_unit_init_gives_unit_variance_output():
    torch.manual_seed(1)
    layer = BinaryLinear(16, 8, bias=False, scale="lsr")
    layer.lsr.init = "unit"
    x = torch.randn(32, 16, dtype=torch.float64)
    layer = layer.double()
    binary = sgn(x) @ sgn(layer.weight.detach()).t()
    layer.train()
    y = layer(x)
    assert layer.lsr.alpha.item() == pytest.approx(float(1.0 / binary.std()), rel=1e-6)  # α₀ = 1 / σ(B_a·B_w)
    assert float(y.detach().std()) == pytest.approx(1.0, rel=1e-6)
    assert "init='unit'" in repr(layer.lsr)
    with pytest.raises(ValueError, match="init must be one of"):
        LSRScale(init="ones")


def test_spec_lsr_init_reaches_every_lsr_layer_and_is_validated():
    from onebit.convert import BinarizeSpec, SpecError, binarize, resolve_spec
    from onebit.models import create

    spec = resolve_spec("bipointnet", lsr_init="unit")
    assert BinarizeSpec.from_dict(spec.to_dict()).lsr_init == "unit"
    model = create("pointnet_deploy", 5, binarize=spec)
    inits = [m.init for m in model.modules() if isinstance(m, LSRScale)]
    assert len(inits) == 4 and set(inits) == {"unit"}
    assert {m.init for m in create("pointnet_deploy", 5, binarize="bipointnet").modules()
            if isinstance(m, LSRScale)} == {"real"}
    # a model that is itself the converted layer
    single = binarize(torch.nn.Linear(4, 3), resolve_spec("bipointnet", keep_float=[], lsr_init="unit"))
    assert single.lsr.init == "unit"
    with pytest.raises(SpecError, match="lsr_init must be one of"):
        resolve_spec("bipointnet", lsr_init="one")
    with pytest.raises(SpecError, match="lsr_init is an option of scale='lsr'"):
        resolve_spec("xnor", lsr_init="unit")


def test_no_bn_pointnet_trains_only_with_unit_lsr_init():
    """Table 4 (f): without BN, Eq. 9 keeps the pre-pool features at the float net's small scale, EMA-max's
    δ* pushes every pooled feature out of the sign's STE window and the encoder gets no gradient at all;
    unit-variance α₀ puts them where δ* was derived for and the encoder learns."""
    from onebit.convert import resolve_spec
    from onebit.models import create

    def encoder_grad(lsr_init):
        torch.manual_seed(0)
        spec = resolve_spec("bipointnet", bias="keep", lsr_init=lsr_init,
                            model_options={"pool": "ema-max", "act": "hardtanh", "hidden_bn": False})
        model = create("pointnet_deploy", 4, binarize=spec).train()
        x = torch.rand(8, 256, 3) * 2 - 1
        x = x / x.norm(dim=-1).amax(dim=1, keepdim=True)[..., None]  # unit sphere, as the protocol
        F.cross_entropy(model(x), torch.arange(8) % 4).backward()
        return sum(float(m.weight.grad.abs().sum()) for n, m in model.named_modules()
                   if n.startswith("mlp2.") and isinstance(m, BinaryLinear))

    assert encoder_grad("real") == 0.0
    assert encoder_grad("unit") > 0.0
