"""The trainer: short runs, metrics, checkpoints, schedules, param groups, eval CLI, ten-crop."""

from __future__ import annotations

import json
import math

import pytest
import torch
import torch.nn as nn

from onebit.train.checkpoint import CheckpointError, load_checkpoint, load_model, save_checkpoint
from onebit.train.config import resolve
from onebit.train.metrics import PartSegIoU, TaskMetrics
from onebit.train.trainer import build_optimizer, build_scheduler, evaluate, run

TINY = {
    "model": {"name": "pointnet_vanilla", "options": {"width": 0.25}},
    "data": {"name": "synthetic_shapes", "options": {"num_per_class": 6, "num_points": 64, "test_per_class": 3}},
    "epochs": 2,
    "batch_size": 16,
    "threads": 1,
    "diagnostics": False,
    "log": {"progress": False},
}


def _cfg(**over):
    cfg = json.loads(json.dumps(TINY))
    for k, v in over.items():
        cfg[k] = v
    return cfg


def test_short_run_writes_everything_and_eval_matches(tmp_path, capsys):
    res = run(_cfg(binarize="bipointnet", seed=3), tmp_path, progress=False)
    for name in ("last.ckpt", "best.ckpt", "config.yaml", "metrics.jsonl", "metrics.csv"):
        assert (tmp_path / name).is_file(), name
    rows = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [0, 1]
    assert {"oa", "macc", "loss", "train_loss", "lr", "time_s"} <= set(rows[-1])
    assert rows[0]["lr"] == pytest.approx(1e-3) and rows[1]["lr"] == pytest.approx(5e-4)  # cosine, T=2
    assert (tmp_path / "metrics.csv").read_text().splitlines()[0].startswith("epoch,lr,")
    ck = load_checkpoint(tmp_path / "last.ckpt")
    for key in ("model_config", "state_dict", "optimizer", "scheduler", "epoch", "rng", "config", "metrics",
                "code_version", "seed"):
        assert key in ck
    assert set(ck["rng"]) >= {"python", "numpy", "torch"} and ck["seed"] == 3 and ck["epoch"] == 1
    assert ck["model_config"]["binarize"]["name"] == "bipointnet"
    assert res.final["oa"] == pytest.approx(rows[-1]["oa"])
    assert res.best[res.select] == max(r["oa"] for r in rows)
    # the eval CLI reproduces the final metrics from last.ckpt
    from onebit.cli import main

    assert main(["eval", str(tmp_path / "last.ckpt"), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["oa"] == pytest.approx(res.final["oa"]) and out["macc"] == pytest.approx(res.final["macc"])
    assert main(["eval", str(tmp_path / "last.ckpt"), "--split", "train", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["split"] == "train"
    assert main(["eval", str(tmp_path / "last.ckpt"), "--data", "no_such_set_or_path"]) == 2
    assert "neither a registered dataset" in capsys.readouterr().err
    model, _ = load_model(tmp_path / "best.ckpt")
    assert not model.training


@pytest.mark.parametrize("eval_amp", [False, True])
def test_bf16_training_evaluates_in_fp32_unless_eval_amp(tmp_path, eval_amp):
    cfg = _cfg(binarize="bipointnet", amp="bf16", epochs=1)
    cfg["eval"] = {"amp": eval_amp}
    res = run(cfg, tmp_path, progress=False)
    assert res.amp
    from onebit.train.losses import TaskLoss
    from onebit.train.trainer import build_datasets

    model, ck = load_model(tmp_path / "last.ckpt")
    _, ds, _ = build_datasets(resolve(ck["config"]), train=False)
    loader = torch.utils.data.DataLoader(ds, batch_size=16)
    fp32 = evaluate(model, loader, "cls", 10, loss_fn=TaskLoss())
    bf16 = evaluate(model, loader, "cls", 10, loss_fn=TaskLoss(), amp=True)
    assert fp32["loss"] != bf16["loss"]  # the two evaluations are distinguishable
    want = bf16 if eval_amp else fp32
    assert res.final["loss"] == pytest.approx(want["loss"], rel=1e-6)
    assert res.final["oa"] == pytest.approx(want["oa"])


def test_corrupt_checkpoints_raise_naming_the_file(tmp_path):
    good = tmp_path / "good.ckpt"
    save_checkpoint({"model_config": {"name": "pointnet_vanilla", "num_classes": 3}, "state_dict": {},
                     "epoch": 0, "config": {}}, good)
    data = good.read_bytes()
    bad = tmp_path / "truncated.ckpt"
    bad.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated.ckpt"):
        load_checkpoint(bad)
    (tmp_path / "empty.ckpt").write_bytes(b"")
    with pytest.raises(CheckpointError, match="empty.ckpt.*empty"):
        load_checkpoint(tmp_path / "empty.ckpt")
    torch.save({"weights": 1}, tmp_path / "foreign.ckpt")
    with pytest.raises(CheckpointError, match="foreign.ckpt: not an onebit checkpoint"):
        load_checkpoint(tmp_path / "foreign.ckpt")
    with pytest.raises(CheckpointError, match="not found"):
        load_model(tmp_path / "nope.ckpt")
    # no temp files are left behind by the atomic writer
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_resume_refuses_corrupt_or_missing_checkpoint(tmp_path):
    with pytest.raises(CheckpointError, match="no checkpoint to resume"):
        run(_cfg(), tmp_path, resume=True, progress=False)
    (tmp_path / "last.ckpt").write_bytes(b"PK\x03\x04 garbage")
    with pytest.raises(CheckpointError, match="last.ckpt"):
        run(_cfg(), tmp_path, resume=True, progress=False)


def test_step_and_cosine_schedules():
    p = nn.Parameter(torch.zeros(1))
    cfg = resolve(_cfg(epochs=10) | {"optim": {"lr": 0.08}, "schedule": {"name": "step", "interval": 2,
                                                                         "min_lr": 0.006}})
    opt = torch.optim.SGD([p], lr=0.08)
    sched = build_scheduler(opt, cfg)
    lrs = []
    for _ in range(10):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    # DAB-Net: lr = max(0.08 / 2^floor(e/2), 0.006)
    assert lrs == pytest.approx([max(0.08 / 2 ** (e // 2), 0.006) for e in range(10)])
    cfg = resolve(_cfg(epochs=4) | {"schedule": {"name": "cosine"}})
    opt = torch.optim.Adam([p], lr=1e-3)
    sched = build_scheduler(opt, cfg)
    got = []
    for _ in range(4):
        got.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert got == pytest.approx([1e-3 * (1 + math.cos(math.pi * e / 4)) / 2 for e in range(4)])


def test_binarized_weights_get_no_weight_decay():
    from onebit.models import create

    model = create("pointnet_vanilla", num_classes=4, binarize="xnor", width=0.25)
    cfg = resolve(_cfg() | {"optim": {"name": "sgd", "lr": 0.1, "weight_decay": 5e-4}})
    opt = build_optimizer(model, cfg)
    binary = {id(m.weight) for m in model.modules() if getattr(m, "kernel_quantizer", None) is not None}
    assert binary, "the xnor model should have binarized layers"
    decayed = {id(p) for g in opt.param_groups if g["weight_decay"] > 0 for p in g["params"]}
    assert not (binary & decayed)
    assert sum(len(g["params"]) for g in opt.param_groups) == len(list(model.parameters()))
    cfg["optim"]["binary_weight_decay"] = True
    opt = build_optimizer(model, cfg)
    assert len(opt.param_groups) == 1 and opt.param_groups[0]["weight_decay"] == pytest.approx(5e-4)


@pytest.mark.parametrize("preset", ["xnor", "dab-wbin"])
def test_dab_preprocess_centres_and_clamps_every_binarized_layer(tmp_path, preset):
    """Algorithm 2 runs after every step on every weight-binarized layer when the spec sets it, DAB
    or not (``{preset: xnor, dab_preprocess: true}`` isolates it from DAB's fit); off, nothing moves."""
    from onebit.train.checkpoint import load_model

    def trained(on: bool, lr: float):
        out = tmp_path / f"{preset}-{on}-{lr}"
        run(_cfg(binarize={"preset": preset, "dab_preprocess": on}, epochs=1,
                 optim={"name": "adam", "lr": lr}), out, progress=False)
        model, _ = load_model(out / "last.ckpt")
        ws = [m.weight.detach().to(torch.float64) for m in model.modules()
              if getattr(m, "kernel_quantizer", None) is not None]
        assert ws
        return (max(float(w.reshape(w.shape[0], -1).mean(1).abs().max()) for w in ws),
                max(float(w.abs().max()) for w in ws))

    mean_on, _ = trained(True, 1e-3)  # small steps: the clamp never acts, so every filter's mean is 0
    assert mean_on < 1e-6
    mean_off, _ = trained(False, 1e-3)
    assert mean_off > 1e-3
    _, peak_on = trained(True, 0.5)  # large steps: unchecked weights leave [-1, 1], clamped ones do not
    _, peak_off = trained(False, 0.5)
    assert peak_on <= 1.0 < peak_off


@pytest.mark.parametrize("name", ["adam", "adamw", "sgd"])
def test_fused_optimizer_is_the_default_and_makes_the_same_update(name):
    """optim.fused (default true) picks torch's fused kernel; in float64 its steps equal the loop's."""
    from onebit.models import create

    states = {}
    for fused in (True, False):
        torch.manual_seed(0)
        model = create("pointnet_vanilla", num_classes=4, binarize="xnor", width=0.25).double()
        cfg = resolve(_cfg() | {"optim": {"name": name, "lr": 0.01, "weight_decay": 1e-3, "fused": fused}})
        opt = build_optimizer(model, cfg)
        assert opt.defaults.get("fused") is (True if fused else None)
        g = torch.Generator().manual_seed(1)
        for _ in range(3):
            for p in model.parameters():
                p.grad = torch.randn(p.shape, generator=g, dtype=p.dtype)
            opt.step()
        states[fused] = [p.detach().clone() for p in model.parameters()]
    for a, b in zip(states[True], states[False], strict=True):
        assert torch.allclose(a, b, rtol=0, atol=1e-12)
    assert resolve(_cfg())["optim"]["fused"] is True


def test_metrics_cls_and_partseg_by_hand():
    m = TaskMetrics("cls", 3)
    logits = torch.tensor([[5.0, 0, 0], [5.0, 0, 0], [0, 5.0, 0], [0, 0, 5.0]])
    m.update(logits, torch.tensor([0, 1, 1, 2]))
    out = m.compute()
    assert out["oa"] == pytest.approx(75.0)
    assert out["macc"] == pytest.approx(100 * (1 + 0.5 + 1) / 3)
    # part segmentation: category 0 has parts {0, 1}, category 1 has {2, 3}
    iou = PartSegIoU(4, {0: [0, 1], 1: [2, 3]}, num_categories=2)
    gt = torch.tensor([[0, 0, 1, 1], [2, 2, 2, 2]])
    pred = torch.tensor([[0, 1, 1, 1], [2, 2, 2, 2]])
    logits = torch.nn.functional.one_hot(pred, 4).float()
    logits[1, :, 0] = 10.0  # a part of another category: must be ignored for category 1
    iou.update(logits, gt, torch.tensor([0, 1]))
    r = iou.compute()
    shape0 = (1 / 2 + 2 / 3) / 2  # part 0: 1/2, part 1: 2/3
    shape1 = (1.0 + 1.0) / 2  # part 2 perfect, part 3 absent from both -> 1
    assert r["instance_miou"] == pytest.approx(100 * (shape0 + shape1) / 2)
    assert r["class_miou"] == pytest.approx(100 * (shape0 + shape1) / 2)
    assert r["oa"] == pytest.approx(100 * 7 / 8)


def test_partseg_run_on_synthetic_parts(tmp_path):
    cfg = _cfg(epochs=1, task=None)
    cfg["data"] = {"name": "synthetic_parts", "options": {"num_per_class": 3, "num_points": 64,
                                                          "test_per_class": 1}}
    cfg["batch_size"] = 8
    cfg["amp"] = True  # bf16 autocast path
    res = run(cfg, tmp_path, progress=False)
    assert {"instance_miou", "class_miou", "oa"} <= set(res.final)
    assert 0 <= res.final["instance_miou"] <= 100


class _CropSet(torch.utils.data.Dataset):
    """Sketch-like items of shape (ncrops, 1, 8, 8): class = sign of the mean pixel."""

    def __init__(self):
        g = torch.Generator().manual_seed(0)
        self.x = torch.randn(12, 3, 1, 8, 8, generator=g)
        self.y = (self.x.mean(dim=(1, 2, 3, 4)) > 0).long()

    def __len__(self):
        return len(self.y)

    def __getitem__(self, i):
        return self.x[i], self.y[i]


def test_multicrop_eval_averages_log_probabilities():
    ds = _CropSet()
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 2))
    loader = torch.utils.data.DataLoader(ds, batch_size=5)
    got = evaluate(model, loader, "cls", 2, domain="sketch")
    with torch.no_grad():
        logp = torch.log_softmax(model(ds.x.reshape(-1, 1, 8, 8)), -1).reshape(12, 3, 2).mean(1)
    want = 100 * float((logp.argmax(-1) == ds.y).float().mean())
    assert got["oa"] == pytest.approx(want)
    assert got["loss"] == pytest.approx(float(torch.nn.functional.nll_loss(logp, ds.y)), rel=1e-5)


def test_dab_preprocess_centres_and_clamps_latent_weights(tmp_path):
    cfg = _cfg(epochs=1, binarize={"preset": "bipointnet", "weight": "dab", "dab_preprocess": True})
    run(cfg, tmp_path, progress=False)
    model, _ = load_model(tmp_path / "last.ckpt")
    dab = [m for m in model.modules() if getattr(getattr(m, "kernel_quantizer", None), "name", "") == "dab"]
    assert dab
    for m in dab:
        w = m.weight.detach().reshape(m.weight.shape[0], -1)
        assert float(w.abs().max()) <= 1.0 + 1e-6
        # centred after the last optimizer step (filters untouched by the clamp have mean 0 to rounding;
        # a random init has per-filter means ~1e-2, and Adam steps move them by ~1e-4)
        free = (w.abs() < 1.0).all(1)
        assert bool(free.any())
        assert float(w[free].mean(1).abs().max()) < 1e-5
