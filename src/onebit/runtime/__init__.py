"""onebit.runtime: run exported ``.onebit`` models with NumPy + native kernels, without torch.

This is :mod:`onebit_runtime` (the ``onebit-runtime`` distribution, built from ``runtime/``: libonebit,
the repository's C++ engine, bound to Python), re-exported under the ``onebit`` package:
``load(path).run(points)`` → logits, :class:`FormatError`, ``profile``.
"""

from __future__ import annotations

from onebit_runtime import (
    FORMAT_VERSION,
    ISAS,
    FormatError,
    Model,
    _engine,
    best_isa,
    load,
    pack_signs,
    profile,
    resolve_isa,
    supported_isas,
    unpack_signs,
)

__all__ = ["FORMAT_VERSION", "FormatError", "ISAS", "Model", "load", "profile", "pack_signs", "unpack_signs", "_engine",
           "resolve_isa", "best_isa", "supported_isas"]
