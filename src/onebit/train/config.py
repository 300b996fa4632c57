"""Run configuration: YAML load, ``--set a.b=c`` overrides, defaults, validation, save.

The schema is documented in docs/training.md. ``resolve(cfg)`` returns a new dict with every
default filled in and every value checked; unknown keys are errors so that typos never pass
silently. Errors are ``ConfigError`` naming the source file (when known) and the dotted key.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

from onebit.train.allocator import ALLOCATOR_MODES

__all__ = ["ConfigError", "DEFAULTS", "load_config", "apply_overrides", "resolve", "save_config", "set_dotted"]


class ConfigError(ValueError):
    """A configuration file or override is invalid."""


# None here means "no default / filled later"; dict defaults are merged key by key.
DEFAULTS: dict[str, Any] = {
    "model": {"name": None, "options": {}},
    "binarize": None,
    "data": {
        "name": None,
        "options": {},
        "train_options": {},
        "eval_options": {},
        "protocol": None,
        "train_split": "train",
        "eval_split": "test",
        "num_classes": None,
        "train_subset": None,
        "eval_subset": None,
    },
    "task": None,
    "epochs": 200,
    "batch_size": 32,
    "eval_batch_size": None,
    "seed": 0,
    "optim": {
        "name": "adam",
        "lr": 1e-3,
        "weight_decay": 0.0,
        "momentum": 0.9,
        "nesterov": False,
        "betas": [0.9, 0.999],
        "binary_weight_decay": False,
        "fused": True,
    },
    "schedule": {"name": "cosine", "eta_min": 0.0, "t_max": None, "interval": 30, "min_lr": 0.0},
    "loss": {
        "name": "ce",
        "label_smoothing": 0.0,
        "tnet_reg": 0.001,
        "official_reg": False,
        "class_weights": None,
    },
    "eval": {"every": 1, "select": None, "amp": False},
    "num_workers": 0,
    "threads": None,
    "amp": "auto",
    "allocator": "auto",
    "compile": False,
    "deterministic": False,
    "sync_bn": False,
    "diagnostics": True,
    "diagnostics_every": 1,
    "log": {"progress": True, "csv": True, "tensorboard": True},
}
"""Every configuration key with its default (docs/training.md); None means no default or filled later."""

# keys whose value is a free-form dict passed through to another part (not validated here)
_FREE = {"model.options", "data.options", "data.train_options", "data.eval_options"}
_CHOICES = {
    "optim.name": ("adam", "adamw", "sgd"),
    "schedule.name": ("cosine", "step", "constant"),
    "loss.name": ("ce", "nll"),
    "task": (None, "cls", "partseg", "semseg"),
}


def _where(source: str | None) -> str:
    return f"{source}: " if source else ""


def load_config(path: str | Path) -> dict[str, Any]:
    """Read a YAML config file into a dict (not yet resolved)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: invalid YAML: {e}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping, got {type(data).__name__}")
    return data


def set_dotted(cfg: dict[str, Any], key: str, value: Any, source: str | None = None) -> None:
    """Set ``cfg[a][b][c] = value`` for ``key = "a.b.c"``, creating dicts on the way."""
    parts = key.split(".")
    if not all(parts):
        raise ConfigError(f"{_where(source)}bad key {key!r}")
    node = cfg
    for i, p in enumerate(parts[:-1]):
        nxt = node.get(p)
        if nxt is None:
            nxt = node[p] = {}
        elif isinstance(nxt, str) and p == "binarize":
            # binarize: "xnor" --set binarize.pool=ema-max -> {"preset": "xnor", "pool": ...}
            nxt = node[p] = {"preset": nxt}
        elif not isinstance(nxt, dict):
            raise ConfigError(
                f"{_where(source)}cannot set {key!r}: {'.'.join(parts[: i + 1])} is a {type(nxt).__name__}, "
                "not a mapping"
            )
        node = nxt
    node[parts[-1]] = value


def apply_overrides(cfg: dict[str, Any], overrides: list[str] | None) -> dict[str, Any]:
    """Apply ``["a.b=value", ...]`` (values parsed as YAML) to a copy of ``cfg``."""
    out = copy.deepcopy(cfg)
    for item in overrides or []:
        if "=" not in item:
            raise ConfigError(f"--set {item!r}: expected KEY=VALUE (e.g. optim.lr=0.01)")
        key, raw = item.split("=", 1)
        key = key.strip()
        try:
            value = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError as e:
            raise ConfigError(f"--set {item!r}: value is not valid YAML: {e}") from None
        set_dotted(out, key, value, source="--set")
    return out


