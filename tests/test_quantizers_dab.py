"""Tests of DAB-Net's two-level binarizer (onebit.quantizers.dab) against brute force and the paper."""
import itertools
import math
import zlib

import numpy as np
import pytest
import torch

from onebit import quantizers as Q
from onebit.quantizers.dab import center_and_clamp_, dab_fit, dab_stats

torch.set_num_threads(1)


def _draw(dist, shape, rng):
    if dist == "normal":
        return rng.normal(size=shape)
    if dist == "uniform":
        return rng.uniform(-1, 1, size=shape)
    if dist == "lognormal":  # skewed
        return rng.lognormal(0.0, 1.0, size=shape) - 1.0
    if dist == "student_t":  # heavy-tailed
        return rng.standard_t(2.0, size=shape)
    if dist == "bimodal":
        return rng.normal(size=shape) * 0.2 + rng.choice([-1.5, 0.7], size=shape)
    raise ValueError(dist)


def _brute_min_sse(row):
    """min over every split of the sorted values of the two-group SSE, computed directly in float64."""
    s = np.sort(np.asarray(row, dtype=np.float64))
    best = np.sum((s - s.mean()) ** 2)  # one level (only optimal for < 2 distinct values)
    for i in range(1, len(s)):
        lo, hi = s[:i], s[i:]
        best = min(best, np.sum((lo - lo.mean()) ** 2) + np.sum((hi - hi.mean()) ** 2))
    return best


def _sse(w, y):
    d = (w - y).reshape(w.shape[0], -1).double()
    return (d * d).sum(1)


SHAPES = {"conv1d": (5, 3, 5), "conv2d": (4, 2, 3, 3), "linear": (6, 17)}


@pytest.mark.parametrize("dist", ["normal", "uniform", "lognormal", "student_t", "bimodal"])
@pytest.mark.parametrize("kind", list(SHAPES))
def test_dab_equals_brute_force_optimum(dist, kind):
    rng = np.random.default_rng(zlib.crc32(f"{dist}-{kind}".encode()))
    w = torch.from_numpy(_draw(dist, SHAPES[kind], rng))
    y = Q.get("dab")(w)
    ours = _sse(w, y)
    brute = torch.tensor([_brute_min_sse(r) for r in w.reshape(w.shape[0], -1).numpy()], dtype=torch.float64)
    torch.testing.assert_close(ours, brute, rtol=1e-12, atol=1e-12)
    st = dab_stats(w)
    w2, y2 = w.reshape(w.shape[0], -1), y.reshape(w.shape[0], -1)
    for r in range(w.shape[0]):
        levels = y2[r].unique()
        assert len(levels) == 2  # exactly two levels (continuous data)
        hi = w2[r] >= w2[r][y2[r] == levels[1]].min()
        assert int(hi.sum()) == int(st["K"][r])
        torch.testing.assert_close(st["alpha"][r], w2[r][hi].mean())  # signed group means
        torch.testing.assert_close(st["beta"][r], w2[r][~hi].mean())
        assert st["alpha"][r] > st["beta"][r]
        assert (w2[r][hi].min() > w2[r][~hi].max())  # the α group is the top-K set


@pytest.mark.parametrize("n", [2, 3, 5, 8, 10])
def test_dab_beats_every_partition_not_only_sorted_splits(n):
    """Enumerate all 2^n − 2 two-group partitions: the optimum is a sorted split (both sort orders)."""
    rng = np.random.default_rng(n)
    for _ in range(3):
        row = rng.standard_t(3.0, size=n)
        best = math.inf
        for bits in itertools.product([0, 1], repeat=n):
            e = np.array(bits, dtype=bool)
            if e.all() or not e.any():
                continue
            best = min(best, np.sum((row[e] - row[e].mean()) ** 2) + np.sum((row[~e] - row[~e].mean()) ** 2))
        w = torch.from_numpy(row).unsqueeze(0)
        assert float(_sse(w, Q.get("dab")(w))[0]) == pytest.approx(best, rel=1e-12, abs=1e-14)


