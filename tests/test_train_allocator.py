"""Config ``allocator``: glibc malloc keeps freed memory for the next step (onebit.train.allocator)."""

from __future__ import annotations

import platform
import subprocess
import sys

import pytest

from onebit.train.allocator import resolve_allocator
from onebit.train.config import ConfigError, resolve

BASE = {"model": {"name": "pointnet"}, "data": {"name": "synthetic_shapes"}}


def test_allocator_modes_and_errors():
    assert resolve(BASE)["allocator"] == "auto"
    with pytest.raises(ConfigError, match="allocator"):
        resolve({**BASE, "allocator": "jemalloc"})
    with pytest.raises(ValueError, match="allocator"):
        resolve_allocator("fast", "cpu")
    assert resolve_allocator("system", "cpu") is False
    assert resolve_allocator("auto", "cuda") is False  # only host-side training changes malloc


@pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="glibc only")
def test_reuse_sets_glibc_malloc_in_a_fresh_process():
    # in a child: the setting is process-wide, so the test process keeps its malloc as it was
    code = (
        "import torch; from onebit.train.allocator import resolve_allocator;"
        "print(resolve_allocator('auto', torch.device('cpu')));"
        "x = torch.ones(64, 1024, 1024); del x; y = torch.zeros(64, 1024, 1024); print(float(y.sum()))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["True", "0.0"]  # reused memory is still handed out zeroed where torch asks for zeros
