"""Point models: every registered point model, every task, FP and binarized, on tiny inputs."""

from __future__ import annotations

import inspect

import pytest
import torch
import torch.nn as nn

from onebit.models import create, entry, names
from onebit.models._point_blocks import PointBatchNorm

POINT_MODELS = names(domain="points")
# small widths / neighbourhoods so that every test runs in well under a second
SMALL = {
    "pointnet2_ssg": {"npoints": (32, 8), "max_nsample": 8},
    "pointnet2_msg": {"npoints": (32, 8), "max_nsample": 8},
    "dgcnn": {"k": 8},
    "pointcnn": {"k": 8},
    "pointconv": {"npoints": (32, 8), "nsample": 8},
}
SMALL_SEMSEG = {
    "pointnet2_ssg": {"npoints": (32, 16, 8, 4), "max_nsample": 8},
    "pointnet2_msg": {"npoints": (32, 16, 8, 4), "max_nsample": 8},
}


def _small(name: str, task: str = "cls") -> dict:
    opts = {"width": 0.125}
    opts.update((SMALL_SEMSEG if task == "semseg" and name in SMALL_SEMSEG else SMALL).get(name, {}))
    return opts


def _run(model: nn.Module, task: str, b: int = 2, n: int = 64, c: int = 3):
    torch.manual_seed(0)
    x = torch.randn(b, n, c)
    if task == "partseg":
        return model(x, torch.tensor([1, 3])[:b])
    return model(x)


def test_expected_point_models_are_registered():
    for n in ("pointnet", "pointnet_vanilla", "pointnet_deploy"):
        assert n in POINT_MODELS
        assert entry(n).domain == "points"


@pytest.mark.parametrize("name", POINT_MODELS)
def test_every_task_gives_the_right_shape_and_gradients(name):
    for task in entry(name).tasks:
        classes = {"cls": 7, "partseg": 11, "semseg": 5}[task]
        c = 9 if task == "semseg" else 3
        model = create(name, classes, task=task, in_channels=c, **_small(name, task))
        out = _run(model, task, c=c)
        assert out.shape == ((2, classes) if task == "cls" else (2, 64, classes)), (name, task)
        out.square().mean().backward()
        grads = [p.grad for p in model.parameters() if p.requires_grad]
        assert all(g is not None and torch.isfinite(g).all() for g in grads), (name, task)
        model.eval()
        with torch.no_grad():
            assert torch.isfinite(_run(model, task, b=1, c=c)).all()


@pytest.mark.parametrize("name", POINT_MODELS)
def test_keep_float_names_exist_and_bn_is_foldable(name):
    model = create(name, 4, **_small(name))
    mods = dict(model.named_modules())
    assert model.onebit_keep_float, name
    for k in model.onebit_keep_float:
        assert isinstance(mods.get(k), nn.Linear), (name, k)
    assert any(isinstance(m, PointBatchNorm) for m in model.modules())
    assert all(isinstance(m, nn.BatchNorm1d) for m in model.modules() if isinstance(m, PointBatchNorm))


@pytest.mark.parametrize("name", POINT_MODELS)
def test_bad_input_names_the_model(name):
    model = create(name, 4, **_small(name))
    with pytest.raises(ValueError, match=name):
        model(torch.randn(2, 64, 5))
    with pytest.raises(ValueError, match=name):
        model(torch.randn(64, 3))
    with pytest.raises(ValueError, match=name):
        create(name, 4, act="median", **_small(name))
    if _has_pool(name):
        with pytest.raises(ValueError, match=name):
            create(name, 4, pool="median", **_small(name))


def _binary_layers(model):
    from onebit.nn import is_binary_layer

    return [n for n, m in model.named_modules() if is_binary_layer(m) and m.binarizes_weight]


@pytest.mark.parametrize("preset", ["fp", "bipointnet", "xnor"])
@pytest.mark.parametrize("name", POINT_MODELS)
def test_binarized_forward_backward(name, preset):
    pytest.importorskip("onebit.convert")
    for task in entry(name).tasks:
        model = create(name, 6, task=task, binarize=preset, **_small(name, task))
        out = _run(model, task)
        assert torch.isfinite(out).all(), (name, preset, task)
        out.square().mean().backward()
        assert all(p.grad is not None for p in model.parameters() if p.requires_grad), (name, preset, task)
        binary = _binary_layers(model)
        if preset == "fp":
            assert not binary
        else:
            assert binary, (name, preset)
            assert not set(binary) & set(model.onebit_keep_float), (name, preset)


def _has_pool(name: str) -> bool:
    return "pool" in inspect.signature(entry(name).builder).parameters


@pytest.mark.parametrize("name", [n for n in POINT_MODELS if _has_pool(n)])
def test_ema_pooling_follows_the_spec(name):
    nn_mod = pytest.importorskip("onebit.nn")
    pools_max = [m for m in create(name, 4, pool="ema-max", **_small(name)).modules()
                 if isinstance(m, nn_mod.EMAMaxPool)]
    assert pools_max, name
    pools_avg = [m for m in create(name, 4, pool="ema-avg", **_small(name)).modules()
                 if isinstance(m, nn_mod.EMAAvgPool)]
    assert pools_avg, name
    assert not [m for m in create(name, 4, **_small(name)).modules()
                if isinstance(m, nn_mod.EMAMaxPool | nn_mod.EMAAvgPool)]
    pytest.importorskip("onebit.convert")
    model = create(name, 4, binarize="bipointnet", **_small(name))
    assert any(isinstance(m, nn_mod.EMAMaxPool) for m in model.modules())
    assert any(isinstance(m, nn.Hardtanh) for m in model.modules())
    assert not any(isinstance(m, nn.ReLU) for m in model.modules())


@pytest.mark.parametrize("name", POINT_MODELS)
def test_from_config_rebuilds_the_same_model(name):
    from onebit.models import from_config

    model = create(name, 5, binarize="bipointnet", **_small(name)).eval()
    _run(model.train(), "cls")  # LSR scales initialise on the first training batch
    model.eval()
    clone = from_config(model.onebit_config).eval()
    clone.load_state_dict(model.state_dict())
    x = torch.randn(2, 64, 3)
    torch.testing.assert_close(clone(x), model(x))


@pytest.mark.parametrize("name", POINT_MODELS)
def test_normals_as_extra_channels(name):
    model = create(name, 4, in_channels=6, **_small(name))
    out = model(torch.randn(2, 64, 6))
    assert out.shape == (2, 4)
    out.sum().backward()
    first = dict(model.named_modules())[model.onebit_keep_float[0]]
    assert first.weight.grad is not None and first.weight.grad.abs().sum() > 0
