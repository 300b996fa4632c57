"""Text summary of diagnostics records (the table ``onebit analyze`` prints)."""

from __future__ import annotations

import math

__all__ = ["LAYER_COLUMNS", "summarize", "summary_table"]

# record key -> column header
LAYER_COLUMNS = {
    "scale_ratio": "σ ratio",
    "zero_grad": "zero-grad",
    "act_pos": "act +1",
    "weight_pos": "w +1",
    "flip": "flip",
    "k_norm": "K/n",
    "alpha": "α",
    "beta": "β",
}
"""Per-layer record keys shown by ``summary_table``, mapped to their column headers."""


def _fmt(v) -> str:
    if isinstance(v, bool) or v is None:
        return "-"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if not math.isfinite(v):
            return "-"
        return f"{v:.3g}" if abs(v) >= 1e-3 or v == 0 else f"{v:.2e}"
    return str(v)


def summarize(records: list[dict], metrics: list[dict] | None = None) -> dict:
    """JSON summary: the last record's headline values and per-layer table, plus last/best metrics."""
    out: dict = {"records": len(records)}
    if records:
        last = max(records, key=lambda r: r.get("epoch", 0))
        out["epoch"] = last.get("epoch")
        for k in ("pooled_entropy", "global_pool", "tnet_reg", "zero_grad", "flip_ratio"):
            out[k] = last.get(k)
        out["layers"] = {n: {k: d.get(k) for k in ("type", "in", "out", *LAYER_COLUMNS) if d.get(k) is not None}
                         for n, d in (last.get("layers") or {}).items()}
    if metrics:
        out["metrics_last"] = metrics[-1]
    return out


def summary_table(summary: dict) -> str:
    """Fixed-width text rendering of ``summarize``'s output."""
    lines = []
    head = [f"records: {summary.get('records', 0)}"]
    if summary.get("epoch") is not None:
        head.append(f"last epoch: {summary['epoch']}")
    for k, lbl in (("pooled_entropy", "pooled entropy [bits]"), ("tnet_reg", "T-Net reg"),
                   ("zero_grad", "zero-grad ratio"), ("flip_ratio", "flip ratio")):
        if summary.get(k) is not None:
            head.append(f"{lbl}: {_fmt(summary[k])}")
    lines.append("  ".join(head))
    m = summary.get("metrics_last")
    if m:
        lines.append("last metrics: " + "  ".join(f"{k}={_fmt(v)}" for k, v in m.items() if k != "epoch"))
    layers = summary.get("layers") or {}
    if layers:
        cols = [c for c in LAYER_COLUMNS if any(c in d for d in layers.values())]
        rows = [["layer", "type", "in→out", *(LAYER_COLUMNS[c] for c in cols)]]
        for n, d in layers.items():
            rows.append([n, str(d.get("type", "")), f"{d.get('in', '?')}→{d.get('out', '?')}",
                         *(_fmt(d.get(c)) for c in cols)])
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        for j, r in enumerate(rows):
            lines.append("  ".join(c.ljust(w) if i < 3 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))))
            if j == 0:
                lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)
