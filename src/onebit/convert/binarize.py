"""``binarize(model, spec)``: swap the Conv1d/Conv2d/Linear layers of any torch model for binary ones."""

from __future__ import annotations

from collections.abc import Iterator
from fnmatch import fnmatchcase

from torch import nn

from onebit.nn.layers import BinaryConv1d, BinaryConv2d, BinaryLinear, is_binary_layer
from onebit.nn.lsr import LSRScale

from .presets import resolve_spec
from .spec import BinarizeSpec, SpecError

__all__ = ["binarize", "convertible_layers", "float_layer_names", "iter_binary_layers"]

_CONVERT = ((nn.Conv2d, BinaryConv2d), (nn.Conv1d, BinaryConv1d), (nn.Linear, BinaryLinear))


def _binary_class(m: nn.Module):
    for base, cls in _CONVERT:
        if isinstance(m, base):
            return cls
    return None


def convertible_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """(name, layer) of the float Conv1d/Conv2d/Linear layers, in module (registration) order.

    Layers that are already binary, lazy layers and the projections owned by
    ``nn.MultiheadAttention`` (used through their parameters, never called) are left out.
    """
    skip: set[int] = set()
    for m in model.modules():
        if isinstance(m, nn.MultiheadAttention):
            skip.update(id(c) for c in m.modules() if c is not m)
    out = []
    for name, m in model.named_modules():
        if id(m) in skip or is_binary_layer(m) or _binary_class(m) is None:
            continue
        if isinstance(m, nn.modules.lazy.LazyModuleMixin):
            raise SpecError(f"binarize: layer {name!r} is a lazy {type(m).__name__}; run one forward first")
        out.append((name, m))
    return out


def float_layer_names(model: nn.Module, keep_float: list[str], candidates: list[str]) -> set[str]:
    """Names of ``candidates`` that ``keep_float`` (see ``BinarizeSpec``) keeps in float."""
    declared = getattr(model, "onebit_keep_float", None)
    tokens = set(keep_float)
    keep: set[str] = set()

    def declared_names(key: str | None) -> list[str]:
        if isinstance(declared, dict):
            names = [n for k, v in declared.items() if key is None or k == key for n in v]
        else:
            names = list(declared)
        missing = [n for n in names if n not in candidates]
        if missing:
            raise SpecError(
                f"binarize: {type(model).__name__}.onebit_keep_float names {missing}, which are not "
                f"Conv/Linear layers of the model (candidates: {candidates[:8]}{' ...' if len(candidates) > 8 else ''})"
            )
        return names

    use_declared = declared is not None and ("default" in tokens or {"first", "last"} <= tokens)
    if use_declared:
        keep.update(declared_names(None))
    elif "default" in tokens:
        tokens |= {"first", "last"}
    for pos, idx in (("first", 0), ("last", -1)):
        if pos in tokens and not use_declared and candidates:
            if isinstance(declared, dict) and pos in declared:
                keep.update(declared_names(pos))
            else:
                keep.add(candidates[idx])
    for pat in tokens - {"default", "first", "last"}:
        keep.update(n for n in candidates if fnmatchcase(n, pat))
    return keep


def _set_module(model: nn.Module, name: str, new: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, child, new)


def binarize(model: nn.Module, spec: str | dict | BinarizeSpec | None = None, **overrides) -> nn.Module:
    """Replace the model's Conv1d/Conv2d/Linear layers by binary ones as ``spec`` says; return the model.

    ``spec`` is anything ``resolve_spec`` takes (preset name, dict, ``BinarizeSpec``), with
    ``overrides``. Weights are copied (the bias is kept or dropped per ``spec.bias``); layers named
    by ``keep_float``, outside ``include`` or inside ``exclude`` stay float; ``layers`` gives
    per-name overrides. The conversion happens in place (a model that *is* one layer is returned
    converted); the resolved spec is stored as ``model.onebit_spec``. ``model_options`` are not
    applied here: they are read by the model builder (``onebit.models.create``).
    """
    spec = resolve_spec(spec, **overrides)
    if not isinstance(model, nn.Module):
        raise TypeError(f"binarize: expected an nn.Module, got {type(model).__name__}")
    candidates = convertible_layers(model)
    names = [n for n, _ in candidates]
    keep = float_layer_names(model, spec.keep_float, names)
    converted: dict[int, nn.Module] = {}
    for name, layer in candidates:
        if name in keep:
            continue
        if not any(fnmatchcase(name, p) for p in spec.include):
            continue
        if any(fnmatchcase(name, p) for p in spec.exclude):
            continue
        cfg = spec.layer_config(name)
        if cfg is None:
            continue
        cls = _binary_class(layer)
        kw = {"input_quantizer": cfg["input"], "kernel_quantizer": cfg["weight"], "scale": cfg["scale"],
              "center_weights": cfg["center_weights"]}
        if cls is not BinaryLinear:
            kw["pad_value"] = cfg["pad_value"]
        try:
            new = cls.from_float(layer, bias=cfg["bias"], **kw)
        except (ValueError, TypeError) as e:
            raise SpecError(f"binarize: layer {name!r} ({type(layer).__name__}): {e}") from e
        new.set_layer_name(name or type(layer).__name__)
        converted[id(layer)] = new
    if not converted:
        model.onebit_spec = spec
        return model
    # replace every occurrence, so a layer shared under several names stays shared
    root = converted.get(id(model))
    if root is None:
        for name, m in list(model.named_modules(remove_duplicate=False)):
            if name and id(m) in converted:
                _set_module(model, name, converted[id(m)])
        root = model
    root.onebit_spec = spec
    if spec.lsr_init != "real":
        for m in root.modules():
            if isinstance(m, LSRScale):
                m.init = spec.lsr_init
    if spec.lsr_before_bn == "frozen":
        freeze_lsr_before_bn(root)
    return root


def freeze_lsr_before_bn(model: nn.Module) -> list[str]:
    """Stop training the LSR α of every binary layer that a BatchNorm directly follows; their names.

    "Follows" is read from the module tree: the next sibling registered after the layer in its
    parent (``LinearBlock``: linear, bn, act; ``nn.Sequential``: conv, bn) is a BatchNorm over the
    layer's output channels. α keeps its Eq. 9 value (set on the first training batch, no gradient).
    """
    frozen = []
    for parent_name, parent in model.named_modules():
        children = list(parent.named_children())
        for (name, m), (_, nxt) in zip(children, children[1:]):
            lsr = getattr(m, "lsr", None)
            if lsr is None or not is_binary_layer(m):
                continue
            out = getattr(m, "out_features", None) or getattr(m, "out_channels", None)
            if isinstance(nxt, nn.modules.batchnorm._BatchNorm) and nxt.num_features == out:
                lsr.alpha.requires_grad_(False)
                frozen.append(f"{parent_name}.{name}" if parent_name else name)
    return frozen


def iter_binary_layers(model: nn.Module) -> Iterator[tuple[str, nn.Module]]:
    """(name, layer) of every binary layer (``BinaryLinear``/``BinaryConv1d``/``BinaryConv2d``)."""
    for name, m in model.named_modules():
        if is_binary_layer(m):
            yield name, m
