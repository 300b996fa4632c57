"""onebit.convert: BinarizeSpec, presets, resolve_spec and binarize() on arbitrary torch models."""

from __future__ import annotations

import copy

import pytest
import torch
import yaml
from torch import nn

import onebit
from onebit.convert import BinarizeSpec, SpecError, binarize, iter_binary_layers, presets, resolve_spec
from onebit.nn import BinaryConv2d, BinaryLinear, is_binary_layer


def toy():
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(),
        nn.Conv2d(4, 8, 3, padding=1), nn.BatchNorm2d(8), nn.Hardtanh(),
        nn.Flatten(), nn.Linear(8 * 4 * 4, 16), nn.Linear(16, 3),
    )


class Tagged(nn.Module):
    """A model declaring its float layers, with names that are not first/last in module order."""

    def __init__(self):
        super().__init__()
        self.head = nn.Linear(8, 2)
        self.stem = nn.Linear(3, 8)
        self.body = nn.Sequential(nn.Linear(8, 8), nn.Linear(8, 8))
        self.onebit_keep_float = ("stem", "head")

    def forward(self, x):
        return self.head(self.body(self.stem(x)))


def kinds(model):
    return {n: type(m).__name__ for n, m in model.named_modules() if isinstance(m, nn.Linear | nn.Conv2d)}


def test_presets_listed():
    expected = {"fp", "bnn", "bwn", "xnor", "xnor++", "bireal", "abc", "irnet", "bipointnet", "bipointnet-avg",
                "dab-wbin", "dab-fbin"}
    assert expected <= set(presets())


def test_bnn_keeps_first_and_last_float_and_copies_weights():
    m = toy()
    ref = copy.deepcopy(m)
    out = onebit.binarize(m, "bnn")
    assert out is m
    assert kinds(m) == {"0": "Conv2d", "3": "BinaryConv2d", "7": "BinaryLinear", "8": "Linear"}
    assert torch.equal(m[3].weight, ref[3].weight) and torch.equal(m[3].bias, ref[3].bias)  # bnn keeps bias
    assert m[3].layer_name == "3" and m[3].kernel_quantizer.layer_name == "3"
    assert m.onebit_spec.name == "bnn"
    assert m(torch.randn(2, 1, 4, 4)).shape == (2, 3)


def test_bias_dropped_for_lsr_and_dab():
    m = binarize(toy(), "bipointnet")
    assert m[3].bias is None and m[3].scale == "lsr"
    m = binarize(toy(), "dab-wbin")
    assert m[3].bias is None and m[3].input_quantizer is None
    assert resolve_spec("bnn", scale="lsr").bias == "drop"
    assert resolve_spec("bnn", scale="lsr", bias="keep").bias == "keep"


def test_model_declared_float_layers():
    m = binarize(Tagged(), "bnn")  # ["first", "last"] uses the model's onebit_keep_float
    assert kinds(m) == {"head": "Linear", "stem": "Linear", "body.0": "BinaryLinear", "body.1": "BinaryLinear"}
    m = binarize(Tagged(), "bnn", keep_float=["default"])
    assert isinstance(m.stem, nn.Linear) and not is_binary_layer(m.stem) and not is_binary_layer(m.head)
    m = binarize(Tagged(), "bnn", keep_float=["first"])  # positional: first in module order is "head"
    assert not is_binary_layer(m.head) and is_binary_layer(m.stem)
    m = binarize(Tagged(), "bnn", keep_float=[])  # everything binary
    assert all(is_binary_layer(x) for x in (m.head, m.stem, m.body[0]))
    bad = Tagged()
    bad.onebit_keep_float = ("stem", "missing")
    with pytest.raises(SpecError, match="missing"):
        binarize(bad, "bnn")


def test_include_exclude_and_layer_overrides():
    m = binarize(Tagged(), "bnn", keep_float=[], include=["body.*"])
    assert [n for n, _ in iter_binary_layers(m)] == ["body.0", "body.1"]
    m = binarize(Tagged(), "bnn", keep_float=[], exclude=["body.1", "head"])
    assert [n for n, _ in iter_binary_layers(m)] == ["stem", "body.0"]
    m = binarize(Tagged(), "bnn", layers={"body.1": {"scale": "channel", "input": None}, "body.0": "float"})
    assert not is_binary_layer(m.body[0])
    assert m.body[1].scale == "channel" and m.body[1].input_quantizer is None
    with pytest.raises(SpecError, match="unknown override"):
        resolve_spec("bnn", layers={"body.1": {"colour": "red"}})


def test_shared_layer_stays_shared():
    lin = nn.Linear(4, 4)
    m = nn.Sequential(nn.Linear(4, 4), lin, nn.ReLU(), lin, nn.Linear(4, 2))
    binarize(m, "bnn")
    assert m[1] is m[3] and isinstance(m[1], BinaryLinear)


def test_state_dict_round_trip():
    torch.manual_seed(1)
    a = binarize(toy(), "bipointnet")
    x = torch.randn(4, 1, 4, 4)
    a.train()
    a(x)  # LSR init
    b = binarize(toy(), "bipointnet")
    b.load_state_dict(a.state_dict())
    a.eval()
    b.eval()
    assert torch.equal(a(x), b(x))
    # a float checkpoint loads strictly into the binarized model (bias of converted layers dropped)
    c = binarize(toy(), "bipointnet")
    c.load_state_dict(toy().state_dict())


