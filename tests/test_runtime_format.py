"""The .onebit container and graph: round trip, NumPy-reference forward, validation and fuzzing.

Everything here is torch-free: the file is written with ``onebit.runtime.format.write`` from a
hand-built graph, so the runtime is tested on its own.
"""

from __future__ import annotations

import json
import struct
import subprocess
import sys
import zlib

import numpy as np
import pytest

from onebit.export.fold import ema_offset, popcount_bounds, thresholds
from onebit.runtime import FormatError, load, pack_signs
from onebit.runtime.format import read, write


def _tiny(seed=0):
    """float 3→8 (bits) → xnor 8→70 (uint8 popcount bounds, packed flips) → xnor 70→16 + EMA-max OR pool → xnor 16→5."""
    rng = np.random.default_rng(seed)
    t = {
        "l1.weight": rng.normal(size=(8, 3)).astype(np.float32),
        "l1.scale": rng.normal(size=8).astype(np.float32),
        "l1.bias": rng.normal(size=8).astype(np.float32) * 0.3,
    }
    s2 = np.where(rng.random((70, 8)) < 0.5, 1.0, -1.0)
    tau, flip = thresholds(rng.normal(size=70).astype(np.float32), rng.normal(size=70).astype(np.float32),
                           -1.0, 1.0, 0.0, 8)
    p2, _ = popcount_bounds(tau, flip, 8)
    t.update({"l2.weight": pack_signs(s2), "l2.bound": (p2 + 1).astype(np.uint8),
              "l2.flip": np.packbits(flip, bitorder="little")})
    s3 = np.where(rng.random((16, 70)) < 0.5, 1.0, -1.0)
    t.update({"l3.weight": pack_signs(s3), "l3.scale": (rng.normal(size=16) * 0.2).astype(np.float32),
              "l3.bias": rng.normal(size=16).astype(np.float32)})
    s4 = np.where(rng.random((5, 16)) < 0.5, 1.0, -1.0)
    t.update({"l4.weight": pack_signs(s4), "l4.scale": rng.normal(size=5).astype(np.float32),
              "l4.bias": rng.normal(size=5).astype(np.float32)})
    values = {
        "input": {"kind": "float", "channels": 3, "pooled": False},
        "a": {"kind": "bits", "channels": 8, "pooled": False},
        "b": {"kind": "bits", "channels": 70, "pooled": False},
        "c": {"kind": "bits", "channels": 16, "pooled": True},
        "out": {"kind": "float", "channels": 5, "pooled": True},
    }
    ops = [
        {"op": "linear", "name": "l1", "input": "input", "output": "a", "in_features": 3, "out_features": 8,
         "product": "float", "weight": "l1.weight", "weight_format": "f32", "scale": "l1.scale",
         "bias": "l1.bias", "clamp": [None, None], "offset": {"rule": "none"}, "pool": "none"},
        {"op": "linear", "name": "l2", "input": "a", "output": "b", "in_features": 8, "out_features": 70,
         "product": "xnor", "weight": "l2.weight", "weight_format": "bits", "bound": "l2.bound",
         "flip": "l2.flip", "pool": "none"},
        {"op": "linear", "name": "l3", "input": "b", "output": "c", "in_features": 70, "out_features": 16,
         "product": "xnor", "weight": "l3.weight", "weight_format": "bits", "scale": "l3.scale",
         "bias": "l3.bias", "clamp": [None, None], "offset": {"rule": "ema", "offsets": "closed"}, "pool": "or"},
        {"op": "linear", "name": "l4", "input": "c", "output": "out", "in_features": 16, "out_features": 5,
         "product": "xnor", "weight": "l4.weight", "weight_format": "bits", "scale": "l4.scale",
         "bias": "l4.bias", "clamp": [-1.0, 1.0], "offset": {"rule": "none"}, "pool": "none"},
    ]
    graph = {"input": {"name": "input", "channels": 3}, "values": values, "ops": ops, "output": "out",
             "model": {"class": "tiny"}}
    ref = dict(s2=s2, s3=s3, s4=s4, tau=tau, flip=flip)
    return t, graph, ref


