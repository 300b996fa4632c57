"""PNG figures of the diagnostics (matplotlib, Agg backend).

``plot_records(records, out_dir, metrics=None)`` writes one PNG per figure that has data: over
training (line plots against the epoch) when there are several records, per layer (bar charts)
for a single record (the static diagnostics of a checkpoint). Figures follow the papers:
entropy.png (BiPointNet Fig. 4(a)/7), tnet_reg.png (Fig. 4(b)), zero_grad.png (Fig. 4(c)),
scale_distortion.png (Sec. 3.3.1), dab_k.png (DAB-Net Figs. 4-5), dab_alpha_beta.png and
dab_filter_hist.png (Fig. 3), plus sign_balance.png, flip_ratio.png and accuracy.png.
"""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless: never needs a display
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

__all__ = ["FIGURES", "latest_per_epoch", "plot_records"]

FIGURES = ("entropy", "scale_distortion", "tnet_reg", "sign_balance", "flip_ratio", "dab_k", "dab_alpha_beta",
           "dab_filter_hist", "accuracy", "zero_grad")
"""Names of the figures ``plot_records`` can write, one ``NAME.png`` each (docs/analysis.md, "Figures")."""

_MAX_LEGEND = 12
_METRIC_KEYS = ("oa", "macc", "acc", "top1", "top5", "instance_miou", "class_miou", "miou")


def _num(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _layer_names(records: list[dict], key: str) -> list[str]:
    names: list[str] = []
    for r in records:
        for n, d in (r.get("layers") or {}).items():
            if _num(d.get(key)) and n not in names:
                names.append(n)
    return names


def _series(records: list[dict], layer: str, key: str):
    xs, ys = [], []
    for r in records:
        v = ((r.get("layers") or {}).get(layer) or {}).get(key)
        if _num(v):
            xs.append(r.get("epoch", len(xs)))
            ys.append(v)
    return xs, ys


def _top(records: list[dict], key: str):
    xs, ys = [], []
    for r in records:
        if _num(r.get(key)):
            xs.append(r.get("epoch", len(xs)))
            ys.append(r[key])
    return xs, ys


def _epoch_axis(ax) -> None:
    ax.set_xlabel("epoch")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))


def _save(fig, path: Path, tight: bool = True) -> Path:
    if tight:
        fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _per_layer_lines(ax, records, names, key, style="-", label_suffix="", colors=None):
    cmap = plt.get_cmap("viridis")
    many = len(names) > _MAX_LEGEND
    for i, n in enumerate(names):
        xs, ys = _series(records, n, key)
        c = colors[i] if colors else cmap(i / max(1, len(names) - 1))
        ax.plot(xs, ys, style, color=c, lw=1.2, marker="." if len(xs) < 30 else None,
                label=None if many else n + label_suffix)
    if many:  # colour encodes depth instead of a legend with dozens of entries
        sm = plt.cm.ScalarMappable(cmap=cmap, norm=plt.Normalize(0, len(names) - 1))
        ax.figure.colorbar(sm, ax=ax, label="binary layer index (module order)")
    elif names:
        ax.legend(fontsize=6, ncol=2 if len(names) > 6 else 1)


def _bars(ax, names, values, color="C0", label=None, offset=0.0, width=0.8):
    xs = [i + offset for i in range(len(names))]
    ax.bar(xs, [v if _num(v) else 0.0 for v in values], width=width, color=color, label=label)
    ax.set_xticks(range(len(names)))
    ax.set_xticklabels(names, rotation=70, ha="right", fontsize=6)


def _layer_values(rec: dict, key: str):
    names = [n for n, d in (rec.get("layers") or {}).items() if _num(d.get(key))]
    return names, [rec["layers"][n][key] for n in names]


