"""Run logging on rank 0: ``metrics.jsonl`` (one object per epoch), ``metrics.csv`` and TensorBoard
(only when the ``tensorboard`` package is importable)."""

from __future__ import annotations

import csv
import json
import math
import sys
from pathlib import Path
from typing import Any

__all__ = ["RunLogger", "log"]


def log(msg: str, enabled: bool = True) -> None:
    """Print ``[onebit.train] msg`` to stderr when ``enabled``."""
    if enabled:
        print(f"[onebit.train] {msg}", file=sys.stderr, flush=True)


def _clean(v: Any) -> Any:
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


class RunLogger:
    """Writes ``metrics.jsonl``, ``metrics.csv`` and TensorBoard events of a run (rank 0 only); on resume
    it drops the lines of epochs after ``resume_epoch``.
    """
    def __init__(self, out_dir: str | Path, *, csv_log: bool = True, tensorboard: bool = True,
                 enabled: bool = True, resume_epoch: int = -1):
        self.out = Path(out_dir)
        self.enabled = enabled
        self.csv_log = csv_log
        self.tb = None
        if not enabled:
            return
        self.jsonl = self.out / "metrics.jsonl"
        self.csv_path = self.out / "metrics.csv"
        # a resumed run drops log lines of epochs after the checkpoint (written before a kill)
        self._truncate(resume_epoch)
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self.tb = SummaryWriter(str(self.out / "tb"))
            except Exception:  # tensorboard not installed: skip cleanly
                log("tensorboard not importable: TensorBoard logging skipped")
                self.tb = None

    def _truncate(self, resume_epoch: int) -> None:
        if resume_epoch < 0:
            for p in (self.jsonl, self.csv_path):
                if p.exists():
                    p.unlink()
            return
        if self.jsonl.exists():
            keep = [ln for ln in self.jsonl.read_text().splitlines()
                    if ln.strip() and json.loads(ln).get("epoch", -1) <= resume_epoch]
            self.jsonl.write_text("".join(ln + "\n" for ln in keep))
        if self.csv_path.exists():
            with open(self.csv_path, newline="") as f:
                rows = [r for r in csv.DictReader(f) if int(r.get("epoch", -1)) <= resume_epoch]
            self._write_csv(rows, mode="w")

    def _write_csv(self, rows: list[dict], mode: str = "a") -> None:
        if not rows:
            if mode == "w" and self.csv_path.exists():
                self.csv_path.unlink()
            return
        fields: list[str] = []
        for r in rows:
            fields += [k for k in r if k not in fields]
        with open(self.csv_path, mode, newline="") as f:
            w = csv.DictWriter(f, fieldnames=fields, extrasaction="ignore")
            w.writeheader()
            w.writerows(rows)

    def epoch(self, row: dict[str, Any]) -> None:
        """Append one epoch's row (non-finite numbers become null)."""
        if not self.enabled:
            return
        row = {k: _clean(v) for k, v in row.items()}
        with open(self.jsonl, "a") as f:
            f.write(json.dumps(row) + "\n")
        if self.csv_log:
            # rewrite the CSV from the jsonl so columns stay aligned when later epochs add metrics
            rows = [json.loads(ln) for ln in self.jsonl.read_text().splitlines() if ln.strip()]
            self._write_csv(rows, mode="w")
        if self.tb is not None:
            for k, v in row.items():
                if isinstance(v, (int, float)) and k != "epoch" and v is not None:
                    self.tb.add_scalar(k, v, row["epoch"])
            self.tb.flush()

    def close(self) -> None:
        """Flush and close the TensorBoard writer."""
        if self.tb is not None:
            self.tb.close()
