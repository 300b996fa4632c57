"""Presets: one ``BinarizeSpec`` per method row of the DAB-Net and BiPointNet tables.

Point-model presets that binarize activations use Hardtanh as the network activation
(BiPointNet App. E.2) and MAX pooling unless the row says EMA; sketch-model presets that binarize
activations use XNOR-Net's pre-activation block order (``preact``: BN → sign → conv → ReLU, DAB-Net
FBin). Builders ignore the options they do not take. Pooling and scale are options of any preset:
``resolve_spec("xnor", pool="ema-max")`` == ``resolve_spec("xnor+ema-max")`` (BiPointNet Table 2),
``resolve_spec("bnn", scale="lsr")`` == ``"bnn+lsr"`` (BNN-LSR, Table 1).
"""

from __future__ import annotations

import copy
from typing import Any

from .spec import POOLS, SCALES, BinarizeSpec, SpecError

__all__ = ["PRESETS", "preset_description", "presets", "resolve_spec"]

_BIN_ACTS = {"pool": "max", "act": "hardtanh", "preact": True}

# name -> (description, spec fields)
PRESETS: dict[str, tuple[str, dict[str, Any]]] = {
    "fp": ("full precision (nothing binarized)", {}),
    "bnn": ("BNN (Courbariaux et al. 2016): sign weights and activations, STE, no scale, bias kept",
            {"weight": "ste_sign", "input": "ste_sign", "model_options": _BIN_ACTS}),
    "bwn": ("BWN / WBin (Rastegari et al. 2016): α·sign(W) weights, real activations",
            {"weight": "bwn", "model_options": {"pool": "max"}}),
    "xnor": ("XNOR-Net / FBin (Rastegari et al. 2016): α·sign(W) weights, sign activations scaled by K",
             {"weight": "xnor", "input": "xnor", "model_options": _BIN_ACTS}),
    "xnor++": ("XNOR-Net++ (Bulat & Tzimiropoulos 2019), case 1: one learned scale per layer (BiPointNet Table 2)",
               {"weight": {"name": "xnor++", "granularity": "layer"}, "input": "ste_sign",
                "model_options": _BIN_ACTS}),
    "bireal": ("Bi-Real Net (Liu et al. 2018): magnitude-aware weights, ApproxSign activations",
               {"weight": "bireal", "input": "bireal", "model_options": _BIN_ACTS}),
    "abc": ("ABC-Net (Lin et al. 2017): 3 weight bases per layer, 1 activation base",
            {"weight": "abc", "input": {"name": "abc", "bases": 1}, "model_options": _BIN_ACTS}),
    "irnet": ("IR-Net (Qin et al. 2020): Libra-PB weights, EDE backward on weights and activations",
              {"weight": "irnet", "input": "irnet", "model_options": _BIN_ACTS}),
    "bipointnet": ("BiPointNet (Qin et al. 2021): sign weights/activations, LSR scale, EMA-max, Hardtanh",
                   {"weight": "ste_sign", "input": "ste_sign", "scale": "lsr", "bias": "drop",
                    "model_options": {**_BIN_ACTS, "pool": "ema-max"}}),
    "bipointnet-avg": ("BiPointNet with EMA-avg pooling (Table 1/2 'Ours, EMA-avg')",
                       {"weight": "ste_sign", "input": "ste_sign", "scale": "lsr", "bias": "drop",
                        "model_options": {**_BIN_ACTS, "pool": "ema-avg"}}),
    "dab-wbin": ("DAB-Net WBin (Mishra et al. 2018): distribution-aware α/β weights, real activations, "
                 "no bias on binarized convs, Algorithm 2 centre+clamp",
                 {"weight": "dab", "bias": "drop", "dab_preprocess": True}),
    "dab-fbin": ("DAB-Net FBin: DAB weights and XNOR-style (K-scaled sign) activations, pre-activation "
                 "blocks; the official code used plain sign activations: resolve_spec('dab-fbin', "
                 "input='ste_sign')",
                 {"weight": "dab", "input": "xnor", "bias": "drop", "dab_preprocess": True,
                  "model_options": {"preact": True}}),
}
"""Preset name -> (one-line description with the paper, ``BinarizeSpec`` fields it sets)."""

# shortcut keyword arguments of resolve_spec that land in model_options
_MODEL_OPTION_KEYS = ("pool", "act", "preact")


def presets() -> list[str]:
    """Preset names, in the order of the papers' tables (see ``preset_description``)."""
    return list(PRESETS)


def preset_description(name: str) -> str:
    """The one-line description (method and paper) of preset ``name``."""
    return _preset(name)[0]


def _preset(name: str) -> tuple[str, dict[str, Any]]:
    try:
        return PRESETS[name]
    except KeyError:
        raise SpecError(
            f"unknown binarization preset {name!r}; presets: {', '.join(PRESETS)} "
            f"(add '+POOL' or '+lsr', e.g. 'xnor+ema-max')"
        ) from None