def _fig_entropy(records, path, static):
    if static:
        pooled = records[0].get("pooled") or {}
        names = [n for n, d in pooled.items() if _num(d.get("entropy"))]
        if not names:
            return None
        fig, ax = plt.subplots(figsize=(6, 3.8))
        _bars(ax, names, [pooled[n]["entropy"] for n in names])
        ax.set_ylabel("H(sign(pooled)) [bits]")
    else:
        xs, ys = _top(records, "pooled_entropy")
        if not xs:
            return None
        fig, ax = plt.subplots(figsize=(6, 3.8))
        ax.plot(xs, ys, "-", color="C0", lw=2, marker="." if len(xs) < 30 else None, label="global feature")
        others = []
        for r in records:
            for n in r.get("pooled") or {}:
                if n != r.get("global_pool") and n not in others:
                    others.append(n)
        for i, n in enumerate(others[:6]):
            ox = [r["epoch"] for r in records if _num(((r.get("pooled") or {}).get(n) or {}).get("entropy"))]
            oy = [r["pooled"][n]["entropy"] for r in records if _num(((r.get("pooled") or {}).get(n) or {}).get("entropy"))]
            ax.plot(ox, oy, "--", lw=1, color=f"C{i + 1}", label=n)
        _epoch_axis(ax)
        ax.set_ylabel("H(sign(pooled)) [bits]")
        ax.legend(fontsize=7)
    ax.axhline(1.0, color="grey", lw=0.8, ls=":")
    ax.set_ylim(0, 1.05)
    ax.set_title("Entropy of the binarized aggregated feature (BiPointNet Fig. 4a)", fontsize=9)
    return _save(fig, path)


def _fig_layer_metric(records, path, static, key, ylabel, title, ref=None, logy=False):
    if static:
        names, vals = _layer_values(records[0], key)
        if not names:
            return None
        fig, ax = plt.subplots(figsize=(max(6, 0.3 * len(names) + 2), 4))
        _bars(ax, names, vals)
    else:
        names = _layer_names(records, key)
        if not names:
            return None
        fig, ax = plt.subplots(figsize=(7, 4))
        _per_layer_lines(ax, records, names, key)
        _epoch_axis(ax)
    if ref is not None:
        ax.axhline(ref, color="grey", lw=0.8, ls=":")
    if logy:
        ax.set_yscale("log")
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=9)
    return _save(fig, path)


def _fig_zero_grad(records, path, static):
    p = _fig_layer_metric(records, path, static, "zero_grad", "fraction with |x| > 1",
                          "Zero-gradient activations at binary layers' inputs (BiPointNet Fig. 4c)")
    return p


def _fig_tnet(records, path, static):
    xs, ys = _top(records, "tnet_reg")
    if static or not xs:
        return None
    fig, ax = plt.subplots(figsize=(6, 3.8))
    ax.plot(xs, ys, "-", marker="." if len(xs) < 30 else None)
    _epoch_axis(ax)
    ax.set_ylabel("‖I − ZZᵀ‖_F")
    if min(ys) > 0 and max(ys) / min(ys) > 100:
        ax.set_yscale("log")
    ax.set_title("Feature T-Net regulariser (BiPointNet Fig. 4b)", fontsize=9)
    return _save(fig, path)


def _fig_sign_balance(records, path, static):
    keys = [(k, lbl) for k, lbl in (("weight_pos", "binarized weights"), ("act_pos", "binarized activations"))
            if (_layer_values(records[0], k)[0] if static else _layer_names(records, k))]
    if not keys:
        return None
    fig, axes = plt.subplots(1, len(keys), figsize=(6.5 * len(keys), 4), squeeze=False)
    for ax, (k, lbl) in zip(axes[0], keys):
        if static:
            names, vals = _layer_values(records[0], k)
            _bars(ax, names, vals)
        else:
            _per_layer_lines(ax, records, _layer_names(records, k), k)
            _epoch_axis(ax)
        ax.axhline(0.5, color="grey", lw=0.8, ls=":")
        ax.set_ylim(0, 1)
        ax.set_ylabel("fraction of +1")
        ax.set_title(f"Sign balance: {lbl}", fontsize=9)
    return _save(fig, path)