def test_dab_float32_large_filters_exact():
    """ResNet-sized float32 filters (n = 4608): float64 scores pick the exact optimum."""
    rng = np.random.default_rng(7)
    w = torch.from_numpy(_draw("lognormal", (3, 512, 3, 3), rng)).float()
    ours = _sse(w.double(), Q.get("dab")(w).double())
    w64 = w.double().reshape(3, -1)
    for r in range(3):
        brute = _brute_min_sse(w64[r].numpy())
        assert float(ours[r]) <= brute * (1 + 1e-6)


# ---------------------------------------------------------------- edge cases
def test_single_value_filter_n1():
    w = torch.tensor([[3.0], [-2.0], [0.0]])
    y = Q.get("dab")(w)
    torch.testing.assert_close(y, w)
    st = dab_stats(w)
    assert st["K"].tolist() == [1, 1, 1]
    assert st["alpha"].tolist() == st["beta"].tolist() == [3.0, -2.0, 0.0]


def test_constant_and_zero_filters_are_one_level():
    w = torch.stack([torch.full((2, 3, 3), 0.7), torch.full((2, 3, 3), -0.2), torch.zeros(2, 3, 3)])
    q = Q.get("dab")
    torch.testing.assert_close(q(w), w)
    st = dab_stats(w)
    assert st["K"].tolist() == [18, 18, 18]
    torch.testing.assert_close(st["alpha"], st["beta"])
    signs, a, b = q.factorize(w)
    assert (signs == 1).all() and (a == 0).all()
    torch.testing.assert_close(b, torch.tensor([0.7, -0.2, 0.0]))


def test_ties_never_split_and_exact():
    w = torch.tensor([[0.0, 0.0, 0.0, 1.0, 1.0], [1.0, 1.0, 2.0, 2.0, 2.0], [2.0, 5.0, 2.0, 1.0, 1.0]])
    y = Q.get("dab")(w)
    torch.testing.assert_close(y[0], w[0])
    torch.testing.assert_close(y[1], w[1])
    for r in range(3):
        for v in w[r].unique():  # equal weights always get the same level
            assert len(y[r][w[r] == v].unique()) == 1
        assert float(_sse(w[r:r + 1], y[r:r + 1])[0]) == pytest.approx(_brute_min_sse(w[r].numpy()))


def test_ties_kept_together_even_when_rounding_favours_a_tied_split():
    # float64 prefix sums of values near 1e16 round; the unconstrained argmax lands between two
    # equal values here, and the fit must fall back to the best split between distinct values
    w = torch.tensor([[1e16, 1e16, 1e16 + 2, 1e16 + 2, 1e16, 1e16]], dtype=torch.float64)
    fit = dab_fit(w)
    assert fit.mask.tolist() == [[False, False, True, True, False, False]]
    assert int(fit.k[0]) == 2


def test_group_abs_means_for_theorem3():
    w = torch.tensor([[-3.0, -1.0, 0.5, 2.0, 4.0, -0.2], [1.0, 2.0, 3.0, 4.0, 5.0, 100.0]])
    fit = dab_fit(w)
    for r in range(2):
        e = fit.mask[r]
        assert float(fit.l1_hi[r]) == pytest.approx(float(w[r][e].abs().mean()))
        assert float(fit.l1_lo[r]) == pytest.approx(float(w[r][~e].abs().mean()))
    one = dab_fit(torch.tensor([[-2.0, -2.0]]))
    assert float(one.l1_hi[0]) == 2.0 and float(one.l1_lo[0]) == 0.0


def test_balanced_plus_minus_c_is_exact():
    w = torch.tensor([[0.3, -0.3, -0.3, 0.3, 0.3, -0.3], [1.0, 1.0, -1.0, -1.0, 1.0, -1.0]])
    y = Q.get("dab")(w)
    torch.testing.assert_close(y, w)
    assert dab_stats(w)["K"].tolist() == [3, 3]


