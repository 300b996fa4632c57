"""Builds of the CMake project (libonebit, onebit-run, the C example, the fuzz driver) for the tests.

One build directory per configuration under ``build/pytest-<name>`` (git-ignored; ``ONEBIT_TEST_BUILD``
moves it), reused across runs: CMake rebuilds only what changed. A file lock keeps two pytest-xdist
workers from building the same directory at once. Without cmake or a C/C++ compiler the tests that need a
build are skipped, saying which tool is missing.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
ROOT = Path(os.environ.get("ONEBIT_TEST_BUILD", REPO / "build"))


def missing_tools() -> str | None:
    """The tool a build needs and this machine lacks, or None."""
    if not shutil.which("cmake"):
        return "cmake"
    if not (os.environ.get("CXX") or shutil.which("c++") or shutil.which("g++") or shutil.which("clang++")):
        return "a C++ compiler"
    if not (os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")):
        return "a C compiler"
    return None


def build(name: str, targets: list[str], *options: str, timeout: int = 900) -> Path:
    """Configure + build ``targets`` in ``build/pytest-<name>`` with CMake ``options``; returns the directory.
    Skips the calling test when cmake or a compiler is missing; fails with the build log on an error."""
    tool = missing_tools()
    if tool:
        pytest.skip(f"building libonebit needs {tool}, which is not installed")
    d = ROOT / f"pytest-{name}"
    d.mkdir(parents=True, exist_ok=True)
    gen = ["-G", "Ninja"] if shutil.which("ninja") else []
    with open(d / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            if not (d / "CMakeCache.txt").exists():
                r = subprocess.run(["cmake", "-S", str(REPO), "-B", str(d), *gen, "-DCMAKE_BUILD_TYPE=Release", *options],
                                   capture_output=True, text=True, timeout=timeout)
                if r.returncode:
                    shutil.rmtree(d / "CMakeFiles", ignore_errors=True)
                    (d / "CMakeCache.txt").unlink(missing_ok=True)
                    pytest.fail(f"cmake configure failed:\n{r.stdout[-4000:]}\n{r.stderr[-4000:]}")
            r = subprocess.run(["cmake", "--build", str(d), "--parallel", "2", "--target", *targets],
                               capture_output=True, text=True, timeout=timeout)
            if r.returncode:
                pytest.fail(f"cmake build failed:\n{r.stdout[-6000:]}\n{r.stderr[-4000:]}")
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    return d
