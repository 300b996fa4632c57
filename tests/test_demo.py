"""``onebit demo``: the story lines, one line per epoch outside a terminal, the zoo deployment step."""

from __future__ import annotations

import json

import pytest

from onebit import zoo
from onebit.demo import DEFAULT_METHODS, DemoSettings, _story, resolve_methods, run_demo


def _tiny(**kw) -> DemoSettings:
    return DemoSettings(**{"width": 0.125, "points": 32, "per_class": 4, "test_per_class": 2, "epochs": 2,
                           "batch_size": 16, "threads": 1, "amp": "off", "progress": "lines", **kw})


def test_story_follows_the_numbers():
    rows = [{"method": "FP32", "oa": 99.8}, {"method": "BNN", "oa": 10.0}, {"method": "BNN + EMA-max", "oa": 88.0},
            {"method": "BiPointNet", "oa": 92.3}]
    text = "\n".join(_story(rows))
    assert "collapsed to chance" in text
    assert "EMA-max (entropy-maximizing aggregation) alone: 88.0 %, 11.8 points below FP32" in text
    assert "more than 10 points below" in text and "BiPointNet (EMA-max + LSR): 92.3 %, 7.5 points below" in text
    rows[1]["oa"] = 55.0
    assert "not collapsed" in "\n".join(_story(rows))


def test_methods():
    assert list(resolve_methods(None)) == list(DEFAULT_METHODS)
    assert list(resolve_methods("fp32, bnn+ema-max,BiPointNet")) == ["FP32", "BNN + EMA-max", "BiPointNet"]
    assert len(resolve_methods("all")) == 7
    with pytest.raises(ValueError, match="unknown demo method 'nope'"):
        resolve_methods("nope")


def test_demo_lines_not_bars_and_zoo_step(tmp_path, capsys):
    report = run_demo(_tiny(), out_dir=tmp_path, methods=resolve_methods("FP32,BiPointNet"))
    out = capsys.readouterr()
    text = out.out + out.err
    assert "\r" not in text  # no progress-bar redraws in a log
    for label in ("FP32", "BiPointNet"):
        assert sum(f"{label} " in ln and "epoch" in ln for ln in text.splitlines()) == 2, text
    assert "epoch   2/2" in text and "test acc." in text
    assert [r["method"] for r in report["results"]] == ["FP32", "BiPointNet"]
    assert report["export"]["agreement"] == 1.0
    z = report["zoo"]
    meta = zoo.info("pointnet_deploy-bipointnet-modelnet40")
    assert z["oa"] == meta["oa"] and z["engine_bytes"] == meta["engine"]["bytes"]
    assert z["speedup"] > 0 and z["fp32_runner"] in ("torch-fp32-eager", "torch-fp32-pm")
    assert f"ModelNet40 test accuracy {meta['oa']:.2f} %" in text


def test_cli_demo_json(tmp_path, capsys, monkeypatch):
    import onebit.demo as demo
    from onebit.cli import main

    monkeypatch.setattr(demo, "DemoSettings", lambda: _tiny(batch_size=8))  # the flags below still apply
    args = ["demo", "--out", str(tmp_path / "runs"), "--methods", "BNN", "--epochs", "1", "--per-class", "3",
            "--threads", "1", "--no-engine", "--json", str(tmp_path / "r.json")]
    assert main(args) == 0
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["settings"]["epochs"] == 1 and report["settings"]["per_class"] == 3 and "zoo" not in report
    assert "BNN" in capsys.readouterr().out
    assert main(["demo", "--methods", "nope"]) == 2