def _fig_flip(records, path, static):
    if static:
        return None
    names = _layer_names(records, "flip")
    if not names:
        return None
    fig, ax = plt.subplots(figsize=(7, 4))
    _per_layer_lines(ax, records, names, "flip")
    xs, ys = _top(records, "flip_ratio")
    ax.plot(xs, ys, "k-", lw=2, label="all layers")
    if len(names) > _MAX_LEGEND:
        ax.legend(fontsize=7)
    _epoch_axis(ax)
    ax.set_ylabel("fraction of weight signs flipped")
    if ys and min(ys) > 0:
        ax.set_yscale("log")
    ax.set_title("Weight flip ratio since the previous record", fontsize=9)
    return _save(fig, path)


def _fig_alpha_beta(records, path, static):
    if static:
        names, alphas = _layer_values(records[0], "alpha")
        if not names:
            return None
        betas = [records[0]["layers"][n].get("beta") for n in names]
        fig, ax = plt.subplots(figsize=(max(6, 0.35 * len(names) + 2), 4))
        _bars(ax, names, alphas, color="C0", label="α (mean)", offset=-0.2, width=0.4)
        _bars(ax, names, betas, color="C3", label="β (mean)", offset=0.2, width=0.4)
        ax.legend(fontsize=7)
    else:
        names = _layer_names(records, "alpha")
        if not names:
            return None
        fig, ax = plt.subplots(figsize=(7, 4.5))
        cmap = plt.get_cmap("viridis")
        colors = [cmap(i / max(1, len(names) - 1)) for i in range(len(names))]
        _per_layer_lines(ax, records, names, "alpha", "-", " α", colors)
        for i, n in enumerate(names):
            xs, ys = _series(records, n, "beta")
            ax.plot(xs, ys, "--", color=colors[i], lw=1.2)
        _epoch_axis(ax)
        ax.text(0.01, 0.01, "solid: α (upper level), dashed: β (lower level)", transform=ax.transAxes, fontsize=7)
    ax.axhline(0.0, color="grey", lw=0.8)
    ax.set_ylabel("per-layer mean over filters")
    ax.set_title("DAB levels α and β (DAB-Net Fig. 3)", fontsize=9)
    return _save(fig, path)


def _pick_epochs(records: list[dict], k: int = 4) -> list[dict]:
    with_f = [r for r in records if r.get("filters")]
    if len(with_f) <= k:
        return with_f
    idx = sorted({round(i * (len(with_f) - 1) / (k - 1)) for i in range(k)})
    return [with_f[i] for i in idx]


def _fig_filter_hist(records, path, static):
    cols = _pick_epochs(records, 1 if static else 4)
    if not cols:
        return None
    # (layer, filter index): one filter per layer first, then the others; at most 4 rows
    flists = list(cols[-1]["filters"].items())
    depth = max((len(fl) for _, fl in flists), default=0)
    rows = [(layer, fl[j]["index"]) for j in range(depth) for layer, fl in flists if j < len(fl)][:3]
    if not rows:
        return None
    fig, axes = plt.subplots(len(rows), len(cols), figsize=(3.4 * len(cols), 2.6 * len(rows) + 0.4), squeeze=False)
    for j, rec in enumerate(cols):
        for i, (layer, idx) in enumerate(rows):
            ax = axes[i][j]
            f = next((f for f in rec["filters"].get(layer, []) if f["index"] == idx), None)
            if f is None:
                ax.axis("off")
                continue
            lo, hi = f["range"]
            counts = f["counts"]
            edges = [lo + (hi - lo) * b / len(counts) for b in range(len(counts) + 1)]
            ax.stairs(counts, edges, fill=True, color="0.6")  # one artist: far faster than bar()
            ax.axvline(f["alpha"], color="C0", lw=1.5)
            ax.axvline(f["beta"], color="C3", lw=1.5)
            ax.set_title(f"{layer}[{idx}] epoch {rec.get('epoch')}\nK/n={f['K'] / f['n']:.2f}  "
                         f"α={f['alpha']:.3g} (blue)  β={f['beta']:.3g} (red)", fontsize=7)
            ax.tick_params(labelsize=6)
    fig.suptitle("Latent weights of a filter with its two levels (DAB-Net Fig. 3)", fontsize=9)
    # fixed margins: tight_layout over a grid of axes costs seconds of text measuring
    fig.subplots_adjust(left=0.06, right=0.98, bottom=0.07, top=0.86 if len(rows) == 1 else 0.9,
                        wspace=0.3, hspace=0.75)
    return _save(fig, path, tight=False)


