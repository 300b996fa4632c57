"""libonebit outside Python: the CMake build, onebit-run, the C API (through ctypes, several threads on one
model) and the C example, against the Python runtime bit for bit (both are the same library; these tests
check that the CLI and the C API feed it the same inputs and hand back the same outputs)."""

from __future__ import annotations

import ctypes
import json
import subprocess
import threading

import numpy as np
import pytest

import onebit
from libonebit_build import REPO, build
from onebit.export.bench import calibrated_model
from onebit.runtime import load, supported_isas

TARGETS = ["onebit", "onebit-run", "classify"]


@pytest.fixture(scope="module")
def bdir():
    return build("release", TARGETS)


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """Exported models of every family the CLI is checked on: point MLP, XNOR-Net (K), DGCNN, a sketch CNN."""
    from test_export_sketch import calibrated_sketch

    d = tmp_path_factory.mktemp("libonebit")
    out = {}
    for name, spec, kw in [("pointnet_deploy", "bipointnet", {}), ("pointnet_deploy", "xnor", {}),
                           ("dgcnn", "bipointnet", dict(k=8, width=0.25, emb_dims=128))]:
        p = d / f"{name}-{spec}.onebit"
        onebit.export(calibrated_model(name, spec, seed=3, points=64, **kw), p)
        out[f"{name}-{spec}"] = p
    p = d / "sketch.onebit"
    onebit.export(calibrated_sketch("bnn", True, seed=6, size=28, width=0.25), p)
    out["sketch"] = p
    return out


def _run(bdir, *args):
    return subprocess.run([str(bdir / "onebit-run"), *map(str, args)], capture_output=True, text=True, timeout=120)


def _input(name, path, rng):
    if name == "sketch":
        return rng.random((3, 1, 28, 28)).astype(np.float32)
    return rng.normal(size=(3, 50, 3)).astype(np.float32)


@pytest.mark.parametrize("name", ["pointnet_deploy-bipointnet", "pointnet_deploy-xnor", "dgcnn-bipointnet", "sketch"])
def test_onebit_run_matches_python(bdir, models, name, tmp_path):
    path = models[name]
    x = _input(name, path, np.random.default_rng(1))
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "x64.npy", x.astype(np.float64))
    for isa in supported_isas():
        want = load(path, isa=isa).run(x)
        for threads, src in [(1, "x.npy"), (2, "x64.npy")]:
            r = _run(bdir, path, tmp_path / src, "--out", tmp_path / "y.npy", "--threads", threads, "--isa", isa)
            assert r.returncode == 0, r.stderr
            np.testing.assert_array_equal(np.load(tmp_path / "y.npy"), want)
    r = _run(bdir, path, tmp_path / "x.npy")  # no --out: JSON on stdout
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["argmax"] == load(path).run(x).argmax(-1).tolist()


def test_onebit_run_info(bdir, models):
    r = _run(bdir, "--info", models["pointnet_deploy-bipointnet"])
    assert r.returncode == 0, r.stderr
    info = json.loads(r.stdout)
    assert info["version"] == 1 and info["isa"] == load(models["pointnet_deploy-bipointnet"]).isa
    assert info["inputs"][0]["shape"] == [-1, -1, 3] and info["outputs"][0]["shape"] == [-1, 40]
    assert info["model"]["name"] == "pointnet_deploy"
    info = json.loads(_run(bdir, "--info", models["sketch"]).stdout)
    assert info["inputs"][0]["shape"][1:] == [1, 28, 28]


