"""``BinarizeSpec``: what ``onebit.binarize`` does to a model, as plain YAML-friendly data."""

from __future__ import annotations

import copy
from dataclasses import asdict, dataclass, field, fields
from typing import Any

__all__ = ["BinarizeSpec", "LAYER_KEYS", "SpecError"]

SCALES = ("none", "channel", "lsr")
"""Values of ``BinarizeSpec.scale``: none, per-output-channel mean|W| (XNOR-Net), or LSR (BiPointNet Eq. 9)."""
LSR_BEFORE_BN = ("train", "frozen")
"""Values of ``BinarizeSpec.lsr_before_bn``: train every LSR α (the paper), or freeze the α of layers
that a BatchNorm follows at their Eq. 9 initial value."""
BIASES = ("keep", "drop")
"""Values of a layer's ``bias`` override: keep the float bias or drop it."""
POOLS = ("max", "avg", "ema-max", "ema-avg")
"""Pooling kinds a spec may put in ``model_options['pool']`` (``onebit.nn.make_pool``)."""
# keys a per-layer override (``layers: {pattern: {...}}``) may set
LAYER_KEYS = ("weight", "input", "scale", "bias", "pad_value", "center_weights")
"""Keys a per-layer override (``layers: {pattern: {...}}``) may set."""
_FLOAT_WORDS = {"none", "float", "fp", "identity"}


class SpecError(ValueError):
    """A binarization spec (preset name, dict or YAML) is malformed; the message names the field."""


def _check_quantizer(value: Any, where: str) -> Any:
    if value is None:
        return None
    if isinstance(value, str):
        return None if value.lower() in _FLOAT_WORDS else value
    if isinstance(value, dict):
        if not isinstance(value.get("name"), str):
            raise SpecError(f"{where}: a quantizer dict needs a string 'name', got {value!r}")
        if value["name"].lower() in _FLOAT_WORDS:
            return None
        return dict(value)
    raise SpecError(f"{where}: expected a quantizer name, a dict with 'name' or null, got {type(value).__name__}")


def _str_list(value: Any, where: str) -> list[str]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
        raise SpecError(f"{where}: expected a list of strings, got {value!r}")
    return list(value)


def _check_scale(value: Any, where: str) -> str:
    value = "none" if value is None else value
    if value not in SCALES:
        raise SpecError(f"{where}: scale must be one of {SCALES}, got {value!r}")
    return value


def _check_bias(value: Any, where: str) -> str:
    if value is True:
        value = "keep"
    elif value is False:
        value = "drop"
    if value not in BIASES:
        raise SpecError(f"{where}: bias must be 'keep' or 'drop', got {value!r}")
    return value


def _check_pad(value: Any, where: str) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise SpecError(f"{where}: pad_value must be -1 or 1, got {value!r}") from None
    if v not in (-1.0, 1.0):
        raise SpecError(f"{where}: pad_value must be -1 or 1 (a bit cannot encode 0), got {value!r}")
    return v