def _reference(t, ref, x):
    """NumPy forward of the tiny graph in float64 (no host FP32 GEMM in the oracle)."""
    outs = []
    for cloud in x:
        z1 = cloud.astype(np.float64) @ t["l1.weight"].T.astype(np.float64)
        a = np.where(t["l1.scale"] * z1 + t["l1.bias"] >= 0, 1.0, -1.0)
        d2 = a @ ref["s2"].T
        on = np.where(ref["flip"].astype(bool), d2 <= ref["tau"], d2 >= ref["tau"])
        b = np.where(on, 1.0, -1.0)
        d3 = (b @ ref["s3"].T).astype(np.float32)
        v3 = t["l3.scale"] * d3 + t["l3.bias"] - np.float32(ema_offset(len(cloud)))
        c = np.where((v3 >= 0).any(0), 1.0, -1.0)
        d4 = (c @ ref["s4"].T).astype(np.float32)
        outs.append(np.clip(t["l4.scale"] * d4 + t["l4.bias"], -1, 1))
    return np.stack(outs)


@pytest.fixture(scope="module")
def tiny_file(tmp_path_factory):
    t, graph, ref = _tiny()
    path = tmp_path_factory.mktemp("fmt") / "tiny.onebit"
    write(path, t, graph)
    return path, t, graph, ref


def test_roundtrip(tiny_file):
    path, t, graph, _ = tiny_file
    t2, g2 = read(path)
    assert g2 == graph
    assert set(t2) == set(t)
    for k in t:
        np.testing.assert_array_equal(t2[k], t[k])
        assert t2[k].dtype == np.asarray(t[k]).dtype


@pytest.mark.parametrize("isa", ["avx512", "avx2", "scalar"])
def test_forward_matches_numpy(tiny_file, isa):
    from onebit.runtime import supported_isas

    if isa not in supported_isas():
        pytest.skip(f"{isa} not supported on this CPU")
    path, t, _, ref = tiny_file
    rng = np.random.default_rng(1)
    for n in (1, 7, 100):  # EMA offset follows the actual point count
        x = rng.normal(size=(3, n, 3)).astype(np.float32)
        out = load(path, isa=isa).run(x, threads=2)
        np.testing.assert_allclose(out, _reference(t, ref, x), rtol=1e-5, atol=1e-5)


def test_debug_accumulators(tiny_file):
    path, t, _, ref = tiny_file
    x = np.random.default_rng(2).normal(size=(1, 20, 3)).astype(np.float32)
    m = load(path)
    out, dbg = m.run_debug(x)
    np.testing.assert_allclose(out, m.run(x), rtol=0, atol=0)
    a = np.where(t["l1.scale"] * (x[0] @ t["l1.weight"].T) + t["l1.bias"] >= 0, 1.0, -1.0)
    np.testing.assert_array_equal(dbg[0]["l2"]["acc"], a @ ref["s2"].T)
    assert dbg[0]["c" if "c" in dbg[0] else "l3"]["bits"].shape == (1, 1)


def test_batch_threads_and_single_cloud(tiny_file):
    path, *_ = tiny_file
    m = load(path)
    x = np.random.default_rng(3).normal(size=(5, 33, 3)).astype(np.float32)
    a = m.run(x, threads=1)
    np.testing.assert_array_equal(a, m.run(x, threads=2))
    np.testing.assert_array_equal(a[:1], m.run(x[0]))
    with pytest.raises(ValueError, match=r"expected points"):
        m.run(np.zeros((2, 5, 4), np.float32))
    with pytest.raises(ValueError, match="at least one point"):
        m.run(np.zeros((2, 0, 3), np.float32))


def test_fixed_point_count(tiny_file, tmp_path):
    path, *_ = tiny_file
    p = _rewrite(path, tmp_path / "fixed.onebit", mutate_graph=lambda g: g["input"].update(points=7))
    m = load(p)
    m.run(np.zeros((1, 7, 3), np.float32))
    with pytest.raises(ValueError, match="exactly 7 points"):
        m.run(np.zeros((1, 8, 3), np.float32))


def test_profile(tiny_file):
    path, *_ = tiny_file
    prof = load(path).profile(np.zeros((2, 50, 3), np.float32), repeats=2)
    assert [p[0] for p in prof] == ["l1", "l2", "l3", "l4"]
    assert all(us >= 0 for _, us in prof)


def _rewrite(path, out, mutate_graph=None, mutate_tensors=None):
    t, g = read(path)
    if mutate_graph:
        mutate_graph(g)
    if mutate_tensors:
        mutate_tensors(t)
    write(out, t, g)
    return out


def _loads_same_or_fails(path, good_out, x):
    try:
        m = load(path)
        out = m.run(x)
    except FormatError as e:
        assert str(path) in str(e)
        return "error"
    np.testing.assert_array_equal(out, good_out)  # an accepted file must be the same model
    return "same"


