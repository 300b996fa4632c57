"""onebit-run cross-built for aarch64 and run under qemu-aarch64 on exported models: the NEON engine's bits.

The CMake project (CMakeLists.txt, onebit-run) is built twice from the same sources, natively (x86-64) and with
cmake/aarch64-linux-gnu.cmake, together with tests/native/run_debug.cpp (every op's output and every binary
layer's integer accumulators of a run, as hashes). On PointNet, DGCNN, PointNet++ (SSG, MSG) and Sketch-A-Net
(XNOR and DAB) models:

* under qemu the default ISA is neon, ``--isa scalar`` still runs the portable kernels, and an x86 ISA is refused;
* onebit-run's predictions are identical to the x86 engine's and the logits within 1e-5 relative (in fact equal);
* op by op, NEON gives the x86 AVX-512 path's buffers and accumulators bit for bit, and the aarch64 portable
  path the x86 portable path's (on a host without AVX-512 the accumulators are compared, and the logits with the
  tolerance: only AVX-512 and NEON fuse the float layers' multiply-adds).

Skips, saying why, without the CMake project, cmake, the cross compiler (Debian: g++-aarch64-linux-gnu) or
qemu-user. The builds live in build/pytest-release and build/pytest-aarch64 (tests/libonebit_build.py).
"""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from libonebit_build import build

REPO = Path(__file__).resolve().parents[1]
TOOLCHAIN = REPO / "cmake" / "aarch64-linux-gnu.cmake"
DRIVER = REPO / "tests" / "native" / "run_debug.cpp"
SYSROOT = Path("/usr/aarch64-linux-gnu")  # Debian's cross root: qemu-aarch64 -L for the dynamic onebit-run

SMALL = {
    "dgcnn": dict(k=8, width=0.25, emb_dims=128),
    "pointnet2_ssg": dict(npoints=(48, 12), width=0.25),
    "pointnet2_msg": dict(npoints=(32, 8), width=0.125, max_nsample=24),
}
MODELS = ["pointnet_deploy", "dgcnn", "pointnet2_ssg", "pointnet2_msg", "sketch_bnn", "sketch_dab-fbin"]


def _run(cmd, **kw):
    res = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, **kw)
    if res.returncode != 0:
        raise AssertionError(f"{' '.join(map(str, cmd))} failed ({res.returncode}):\n{(res.stdout + res.stderr)[-4000:]}")
    return res


def _with_driver(d: Path, cxx: str, link_args: list[str]) -> Path:
    """run_debug beside onebit-run in build dir d, linked with its libonebit.a (rebuilt when either is newer)."""
    lib, exe = d / "libonebit.a", d / "run_debug"
    if not exe.exists() or exe.stat().st_mtime < max(lib.stat().st_mtime, DRIVER.stat().st_mtime):
        tmp = d / f"run_debug.{os.getpid()}"
        _run([cxx, "-std=c++17", "-O2", "-fopenmp", f"-I{REPO / 'csrc'}", f"-I{REPO / 'tools'}",
              f"-I{REPO / 'include'}", DRIVER, lib, *link_args, "-o", tmp])
        tmp.replace(exe)
    return d


@pytest.fixture(scope="module")
def builds():
    if not (REPO / "CMakeLists.txt").exists() or not (REPO / "tools" / "onebit_run.cpp").exists():
        pytest.skip("the libonebit CMake project (CMakeLists.txt, tools/onebit_run.cpp) is not in this tree")
    if platform.machine() not in ("x86_64", "AMD64"):
        pytest.skip(f"the comparison runs the x86-64 engine natively (this host is {platform.machine()})")
    missing = [(tool, why) for tool, why in [
        ("cmake", "cmake"), ("aarch64-linux-gnu-g++", "the aarch64 cross compiler (apt-get install g++-aarch64-linux-gnu)"),
        ("qemu-aarch64", "qemu-aarch64 (apt-get install qemu-user)"), ("g++", "a native C++ compiler")]
        if shutil.which(tool) is None]
    if missing:
        pytest.skip(f"{missing[0][1]} not found")
    if not SYSROOT.is_dir():
        pytest.skip(f"no aarch64 libraries at {SYSROOT} (Debian's libc6-arm64-cross, pulled in by the cross compiler)")
    # the native build of tests/test_libonebit.py, and a cross build beside it (build/pytest-*)
    x86 = _with_driver(build("release", ["onebit-run"]), "g++", [])
    arm = _with_driver(build("aarch64", ["onebit-run"], f"-DCMAKE_TOOLCHAIN_FILE={TOOLCHAIN}", "-DONEBIT_EXAMPLES=OFF"),
                       "aarch64-linux-gnu-g++", ["-static"])  # static: qemu needs no sysroot for it
    return x86, arm


def _env():
    env = dict(os.environ)
    env.pop("ONEBIT_ISA", None)
    env["OMP_NUM_THREADS"] = "1"
    return env


def _qemu(exe: Path, *args):
    return ["qemu-aarch64", "-L", SYSROOT, exe, *args]


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """The exported models and their inputs (2 clouds of 96 points, or 2 sketches of 64 x 64)."""
    import torch

    import onebit
    from onebit.export.bench import calibrated_model

    d = tmp_path_factory.mktemp("neon_models")
    torch.manual_seed(0)
    for name in MODELS:
        if name.startswith("sketch_"):
            preset = name.split("_", 1)[1]
            model = calibrated_model("sketch_a_net", preset, num_classes=6, seed=1, input_size=64, width=0.25)
            x = torch.rand(2, 1, 64, 64)
        else:
            model = calibrated_model(name, "bipointnet", seed=1, points=96, **SMALL.get(name, {}))
            x = torch.randn(2, 96, 3)
        onebit.export(model, d / f"{name}.onebit")
        np.save(d / f"{name}.npy", x.numpy())
    return d


