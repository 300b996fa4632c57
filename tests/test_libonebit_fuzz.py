"""The loader under AddressSanitizer + UBSan (`-DONEBIT_SANITIZE=ON`): hundreds of truncated and mutated
.onebit files, each must give a clean error (or load as a valid model and run), never a sanitizer report.

The files are a point model, a DGCNN (geometric ops) and a sketch CNN (im2col, bit pools), cut at many
lengths, with flipped bytes (caught by the checksums) and with graphs and tensor tables that are
mutated and re-checksummed (so the structural checks themselves are exercised)."""

from __future__ import annotations

import json
import os
import struct
import subprocess
import zlib

import numpy as np
import pytest

import onebit
from libonebit_build import build
from onebit.export.bench import calibrated_model


@pytest.fixture(scope="module")
def asan_dir():
    return build("asan", ["onebit-fuzz-load"], "-DONEBIT_SANITIZE=ON", "-DONEBIT_EXAMPLES=OFF")


def _blob(header: dict, data: bytes) -> bytes:
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    return struct.pack("<Q", len(raw)) + raw + data


def _split(blob: bytes):
    (hlen,) = struct.unpack("<Q", blob[:8])
    return json.loads(blob[8:8 + hlen]), blob[8 + hlen:]


def _reseal(header: dict, graph: dict, data: bytes) -> bytes:
    """A file whose checksums match its (mutated) graph and data: only the structural checks can refuse it."""
    h = json.loads(json.dumps(header))
    g = json.dumps(graph, separators=(",", ":"))
    h["__metadata__"].update(graph=g, graph_crc32=str(zlib.crc32(g.encode())), data_crc32=str(zlib.crc32(data)))
    return _blob(h, data)


def _graph_mutations(rng, graph: dict, n: int):
    """Random edits of op fields: other values, other types, out-of-range numbers, other references."""
    values = list(graph["values"])
    pool = [None, True, -1, 0, 1, 2, 3, 7, 64, 1 << 20, 1 << 40, 10**30, -(1 << 62), 0.5, float("1e300"), "x",
            "input", [], [0], [1, 1], [0, 0], [3, 3], [-1, 2], {}, {"rule": "ema", "offsets": "official"},
            {"rule": "const", "value": 1e30}] + values[:6]
    for _ in range(n):
        g = json.loads(json.dumps(graph))
        for _ in range(1 + int(rng.integers(0, 3))):
            r = rng.random()
            if r < 0.6:
                op = g["ops"][int(rng.integers(0, len(g["ops"])))]
                key = list(op)[int(rng.integers(0, len(op)))]
                op[key] = pool[int(rng.integers(0, len(pool)))]
            elif r < 0.85:
                v = g["values"][values[int(rng.integers(0, len(values)))]]
                key = ["kind", "channels", "pooled", "rows", "mult", "hw"][int(rng.integers(0, 6))]
                v[key] = pool[int(rng.integers(0, len(pool)))]
            else:
                i, j = (int(k) for k in rng.integers(0, len(g["ops"]), 2))
                g["ops"][i], g["ops"][j] = g["ops"][j], g["ops"][i]
        yield g


def _header_mutations(rng, header: dict, n: int):
    names = [k for k in header if k != "__metadata__"]
    pool = [[0, 8], [-8, 0], [10**12, 10**12 + 8], [1 << 31], [1, 1 << 30], [1 << 30, 1 << 30, 1 << 30], "F16", "I32",
            "U8", None, [], [0], 3.5]
    for _ in range(n):
        h = json.loads(json.dumps(header))
        e = h[names[int(rng.integers(0, len(names)))]]
        e[["dtype", "shape", "data_offsets"][int(rng.integers(0, 3))]] = pool[int(rng.integers(0, len(pool)))]
        yield h


def test_sanitized_loader_fuzz(asan_dir, tmp_path):
    from test_export_sketch import calibrated_sketch

    sources = []
    for name, spec, kw in [("pointnet_deploy", "bipointnet", {}), ("dgcnn", "bipointnet", dict(k=8, width=0.25,
                                                                                               emb_dims=64))]:
        p = tmp_path / f"{name}.onebit"
        onebit.export(calibrated_model(name, spec, seed=5, points=64, **kw), p)
        sources.append(p)
    p = tmp_path / "sketch.onebit"
    onebit.export(calibrated_sketch("dab-fbin", True, seed=6, size=28, width=0.25), p)
    sources.append(p)
    rng = np.random.default_rng(0)
    files = []

    def add(blob: bytes):
        f = tmp_path / f"f{len(files):04d}.onebit"
        f.write_bytes(blob)
        files.append(f)

    for src in sources:
        blob = src.read_bytes()
        header, data = _split(blob)
        graph = json.loads(header["__metadata__"]["graph"])
        add(blob)
        for cut in sorted(set(rng.integers(0, len(blob), 40).tolist() + list(range(0, 16)))):
            add(blob[:cut])
        for _ in range(40):
            b = bytearray(blob)
            for pos in rng.integers(0, len(b), 1 + int(rng.integers(0, 3))):
                b[pos] = (b[pos] + int(rng.integers(1, 256))) % 256
            add(bytes(b))
        for g in _graph_mutations(rng, graph, 120):
            add(_reseal(header, g, data))
        for h in _header_mutations(rng, header, 30):
            add(_blob(h, data))
    assert len(files) >= 600
    env = dict(os.environ, ASAN_OPTIONS="detect_leaks=0:abort_on_error=0:halt_on_error=1",
               UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1", OMP_NUM_THREADS="2")
    outcomes = {"ok": 0, "error": 0}
    for i in range(0, len(files), 150):
        chunk = files[i:i + 150]
        r = subprocess.run([str(asan_dir / "onebit-fuzz-load"), *map(str, chunk)], capture_output=True, text=True,
                           timeout=600, env=env)
        assert "Sanitizer" not in r.stderr and "runtime error" not in r.stderr, r.stderr[-6000:]
        assert r.returncode == 0, r.stderr[-3000:]
        lines = r.stdout.splitlines()
        assert len(lines) == len(chunk), r.stdout[-2000:]
        for f, line in zip(chunk, lines):
            assert line == "ok" or (line.startswith("error: ") and (f.name in line or "onebit" in line)), (f, line)
            outcomes["ok" if line == "ok" else "error"] += 1
    assert outcomes["error"] > 400 and outcomes["ok"] >= 3, outcomes