def test_group_with_zero_mean_gives_a_zero_level_not_a_third_value():
    w = torch.tensor([[-1.0, 1.0, 10.0]])  # optimal split {-1, 1} | {10}: β = 0
    y = Q.get("dab")(w)
    assert y.tolist() == [[0.0, 0.0, 10.0]]
    signs, a, b = Q.get("dab").factorize(w)
    assert signs.tolist() == [[-1.0, -1.0, 1.0]]
    torch.testing.assert_close(a * signs + b, y)


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite_weights_name_the_layer(bad):
    w = torch.randn(2, 4)
    w[1, 2] = bad
    with pytest.raises(ValueError, match=r"'blocks\.2\.conv'.*NaN/inf|NaN/inf.*'blocks\.2\.conv'"):
        Q.get("dab", layer_name="blocks.2.conv")(w)
    q = Q.get("dab")
    q.layer_name = "head"
    with pytest.raises(ValueError, match="head"):
        q(w)
    with pytest.raises(ValueError, match="dab_act"):
        Q.get("dab_act")(w)


def test_bad_options():
    with pytest.raises(ValueError, match="backward"):
        Q.get("dab", backward="magic")
    with pytest.raises(ValueError, match="variant"):
        Q.get("dab", variant="v2")


def test_factorize_matches_forward():
    w = torch.randn(8, 4, 3, 3, generator=torch.Generator().manual_seed(2))
    q = Q.get("dab")
    y = q(w)
    signs, a, b = q.factorize(w)
    assert set(signs.unique().tolist()) == {-1.0, 1.0}
    torch.testing.assert_close(a.view(-1, 1, 1, 1) * signs + b.view(-1, 1, 1, 1), y)
    assert (a >= 0).all()  # α is the upper level
    # on a centred symmetric filter the signs are sign(w) away from 0 for the bulk of entries
    assert (signs == Q.sign(w)).float().mean() > 0.8


# ---------------------------------------------------------------- backward
def _theorem3_reference(w2, literal=False):
    """Per-entry loop: 1/K + (‖T_k‖₁/K)·1(|w|<=1) on the α group, ±1/(n−K) + (‖W−T_k‖₁/(n−K))·1(|w|<=1)."""
    fit = dab_fit(w2)
    m = torch.zeros_like(w2)
    n = w2.shape[1]
    for r in range(w2.shape[0]):
        e = fit.mask[r]
        k = int(e.sum())
        l1_hi = float(w2[r][e].abs().sum()) / k
        l1_lo = float(w2[r][~e].abs().sum()) / (n - k) if k < n else 0.0
        for i in range(n):
            ste = 1.0 if abs(float(w2[r, i])) <= 1 else 0.0
            if e[i]:
                m[r, i] = 1.0 / k + l1_hi * ste
            else:
                first = (-1.0 if (literal and w2[r, i] < 0) else 1.0) / (n - k)
                m[r, i] = first + l1_lo * ste
    return m


@pytest.mark.parametrize("outlier", [True, False])  # False: every |w| <= 1, the fast path
@pytest.mark.parametrize("literal", [False, True])
def test_theorem3_backward(literal, outlier):
    w = torch.randn(3, 2, 3, generator=torch.Generator().manual_seed(9), dtype=torch.float64) * 0.3
    if outlier:
        w[0, 0, 0] = 1.7  # outside the STE window
    else:
        assert w.abs().max() <= 1
    g = torch.randn(3, 2, 3, generator=torch.Generator().manual_seed(10), dtype=torch.float64)
    wr = w.clone().requires_grad_(True)
    Q.get("dab", backward="thm3_literal" if literal else "thm3")(wr).backward(g)
    ref = _theorem3_reference(w.reshape(3, -1), literal=literal).reshape(w.shape) * g
    torch.testing.assert_close(wr.grad, ref)
    if not literal:
        wr.grad = None
        Q.get("dab")(wr).backward(g)  # thm3 is the default
        torch.testing.assert_close(wr.grad, ref)


