"""Datasets, loaders and transforms for point clouds and sketches.

``get_dataset(name, split, **options)`` builds any registered dataset; the dataset modules in
the ``points`` and ``sketches`` subpackages register themselves when those subpackages are
imported (done lazily here so that importing ``onebit.data`` stays cheap).
"""

from __future__ import annotations

import importlib

from onebit.data.registry import dataset_entry, dataset_names, get_dataset, register_dataset

_SUBPACKAGES = ("points", "sketches")


def load_all() -> None:
    """Import every dataset module so that the registry is complete."""
    for sub in _SUBPACKAGES:
        importlib.import_module(f"{__name__}.{sub}")


def __getattr__(name: str):
    # names exported by the subpackages (e.g. onebit.data.ModelNet40) resolve on first use
    for sub in _SUBPACKAGES:
        module = importlib.import_module(f"{__name__}.{sub}")
        if hasattr(module, name):
            return getattr(module, name)
    raise AttributeError(f"module 'onebit.data' has no attribute {name!r}")


__all__ = ["dataset_entry", "dataset_names", "get_dataset", "load_all", "register_dataset"]