def _debug(cmd) -> tuple[str, np.ndarray, dict]:
    """(isa, outputs, {(cloud, op): (buffer fields, accumulator fields)}) of one run_debug run."""
    lines = _run(cmd, env=_env(), timeout=600).stdout.splitlines()
    isa = lines[0].split()[1]
    out = np.array([float(x.split()[2]) for x in lines if x.startswith("OUT ")], np.float64)
    ops = {}
    for x in lines:
        if x.startswith("OP "):
            _, b, name, kind, rows, cols, h, arows, acols, ah = x.split()
            ops[(int(b), name)] = ((kind, rows, cols, h), (arows, acols, ah))
    return isa, out, ops


def test_neon_is_the_default_and_scalar_still_runs(builds, models):
    _, arm = builds
    info = _run(_qemu(arm / "onebit-run", "--info", models / "pointnet_deploy.onebit"), env=_env()).stdout
    assert '"isa": "neon"' in info
    x = models / "pointnet_deploy.npy"
    for isa in ("scalar", "neon"):
        _run(_qemu(arm / "onebit-run", models / "pointnet_deploy.onebit", x, "--isa", isa), env=_env())
    res = subprocess.run([str(c) for c in _qemu(arm / "onebit-run", models / "pointnet_deploy.onebit", x, "--isa",
                                                 "avx512")], capture_output=True, text=True, env=_env())
    assert res.returncode == 1 and "not supported" in res.stderr and len(res.stderr.splitlines()) == 1


@pytest.mark.parametrize("name", MODELS)
def test_onebit_run_under_qemu_matches_x86(name, builds, models):
    x86, arm = builds
    model, x = models / f"{name}.onebit", models / f"{name}.npy"
    # the CLI: predictions identical, logits within 1e-5 relative
    _run([x86 / "onebit-run", model, x, "--out", models / f"{name}.x86.npy"], env=_env())
    _run(_qemu(arm / "onebit-run", model, x, "--out", models / f"{name}.arm.npy", "--threads", "2"), env=_env())
    want, got = np.load(models / f"{name}.x86.npy"), np.load(models / f"{name}.arm.npy")
    assert got.shape == want.shape
    np.testing.assert_array_equal(got.argmax(-1), want.argmax(-1))
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5 * max(1.0, float(np.abs(want).max())))
    # op by op: NEON against the best x86 path, scalar against scalar
    isa_arm, out_arm, ops_arm = _debug(_qemu(arm / "run_debug", model, x, ""))
    assert isa_arm == "neon"
    isa_x86, out_x86, ops_x86 = _debug([x86 / "run_debug", model, x, ""])
    assert ops_arm.keys() == ops_x86.keys()
    assert any(int(a[1][0]) > 0 for a in ops_arm.values()), "no binary layer with accumulators"
    exact = isa_x86 == "avx512"
    for key, (buf, acc) in ops_arm.items():
        assert acc == ops_x86[key][1], f"accumulators of {key} differ (neon vs {isa_x86})"
        if exact:
            assert buf == ops_x86[key][0], f"output buffer of {key} differs (neon vs avx512)"
    if exact:
        np.testing.assert_array_equal(out_arm, out_x86)
        np.testing.assert_array_equal(got, want)  # the CLI's default path on this host is AVX-512
    _, out_s_arm, ops_s_arm = _debug(_qemu(arm / "run_debug", model, x, "scalar"))
    _, out_s_x86, ops_s_x86 = _debug([x86 / "run_debug", model, x, "scalar"])
    assert ops_s_arm == ops_s_x86
    np.testing.assert_array_equal(out_s_arm, out_s_x86)


def test_pi_table4_script(builds, tmp_path):
    """benchmarks/pi_table4.py end to end on small clouds: export, then time with the x86 and (qemu) aarch64 CLIs."""
    import importlib.util
    import json

    x86, arm = builds
    spec = importlib.util.spec_from_file_location("pi_table4", REPO / "benchmarks" / "pi_table4.py")
    pi = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(pi)
    d = tmp_path / "pi"
    assert pi.main(["export", "--out", str(d), "--points", "128", "--batch", "3"]) == 0
    for exe, wrapper, isa in ((x86 / "onebit-run", "", None), (arm / "onebit-run", f"qemu-aarch64 -L {SYSROOT}", "neon")):
        assert pi.main(["time", "--models", str(d), "--onebit-run", str(exe), "--wrapper", wrapper,
                        "--repeats", "1"]) == 0
        res = json.loads((d / "results.json").read_text())
        assert [r["variant"][:3] for r in res["rows"]] == ["(a)", "(b)", "(c)", "(d)", "(e)", "(f)"]
        assert all(r["bytes"] > 0 and r["ms_per_cloud"] >= 0 for r in res["rows"])
        assert isa is None or all(r["isa"] == isa for r in res["rows"])
        assert res["rows"][0]["bytes"] > 10 * res["rows"][4]["bytes"]  # FP32 vs all-binary storage
