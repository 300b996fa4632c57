"""Native kernels vs a NumPy reference, on every ISA path this CPU has (avx512 / avx2 / scalar)."""

from __future__ import annotations

import numpy as np
import pytest

from onebit.runtime import _engine as E
from onebit.runtime import pack_signs, resolve_isa, unpack_signs

ISAS = E.supported_isas()
SHAPES = [(1, 1, 1), (13, 37, 3), (7, 64, 64), (20, 100, 130), (6, 32, 128), (3, 5, 1000), (31, 70, 257)]


def _rand_bits(rng, m, k):
    b = rng.random((m, k)) < 0.5
    return b, pack_signs(np.where(b, 1.0, -1.0))


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("m,n,k", SHAPES)
def test_popcount_gemm_matches_numpy(isa, m, n, k):
    rng = np.random.default_rng(m * 1000 + n + k)
    xb, x = _rand_bits(rng, m, k)
    wb, w = _rand_bits(rng, n, k)
    xor_ref = (xb[:, None, :] != wb[None]).sum(-1)
    and_ref = (xb[:, None, :] & wb[None]).sum(-1)
    np.testing.assert_array_equal(E.popcount_gemm(x, w, False, isa), xor_ref)
    np.testing.assert_array_equal(E.popcount_gemm(x, w, True, isa), and_ref)
    # the XNOR dot of ±1 vectors is k − 2·popcount(x xor w)
    xs, ws = np.where(xb, 1, -1), np.where(wb, 1, -1)
    np.testing.assert_array_equal(k - 2 * E.popcount_gemm(x, w, False, isa).astype(np.int64), xs @ ws.T)


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("m,n,k", SHAPES)
def test_threshold_gemm_bits_and_or(isa, m, n, k):
    rng = np.random.default_rng(7 + m + n * k)
    xb, x = _rand_bits(rng, m, k)
    wb, w = _rand_bits(rng, n, k)
    pc = (xb[:, None, :] != wb[None]).sum(-1)
    p = rng.integers(-1, k + 1, n)
    flip = rng.integers(0, 2, n).astype(np.uint8)
    bits = (pc <= p) ^ flip.astype(bool)
    want = pack_signs(np.where(bits, 1.0, -1.0))
    np.testing.assert_array_equal(E.threshold_gemm(x, w, p, flip, False, isa), want)
    want_or = pack_signs(np.where(bits.any(0, keepdims=True), 1.0, -1.0))
    np.testing.assert_array_equal(E.threshold_gemm(x, w, p, flip, True, isa), want_or)


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("m,n,k", [(1024, 100, 128), (700, 64, 64), (333, 45, 200), (2000, 130, 256), (97, 33, 192)])
@pytest.mark.parametrize("threads", [1, 2])
def test_or_pooling_late_firing_channels(isa, m, n, k, threads):
    """OR pooling over many rows with thresholds most rows miss: channels turn on at scattered rows, so the
    early exit and the compaction of still-unset channels (AVX-512 short rows) are exercised at every stage."""
    rng = np.random.default_rng(m + 31 * n + k)
    xb, x = _rand_bits(rng, m, k)
    wb, w = _rand_bits(rng, n, k)
    pc = (xb[:, None, :] != wb[None]).sum(-1)
    flip = rng.integers(0, 2, n).astype(np.uint8)
    # per channel, a bound hit by about one row in m / 4 … one in 4·m (some channels never fire)
    q = rng.uniform(0.25 / m, 4.0 / m, n)
    lo = np.array([np.quantile(pc[:, j], q[j]) for j in range(n)]).astype(np.int64)
    hi = np.array([np.quantile(pc[:, j], 1 - q[j]) for j in range(n)]).astype(np.int64)
    p = np.where(flip.astype(bool), hi, lo)  # flipped: bit = pc > P, so a high bound fires rarely
    bits = (pc <= p) ^ flip.astype(bool)
    first = np.where(bits.any(0), bits.argmax(0), m)
    assert (first > 32).any() and (first < m).any() and (first == m).any()  # the stages all matter
    want = pack_signs(np.where(bits.any(0, keepdims=True), 1.0, -1.0))
    np.testing.assert_array_equal(E.threshold_gemm(x, w, p, flip, True, isa, threads), want)
    want_rows = pack_signs(np.where(bits, 1.0, -1.0))
    np.testing.assert_array_equal(E.threshold_gemm(x, w, p, flip, False, isa, threads), want_rows)


def test_pack_unpack_roundtrip_sign_zero_is_plus_one():
    x = np.array([[0.0, -0.0, -1e-9, 2.0] + [-1.0] * 62 + [0.5]], np.float32)
    b = pack_signs(x)
    assert b.shape == (1, 2) and b.dtype == np.uint64
    s = unpack_signs(b, x.shape[1])
    np.testing.assert_array_equal(s, np.where(x >= 0, 1.0, -1.0))  # sign(0) = sign(-0.0) = +1
    assert int(b[0, 1]) == 0b100  # channel 66 (the last) set, padding bits zero


def test_isa_selection(monkeypatch):
    assert resolve_isa("scalar") == "scalar"
    monkeypatch.setenv("ONEBIT_ISA", "scalar")
    assert resolve_isa(None) == "scalar"
    monkeypatch.setenv("ONEBIT_ISA", "sse9")
    with pytest.raises(ValueError, match="unknown ISA"):
        resolve_isa(None)
    with pytest.raises(ValueError, match="unknown ISA"):
        E.popcount_gemm(np.zeros((1, 1), np.uint64), np.zeros((1, 1), np.uint64), False, "neon")


def test_kernel_shape_errors():
    with pytest.raises(ValueError, match="same W"):
        E.popcount_gemm(np.zeros((2, 2), np.uint64), np.zeros((3, 1), np.uint64), False, "scalar")


def test_bench_gemm_runs():
    wall, cpu = E.bench_gemm(12, 64, 128, ISAS[-1], 3, 0.001, 1)
    assert 0 < wall < 1 and 0 <= cpu < 1
