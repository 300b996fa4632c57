"""Model registry in the style of timm: ``create(name, ...)`` builds any registered model.

A model module registers a builder with ``@register_model("name", domain=..., tasks=...)``.
Builders take ``num_classes`` and ``task`` plus model-level options (pooling, activation, block
order, ...). A binarization spec (preset name, dict or ``BinarizeSpec``) supplies defaults for
those options (e.g. BiPointNet's EMA-max pooling and Hardtanh) and is then applied with
``onebit.binarize``; the resolved spec is kept on the model as ``model.onebit_spec`` so that
checkpoints and exports can record it.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch.nn as nn


@dataclass(frozen=True)
class ModelEntry:
    """A registered model: ``builder(num_classes, task, **options)``, ``domain`` ("points" or
    "sketch"), supported ``tasks``, a one-line ``description`` and default options.
    """
    name: str
    builder: Callable[..., nn.Module]
    domain: str  # "points" or "sketch"
    tasks: tuple[str, ...]
    description: str = ""
    defaults: dict[str, Any] = field(default_factory=dict)


_REGISTRY: dict[str, ModelEntry] = {}


def register_model(name: str, *, domain: str, tasks: tuple[str, ...] = ("cls",), **defaults):
    """Decorator registering ``builder(num_classes, task=..., **options) -> nn.Module``."""

    def deco(builder: Callable[..., nn.Module]):
        if name in _REGISTRY:
            raise ValueError(f"model {name!r} is registered twice")
        doc = (inspect.getdoc(builder) or "").split("\n")[0]
        _REGISTRY[name] = ModelEntry(name, builder, domain, tuple(tasks), doc, dict(defaults))
        return builder

    return deco


def names(domain: str | None = None, task: str | None = None) -> list[str]:
    """Sorted names of the registered models, optionally of one ``domain`` and/or ``task``."""
    return sorted(
        n
        for n, e in _REGISTRY.items()
        if (domain is None or e.domain == domain) and (task is None or task in e.tasks)
    )


def entry(name: str) -> ModelEntry:
    """The ``ModelEntry`` of ``name``; KeyError listing the known models otherwise."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise KeyError(f"unknown model {name!r}; known models: {', '.join(names())}") from None


def _accepted_kwargs(builder: Callable, options: dict[str, Any]) -> dict[str, Any]:
    params = inspect.signature(builder).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return dict(options)
    return {k: v for k, v in options.items() if k in params}


def create(name: str, num_classes: int, task: str = "cls", binarize=None, **options) -> nn.Module:
    """Build model ``name`` for ``num_classes`` outputs, optionally binarized.

    ``binarize`` is None (full precision), a preset name (``onebit.convert.presets()``), a dict
    or a ``BinarizeSpec``. Explicit ``options`` override the spec's model-level defaults.
    """
    e = entry(name)
    if task not in e.tasks:
        raise ValueError(f"model {name!r} supports tasks {e.tasks}, not {task!r}")
    spec = None
    model_opts: dict[str, Any] = dict(e.defaults)
    if binarize is not None:
        from onebit.convert import resolve_spec

        spec = resolve_spec(binarize)
        # the spec's model options only fill what the builder understands
        model_opts.update(_accepted_kwargs(e.builder, spec.model_options))
    unknown = set(options) - set(inspect.signature(e.builder).parameters)
    if unknown and not any(
        p.kind is inspect.Parameter.VAR_KEYWORD for p in inspect.signature(e.builder).parameters.values()
    ):
        raise TypeError(f"model {name!r} does not take option(s) {sorted(unknown)}")
    model_opts.update(options)
    model = e.builder(num_classes=num_classes, task=task, **model_opts)
    if spec is not None and not spec.is_full_precision:
        from onebit.convert import binarize as apply_binarize

        model = apply_binarize(model, spec)
    model.onebit_name = name
    model.onebit_config = {
        "name": name,
        "num_classes": num_classes,
        "task": task,
        "options": model_opts,
        "binarize": spec.to_dict() if spec is not None else None,
    }
    return model


def from_config(config: dict[str, Any]) -> nn.Module:
    """Rebuild a model from ``model.onebit_config`` (as stored in checkpoints)."""
    return create(
        config["name"],
        num_classes=config["num_classes"],
        task=config.get("task", "cls"),
        binarize=config.get("binarize"),
        **config.get("options", {}),
    )
