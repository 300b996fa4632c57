"""kill -9 + --resume ends in the same state as an uninterrupted run; 2-process DDP (gloo) via torchrun."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch
import yaml

from onebit.train.checkpoint import load_checkpoint
from onebit.train.trainer import KILL_ENV, run

CFG = {
    "model": {"name": "pointnet_vanilla", "options": {"width": 0.25}},
    "binarize": "bipointnet",  # LSR data-init, EMA-max, Hardtanh: the stateful parts
    "data": {"name": "synthetic_shapes", "options": {"num_per_class": 6, "num_points": 64, "test_per_class": 3}},
    "epochs": 3,
    "batch_size": 16,
    "seed": 7,
    "threads": 1,
    "diagnostics": False,
    "log": {"progress": False},
}


def _env(**extra):
    env = dict(os.environ)
    env.setdefault("OMP_NUM_THREADS", "1")
    env.update(extra)
    return env


def _train_cli(cfg_path, out, *extra, env=None, timeout=240):
    cmd = [sys.executable, "-m", "onebit", "train", str(cfg_path), "--out", str(out), "--no-progress", *extra]
    return subprocess.run(cmd, env=env or _env(), capture_output=True, text=True, timeout=timeout)


def test_kill9_then_resume_matches_uninterrupted(tmp_path):
    cfg_path = tmp_path / "cfg.yaml"
    cfg_path.write_text(yaml.safe_dump(CFG))
    ref = run(CFG, tmp_path / "ref", progress=False)

    killed = tmp_path / "killed"
    p = _train_cli(cfg_path, killed, env=_env(**{KILL_ENV: "0"}))
    assert p.returncode == -9, p.stderr[-2000:]  # really SIGKILLed, right after epoch 0's checkpoint
    assert load_checkpoint(killed / "last.ckpt")["epoch"] == 0
    # a leftover temp file (as a kill during a save would leave) must not disturb the resume
    (killed / ".last.ckpt.partial.tmp").write_bytes(b"half a checkpoint")

    res = run(CFG, killed, resume=True, progress=False)
    a = load_checkpoint(tmp_path / "ref" / "last.ckpt")
    b = load_checkpoint(killed / "last.ckpt")
    assert a["epoch"] == b["epoch"] == 2
    assert a["state_dict"].keys() == b["state_dict"].keys()
    for k in a["state_dict"]:
        torch.testing.assert_close(a["state_dict"][k], b["state_dict"][k], rtol=0, atol=1e-6, msg=k)
    assert res.final == pytest.approx(ref.final)
    rows = [json.loads(x) for x in (killed / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [0, 1, 2]  # one line per epoch, none duplicated
    ref_rows = [json.loads(x) for x in (tmp_path / "ref" / "metrics.jsonl").read_text().splitlines()]
    for r, q in zip(rows, ref_rows, strict=True):
        assert r["train_loss"] == pytest.approx(q["train_loss"], rel=1e-6)
        assert r["oa"] == pytest.approx(q["oa"])


def test_cli_resume_of_corrupt_checkpoint_is_an_error(tmp_path):
    cfg_path = tmp_path / "cfg.yaml"
    cfg_path.write_text(yaml.safe_dump(CFG | {"binarize": None}))
    out = tmp_path / "run"
    out.mkdir()
    (out / "last.ckpt").write_bytes(b"\x80\x02truncated")
    p = _train_cli(cfg_path, out, "--resume")
    assert p.returncode == 2
    assert "last.ckpt" in p.stderr and "cannot read checkpoint" in p.stderr
    assert not (out / "metrics.jsonl").exists()


@pytest.mark.slow
def test_ddp_two_cpu_processes(tmp_path):
    cfg = CFG | {"epochs": 2, "batch_size": 8}
    cfg_path = tmp_path / "cfg.yaml"
    cfg_path.write_text(yaml.safe_dump(cfg))
    out = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "onebit", "train", str(cfg_path), "--out", str(out), "--no-progress", "--json"]
    p = subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-3000:]
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [0, 1]  # rank 0 alone writes
    ck = load_checkpoint(out / "last.ckpt")
    # the sharded, all-reduced evaluation equals a single-process evaluation of the same weights
    ev = subprocess.run([sys.executable, "-m", "onebit", "eval", str(out / "last.ckpt"), "--json"],
                        env=_env(), capture_output=True, text=True, timeout=120)
    assert ev.returncode == 0, ev.stderr[-2000:]
    single = json.loads(ev.stdout)
    assert single["oa"] == pytest.approx(ck["metrics"]["oa"])
    assert single["macc"] == pytest.approx(ck["metrics"]["macc"])