@pytest.mark.parametrize("name", ["bnn", "bwn", "xnor", "xnor++", "bireal", "abc", "irnet", "bipointnet",
                                  "bipointnet-avg", "dab-wbin", "dab-fbin"])
def test_every_preset_converts_and_trains(name):
    m = binarize(toy(), name)
    assert len(list(iter_binary_layers(m))) == 2
    y = m(torch.randn(3, 1, 4, 4))
    y.sum().backward()
    assert m[3].weight.grad is not None


def test_fp_is_a_no_op():
    m = toy()
    binarize(m, "fp")
    assert not any(is_binary_layer(x) for x in m.modules())
    assert resolve_spec(None).is_full_precision and resolve_spec("fp").is_full_precision
    assert not resolve_spec("bnn").is_full_precision


def test_preset_options_pool_and_scale():
    a = resolve_spec("xnor", pool="ema-max")
    b = resolve_spec("xnor+ema-max")
    assert a == b and a.name == "xnor+ema-max" and a.model_options["pool"] == "ema-max"
    assert resolve_spec("xnor").model_options["pool"] == "max"
    assert resolve_spec("bnn+ema-avg").model_options["pool"] == "ema-avg"
    assert resolve_spec("xnor+ema-max", pool="ema-avg").name == "xnor+ema-avg"
    pp = resolve_spec("xnor++", pool="ema-max")
    assert pp.name == "xnor+++ema-max" and resolve_spec(pp.name) == pp
    lsr = resolve_spec("bnn", scale="lsr")
    assert lsr.scale == "lsr" and lsr.name == "bnn+lsr" and resolve_spec("bnn+lsr") == lsr
    bp = resolve_spec("bipointnet")
    assert bp.model_options["act"] == "hardtanh" and bp.model_options["pool"] == "ema-max"
    assert resolve_spec("bipointnet-avg").model_options["pool"] == "ema-avg"
    fb = resolve_spec("dab-fbin")
    assert fb.weight == "dab" and fb.input == "xnor" and fb.model_options["preact"] and fb.dab_preprocess
    official = resolve_spec("dab-fbin", input="ste_sign")
    assert official.input == "ste_sign" and official.weight == "dab"
    assert resolve_spec({"preset": "bnn", "scale": "lsr"}) == lsr


def test_custom_dict_dab_sign_ema_lsr():
    d = {"weight": "dab", "input": "ste_sign", "scale": "lsr", "bias": "drop",
         "model_options": {"pool": "ema-max", "act": "hardtanh"}, "dab_preprocess": True}
    spec = resolve_spec(d)
    assert spec.name == "custom" and spec.scale == "lsr" and spec.model_options["pool"] == "ema-max"
    m = binarize(toy(), spec)
    assert m[3].kernel_quantizer.name == "dab" and m[3].input_quantizer.name == "ste_sign" and m[3].lsr is not None


@pytest.mark.parametrize("name", ["fp", "bnn", "xnor++", "abc", "bipointnet", "dab-fbin", "xnor+ema-max"])
def test_spec_dict_and_yaml_round_trip(name):
    spec = resolve_spec(name, layers={"fc*": {"scale": "channel"}, "stem": "float"}, exclude=["x"])
    d = spec.to_dict()
    assert BinarizeSpec.from_dict(d) == spec
    text = yaml.safe_dump(d)
    assert BinarizeSpec.from_dict(yaml.safe_load(text)) == spec
    assert BinarizeSpec.from_yaml(spec.to_yaml()) == spec
    assert resolve_spec(d) == spec


def test_spec_errors_are_clear():
    with pytest.raises(SpecError, match="unknown binarization preset 'bnnn'"):
        resolve_spec("bnnn")
    with pytest.raises(SpecError, match="unknown option 'ema'"):
        resolve_spec("xnor+ema")
    with pytest.raises(SpecError, match="unknown field"):
        BinarizeSpec.from_dict({"wieght": "ste_sign"})
    with pytest.raises(SpecError, match="scale"):
        resolve_spec("bnn", scale="row")
    with pytest.raises(SpecError, match="pool"):
        resolve_spec("bnn", pool="sum")
    with pytest.raises(SpecError, match="pad_value"):
        BinarizeSpec(weight="ste_sign", pad_value=0)
    with pytest.raises(SpecError, match="unknown override"):
        resolve_spec("bnn", colour="red")
    with pytest.raises(SpecError, match="dab_preprocess"):
        resolve_spec("dab-wbin", dab_preprocess="sometimes")
    assert resolve_spec("dab-wbin", dab_preprocess="channel").dab_preprocess == "channel"
    with pytest.raises(SpecError, match="layer '3'"):
        binarize(toy(), {"weight": "no_such_quantizer"})


def test_binarize_a_single_layer_model():
    layer = nn.Conv2d(2, 3, 3)
    out = binarize(layer, "bnn", keep_float=[])
    assert isinstance(out, BinaryConv2d)
