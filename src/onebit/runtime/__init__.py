"""onebit.runtime: run exported ``.onebit`` models with NumPy + native kernels, without torch.

``load(path).run(points)`` → logits. The native extension ``_engine`` dispatches at run time to
AVX-512 (VPOPCNTDQ), AVX2 or portable C; ``ONEBIT_ISA=avx512|avx2|scalar`` (or ``isa=``) forces one.
"""

from __future__ import annotations

import os

# Short OpenMP spin before sleeping (read when libgomp starts, i.e. before _engine loads): with the
# default long spin a shared, oversubscribed host turns each barrier of a 2-thread forward into
# milliseconds (measured 32 ms vs 0.8 ms). Set GOMP_SPINCOUNT yourself to override.
os.environ.setdefault("GOMP_SPINCOUNT", "20000")

from .format import FORMAT_VERSION, FormatError
from .model import Model, load, pack_signs, resolve_isa, thresholds, unpack_signs

__all__ = ["FORMAT_VERSION", "FormatError", "Model", "load", "pack_signs", "resolve_isa", "thresholds",
           "unpack_signs", "best_isa", "supported_isas"]


def best_isa() -> str:
    """The fastest kernel path this CPU supports."""
    from . import _engine

    return _engine.best_isa()


def supported_isas() -> list[str]:
    """The kernel paths this CPU can run (a subset of "avx512", "avx2", "scalar")."""
    from . import _engine

    return list(_engine.supported_isas())