def latest_per_epoch(rows: list[dict]) -> list[dict]:
    """Rows sorted by epoch, keeping the last one written for an epoch (a resumed run may repeat one)."""
    by_epoch: dict = {}
    for i, r in enumerate(rows):
        by_epoch[r.get("epoch", i)] = r
    return [by_epoch[k] for k in sorted(by_epoch, key=lambda e: (e is None, e if isinstance(e, (int, float)) else 0))]


def _is_metric(key: str) -> bool:
    """Accuracy-like keys of metrics.jsonl: oa, macc, *_acc, *miou, ... (never losses or lr)."""
    last = key.replace("/", "_").split("_")[-1]
    return "loss" not in key and (key in _METRIC_KEYS or last in _METRIC_KEYS or "acc" in key or "miou" in key)


def _fig_accuracy(metrics, path):
    if not metrics:
        return None
    keys = []
    for m in metrics:
        for k, v in m.items():
            if _num(v) and _is_metric(k) and k not in keys:
                keys.append(k)
    loss_keys = [k for k in ("train_loss", "loss", "val_loss", "eval_loss") if any(_num(m.get(k)) for m in metrics)]
    if not keys and not loss_keys:
        return None
    fig, axes = plt.subplots(1, 2 if (keys and loss_keys) else 1, figsize=(11 if keys and loss_keys else 6, 3.8),
                             squeeze=False)
    panels = ([(keys, "metric [%]")] if keys else []) + ([(loss_keys, "loss")] if loss_keys else [])
    for ax, (ks, ylabel) in zip(axes[0], panels):
        for k in ks:
            xs = [m.get("epoch", i) for i, m in enumerate(metrics) if _num(m.get(k))]
            ys = [m[k] for m in metrics if _num(m.get(k))]
            ax.plot(xs, ys, marker="." if len(xs) < 30 else None, label=k)
        _epoch_axis(ax)
        ax.set_ylabel(ylabel)
        ax.legend(fontsize=7)
    axes[0][0].set_title("Training metrics (metrics.jsonl)", fontsize=9)
    return _save(fig, path)


def plot_records(records: list[dict], out_dir, metrics: list[dict] | None = None) -> dict[str, Path]:
    """Write every figure that has data to ``out_dir``; returns figure name → PNG path.

    A single record gives per-layer bar charts; several give curves over the epochs.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    records = latest_per_epoch(records or [])
    written: dict[str, Path] = {}
    if records:
        static = len(records) == 1
        figs = {
            "entropy": lambda p: _fig_entropy(records, p, static),
            "scale_distortion": lambda p: _fig_layer_metric(
                records, p, static, "scale_ratio", "σ(binary out) / σ(float out)",
                "Scale distortion per binary layer (BiPointNet Sec. 3.3.1)", ref=1.0, logy=True),
            "tnet_reg": lambda p: _fig_tnet(records, p, static),
            "sign_balance": lambda p: _fig_sign_balance(records, p, static),
            "flip_ratio": lambda p: _fig_flip(records, p, static),
            "dab_k": lambda p: _fig_layer_metric(records, p, static, "k_norm", "mean K/n over filters",
                                                 "Normalized K per layer (DAB-Net Figs. 4-5)", ref=0.5),
            "dab_alpha_beta": lambda p: _fig_alpha_beta(records, p, static),
            "dab_filter_hist": lambda p: _fig_filter_hist(records, p, static),
            "zero_grad": lambda p: _fig_zero_grad(records, p, static),
        }
        for name, fn in figs.items():
            p = fn(out / f"{name}.png")
            if p is not None:
                written[name] = p
    p = _fig_accuracy(latest_per_epoch(metrics or []), out / "accuracy.png")
    if p is not None:
        written["accuracy"] = p
    return {k: written[k] for k in FIGURES if k in written}
