"""The DAB-Net configs (generated, committed) and the fast synthetic sketch configs."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DABNET = REPO / "configs" / "dabnet"

config_mod = pytest.importorskip("onebit.train.config")


def _generator():
    spec = importlib.util.spec_from_file_location("dabnet_generate", DABNET / "generate.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_committed_configs_match_generator(tmp_path):
    written = _generator().main(tmp_path)
    assert len(written) == 3 * 5 * 3 + 3 * 5  # TU-Berlin 3 folds + Sketchy, 3 models, 5 settings
    for p in written:
        committed = DABNET / p.relative_to(tmp_path)
        assert committed.is_file(), f"{committed} missing: run python configs/dabnet/generate.py"
        assert committed.read_text() == p.read_text(), f"{committed} differs from the generator"


def test_dabnet_configs_resolve():
    paths = sorted(DABNET.glob("*/*.yaml"))
    assert paths
    settings = set()
    for p in paths:
        cfg = config_mod.load(p)
        model = cfg["model"]["name"]
        settings.add(cfg["binarize"] or "fp")
        assert cfg["data"]["options"]["crop"] == (225 if model == "sketch_a_net" else 224)
        assert cfg["data"]["eval_options"]["ten_crop"] is True
        assert cfg["optim"]["name"] == "adam" and cfg["optim"]["weight_decay"] == 0
        assert cfg["schedule"] == {**cfg["schedule"], "name": "step", "interval": 50, "min_lr": 5e-5}
        assert cfg["optim"]["lr"] == 2e-3
        assert cfg["batch_size"] == (256 if model == "sketch_a_net" else 128)
        if cfg["data"]["name"] == "tuberlin":
            assert cfg["data"]["options"]["fold"] in (1, 2, 3)
    assert settings == {"fp", "bwn", "xnor", "dab-wbin", "dab-fbin"}


@pytest.mark.parametrize("setting", ["fp", "dab_fbin"])
def test_synthetic_sketch_config_trains(tmp_path, setting):
    from onebit.train import run

    cfg = config_mod.load(REPO / "configs" / "synthetic" / f"sketch_{setting}.yaml",
                          ["epochs=1", "data.train_options={per_class: 8}", "data.eval_options={per_class: 4}"])
    res = run(cfg, tmp_path / setting, progress=False)
    assert 0.0 <= res.final["oa"] <= 100.0
    assert (tmp_path / setting / "last.ckpt").is_file()


def _benchmark():
    spec = importlib.util.spec_from_file_location("dab_sketch", REPO / "benchmarks" / "dab_sketch.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_benchmark_configs_resolve_and_commands():
    bench = _benchmark()
    args = bench.parse_args(["--epochs", "3", "--subset", "25", "--folds", "1,2", "--override", "dab_preprocess=false"])
    for dataset in ("quickdraw", "sketchy"):
        for setting in bench.SETTINGS:
            cfg = config_mod.resolve(bench.run_config(args, dataset, setting, fold=2))
            assert cfg["model"]["name"] == "sketch_a_net" and cfg["epochs"] == 3
            if setting == "fp":
                assert cfg["binarize"] is None
            else:
                assert cfg["binarize"] == {"preset": setting, "dab_preprocess": False}
            cmd = bench.row_command(args, dataset, setting)
            assert f"--settings {setting}" in cmd and "--override dab_preprocess=false" in cmd
        assert cfg["data"]["eval_options"] == {"ten_crop": True}
    assert cfg["data"]["options"]["fold"] == 2 and cfg["data"]["options"]["num_classes"] == 25
    row = {"dataset": "quickdraw_bitmap", "setting": "dab-fbin", "acc": 55.4, "acc_std": None, "epochs": 8,
           "command": "python benchmarks/dab_sketch.py"}
    assert "| quickdraw_bitmap | dab-fbin | 55.40 | 60.4 | 70.6 | 8 |" in bench.markdown_table([row])