def test_onebit_run_errors_name_the_file(bdir, models, tmp_path):
    good = models["pointnet_deploy-bipointnet"]
    blob = good.read_bytes()
    (tmp_path / "cut.onebit").write_bytes(blob[: len(blob) // 2])
    (tmp_path / "junk.npy").write_bytes(b"not numpy")
    np.save(tmp_path / "x.npy", np.zeros((2, 10, 3), np.float32))
    np.save(tmp_path / "bad.npy", np.zeros((2, 10, 4), np.float32))
    np.save(tmp_path / "nan.npy", np.full((1, 10, 3), np.nan, np.float32))
    np.save(tmp_path / "int.npy", np.zeros((1, 10, 3), np.int32))
    cases = [((tmp_path / "missing.onebit", tmp_path / "x.npy"), "missing.onebit"),
             ((tmp_path / "cut.onebit", tmp_path / "x.npy"), "cut.onebit"),
             ((good, tmp_path / "junk.npy"), "junk.npy"),
             ((good, tmp_path / "int.npy"), "int.npy"),
             ((good, tmp_path / "bad.npy"), good.name),
             ((good, tmp_path / "nan.npy"), good.name),
             ((good, tmp_path / "x.npy", "--isa", "sse9"), good.name),
             (("--info", tmp_path / "cut.onebit"), "cut.onebit")]
    for args, named in cases:
        r = _run(bdir, *args)
        assert r.returncode == 1, (args, r.stderr)
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and named in lines[0], (args, r.stderr)
    assert _run(bdir, good).returncode == 2  # usage


def test_c_example_classifies_one_cloud(bdir, models, tmp_path):
    path = models["pointnet_deploy-bipointnet"]
    x = np.random.default_rng(2).normal(size=(200, 3)).astype(np.float32)
    x.astype("<f4").tofile(tmp_path / "cloud.f32")
    r = subprocess.run([str(bdir / "classify"), str(path), str(tmp_path / "cloud.f32")], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0, r.stderr
    head, logits = r.stdout.strip().splitlines()
    want = load(path).run(x)[0]
    assert head.startswith(f"class {int(want.argmax())} ")
    np.testing.assert_array_equal(np.array(logits.split(), np.float32), want)


def _capi(bdir):
    lib = ctypes.CDLL(str(bdir / "libonebit.so"))
    lib.onebit_load.restype = ctypes.c_void_p
    lib.onebit_load.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_size_t]
    lib.onebit_output_size.restype = ctypes.c_int64
    lib.onebit_output_size.argtypes = [ctypes.c_void_p, ctypes.POINTER(ctypes.c_int64), ctypes.c_int]
    lib.onebit_run.restype = ctypes.c_int
    lib.onebit_run.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.POINTER(ctypes.c_int64), ctypes.c_int,
                               ctypes.c_void_p, ctypes.c_int64, ctypes.c_int, ctypes.c_char_p, ctypes.c_size_t]
    lib.onebit_isa.restype = ctypes.c_char_p
    lib.onebit_isa.argtypes = [ctypes.c_void_p]
    lib.onebit_free.argtypes = [ctypes.c_void_p]
    lib.onebit_version.restype = ctypes.c_char_p
    return lib


def test_c_api_threads_on_one_model(bdir, models):
    lib = _capi(bdir)
    err = ctypes.create_string_buffer(512)
    assert lib.onebit_load(b"/nonexistent.onebit", err, 512) is None
    assert b"/nonexistent.onebit" in err.value
    path = models["dgcnn-bipointnet"]
    m = lib.onebit_load(str(path).encode(), err, 512)
    assert m, err.value
    try:
        assert lib.onebit_isa(m).decode() == load(path).isa
        assert lib.onebit_version().decode() == onebit.runtime._engine.version()
        rng = np.random.default_rng(3)
        xs = [rng.normal(size=(2, int(n), 3)).astype(np.float32) for n in rng.integers(20, 90, 12)]
        want = [load(path).run(x) for x in xs]
        got = [None] * len(xs)
        errors = []

        def work(i):
            x = xs[i]
            shape = (ctypes.c_int64 * 3)(*x.shape)
            n = lib.onebit_output_size(m, shape, 3)
            out = np.empty(n, np.float32)
            e = ctypes.create_string_buffer(512)
            if lib.onebit_run(m, x.ctypes.data, shape, 3, out.ctypes.data, n, 1 + i % 2, e, 512):
                errors.append(e.value)
            got[i] = out.reshape(want[i].shape)

        threads = [threading.Thread(target=work, args=(i,)) for i in range(len(xs))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors
        for g, w in zip(got, want):
            np.testing.assert_array_equal(g, w)
        # errors are return values with the message: a bad shape, a short output buffer
        shape = (ctypes.c_int64 * 3)(2, 50, 4)
        assert lib.onebit_output_size(m, shape, 3) == -1
        out = np.empty(8, np.float32)
        x = np.zeros((2, 50, 4), np.float32)
        assert lib.onebit_run(m, x.ctypes.data, shape, 3, out.ctypes.data, 8, 1, err, 512) == -1
        assert path.name.encode() in err.value
        shape = (ctypes.c_int64 * 3)(2, 50, 3)
        assert lib.onebit_run(m, x.ctypes.data, shape, 3, out.ctypes.data, 8, 1, err, 512) == -1
        assert b"output needs" in err.value
    finally:
        lib.onebit_free(m)


def test_shared_library_exports_the_c_api_only(bdir):
    r = subprocess.run(["nm", "-D", "--defined-only", str(bdir / "libonebit.so")], capture_output=True, text=True)
    if r.returncode:
        pytest.skip("nm is not available")
    names = {line.split()[-1] for line in r.stdout.splitlines() if line.split()[1:2] == ["T"]}
    assert names == {"onebit_load", "onebit_output_size", "onebit_run", "onebit_isa", "onebit_free", "onebit_version"}


def test_header_is_c99(bdir, tmp_path):
    import shutil

    cc = shutil.which("cc") or shutil.which("gcc")
    if not cc:
        pytest.skip("no C compiler")
    src = tmp_path / "t.c"
    src.write_text('#include "onebit.h"\nint main(void) { return onebit_version() == 0; }\n')
    r = subprocess.run([cc, "-std=c99", "-Wall", "-Werror", "-pedantic", f"-I{REPO / 'include'}", "-c",
                        str(src), "-o", str(tmp_path / "t.o")], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr

