"""Per-epoch diagnostics during training: one JSON line per record in ``OUT/diagnostics.jsonl``.

The trainer calls ``DiagnosticsRecorder.on_epoch_end(epoch, model, batch)`` at the end of each
epoch (config ``diagnostics: true``). Each call costs one inference pass on one training batch
plus one ``factorize`` per binary layer (see ``onebit.analysis.probe.collect``).
"""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path

from torch import nn

from .flips import FlipTracker
from .probe import collect

__all__ = ["DIAGNOSTICS_FILE", "DiagnosticsRecorder", "read_jsonl"]

DIAGNOSTICS_FILE = "diagnostics.jsonl"
"""File name of the per-epoch diagnostics records in a run directory."""


def _json_safe(v):
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if isinstance(v, dict):
        return {str(k): _json_safe(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_json_safe(x) for x in v]
    return v


def read_jsonl(path) -> list[dict]:
    """Records of a JSON-lines file; a torn last line (a run killed mid-write) is ignored.

    Any other bad line raises ValueError naming the file and the line number.
    """
    path = Path(path)
    lines = path.read_text(encoding="utf-8").splitlines()
    out = []
    for i, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as e:
            if i == len(lines):
                break
            raise ValueError(f"{path}: line {i} is not valid JSON ({e.msg})") from None
        if not isinstance(rec, dict):
            raise ValueError(f"{path}: line {i} is not a JSON object")
        out.append(rec)
    return out


class DiagnosticsRecorder:
    """Appends a diagnostics record to ``out_dir/diagnostics.jsonl`` every ``every`` epochs.

    ``model`` is the model to track (its weight signs are remembered for the flip ratio);
    ``on_epoch_end`` may be given the same model again (e.g. unwrapped from DDP). Options of
    ``collect`` (``max_rows``, ``hist_layers``, ``hist_filters``, ``bins``) bound the cost and
    file size. Records of a resumed run are appended to the same file.
    """

    def __init__(self, model: nn.Module, out_dir, every: int = 1, **collect_options) -> None:
        if int(every) < 1:
            raise ValueError(f"DiagnosticsRecorder: every must be >= 1, got {every}")
        self.model = model
        self.out_dir = Path(out_dir)
        self.every = int(every)
        self.options = collect_options
        self.path = self.out_dir / DIAGNOSTICS_FILE
        self.flips = FlipTracker()
        self.out_dir.mkdir(parents=True, exist_ok=True)

    def on_epoch_end(self, epoch: int, model: nn.Module | None = None, batch=None) -> dict | None:
        """Measure and append one record if ``epoch`` (0-based) is due; return it, else None."""
        if (int(epoch) + 1) % self.every != 0:
            return None
        model = self.model if model is None else getattr(model, "module", model)  # unwrap DDP
        t0 = time.perf_counter()
        rec = collect(model, batch, flips=self.flips, **self.options)
        rec = {"epoch": int(epoch), **rec, "diag_time_s": round(time.perf_counter() - t0, 4)}
        rec = _json_safe(rec)
        line = json.dumps(rec, separators=(",", ":"), allow_nan=False)
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(line + "\n")
            f.flush()
            os.fsync(f.fileno())
        return rec
