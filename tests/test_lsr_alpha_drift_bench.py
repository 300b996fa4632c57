"""benchmarks/lsr_alpha_drift.py: sign changes of α and loss spikes are found where they are."""

from __future__ import annotations

import importlib.util
from pathlib import Path

BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "lsr_alpha_drift.py"
_spec = importlib.util.spec_from_file_location("lsr_alpha_drift", BENCH)
drift = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(drift)


def test_crossings_and_spikes_on_a_synthetic_trace():
    steps = list(range(10, 410, 10))
    loss = [1.0] * 40
    loss[20] = 2.5  # a spike at step 210 ...
    alpha = {"a": [0.05] * 20 + [-0.01] * 20,  # ... where "a" changes sign (between logged steps 200 and 210)
             "b": [0.03] * 40}
    trace = {"step": steps, "loss": loss, "alpha": alpha}
    assert drift.crossings(trace) == {"a": [210], "b": []}
    (sp,) = drift.spikes(trace)
    assert sp["step"] == 210 and sp["nearest_crossing"] == {"layer": "a", "step": 210, "distance": 0}
    trace["loss"] = [1.0] * 40
    assert drift.spikes(trace) == []


def test_redraw_without_results_names_the_file(tmp_path, capsys):
    import pytest

    missing = tmp_path / "none.json"
    with pytest.raises(SystemExit):
        drift.main(["--variants", "", "--plot", str(tmp_path / "x.png"), "--out", str(missing)])
    assert f"{missing} does not exist" in capsys.readouterr().err
