"""Loading and running models: :mod:`onebit_runtime.model` (``load``, ``Model``, ``profile``)."""

from onebit_runtime.bits import pack_signs, unpack_signs
from onebit_runtime.model import ISAS, Model, load, profile, resolve_isa

__all__ = ["ISAS", "Model", "load", "profile", "resolve_isa", "pack_signs", "unpack_signs"]