def test_jacobian_backward_matches_finite_differences():
    rng = np.random.default_rng(11)
    w = torch.from_numpy(rng.normal(size=(3, 7)))
    c = torch.from_numpy(rng.normal(size=(3, 7)))
    q = Q.get("dab", backward="jacobian")
    wr = w.clone().requires_grad_(True)
    (q(wr) * c).sum().backward()
    mask = dab_fit(w).mask
    eps = 1e-6
    num = torch.zeros_like(w)
    for r in range(3):
        for i in range(7):
            d = torch.zeros_like(w)
            d[r, i] = eps
            assert torch.equal(dab_fit(w + d).mask, mask) and torch.equal(dab_fit(w - d).mask, mask)
            num[r, i] = ((q(w + d) * c).sum() - (q(w - d) * c).sum()) / (2 * eps)
    torch.testing.assert_close(wr.grad, num, rtol=1e-6, atol=1e-8)
    # and it is "mean of g over the group"
    for r in range(3):
        e = mask[r]
        torch.testing.assert_close(wr.grad[r][e], c[r][e].mean().expand(int(e.sum())))


def test_ste_backward():
    w = torch.tensor([[-1.5, -0.5, 0.2, 1.0, 3.0]], requires_grad=True)
    Q.get("dab", backward="ste")(w).sum().backward()
    assert w.grad.tolist() == [[0.0, 1.0, 1.0, 1.0, 0.0]]
    w = torch.tensor([[-1.0, -0.5, 0.2, 1.0]], requires_grad=True)  # all inside: g passes unchanged
    Q.get("dab", backward="ste")(w).backward(torch.tensor([[1.0, 2.0, 3.0, 4.0]]))
    assert w.grad.tolist() == [[1.0, 2.0, 3.0, 4.0]]


# ---------------------------------------------------------------- official variant
def test_official_variant_reproduces_documented_quirks():
    q = Q.get("dab", variant="official")
    assert q.backward == "official"
    assert q(torch.tensor([[2.0, 2.0, 2.0]])).tolist() == [[-2.0, -2.0, -2.0]]  # constant c>0 -> -|c|
    assert q(torch.tensor([[1.0, 1.0, -1.0, -1.0]])).tolist() == [[-1.0] * 4]  # balanced ±1 -> all -1
    assert q(torch.tensor([[3.0]])).tolist() == [[-3.0]]  # n = 1 -> -|w|
    assert Q.get("dab")(torch.tensor([[2.0, 2.0, 2.0]])).tolist() == [[2.0, 2.0, 2.0]]  # paper is exact
    # ±mean|x| levels are worse than the optimum on skewed filters
    w = torch.from_numpy(np.random.default_rng(3).lognormal(size=(16, 27))).float()
    assert (_sse(w, q(w)) >= _sse(w, Q.get("dab")(w)) - 1e-5).all()
    assert _sse(w, q(w)).sum() > 1.5 * _sse(w, Q.get("dab")(w)).sum()
    s, a, b = q.factorize(w)
    torch.testing.assert_close(a.view(-1, 1) * s + b.view(-1, 1), q(w))


def test_official_backward_multiplier():
    w = torch.tensor([[[0.9, -0.2], [0.4, -1.0]]], requires_grad=True)  # C_out 1, C_in 2, n = 4
    q = Q.get("dab", variant="official")
    q(w).sum().backward()
    fit = q.fit(w)
    u, al, be, cnt = fit.mask[0], float(fit.alpha[0]), float(fit.beta[0]), int(fit.k[0])
    wf = w.detach().reshape(-1)
    ref = []
    for i in range(4):
        ste = 1.0 if abs(float(wf[i])) < 1 else 0.0  # strict
        ref.append((al * ste + 1 / cnt) if u[i] else (abs(be) * ste + 1 / (4 - cnt)))
    torch.testing.assert_close(w.grad.reshape(-1), torch.tensor(ref) * (1 - 1 / 2))
    w1 = torch.randn(3, 1, 3, 3, requires_grad=True)  # C = 1: the official factor (1 - 1/C) = 0
    q(w1).sum().backward()
    assert (w1.grad == 0).all()


