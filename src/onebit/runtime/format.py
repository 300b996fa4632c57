"""The ``.onebit`` file: a safetensors container (no pickle) + a JSON graph in its metadata.

Layout (docs/format.md): 8-byte little-endian header length H, H bytes of JSON header, then
the tensor data. The header is a standard safetensors header; its ``__metadata__`` holds
``format = "onebit"``, ``version``, the graph JSON (``graph``) and CRC-32 checksums of the graph
and of the data section, so any truncation or flipped byte is reported instead of silently
changing the model. Reading and writing need only NumPy (the runtime never imports torch).
"""

from __future__ import annotations

import json
import struct
import zlib
from pathlib import Path

import numpy as np

FORMAT_NAME = "onebit"
"""The ``format`` field of every ``.onebit`` header."""
FORMAT_VERSION = 1
"""The file format version this runtime reads and the exporter writes (docs/format.md)."""
MAX_HEADER = 64 << 20  # a header larger than this is corrupt, not a model
"""Largest JSON header accepted, in bytes (a larger one is corrupt, not a model)."""

# safetensors dtype code <-> numpy (little-endian)
DTYPES = {"F32": np.dtype("<f4"), "I32": np.dtype("<i4"), "I16": np.dtype("<i2"), "U8": np.dtype("u1"),
          "U64": np.dtype("<u8"), "I64": np.dtype("<i8")}
"""safetensors dtype codes the format stores -> little-endian NumPy dtypes."""
_CODES = {v: k for k, v in DTYPES.items()}


class FormatError(ValueError):
    """A ``.onebit`` file is truncated, corrupted or inconsistent (the message names the file)."""


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
    """Read and validate a ``.onebit`` container: returns (tensors, graph).

    Checks the header length, the JSON, the metadata (format, version), every tensor entry
    (dtype, shape, offsets inside the data, no overlap or gap) and both checksums; raises
    :class:`FormatError` naming the file on any problem.
    """
    p = Path(path)
    try:
        blob = p.read_bytes()
    except OSError as e:
        raise FormatError(f"{p}: cannot read: {e.strerror or e}") from None

    def bad(msg: str) -> FormatError:
        return FormatError(f"{p}: {msg}")

    if len(blob) < 8:
        raise bad(f"file is {len(blob)} bytes, too short for a .onebit header (truncated?)")
    (hlen,) = struct.unpack("<Q", blob[:8])
    if hlen > MAX_HEADER or hlen > len(blob) - 8:
        raise bad(f"header length {hlen} does not fit in a {len(blob)}-byte file (truncated or not a .onebit file)")
    try:
        header = json.loads(blob[8:8 + hlen].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as e:
        raise bad(f"header is not valid JSON ({type(e).__name__}); the file is corrupted") from None
    if not isinstance(header, dict):
        raise bad("header is not a JSON object")
    meta = header.pop("__metadata__", None)
    if not isinstance(meta, dict) or meta.get("format") != FORMAT_NAME:
        raise bad("not a .onebit file (safetensors metadata lacks format='onebit')")
    if meta.get("version") != str(FORMAT_VERSION):
        raise bad(f"format version {meta.get('version')!r} is not supported (this onebit reads {FORMAT_VERSION})")
    graph_json = meta.get("graph")
    if not isinstance(graph_json, str):
        raise bad("metadata has no graph")
    if meta.get("graph_crc32") != str(zlib.crc32(graph_json.encode())):
        raise bad("graph checksum mismatch: the graph JSON is corrupted")
    data = memoryview(blob)[8 + hlen:]
    if meta.get("data_crc32") != str(zlib.crc32(data)):
        raise bad("data checksum mismatch: tensor data is truncated or corrupted")
    try:
        graph = json.loads(graph_json)
    except (json.JSONDecodeError, RecursionError):
        raise bad("graph is not valid JSON") from None
    if not isinstance(graph, dict):
        raise bad("graph is not a JSON object")

    tensors: dict[str, np.ndarray] = {}
    spans = []
    for name, e in header.items():
        if not isinstance(e, dict) or set(e) != {"dtype", "shape", "data_offsets"}:
            raise bad(f"tensor {name!r}: malformed entry")
        dt = DTYPES.get(e["dtype"]) if isinstance(e["dtype"], str) else None
        if dt is None:
            raise bad(f"tensor {name!r}: unsupported dtype {e['dtype']!r}")
        shape, offs = e["shape"], e["data_offsets"]
        if not (isinstance(shape, list) and all(type(s) is int and 0 <= s < 1 << 31 for s in shape)):
            raise bad(f"tensor {name!r}: bad shape {shape!r}")
        if not (isinstance(offs, list) and len(offs) == 2 and all(type(o) is int for o in offs)):
            raise bad(f"tensor {name!r}: bad data_offsets {offs!r}")
        b, end = offs
        nbytes = int(np.prod(shape, dtype=np.int64)) * dt.itemsize
        if not (0 <= b <= end <= len(data)) or end - b != nbytes:
            raise bad(f"tensor {name!r}: offsets {offs} do not match shape {shape} ({nbytes} bytes) in "
                      f"{len(data)} bytes of data")
        spans.append((b, end, name))
        tensors[name] = np.frombuffer(data[b:end], dtype=dt).reshape(shape).copy()
    pos = 0
    for b, end, name in sorted(spans):
        if b != pos:
            raise bad(f"tensor {name!r}: data overlaps or leaves a gap at byte {pos}")
        pos = end
    if pos != len(data):
        raise bad(f"{len(data) - pos} trailing bytes after the last tensor")
    return tensors, graph
