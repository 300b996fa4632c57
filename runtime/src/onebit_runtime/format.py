"""The ``.onebit`` file: a safetensors container (no pickle) + a JSON graph in its metadata.

Layout (docs/format.md): 8-byte little-endian header length H, H bytes of JSON header, then the tensor
data. The header's ``__metadata__`` holds ``format = "onebit"``, ``version``, the graph JSON (``graph``)
and CRC-32 checksums of the graph and of the data section. :func:`read` is libonebit's reader (every
container check, :class:`FormatError` naming the file); :func:`write` is what the exporter writes with.
Both need only NumPy.
"""

from __future__ import annotations

import json
import os
import struct
import zlib
from pathlib import Path

import numpy as np

from . import _engine

FORMAT_NAME = "onebit"
"""The ``format`` field of every ``.onebit`` header."""
FORMAT_VERSION = _engine.FORMAT_VERSION
"""The file format version this runtime reads and the exporter writes (docs/format.md)."""
MAX_HEADER = 64 << 20
"""Largest JSON header accepted, in bytes (a larger one is corrupt, not a model)."""

DTYPES = {"F32": np.dtype("<f4"), "I32": np.dtype("<i4"), "I16": np.dtype("<i2"), "U8": np.dtype("u1"),
          "U64": np.dtype("<u8"), "I64": np.dtype("<i8")}
"""safetensors dtype codes the format stores -> little-endian NumPy dtypes."""
_CODES = {v: k for k, v in DTYPES.items()}

FormatError = _engine.FormatError
"""A ``.onebit`` file is truncated, corrupted or inconsistent (a ``ValueError``; the message names the file)."""


def write(path, tensors: dict[str, np.ndarray], graph: dict) -> int:
    """Write ``tensors`` and ``graph`` to ``path``; returns the file size in bytes."""
    entries, chunks, off = {}, [], 0
    for name in sorted(tensors):
        a = np.ascontiguousarray(tensors[name])
        dt = a.dtype.newbyteorder("<") if a.dtype.byteorder == ">" else a.dtype
        code = _CODES.get(np.dtype(dt))
        if code is None:
            raise TypeError(f"tensor {name!r}: dtype {a.dtype} cannot be stored (use one of {sorted(DTYPES)})")
        raw = a.astype(DTYPES[code], copy=False).tobytes()
        entries[name] = {"dtype": code, "shape": list(a.shape), "data_offsets": [off, off + len(raw)]}
        chunks.append(raw)
        off += len(raw)
    data = b"".join(chunks)
    graph_json = json.dumps(graph, sort_keys=True, separators=(",", ":"), allow_nan=False)
    entries["__metadata__"] = {
        "format": FORMAT_NAME,
        "version": str(FORMAT_VERSION),
        "graph": graph_json,
        "graph_crc32": str(zlib.crc32(graph_json.encode())),
        "data_crc32": str(zlib.crc32(data)),
    }
    header = json.dumps(entries, separators=(",", ":")).encode()
    header += b" " * (-len(header) % 8)  # safetensors pads the header to 8 bytes
    blob = struct.pack("<Q", len(header)) + header + data
    Path(path).write_bytes(blob)
    return len(blob)


def read(path) -> tuple[dict[str, np.ndarray], dict]:
    """Read and check a ``.onebit`` container: returns (tensors, graph).

    Checks the header length, the JSON, the metadata (format, version), every tensor entry (dtype,
    shape, offsets inside the data, no overlap or gap) and both checksums; raises :class:`FormatError`
    naming the file on any problem. The graph itself is checked by :func:`onebit_runtime.load`.
    """
    tensors, graph_json = _engine.read(str(Path(os.fspath(path))))
    return tensors, json.loads(graph_json)