def _merge(defaults: dict, given: dict, prefix: str, source: str | None) -> dict:
    out = {}
    for key, value in given.items():
        dotted = f"{prefix}{key}"
        if key not in defaults:
            known = ", ".join(sorted(defaults))
            raise ConfigError(f"{_where(source)}unknown key {dotted!r} (known at this level: {known})")
        d = defaults[key]
        if isinstance(d, dict) and dotted not in _FREE:
            if value is None:
                value = {}
            if not isinstance(value, dict):
                raise ConfigError(f"{_where(source)}{dotted!r} must be a mapping, got {value!r}")
            out[key] = _merge(d, value, dotted + ".", source)
        elif dotted in _FREE:
            if value is None:
                value = {}
            if not isinstance(value, dict):
                raise ConfigError(f"{_where(source)}{dotted!r} must be a mapping of options, got {value!r}")
            out[key] = copy.deepcopy(value)
        else:
            out[key] = copy.deepcopy(value)
    for key, d in defaults.items():
        if key not in out:
            out[key] = copy.deepcopy(d)
    return out


def _check_num(cfg, key, source, *, kind=float, minimum=None, allow_none=False, strict=False):
    parent = cfg
    parts = key.split(".")
    for p in parts[:-1]:
        parent = parent[p]
    node = parent[parts[-1]]
    if node is None and allow_none:
        return
    if kind is float and isinstance(node, str):
        # PyYAML (YAML 1.1) reads "1e-3" as a string; accept it as the number it spells
        try:
            node = parent[parts[-1]] = float(node)
        except ValueError:
            pass
    ok = isinstance(node, (int, float)) and not isinstance(node, bool)
    if kind is int:
        ok = isinstance(node, int) and not isinstance(node, bool)
    if not ok:
        raise ConfigError(f"{_where(source)}{key!r} must be {'an integer' if kind is int else 'a number'}, "
                          f"got {node!r}")
    if minimum is not None and (node <= minimum if strict else node < minimum):
        raise ConfigError(f"{_where(source)}{key!r} must be {'>' if strict else '>='} {minimum}, got {node!r}")


