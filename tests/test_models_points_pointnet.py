"""PointNet specifics: layer layout (BiPointNet's 18 layers), T-Net regulariser, partseg input."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn as nn

from onebit.models import create
from onebit.models._point_blocks import SharedMLP


def _linears(model):
    return [n for n, m in model.named_modules() if isinstance(m, nn.Linear)]


def test_pointnet_has_bipointnets_18_linear_layers_and_3_float():
    model = create("pointnet", 40)
    lin = _linears(model)
    assert len(lin) == 18
    assert set(model.onebit_keep_float) == {"mlp1.0.linear", "input_tnet.mlp.0.linear", "head.out"}
    shapes = {n: tuple(m.weight.shape) for n, m in model.named_modules() if isinstance(m, nn.Linear)}
    assert shapes["mlp1.0.linear"] == (64, 3)
    assert shapes["input_tnet.out"] == (9, 256)
    assert shapes["feature_tnet.out"] == (64 * 64, 256)
    assert shapes["mlp2.1.linear"] == (1024, 128)
    assert shapes["head.out"] == (40, 256)


def test_vanilla_and_deploy_layouts():
    van = create("pointnet_vanilla", 40)
    widths = [m.weight.shape for n, m in van.named_modules() if isinstance(m, nn.Linear)]
    assert [tuple(w) for w in widths] == [
        (64, 3), (64, 64), (64, 64), (128, 64), (1024, 128), (512, 1024), (256, 512), (40, 256)
    ]
    dep = create("pointnet_deploy", 40)
    widths = [tuple(m.weight.shape) for n, m in dep.named_modules() if isinstance(m, nn.Linear)]
    assert widths == [(64, 3), (128, 64), (1024, 128), (512, 1024), (256, 512), (40, 256)]
    assert dep.onebit_keep_float == ("mlp1.0.linear", "head.out")
    # encoder's last layer: Linear → BN → pool (no activation before the global pool)
    assert isinstance(dep.mlp2[-1].act, nn.Identity)


def test_hidden_bn_false_keeps_bn_after_the_first_layer_only():
    model = create("pointnet_deploy", 40, hidden_bn=False)
    bns = [n for n, m in model.named_modules() if isinstance(m, torch.nn.BatchNorm1d)]
    assert bns == ["mlp1.0.bn"]
    linears = {n: m for n, m in model.named_modules() if isinstance(m, torch.nn.Linear)}
    assert linears["mlp1.0.linear"].bias is None  # BN follows it
    assert all(m.bias is not None for n, m in linears.items() if n != "mlp1.0.linear")
    assert model(torch.randn(2, 32, 3)).shape == (2, 40)
    with pytest.raises(ValueError, match="bn must be"):
        SharedMLP(3, [8], bn="last")


def test_binarized_pointnet_has_15_binary_layers():
    pytest.importorskip("onebit.convert")
    from onebit.nn import is_binary_layer

    model = create("pointnet", 40, binarize="bipointnet")
    binary = [n for n, m in model.named_modules() if is_binary_layer(m) and m.binarizes_weight]
    assert len(binary) == 15
    assert "feature_tnet.mlp.0.linear" in binary and "input_tnet.out" in binary and "feature_tnet.out" in binary
    floats = [n for n, m in model.named_modules() if isinstance(m, nn.Linear) and n not in binary]
    assert sorted(floats) == sorted(model.onebit_keep_float)
    dep = create("pointnet_deploy", 40, binarize="bipointnet")
    assert len([m for m in dep.modules() if is_binary_layer(m) and m.binarizes_weight]) == 4


def test_regularizer_matches_hand_computation():
    model = create("pointnet", 5, width=0.125)
    model(torch.randn(3, 32, 3))
    a = model.last_transforms["feature"]
    assert a.shape == (3, 8, 8) and model.last_transforms["input"].shape == (3, 3, 3)
    eye = torch.eye(8)
    want = sum(torch.sqrt(((a[b] @ a[b].T - eye) ** 2).sum()) for b in range(3)) / 3
    want_official = sum(torch.sqrt(((a[b] @ (a[b].T - eye)) ** 2).sum()) for b in range(3)) / 3
    torch.testing.assert_close(model.regularizer(), want)
    torch.testing.assert_close(model.regularizer(official=True), want_official)
    assert not torch.allclose(want, want_official)
    model.regularizer().backward()
    assert model.feature_tnet.out.weight.grad is not None


def test_regularizer_is_zero_for_orthogonal_transform_and_without_tnet():
    model = create("pointnet", 5, width=0.125)
    q, _ = torch.linalg.qr(torch.randn(2, 8, 8))
    model.last_transforms = {"feature": q}
    assert model.regularizer().item() == pytest.approx(0.0, abs=1e-5)
    van = create("pointnet_vanilla", 5, width=0.125)
    van(torch.randn(2, 16, 3))
    assert van.regularizer().item() == 0.0
    with pytest.raises(RuntimeError, match="forward"):
        create("pointnet", 5, width=0.125).regularizer()


def test_input_transform_applies_to_xyz_only():
    model = create("pointnet", 5, in_channels=6, width=0.125).eval()
    # make the input T-Net output exactly a fixed rotation: zero its last layer, set identity offset
    with torch.no_grad():
        model.input_tnet.out.weight.zero_()
        model.input_tnet.out.bias.copy_(torch.tensor([[0.0, 1, 0], [-1, 0, 0], [0, 0, 1]]).reshape(-1) - torch.eye(3).reshape(-1))
    x = torch.randn(2, 16, 6)
    seen = {}
    model.mlp1.register_forward_pre_hook(lambda m, args: seen.setdefault("x", args[0]))
    model(x)
    rot = torch.tensor([[0.0, 1, 0], [-1, 0, 0], [0, 0, 1]])
    torch.testing.assert_close(seen["x"][..., :3], x[..., :3] @ rot)
    assert torch.equal(seen["x"][..., 3:], x[..., 3:])


def test_partseg_category_labels_equal_one_hot_and_are_checked():
    model = create("pointnet", 10, task="partseg", width=0.125).eval()
    x = torch.randn(2, 16, 3)
    a = model(x, torch.tensor([2, 15]))
    b = model(x, torch.nn.functional.one_hot(torch.tensor([2, 15]), 16))
    torch.testing.assert_close(a, b)
    assert not torch.allclose(a, model(x, torch.tensor([3, 15])))
    with pytest.raises(ValueError, match="category"):
        model(x)
    with pytest.raises(ValueError, match=r"\[0, 16\)"):
        model(x, torch.tensor([2, 16]))


def test_ema_max_pool_subtracts_closed_form_offset():
    pytest.importorskip("onebit.nn")
    model = create("pointnet_deploy", 4, pool="ema-max", width=0.125).eval()
    plain = create("pointnet_deploy", 4, pool="max", width=0.125).eval()
    plain.load_state_dict(model.state_dict())
    x = torch.randn(2, 100, 3)
    feats = {}
    model.head.register_forward_pre_hook(lambda m, args: feats.setdefault("ema", args[0]))
    plain.head.register_forward_pre_hook(lambda m, args: feats.setdefault("max", args[0]))
    model(x)
    plain(x)
    delta = -math.sqrt(2) * torch.erfinv(torch.tensor(2 * (1 - 0.5 ** (1 / 100)) - 1, dtype=torch.float64))
    torch.testing.assert_close(feats["max"] - feats["ema"], torch.full_like(feats["ema"], float(delta)))


def test_official_ema_offsets_option():
    from onebit.nn import OFFICIAL_EMA_OFFSETS, EMAMaxPool

    model = create("pointnet_deploy", 4, pool="ema-max", ema_offsets="official", width=0.125).eval()
    pools = [m for m in model.modules() if isinstance(m, EMAMaxPool)]
    assert pools and all(p.offsets == "official" for p in pools)
    plain = create("pointnet_deploy", 4, pool="max", width=0.125).eval()
    plain.load_state_dict(model.state_dict())
    feats = {}
    model.head.register_forward_pre_hook(lambda m, args: feats.setdefault("ema", args[0]))
    plain.head.register_forward_pre_hook(lambda m, args: feats.setdefault("max", args[0]))
    x = torch.randn(2, 1024, 3)
    model(x)
    plain(x)
    torch.testing.assert_close(feats["max"] - feats["ema"], torch.full_like(feats["ema"], OFFICIAL_EMA_OFFSETS[1024]))
    with pytest.raises(ValueError, match="n=\\[100\\]"):
        model(torch.randn(2, 100, 3))  # the official table has no offset for 100 points
    with pytest.raises(ValueError, match="ema_offsets"):
        create("pointnet", 4, ema_offsets="mc")


@pytest.mark.parametrize(("name", "preset"), [("pointnet", None), ("pointnet_deploy", "bipointnet")])
def test_can_fit_a_tiny_batch(name, preset):
    torch.manual_seed(0)
    model = create(name, 4, binarize=preset, width=0.25, dropout=0.0)
    x, y = torch.randn(8, 64, 3), torch.arange(8) % 4
    opt = torch.optim.Adam(model.parameters(), 1e-2)
    first = None
    for _ in range(40):
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        first = loss.item() if first is None else first
    assert first > 1.0 and loss.item() < 0.2
