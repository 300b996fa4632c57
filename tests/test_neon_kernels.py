"""NEON kernels, kernel by kernel: tests/native/kernel_check.cpp cross-built for aarch64 and run under qemu-aarch64.

The harness checks every ISA path of the CPU it runs on against the portable kernels (and the FMA kernels against a
reference FMA chain) and prints a hash of every case's output per ISA. Built natively too, its x86 hashes must
equal the aarch64 ones: NEON = AVX-512 (the x86 engine's default path) and scalar = scalar on both hosts, bit for
bit. Skips, saying why, without the cross compiler (Debian: g++-aarch64-linux-gnu) or qemu-user.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
CSRC = REPO / "csrc"
HARNESS = REPO / "tests" / "native" / "kernel_check.cpp"
SOURCES = [HARNESS, CSRC / "kernels.cpp", CSRC / "kernels_neon.cpp"]
HEADERS = [CSRC / "kernels.h", CSRC / "kernels_neon.h"]
# the engine's flags (setup.py): no FMA contraction, which GCC does by default on aarch64
FLAGS = ["-std=c++17", "-O3", "-ffp-contract=off", "-fno-math-errno", f"-I{CSRC}"]
FMA_KERNELS = {"fgemm", "fbits", "flinear_small"}  # AVX-512 / NEON fuse; AVX2 / portable multiply, then add


def _build(cxx: str, extra: list[str], tag: str) -> Path:
    """Compile the harness (cached in the temp dir under a hash of the sources, flags and compiler)."""
    h = hashlib.sha256()
    for p in SOURCES + HEADERS:
        h.update(p.read_bytes())
    h.update(" ".join([cxx, *FLAGS, *extra]).encode())
    out = Path(tempfile.gettempdir()) / f"onebit-kernel-check-{tag}-{h.hexdigest()[:16]}"
    if not out.exists():
        tmp = out.with_name(f"{out.name}.{os.getpid()}")  # pytest-xdist workers may build at once
        subprocess.run([cxx, *FLAGS, *extra, *map(str, SOURCES), "-o", str(tmp)], check=True,
                       capture_output=True, text=True)
        tmp.replace(out)
    return out


def _run(cmd: list[str]) -> tuple[str, dict[tuple[str, str], str]]:
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    fails = [line for line in res.stdout.splitlines() if line.startswith("FAIL")]
    assert res.returncode == 0 and not fails, "\n".join(fails[:20]) or res.stderr
    best, cases = "", {}
    for line in res.stdout.splitlines():
        parts = line.split()
        if parts[0] == "BEST":
            best = parts[1]
        elif parts[0] == "CASE":
            cases[(parts[1], parts[2])] = parts[3]
    assert cases, res.stdout[-2000:]
    return best, cases


@pytest.fixture(scope="module")
def arm_run():
    cxx, qemu = shutil.which("aarch64-linux-gnu-g++"), shutil.which("qemu-aarch64")
    if cxx is None:
        pytest.skip("aarch64 cross compiler not found (Debian: apt-get install g++-aarch64-linux-gnu)")
    if qemu is None:
        pytest.skip("qemu-aarch64 not found (Debian: apt-get install qemu-user)")
    exe = _build(cxx, ["-static"], "aarch64")  # static: qemu needs no aarch64 sysroot
    return _run([qemu, str(exe)])


@pytest.fixture(scope="module")
def x86_run():
    import platform

    if platform.machine() not in ("x86_64", "AMD64"):
        pytest.skip(f"the x86 side of the comparison needs an x86-64 host (this is {platform.machine()})")
    cxx = shutil.which("g++") or shutil.which("c++")
    if cxx is None:
        pytest.skip("no native C++ compiler")
    return _run([str(_build(cxx, [], "x86"))])


def test_neon_kernels_match_portable_under_qemu(arm_run):
    best, cases = arm_run
    assert best == "neon"  # detect_isa() picks NEON on aarch64
    kernels = {name.split("/")[0] for name, isa in cases if isa == "neon"}
    assert kernels == {"pc_tile", "thr_tile", "thr_rows", "or_rows", "affine_bits", "pack_ge", "quant_rows",
                       "fgemm", "fbits", "flinear_small"}


def test_neon_kernels_give_the_x86_bits(arm_run, x86_run):
    _, arm = arm_run
    x86_best, x86 = x86_run
    compared = 0
    for (name, isa), h in arm.items():
        kernel = name.split("/")[0]
        if isa == "scalar":
            ref = x86.get((name, "scalar"))
        elif x86_best == "avx512":
            ref = x86.get((name, "avx512"))
        elif kernel in FMA_KERNELS:
            continue  # the AVX2 / portable float kernels do not fuse: nothing on this host rounds as NEON does
        else:
            ref = x86.get((name, "scalar"))
        if kernel == "flinear_small" and ref is None:
            continue  # float-output first layer: only AVX-512 / NEON have it
        assert ref is not None, (name, isa)
        assert h == ref, f"{name}: {isa} on aarch64 differs from x86 ({x86_best})"
        compared += 1
    assert compared >= len(arm) // 2