# ---------------------------------------------------------------- preprocessing, stats, activations
def test_center_and_clamp_modes():
    w = torch.randn(4, 3, 2, 2, generator=torch.Generator().manual_seed(4)) * 0.1
    w0 = w.clone()
    out = center_and_clamp_(w, mode="filter")
    assert out.data_ptr() == w.data_ptr()
    torch.testing.assert_close(w.reshape(4, -1).mean(1), torch.zeros(4), atol=1e-7, rtol=0)
    torch.testing.assert_close(w, w0 - w0.reshape(4, -1).mean(1).view(-1, 1, 1, 1))
    w = w0.clone()
    center_and_clamp_(w, mode="channel")
    torch.testing.assert_close(w.mean(1), torch.zeros(4, 2, 2), atol=1e-7, rtol=0)
    big = torch.tensor([[5.0, -3.0, 0.5, 0.1]])
    center_and_clamp_(big)
    assert big.max() <= 1 and big.min() >= -1 and big.tolist()[0][0] == 1.0
    p = torch.nn.Parameter(torch.randn(3, 4))
    center_and_clamp_(p)  # works on a Parameter (no_grad inside)
    with pytest.raises(ValueError, match="mode"):
        center_and_clamp_(torch.randn(2, 2), mode="layer")
    with pytest.raises(ValueError, match="dims"):
        center_and_clamp_(torch.randn(3), mode="channel")


def test_dab_stats_keys():
    w = torch.randn(5, 3, 3, 3)
    st = dab_stats(w)
    assert set(st) >= {"K", "alpha", "beta"} and st["K"].dtype == torch.int64
    assert ((st["K"] >= 1) & (st["K"] <= 27)).all()
    torch.testing.assert_close(st["sse"].double(), _sse(w, Q.get("dab")(w)), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("per", ["sample", "row"])
def test_dab_act_two_levels_exact_and_ste(per):
    x = torch.from_numpy(np.random.default_rng(5).lognormal(size=(3, 4, 6)) - 1.0).requires_grad_(True)
    y = Q.get("dab_act", per=per)(x)
    rows = x.detach().reshape(3, -1) if per == "sample" else x.detach().reshape(-1, 6)
    yr = y.detach().reshape(rows.shape)
    for r in range(rows.shape[0]):
        assert len(yr[r].unique()) == 2
        assert float(((rows[r] - yr[r]) ** 2).sum()) == pytest.approx(_brute_min_sse(rows[r].numpy()), rel=1e-12)
    y.sum().backward()
    torch.testing.assert_close(x.grad, (x.detach().abs() <= 1).double())
    with pytest.raises(ValueError, match="per"):
        Q.get("dab_act", per="channel")


# ---------------------------------------------------------------- property test (ties, duplicates)
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


@settings(max_examples=150, deadline=None)
@given(st.lists(st.integers(-4, 4), min_size=1, max_size=12))
def test_dab_property_small_integer_filters(values):
    """Small integer filters (many ties, constants, ±c): optimal SSE, ≤ 2 levels, ties share a level."""
    w = torch.tensor([values], dtype=torch.float64)
    y = Q.get("dab")(w)
    assert float(_sse(w, y)[0]) == pytest.approx(_brute_min_sse(values), abs=1e-9)
    assert len(y.unique()) <= 2
    for v in w.unique():
        assert len(y[w == v].unique()) == 1
    signs, a, b = Q.get("dab").factorize(w)
    torch.testing.assert_close(a.view(-1, 1) * signs + b.view(-1, 1), y)


def test_parallel_sort_path_matches_serial():
    """Large layers are sorted on several threads (rows split in blocks): same fit as one thread."""
    w = torch.randn(300, 512, generator=torch.Generator().manual_seed(12))
    ref = dab_fit(w)
    old = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        par = dab_fit(w)
    finally:
        torch.set_num_threads(old)
    assert torch.equal(par.mask, ref.mask) and torch.equal(par.k, ref.k)
    assert torch.equal(par.alpha, ref.alpha) and torch.equal(par.beta, ref.beta)