def test_fuzz_truncation(tiny_file, tmp_path):
    path, *_ = tiny_file
    blob = path.read_bytes()
    x = np.random.default_rng(4).normal(size=(1, 10, 3)).astype(np.float32)
    good = load(path).run(x)
    cuts = sorted(set(list(range(0, 64)) + list(range(0, len(blob), max(1, len(blob) // 150))) + [len(blob) - 1]))
    for cut in cuts:
        p = tmp_path / "cut.onebit"
        p.write_bytes(blob[:cut])
        with pytest.raises(FormatError) as e:
            load(p)
        assert str(p) in str(e.value)
    assert _loads_same_or_fails(path, good, x) == "same"


def test_fuzz_byte_flips(tiny_file, tmp_path):
    path, *_ = tiny_file
    blob = bytearray(path.read_bytes())
    x = np.random.default_rng(5).normal(size=(1, 10, 3)).astype(np.float32)
    good = load(path).run(x)
    rng = np.random.default_rng(6)
    outcomes = {"error": 0, "same": 0}
    for i in range(300):
        b = bytearray(blob)
        for _ in range(1 + i % 3):
            pos = int(rng.integers(0, len(b)))
            b[pos] = (b[pos] + int(rng.integers(1, 256))) % 256
        p = tmp_path / "flip.onebit"
        p.write_bytes(bytes(b))
        outcomes[_loads_same_or_fails(p, good, x)] += 1
    assert outcomes["error"] > 250  # checksums and structure catch (nearly) every flip


def test_fuzz_header_entries(tiny_file, tmp_path):
    """Corrupt the tensor index itself (with a valid JSON header): offsets, shapes, dtypes, names."""
    path, *_ = tiny_file
    blob = path.read_bytes()
    (hlen,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8:8 + hlen])
    data = blob[8 + hlen:]
    name = "l3.weight"

    def variant(fn):
        h = json.loads(json.dumps(header))
        fn(h)
        raw = json.dumps(h).encode()
        raw += b" " * (-len(raw) % 8)
        p = tmp_path / "hdr.onebit"
        p.write_bytes(struct.pack("<Q", len(raw)) + raw + data)
        return p

    muts = [
        lambda h: h[name].update(data_offsets=[0, 8]),
        lambda h: h[name].update(data_offsets=[10**12, 10**12 + 8]),
        lambda h: h[name].update(data_offsets=[-8, 0]),
        lambda h: h[name].update(shape=[16, 3]),
        lambda h: h[name].update(shape=[-1, 2]),
        lambda h: h[name].update(shape="16x2"),
        lambda h: h[name].update(dtype="F16"),
        lambda h: h[name].update(dtype="I32"),
        lambda h: h.update({"l3.weightX": h.pop(name)}),
        lambda h: h.pop(name),
        lambda h: h["__metadata__"].update(format="safetensors"),
        lambda h: h["__metadata__"].update(version="99"),
        lambda h: h["__metadata__"].pop("graph"),
        lambda h: h["__metadata__"].update(data_crc32="0"),
        lambda h: h.update(extra={"dtype": "U8", "shape": [1], "data_offsets": [0, 1]}),
    ]
    for fn in muts:
        p = variant(fn)
        with pytest.raises(FormatError) as e:
            load(p)
        assert str(p) in str(e.value)
    for junk in (b"", b"\x00" * 8, struct.pack("<Q", 2**63) + b"{}", struct.pack("<Q", 2) + b"[]",
                 struct.pack("<Q", 4) + b"\xff\xfe{}", b"PK\x03\x04" + b"\x00" * 40):
        p = tmp_path / "junk.onebit"
        p.write_bytes(junk)
        with pytest.raises(FormatError):
            load(p)
    with pytest.raises(FormatError, match="cannot read"):
        load(tmp_path / "missing.onebit")


def _graph_mutations():
    def op(i):
        return lambda g: g["ops"][i]

    return [
        ("unknown op", lambda g: g["ops"][0].update(op="conv9d")),
        ("missing name", lambda g: g["ops"][0].pop("name")),
        ("undeclared value", lambda g: g["ops"][1].update(input="nope")),
        ("read before computed", lambda g: g["ops"].reverse()),
        ("written twice", lambda g: g["ops"][2].update(output="b")),
        ("wrong in_features", lambda g: g["ops"][1].update(in_features=9)),
        ("bool features", lambda g: g["ops"][1].update(in_features=True)),
        ("bad product", lambda g: g["ops"][1].update(product="or")),
        ("float product on bits", lambda g: g["ops"][1].update(product="float")),
        ("bad pool", lambda g: g["ops"][2].update(pool="median")),
        ("pool flag", lambda g: g["ops"][2].update(pool="none")),
        ("bad weight_format", lambda g: g["ops"][1].update(weight_format="f16")),
        ("missing tensor", lambda g: g["ops"][1].update(bound="zzz")),
        ("tensor of wrong shape", lambda g: g["ops"][1].update(bound="l3.scale")),
        ("clamp", lambda g: g["ops"][3].update(clamp=[0])),
        ("clamp str", lambda g: g["ops"][3].update(clamp=["a", None])),
        ("offset", lambda g: g["ops"][2].update(offset={"rule": "ema", "offsets": "guess"})),
        ("offset const", lambda g: g["ops"][2].update(offset={"rule": "const"})),
        ("output", lambda g: g.update(output="b")),
        ("output missing", lambda g: g.update(output="zz")),
        ("no ops", lambda g: g.update(ops=[])),
        ("ops not list", lambda g: g.update(ops={"a": 1})),
        ("input channels", lambda g: g["input"].update(channels=4)),
        ("input name", lambda g: g["input"].update(name=3)),
        ("input points", lambda g: g["input"].update(points=0)),
        ("value kind", lambda g: g["values"]["b"].update(kind="int4")),
        ("value channels", lambda g: g["values"]["b"].update(channels=0)),
        ("value pooled", lambda g: g["values"]["c"].update(pooled=False)),
        ("graph list", lambda g: g.clear()),
        ("op not dict", lambda g: g["ops"].__setitem__(0, [1, 2])),
        ("bound on float output", lambda g: g["ops"][3].update(bound="l2.bound")),
    ]


@pytest.mark.parametrize("what,mut", _graph_mutations(), ids=[m[0] for m in _graph_mutations()])
def test_graph_validation(tiny_file, tmp_path, what, mut):
    path, *_ = tiny_file
    p = _rewrite(path, tmp_path / "g.onebit", mutate_graph=mut)
    with pytest.raises(FormatError) as e:
        load(p)
    assert str(p) in str(e.value)


def test_tensor_validation(tiny_file, tmp_path):
    path, *_ = tiny_file
    muts = [
        lambda t: t.update({"l2.weight": t["l2.weight"] | np.uint64(1 << 40)}),  # padding bits set
        lambda t: t.update({"l2.flip": t["l2.flip"] | np.uint8(0x80)}),  # padding bit of channel 71
        lambda t: t.update({"l2.flip": t["l2.flip"][:-1]}),
        lambda t: t.update({"l2.bound": t["l2.bound"].astype(np.int32)}),
        lambda t: t.update({"l2.bound": t["l2.bound"] + np.uint8(100)}),
        lambda t: t.update({"l3.scale": np.full(16, np.nan, np.float32)}),
        lambda t: t.update({"l1.weight": t["l1.weight"].astype(np.int32)}),
    ]
    for fn in muts:
        p = _rewrite(path, tmp_path / "t.onebit", mutate_tensors=fn)
        with pytest.raises(FormatError):
            load(p)


def test_checksums_and_crc_are_what_the_doc_says(tiny_file):
    path, *_ = tiny_file
    blob = path.read_bytes()
    (hlen,) = struct.unpack("<Q", blob[:8])
    meta = json.loads(blob[8:8 + hlen])["__metadata__"]
    assert meta["format"] == "onebit" and meta["version"] == "1"
    assert meta["data_crc32"] == str(zlib.crc32(blob[8 + hlen:]))
    assert hlen % 8 == 0


def test_runtime_does_not_import_torch(tiny_file):
    path, *_ = tiny_file
    code = ("import sys, numpy as np, onebit.runtime as rt\n"
            f"m = rt.load({str(path)!r})\n"
            "m.run(np.zeros((1, 4, 3), np.float32))\n"
            "assert 'torch' not in sys.modules, 'torch was imported'\n"
            "import onebit.cli.infer, onebit.cli.bench, onebit.cli.export\n"
            "assert 'torch' not in sys.modules, 'a CLI module imported torch'\n"
            "print('ok')\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "ok"


def test_engine_ema_offset_is_the_exporters():
    """libonebit's planner folds δ*(n) for the point count it sees: the same double as the exporter's."""
    from onebit.runtime import _engine

    for n in list(range(1, 2100)) + [4096, 10**5, 10**9]:
        assert _engine.ema_offset(n) == ema_offset(n), n