@dataclass
class BinarizeSpec:
    """How to binarize a model (docs/design.md, "Binarization spec").

    * ``weight`` / ``input``: quantizer name, ``{"name": ..., **options}`` or None (= float);
    * ``scale``: "none" | "channel" (per-output-channel mean|W|) | "lsr" (BiPointNet's learnable α);
    * ``bias``: "keep" or "drop" the float layer's bias on converted layers;
    * ``pad_value``: value (±1) that binary convolutions pad their binarized input with;
    * ``keep_float``: layers left in float: "default" (the model's ``onebit_keep_float``, else the
      first and last Conv/Linear), "first", "last" (positional) and/or fnmatch patterns of names;
      the pair "first" + "last" also uses the model's ``onebit_keep_float`` when it has one;
    * ``include`` / ``exclude``: fnmatch patterns on module names;
    * ``layers``: ``{pattern: {weight/input/scale/bias/pad_value/center_weights: ...}}`` per-layer
      overrides applied in order, or ``{pattern: "float"}`` / null to keep matching layers float;
    * ``model_options``: model-level choices read by the model builder (``pool``, ``act``, ``preact``);
    * ``dab_preprocess``: DAB-Net Algorithm 2's mean-centre + clamp of latent weights, applied by the
      trainer: True/"filter" (per-filter mean, the paper) or "channel" (official code's centring);
    * ``center_weights``: LSR on W − mean(W), as the official BiPointNet code (paper: False);
    * ``lsr_before_bn``: "train" (the paper: every LSR α learns) or "frozen": the α of a layer that a
      BatchNorm follows keeps its Eq. 9 initial value. Training-mode BN removes any positive scale, so
      such an α only acts through its sign, and Adam's normalised steps walk it through zero, which
      flips the layer's output (``benchmarks/lsr_alpha_drift.py``). Frozen, the function class and the
      deployed model are the same.
    * ``lsr_init``: how every LSR α starts (``onebit.nn.lsr.LSR_INITS``): "real" (Eq. 9, the paper:
      the real-valued output's σ) or "unit" (unit-variance output). A net without BatchNorm (Table 4
      (f)) needs "unit" before an EMA-max pool, whose δ* assumes N(0, 1) input.
    """

    name: str = "custom"
    weight: str | dict | None = None
    input: str | dict | None = None
    scale: str = "none"
    bias: str = "keep"
    pad_value: float = -1.0
    keep_float: list[str] = field(default_factory=lambda: ["first", "last"])
    include: list[str] = field(default_factory=lambda: ["*"])
    exclude: list[str] = field(default_factory=list)
    layers: dict[str, Any] = field(default_factory=dict)
    model_options: dict[str, Any] = field(default_factory=dict)
    dab_preprocess: bool | str = False
    center_weights: bool = False
    lsr_before_bn: str = "train"
    lsr_init: str = "real"

    def __post_init__(self) -> None:
        where = f"binarize spec {self.name!r}"
        if not isinstance(self.name, str) or not self.name:
            raise SpecError(f"binarize spec: name must be a non-empty string, got {self.name!r}")
        self.weight = _check_quantizer(self.weight, f"{where}: weight")
        self.input = _check_quantizer(self.input, f"{where}: input")
        self.scale = _check_scale(self.scale, where)
        self.bias = _check_bias(self.bias, where)
        self.pad_value = _check_pad(self.pad_value, where)
        self.keep_float = _str_list(self.keep_float, f"{where}: keep_float")
        self.include = _str_list(self.include, f"{where}: include")
        self.exclude = _str_list(self.exclude, f"{where}: exclude")
        if not isinstance(self.layers, dict):
            raise SpecError(f"{where}: layers must be a mapping pattern -> overrides, got {type(self.layers).__name__}")
        layers = {}
        for pat, ov in self.layers.items():
            layers[str(pat)] = self._check_override(ov, f"{where}: layers[{pat!r}]")
        self.layers = layers
        if not isinstance(self.model_options, dict):
            raise SpecError(f"{where}: model_options must be a mapping, got {type(self.model_options).__name__}")
        self.model_options = copy.deepcopy(self.model_options)
        pool = self.model_options.get("pool")
        if pool is not None and pool not in POOLS:
            raise SpecError(f"{where}: model_options.pool must be one of {POOLS}, got {pool!r}")
        if self.dab_preprocess not in (True, False, "filter", "channel"):
            raise SpecError(f"{where}: dab_preprocess must be true/false, 'filter' (the paper: per-filter mean) "
                            f"or 'channel' (the official code: mean over input channels), got {self.dab_preprocess!r}")
        if not isinstance(self.dab_preprocess, str):
            self.dab_preprocess = bool(self.dab_preprocess)
        self.center_weights = bool(self.center_weights)
        if self.center_weights and self.scale != "lsr":
            raise SpecError(f"{where}: center_weights is an option of scale='lsr' (official BiPointNet LSR)")
        if self.lsr_before_bn not in LSR_BEFORE_BN:
            raise SpecError(f"{where}: lsr_before_bn must be one of {LSR_BEFORE_BN}, got {self.lsr_before_bn!r}")
        from onebit.nn.lsr import LSR_INITS

        if self.lsr_init not in LSR_INITS:
            raise SpecError(f"{where}: lsr_init must be one of {LSR_INITS}, got {self.lsr_init!r}")
        if self.lsr_init != "real" and self.scale != "lsr" and not any(
                ov and ov.get("scale") == "lsr" for ov in self.layers.values()):
            raise SpecError(f"{where}: lsr_init is an option of scale='lsr' (no layer uses LSR)")

    @staticmethod
    def _check_override(ov: Any, where: str) -> dict | None:
        if ov is None or (isinstance(ov, str) and ov.lower() in _FLOAT_WORDS):
            return None
        if not isinstance(ov, dict):
            raise SpecError(f"{where}: expected a mapping of overrides or 'float', got {ov!r}")
        unknown = set(ov) - set(LAYER_KEYS)
        if unknown:
            raise SpecError(f"{where}: unknown override key(s) {sorted(unknown)}; allowed: {LAYER_KEYS}")
        out = dict(ov)
        for k in ("weight", "input"):
            if k in out:
                out[k] = _check_quantizer(out[k], f"{where}: {k}")
        if "scale" in out:
            out["scale"] = _check_scale(out["scale"], where)
        if "bias" in out:
            out["bias"] = _check_bias(out["bias"], where)
        if "pad_value" in out:
            out["pad_value"] = _check_pad(out["pad_value"], where)
        return out

    # -- derived ------------------------------------------------------------------------------------
    @property
    def is_full_precision(self) -> bool:
        """True when no layer gets a quantizer (the model is left unchanged by ``binarize``)."""
        if self.weight is not None or self.input is not None:
            return False
        return not any(ov and (ov.get("weight") is not None or ov.get("input") is not None)
                       for ov in self.layers.values())

    def layer_config(self, name: str) -> dict[str, Any] | None:
        """Effective settings for module ``name`` after the ``layers`` overrides (None: float)."""
        from fnmatch import fnmatchcase

        cfg = {"weight": self.weight, "input": self.input, "scale": self.scale, "bias": self.bias,
               "pad_value": self.pad_value, "center_weights": self.center_weights}
        for pat, ov in self.layers.items():
            if fnmatchcase(name, pat):
                if ov is None:
                    cfg["weight"] = cfg["input"] = None
                else:
                    cfg.update(copy.deepcopy(ov))
        if cfg["weight"] is None and cfg["input"] is None:
            return None
        return cfg

    # -- serialisation ------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """Plain dict of builtins (YAML/JSON-safe); ``from_dict(to_dict())`` gives an equal spec."""
        return copy.deepcopy(asdict(self))

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> BinarizeSpec:
        """Build a spec from its ``to_dict()`` form; unknown fields raise ``SpecError``."""
        if isinstance(d, BinarizeSpec):
            return copy.deepcopy(d)
        if not isinstance(d, dict):
            raise SpecError(f"binarize spec: expected a mapping, got {type(d).__name__}")
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise SpecError(f"binarize spec: unknown field(s) {sorted(unknown)}; known: {sorted(known)}")
        return cls(**copy.deepcopy(d))

    def to_yaml(self) -> str:
        """The spec as a YAML document (the ``to_dict()`` form)."""
        import yaml

        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    @classmethod
    def from_yaml(cls, text: str) -> BinarizeSpec:
        """Parse a spec written by ``to_yaml`` (or any YAML mapping of its fields)."""
        import yaml

        return cls.from_dict(yaml.safe_load(text))
