"""Dataset registry: ``onebit.data.get_dataset(name, split=..., **options)``.

Dataset modules register a factory with ``@register_dataset("name", domain=..., task=...)``.
A factory returns a ``torch.utils.data.Dataset`` whose items are ``(input, target)`` (points as
float32 (N, C) tensors, sketches as float32 (1, H, W)), and which exposes ``num_classes`` and,
where known, ``class_names``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

_REGISTRY: dict[str, DatasetEntry] = {}


@dataclass(frozen=True)
class DatasetEntry:
    """A registered dataset: its ``factory(split=..., **options)``, ``domain``
    ("points" or "sketch") and ``task`` ("cls", "partseg" or "semseg").
    """
    name: str
    factory: Callable
    domain: str  # "points" or "sketch"
    task: str  # "cls", "partseg" or "semseg"


def register_dataset(name: str, *, domain: str, task: str = "cls"):
    """Decorator registering ``factory`` as dataset ``name`` (registering a name twice is an error)."""
    def deco(factory: Callable):
        if name in _REGISTRY:
            raise ValueError(f"dataset {name!r} is registered twice")
        _REGISTRY[name] = DatasetEntry(name, factory, domain, task)
        return factory

    return deco


def _ensure_loaded() -> None:
    # the dataset modules register themselves on import; import them all on first lookup
    from onebit.data import load_all

    load_all()


def dataset_names(domain: str | None = None) -> list[str]:
    """Sorted names of every registered dataset, optionally of one ``domain``."""
    _ensure_loaded()
    return sorted(n for n, e in _REGISTRY.items() if domain is None or e.domain == domain)


def dataset_entry(name: str) -> DatasetEntry:
    """The ``DatasetEntry`` of ``name``; KeyError listing the known names otherwise."""
    if name not in _REGISTRY:
        _ensure_loaded()
    try:
        return _REGISTRY[name]
    except KeyError:
        raise KeyError(f"unknown dataset {name!r}; known datasets: {', '.join(dataset_names())}") from None


def get_dataset(name: str, split: str = "train", **options):
    """Build dataset ``name`` for ``split`` with ``options`` (see docs/data.md and docs/data_sketches.md)."""
    return dataset_entry(name).factory(split=split, **options)
