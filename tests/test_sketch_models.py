"""Sketch models: forward/backward under the five DAB-Net settings, float layers, FBin block order."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn

from onebit.models import create, from_config, names
from onebit.models.sketch_a_net import sketch_a_net_geometry

pytest.importorskip("onebit.convert")

SETTINGS = ("fp", "bwn", "xnor", "dab-wbin", "dab-fbin")
SMALL = {
    "sketch_a_net": ({"width": 0.125, "input_size": 28}, 28),
    "resnet18": ({"width": 0.0625}, 32),
    "googlenet": ({"width": 0.0625}, 32),
}


def _layers(model):
    return {n: m for n, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))}


def _binary(m) -> bool:
    return type(m).__name__.startswith("Binary")


def test_registered():
    assert {"sketch_a_net", "resnet18", "googlenet"} <= set(names(domain="sketch", task="cls"))


@pytest.mark.parametrize("name", list(SMALL))
@pytest.mark.parametrize("setting", SETTINGS)
def test_forward_backward(name, setting):
    torch.manual_seed(0)
    opts, size = SMALL[name]
    model = create(name, num_classes=5, binarize=setting, **opts)
    x = torch.randn(3, 1, size, size)
    y = model(x)
    assert y.shape == (3, 5) and torch.isfinite(y).all()
    y.logsumexp(1).sum().backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    layers = _layers(model)
    binary = sorted(n for n, m in layers.items() if _binary(m))
    if setting == "fp":
        assert not binary
    else:
        expected_float = {"sketch_a_net": {"conv1.conv", "conv8"}, "resnet18": {"conv1"},
                          "googlenet": {"conv1.conv"}}[name]
        assert set(layers) - set(binary) == expected_float
        assert model.onebit_config["options"].get("preact", False) == (setting in ("xnor", "dab-fbin"))
    model.eval()
    with torch.no_grad():
        assert model(x).shape == (3, 5)


def test_official_float_classifier_options():
    r = create("resnet18", num_classes=4, binarize="dab-wbin", width=0.0625, float_classifier=True)
    assert not _binary(r.fc) and not _binary(r.conv1) and _binary(r.layer4[1].conv2)
    g = create("googlenet", num_classes=4, binarize="dab-wbin", width=0.0625)
    assert _binary(g.fc)  # paper: all layers but the first
    g = create("googlenet", num_classes=4, binarize="dab-wbin", width=0.0625, float_classifier=True)
    assert not _binary(g.fc)  # official code: the Linear classifier stays float
    assert create("googlenet", num_classes=4, official_a4=True).inception4b.b1.conv.in_channels == 508
    assert create("googlenet", num_classes=4).inception4b.b1.conv.in_channels == 512


@pytest.mark.parametrize("name", list(SMALL))
def test_preact_binarized_convs_see_bn_outputs(name):
    """FBin order: every binarized layer's input (before its sign) is a BatchNorm output, and no
    binarized conv is directly followed by a BatchNorm (BN -> sign -> conv -> ReLU)."""
    opts, size = SMALL[name]
    model = create(name, num_classes=5, binarize="dab-fbin", **opts)
    bn_outputs, conv_inputs = set(), {}
    hooks = []
    for n, m in model.named_modules():
        if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            hooks.append(m.register_forward_hook(lambda mod, i, o: bn_outputs.add(o.data_ptr())))
        elif isinstance(m, (nn.Conv2d, nn.Linear)) and _binary(m):
            hooks.append(m.register_forward_pre_hook(lambda mod, i, n=n: conv_inputs.__setitem__(n, i[0].data_ptr())))
    model(torch.randn(2, 1, size, size))
    for h in hooks:
        h.remove()
    assert conv_inputs
    not_bn = [n for n, ptr in conv_inputs.items() if ptr not in bn_outputs]
    assert not not_bn, f"binarized layers whose input is not a BN output: {not_bn}"


def test_wbin_order_is_conv_bn_relu():
    m = create("sketch_a_net", num_classes=3, width=0.125, input_size=28)
    assert m.conv2.bn.num_features == m.conv2.conv.out_channels
    p = create("sketch_a_net", num_classes=3, width=0.125, input_size=28, preact=True)
    assert p.conv2.bn.num_features == p.conv2.conv.in_channels
    assert all(mod.bias is None for n, mod in _layers(m).items() if n != "conv8")  # BN follows every conv


def test_sketch_a_net_geometry():
    g = sketch_a_net_geometry(225)
    assert (g["conv1_kernel"], g["conv1_stride"], g["conv6_kernel"], g["pool3_size"]) == (15, 3, 7, 7)
    m = create("sketch_a_net", num_classes=250)
    assert m.conv1.conv.kernel_size == (15, 15) and m.conv1.conv.stride == (3, 3)
    assert [m.conv2.conv.out_channels, m.conv5.conv.out_channels, m.conv7.conv.out_channels] == [128, 256, 512]
    assert m.conv6.conv.kernel_size == (7, 7) and m.conv8.out_channels == 250
    for size in (28, 64, 96):
        small = create("sketch_a_net", num_classes=7, input_size=size, width=0.125)
        assert small(torch.randn(2, 1, size, size)).shape == (2, 7)
    with pytest.raises(ValueError, match="too small"):
        create("sketch_a_net", num_classes=3, input_size=12)


def test_resnet18_standard_size_and_config_roundtrip():
    m = create("resnet18", num_classes=1000, in_channels=3)
    assert sum(p.numel() for p in m.parameters()) == 11_689_512  # the standard ResNet-18
    b = create("resnet18", num_classes=3, binarize="xnor", width=0.0625)
    again = from_config(b.onebit_config)
    again.load_state_dict(b.state_dict())
    x = torch.randn(2, 1, 32, 32)
    b.eval()
    again.eval()
    assert torch.allclose(b(x), again(x))


def test_googlenet_aux_heads():
    m = create("googlenet", num_classes=6, width=0.0625, aux_logits=True)
    y = m(torch.randn(2, 1, 64, 64))
    assert y.shape == (2, 6) and len(m.aux_outputs) == 2 and all(a.shape == (2, 6) for a in m.aux_outputs)
    m.eval()
    m(torch.randn(2, 1, 64, 64))
    assert m.aux_outputs == ()