def resolve(cfg: dict[str, Any], source: str | None = None) -> dict[str, Any]:
    """Fill defaults and validate; returns a new dict. ``source`` names the file in errors."""
    if not isinstance(cfg, dict):
        raise ConfigError(f"{_where(source)}config must be a mapping, got {type(cfg).__name__}")
    cfg = copy.deepcopy(cfg)
    # shorthand: "model: pointnet" / "data: synthetic_shapes"
    for key in ("model", "data"):
        if isinstance(cfg.get(key), str):
            cfg[key] = {"name": cfg[key]}
    out = _merge(DEFAULTS, cfg, "", source)
    for key in ("model.name", "data.name"):
        a, b = key.split(".")
        if not isinstance(out[a][b], str) or not out[a][b]:
            raise ConfigError(f"{_where(source)}{key!r} is required (a registered name)")
    for key, choices in _CHOICES.items():
        node = out
        for p in key.split("."):
            node = node[p]
        if node not in choices:
            raise ConfigError(f"{_where(source)}{key!r} must be one of {list(choices)}, got {node!r}")
    b = out["binarize"]
    if b is not None and not isinstance(b, (str, dict)):
        raise ConfigError(f"{_where(source)}'binarize' must be null, a preset name or a mapping, got {b!r}")
    if isinstance(b, str) and b.lower() in ("none", "fp", "float"):
        out["binarize"] = None if b.lower() != "fp" else "fp"
    _check_num(out, "epochs", source, kind=int, minimum=1)
    _check_num(out, "batch_size", source, kind=int, minimum=1)
    _check_num(out, "eval_batch_size", source, kind=int, minimum=1, allow_none=True)
    _check_num(out, "seed", source, kind=int, minimum=0)
    _check_num(out, "num_workers", source, kind=int, minimum=0)
    _check_num(out, "threads", source, kind=int, minimum=1, allow_none=True)
    _check_num(out, "optim.lr", source, minimum=0, strict=True)
    _check_num(out, "optim.weight_decay", source, minimum=0)
    _check_num(out, "optim.momentum", source, minimum=0)
    _check_num(out, "schedule.eta_min", source, minimum=0)
    _check_num(out, "schedule.t_max", source, kind=int, minimum=1, allow_none=True)
    _check_num(out, "schedule.interval", source, kind=int, minimum=1)
    _check_num(out, "schedule.min_lr", source, minimum=0)
    _check_num(out, "loss.label_smoothing", source, minimum=0)
    _check_num(out, "loss.tnet_reg", source, minimum=0)
    _check_num(out, "eval.every", source, kind=int, minimum=1)
    _check_num(out, "diagnostics_every", source, kind=int, minimum=1)
    _check_num(out, "data.num_classes", source, kind=int, minimum=1, allow_none=True)
    _check_num(out, "data.train_subset", source, kind=int, minimum=1, allow_none=True)
    _check_num(out, "data.eval_subset", source, kind=int, minimum=1, allow_none=True)
    if out["loss"]["label_smoothing"] >= 1:
        raise ConfigError(f"{_where(source)}'loss.label_smoothing' must be < 1, got {out['loss']['label_smoothing']}")
    betas = out["optim"]["betas"]
    if not (isinstance(betas, (list, tuple)) and len(betas) == 2 and all(0 <= float(x) < 1 for x in betas)):
        raise ConfigError(f"{_where(source)}'optim.betas' must be two numbers in [0, 1), got {betas!r}")
    cw = out["loss"]["class_weights"]
    if cw is not None and cw != "inverse_cube_root" and not (
        isinstance(cw, list) and all(isinstance(x, (int, float)) for x in cw)
    ):
        raise ConfigError(f"{_where(source)}'loss.class_weights' must be null, 'inverse_cube_root' or a list "
                          f"of numbers, got {cw!r}")
    out["amp"] = normalize_amp(out["amp"], source)
    if out["allocator"] not in ALLOCATOR_MODES:
        raise ConfigError(f"{_where(source)}'allocator' must be one of {', '.join(ALLOCATOR_MODES)}, "
                          f"got {out['allocator']!r}")
    for key in ("compile", "deterministic", "sync_bn", "diagnostics", "optim.nesterov",
                "optim.binary_weight_decay", "optim.fused", "loss.official_reg", "eval.amp", "log.progress", "log.csv", "log.tensorboard"):
        node = out
        for p in key.split("."):
            node = node[p]
        if not isinstance(node, bool):
            raise ConfigError(f"{_where(source)}{key!r} must be true or false, got {node!r}")
    for key in ("data.train_split", "data.eval_split"):
        a, b2 = key.split(".")
        if not isinstance(out[a][b2], str):
            raise ConfigError(f"{_where(source)}{key!r} must be a split name, got {out[a][b2]!r}")
    if out["data"]["protocol"] is not None and not isinstance(out["data"]["protocol"], (str, dict)):
        raise ConfigError(f"{_where(source)}'data.protocol' must be a protocol name or mapping, "
                          f"got {out['data']['protocol']!r}")
    return out


AMP_MODES = ("auto", "bf16", "off")
"""Values of ``amp``: ``auto`` (bf16 autocast where the hardware runs it natively), ``bf16`` or ``off``."""


def normalize_amp(value: Any, source: str | None = None) -> str:
    """``amp`` as one of ``auto | bf16 | off``; the old booleans still read (true → bf16, false → off)."""
    if value is True:
        return "bf16"
    if value is False or value is None:
        return "off"
    if isinstance(value, str) and value.lower() in AMP_MODES:
        return value.lower()
    raise ConfigError(f"{_where(source)}'amp' must be one of auto, bf16, off (or true / false), got {value!r}")


def load(path: str | Path, overrides: list[str] | None = None) -> dict[str, Any]:
    """``resolve(apply_overrides(load_config(path), overrides))`` with the file named in errors."""
    return resolve(apply_overrides(load_config(path), overrides), source=str(path))


def save_config(cfg: dict[str, Any], path: str | Path) -> None:
    """Write the resolved config as YAML (key order kept)."""
    Path(path).write_text(yaml.safe_dump(cfg, sort_keys=False, default_flow_style=None))
