"""The ``.onebit`` container: :mod:`onebit_runtime.format` (``read``, ``write``, ``FormatError``)."""

from onebit_runtime.format import DTYPES, FORMAT_NAME, FORMAT_VERSION, MAX_HEADER, FormatError, read, write

__all__ = ["DTYPES", "FORMAT_NAME", "FORMAT_VERSION", "MAX_HEADER", "FormatError", "read", "write"]