def _from_string(text: str) -> tuple[BinarizeSpec, dict[str, Any]]:
    """'base[+option...]' -> (base preset spec, shortcut overrides); options: pools, scales."""
    text = text.strip()
    # longest preset name first: "xnor++" itself contains '+' ("xnor+++ema-max" = xnor++ with EMA-max)
    base = next((p for p in sorted(PRESETS, key=len, reverse=True) if text == p or text.startswith(p + "+")),
                text.split("+")[0])
    opts = text[len(base) + 1:].split("+") if len(text) > len(base) else []
    desc, fields_ = _preset(base)
    spec = BinarizeSpec(name=base, **copy.deepcopy(fields_))
    overrides: dict[str, Any] = {}
    for o in opts:
        if o in POOLS:
            overrides["pool"] = o
        elif o in SCALES:
            overrides["scale"] = o
        else:
            raise SpecError(f"binarization preset {text!r}: unknown option {o!r}; options are pools "
                            f"{POOLS} and scales {SCALES}")
    return spec, overrides


def resolve_spec(spec: str | dict | BinarizeSpec | None = None, **overrides) -> BinarizeSpec:
    """A ``BinarizeSpec`` from a preset name ("xnor", "xnor+ema-max"), a dict, a spec or None (fp).

    A dict is a full spec (``BinarizeSpec.to_dict()`` form, missing fields at their defaults) or
    ``{"preset": NAME, **overrides}``. ``overrides`` are spec fields plus the shortcuts ``pool``,
    ``act``, ``preact`` (into ``model_options``). ``scale="lsr"`` on a preset also drops the bias
    (BiPointNet's LSR layers have none) unless ``bias`` is given. Pool/scale overrides extend the
    name ("xnor+ema-max"); other overrides rename the spec "custom" unless ``name`` is given.
    """
    shortcut: dict[str, Any] = {}
    if spec is None:
        base = BinarizeSpec(name="fp")
    elif isinstance(spec, BinarizeSpec):
        base = copy.deepcopy(spec)
    elif isinstance(spec, str):
        base, shortcut = _from_string(spec)
    elif isinstance(spec, dict):
        d = dict(spec)
        if "preset" in d:
            preset = d.pop("preset")
            if not isinstance(preset, str):
                raise SpecError(f"binarize spec: 'preset' must be a preset name, got {preset!r}")
            base, shortcut = _from_string(preset)
            overrides = {**d, **overrides}
        else:
            base = BinarizeSpec.from_dict(d)
    else:
        raise SpecError(f"binarize spec must be a preset name, a dict, a BinarizeSpec or None, got {type(spec).__name__}")
    overrides = {**shortcut, **overrides}
    if not overrides:
        return base
    return _apply_overrides(base, overrides)


def _apply_overrides(base: BinarizeSpec, overrides: dict[str, Any]) -> BinarizeSpec:
    d = base.to_dict()
    opts = d["model_options"]
    name = d["name"]
    tokens: list[str] = []
    custom = False
    for k in _MODEL_OPTION_KEYS:
        if k in overrides:
            v = overrides.pop(k)
            if k == "pool" and v not in POOLS:
                raise SpecError(f"binarize spec {name!r}: pool must be one of {POOLS}, got {v!r}")
            if opts.get(k) != v:
                opts[k] = v
                if k == "pool":
                    tokens.append(v)
                else:
                    custom = True
    if "scale" in overrides and overrides["scale"] != d["scale"]:
        tokens.append(str(overrides["scale"]))
        if overrides["scale"] == "lsr" and "bias" not in overrides:
            d["bias"] = "drop"
    explicit_name = overrides.pop("name", None)
    unknown = set(overrides) - set(d)
    if unknown:
        raise SpecError(f"binarize spec {name!r}: unknown override(s) {sorted(unknown)}; fields: {sorted(d)} "
                        f"and shortcuts {list(_MODEL_OPTION_KEYS)}")
    for k, v in overrides.items():
        if k != "scale" and d[k] != v:
            custom = True
        d[k] = copy.deepcopy(v)
    if explicit_name is not None:
        d["name"] = explicit_name
    elif custom:
        d["name"] = "custom"
    elif tokens:
        # keep the name parseable: replace existing pool/scale tokens of the same kind
        probe, _ = _from_string(name) if _is_preset_string(name) else (None, None)
        base_name = probe.name if probe is not None else name
        old = name[len(base_name) + 1:].split("+") if len(name) > len(base_name) else []
        kept = [t for t in old if not ((t in POOLS and any(x in POOLS for x in tokens))
                                       or (t in SCALES and any(x in SCALES for x in tokens)))]
        d["name"] = "+".join([base_name, *kept, *tokens])
    return BinarizeSpec.from_dict(d)


def _is_preset_string(text: str) -> bool:
    try:
        _from_string(text)
    except SpecError:
        return False
    return True
