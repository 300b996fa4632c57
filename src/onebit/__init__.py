"""onebit: binary neural networks for sketches and point clouds.

The top-level package imports nothing heavy: ``onebit.runtime`` must run where PyTorch is not
installed, so the torch-based entry points below are resolved lazily on first use.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

# public name -> "module:attribute"
_LAZY = {
    "binarize": "onebit.convert:binarize",
    "summary": "onebit.summary:summary",
    "export": "onebit.export:export",
}

# subpackages reachable as attributes after a bare ``import onebit``
_SUBMODULES = {"analysis", "convert", "data", "export", "geometry", "models", "nn", "quantizers", "runtime",
               "train"}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str):
    if name in _SUBMODULES:
        return importlib.import_module(f"{__name__}.{name}")
    target = _LAZY.get(name)
    if target is None:
        raise AttributeError(f"module 'onebit' has no attribute {name!r}")
    module_name, attr = target.split(":")
    value = getattr(importlib.import_module(module_name), attr)
    globals()[name] = value
    return value
