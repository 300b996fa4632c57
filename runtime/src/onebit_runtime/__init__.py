"""onebit_runtime: run exported ``.onebit`` models with NumPy and libonebit's native kernels, without torch.

``load(path).run(points)`` → logits. Loading, validation (every check of docs/format.md), planning and
the kernels are libonebit's, the repository's C++ library (``_engine`` binds it); this package converts
arrays. The kernels dispatch at run time to AVX-512 (VPOPCNTDQ), AVX2, NEON or portable C;
``ONEBIT_ISA=avx512|avx2|neon|scalar`` (or ``isa=``) forces one.
"""

from __future__ import annotations

import os

# Short OpenMP spin before sleeping (read when libgomp starts, i.e. before _engine loads): with the
# default long spin a shared, oversubscribed host turns each barrier of a 2-thread forward into
# milliseconds (measured 32 ms vs 0.8 ms). Set GOMP_SPINCOUNT yourself to override.
os.environ.setdefault("GOMP_SPINCOUNT", "20000")

from . import _engine  # noqa: E402
from .bits import pack_signs, unpack_signs  # noqa: E402
from .format import FORMAT_VERSION, FormatError  # noqa: E402
from .model import ISAS, Model, load, profile, resolve_isa  # noqa: E402

__version__ = _engine.__version__

__all__ = ["FORMAT_VERSION", "FormatError", "ISAS", "Model", "load", "profile", "pack_signs", "unpack_signs",
           "resolve_isa", "best_isa", "supported_isas"]


def best_isa() -> str:
    """The fastest kernel path this CPU supports."""
    return _engine.best_isa()


def supported_isas() -> list[str]:
    """The kernel paths this CPU can run (a subset of "avx512", "avx2", "neon", "scalar")."""
    return list(_engine.supported_isas())
