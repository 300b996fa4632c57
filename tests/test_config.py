"""Config loading, dotted overrides, defaults and validation (onebit.train.config)."""

from __future__ import annotations

import pytest
import yaml

from onebit.train.config import ConfigError, apply_overrides, load, load_config, resolve, save_config

BASE = {"model": {"name": "pointnet_vanilla"}, "data": {"name": "synthetic_shapes"}}


def test_defaults_filled_and_typed_overrides(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text(yaml.safe_dump(BASE))
    cfg = load(p, ["optim.lr=1e-2", "epochs=3", "binarize=xnor", "data.options={num_points: 64}",
                   "amp=true", "loss.class_weights=[1, 2.5]"])
    assert cfg["optim"]["lr"] == pytest.approx(0.01) and isinstance(cfg["optim"]["lr"], float)
    assert cfg["epochs"] == 3 and cfg["binarize"] == "xnor" and cfg["amp"] == "bf16"  # true reads as bf16
    assert cfg["data"]["options"] == {"num_points": 64}
    assert cfg["loss"]["class_weights"] == [1, 2.5]
    assert cfg["schedule"]["name"] == "cosine" and cfg["loss"]["tnet_reg"] == pytest.approx(0.001)
    # preset string turned into a dict by a dotted override of one of its keys
    cfg2 = resolve(apply_overrides(BASE | {"binarize": "xnor"}, ["binarize.pool=ema-max"]))
    assert cfg2["binarize"] == {"preset": "xnor", "pool": "ema-max"}


def test_round_trip_saved_config(tmp_path):
    cfg = resolve(BASE)
    save_config(cfg, tmp_path / "config.yaml")
    assert resolve(load_config(tmp_path / "config.yaml")) == cfg


@pytest.mark.parametrize(
    "cfg, overrides, needle",
    [
        (BASE, ["optim.lrr=1"], "optim.lrr"),
        (BASE, ["epochs=0"], "'epochs' must be >= 1"),
        (BASE, ["epochs=2.5"], "'epochs' must be an integer"),
        (BASE, ["optim.name=rmsprop"], "optim.name"),
        (BASE, ["schedule.name=poly"], "schedule.name"),
        (BASE, ["amp=maybe"], "'amp' must be one of auto, bf16, off"),
        (BASE, ["loss.label_smoothing=1.0"], "label_smoothing"),
        (BASE, ["epochs"], "expected KEY=VALUE"),
        (BASE | {"epochs": 3}, ["epochs.x=1"], "epochs is a int"),
        ({"data": {"name": "synthetic_shapes"}}, [], "'model.name' is required"),
    ],
)
def test_bad_configs_raise_clear_errors(tmp_path, cfg, overrides, needle):
    p = tmp_path / "bad.yaml"
    p.write_text(yaml.safe_dump(cfg))
    with pytest.raises(ConfigError) as e:
        load(p, overrides)
    assert needle in str(e.value)


def test_bad_files(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "missing.yaml")
    p = tmp_path / "broken.yaml"
    p.write_text("model: [unclosed\n")
    with pytest.raises(ConfigError, match="broken.yaml: invalid YAML"):
        load_config(p)
    p.write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="top level must be a mapping"):
        load_config(p)
    p.write_text(yaml.safe_dump(BASE | {"epochz": 3}))
    with pytest.raises(ConfigError, match=r"broken.yaml: unknown key 'epochz'"):
        load(p)


def test_repo_configs_resolve():
    """Every committed config under configs/ resolves (schema typos would fail here)."""
    from pathlib import Path

    root = Path(__file__).resolve().parents[1] / "configs"
    files = sorted(p for p in root.rglob("*.yaml"))
    if not files:
        pytest.skip("no configs committed yet")
    for f in files:
        load(f)


def test_repo_configs_build_their_models():
    """Every committed config names a registered model and a binarize spec that resolves; one config
    per model name is built (building all of them would take a minute)."""
    from pathlib import Path

    from onebit.convert import resolve_spec
    from onebit.models import create, names
    from onebit.train.trainer import resolve_binarize

    root = Path(__file__).resolve().parents[1] / "configs"
    files = sorted(root.rglob("*.yaml"))
    if not files:
        pytest.skip("no configs committed yet")
    tasks = {"shapenet_part": "partseg", "synthetic_parts": "partseg", "s3dis": "semseg"}
    missing, built = [], set()
    for f in files:
        cfg = load(f)
        name = cfg["model"]["name"]
        if name not in names():
            missing.append(f"{f.name}: {name}")
            continue
        b = resolve_binarize(cfg["binarize"])
        if b is not None:
            resolve_spec(b)
        task = cfg["task"] or tasks.get(cfg["data"]["name"], "cls")
        if (name, task) in built:
            continue
        built.add((name, task))
        model = create(name, num_classes=8, task=task, binarize=b, **cfg["model"]["options"])
        assert model.onebit_config["name"] == name, f.name
    assert not missing, f"configs name unregistered models: {missing}"


@pytest.mark.parametrize("value,want", [(True, "bf16"), (False, "off"), ("auto", "auto"), ("BF16", "bf16"),
                                        ("off", "off")])
def test_amp_modes(value, want):
    from onebit.train.config import DEFAULTS, resolve

    assert DEFAULTS["amp"] == "auto"
    assert resolve({**BASE, "amp": value})["amp"] == want


def test_amp_bad_value_names_the_file(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text(yaml.safe_dump({**BASE, "amp": "fp8"}))
    with pytest.raises(ConfigError, match=r"c\.yaml.*'amp' must be one of auto, bf16, off"):
        load(p)


def test_amp_auto_follows_the_cpu(monkeypatch):
    from onebit.train import amp

    assert amp.resolve_amp("off", "cpu") is False and amp.resolve_amp("bf16", "cpu") is True
    for flags, want in ((frozenset({"avx2", "avx512_bf16"}), True), (frozenset({"amx_bf16"}), True),
                        (frozenset({"avx2", "avx512f"}), False), (frozenset(), False)):
        monkeypatch.setattr(amp, "cpu_flags", lambda flags=flags: flags)
        assert amp.resolve_amp("auto", "cpu") is want
    with pytest.raises(ValueError, match="auto, bf16, off"):
        amp.resolve_amp("fp16", "cpu")
