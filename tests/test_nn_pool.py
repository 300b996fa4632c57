"""EMA offsets (BiPointNet Eq. 8, App. A.5/A.6) and the masked pooling modules of onebit.nn."""

from __future__ import annotations

import math
from statistics import NormalDist

import pytest
import torch

from onebit.nn import (
    OFFICIAL_EMA_OFFSETS,
    AvgPool,
    EMAAvgPool,
    EMAMaxPool,
    MaxPool,
    ema_offset,
    ema_offset_mc,
    make_pool,
)


def _log_phi(x: float) -> float:
    """log Φ(x) computed through the upper tail, accurate for large x."""
    return math.log1p(-0.5 * math.erfc(x / math.sqrt(2.0)))


def test_ema_offset_known_values():
    assert ema_offset(1) == 0.0  # Φ⁻¹(0.5)
    assert math.copysign(1.0, ema_offset(1)) == 1.0  # not -0.0
    assert ema_offset(1024) == pytest.approx(3.2044, abs=1e-4)
    # values quoted in the notes on the official code
    for n, v in {20: 1.8242, 64: 2.2983, 258: 2.7842, 2048: 3.3988, 4096: 3.5840}.items():
        assert ema_offset(n) == pytest.approx(v, abs=1e-4)


@pytest.mark.parametrize("n", [1, 2, 3, 7, 20, 1024, 4096, 10**6, 10**12])
def test_ema_offset_is_median_of_max(n):
    # defining property: P(max of n N(0,1) <= δ) = Φ(δ)^n = 1/2
    d = ema_offset(n)
    assert n * _log_phi(d) == pytest.approx(math.log(0.5), rel=1e-9)


def test_ema_offset_matches_naive_formula_and_is_monotone():
    nd = NormalDist()
    for n in (2, 5, 50, 500):
        assert ema_offset(n) == pytest.approx(nd.inv_cdf(0.5 ** (1 / n)), abs=1e-10)
    vals = [ema_offset(n) for n in (1, 2, 10, 100, 10**4, 10**8, 10**14)]
    assert all(b > a for a, b in zip(vals, vals[1:], strict=False))
    assert math.isfinite(vals[-1])


def test_ema_offset_vectorised():
    n = torch.tensor([[1, 20], [1024, 4096]])
    out = ema_offset(n)
    assert out.dtype == torch.float64 and out.shape == (2, 2)
    for i in range(2):
        for j in range(2):
            assert float(out[i, j]) == pytest.approx(ema_offset(int(n[i, j])), abs=1e-12)
    assert float(out[0, 0]) == 0.0


@pytest.mark.parametrize("bad", [0, -3])
def test_ema_offset_rejects_bad_counts(bad):
    with pytest.raises(ValueError, match=">= 1"):
        ema_offset(bad)
    with pytest.raises(ValueError):
        ema_offset(torch.tensor([5, bad]))
    with pytest.raises(TypeError):
        ema_offset(2.5)


@pytest.mark.parametrize("n", [1, 20, 1024])
def test_ema_offset_mc_agrees_with_closed_form(n):
    med, se = ema_offset_mc(n, samples=4000, seed=1, return_stderr=True)
    assert se > 0
    assert abs(med - ema_offset(n)) < 4 * se


def test_ema_offset_mc_avg_is_zero_and_custom_sampler():
    med, se = ema_offset_mc(256, aggregation="avg", samples=4000, seed=2, return_stderr=True)
    assert abs(med) < 4 * se  # δ*_avg = 0 (App. A.6)

    # uniform(0, 1) inputs: the median of the max of n draws is 0.5^(1/n)
    def uniform(shape, gen):
        return torch.rand(shape, generator=gen, dtype=torch.float64)

    med, se = ema_offset_mc(32, sampler=uniform, samples=4000, seed=3, return_stderr=True)
    assert abs(med - 0.5 ** (1 / 32)) < 4 * se
    # a callable aggregation: the min is the mirror image of the max for a symmetric input
    med, se = ema_offset_mc(64, aggregation=lambda t: t.amin(-1), samples=4000, seed=4, return_stderr=True)
    assert abs(med + ema_offset(64)) < 4 * se
    with pytest.raises(ValueError, match="aggregation"):
        ema_offset_mc(8, aggregation="median")
    # same seed, same answer
    assert ema_offset_mc(16, samples=500, seed=9) == ema_offset_mc(16, samples=500, seed=9)


def test_official_constants_close_to_closed_form():
    for n, c in OFFICIAL_EMA_OFFSETS.items():
        assert abs(c - ema_offset(n)) < 0.005, n  # Monte-Carlo constants, within ~1 SE (m = 1e4)


def test_ema_max_balances_signs_on_gaussian_input():
    torch.manual_seed(0)
    x = torch.randn(32, 1024, 128)  # B·C = 4096 pooled channels
    plain = (MaxPool()(x) > 0).float().mean().item()
    ema = (EMAMaxPool()(x) >= 0).float().mean().item()
    assert plain == 1.0  # homogenised: every max is positive
    assert abs(ema - 0.5) < 0.04
    avg = (EMAAvgPool()(x) >= 0).float().mean().item()
    assert abs(avg - 0.5) < 0.04


def test_ema_max_value_and_official_table():
    x = torch.randn(3, 1024, 5)
    assert torch.allclose(EMAMaxPool()(x), x.amax(1) - ema_offset(1024))
    off = EMAMaxPool(offsets="official")
    assert torch.allclose(off(x), x.amax(1) - 3.2041)
    with pytest.raises(ValueError, match="official"):
        off(torch.randn(2, 1000, 4))
    with pytest.raises(ValueError, match="offsets"):
        EMAMaxPool(offsets="table")


def test_masked_pooling_ignores_padded_points():
    torch.manual_seed(1)
    counts = [3, 7, 10]
    x = torch.randn(3, 10, 4)
    mask = torch.zeros(3, 10, dtype=torch.bool)
    for b, n in enumerate(counts):
        mask[b, :n] = True
    x_pad = x.clone()
    x_pad[~mask] = 1e6  # padded garbage must not leak into any pool
    for kind in ("max", "avg", "ema-max", "ema-avg"):
        pool = make_pool(kind)
        got = pool(x_pad, mask)
        for b, n in enumerate(counts):
            ref = pool(x[b : b + 1, :n])  # unmasked pooling of the valid points alone
            assert torch.allclose(got[b], ref[0], atol=1e-6), (kind, b)
    # EMA-max uses n per cloud
    got = EMAMaxPool()(x_pad, mask)
    assert torch.allclose(got[0], x[0, :3].amax(0) - ema_offset(3), atol=1e-6)


def test_masked_pooling_other_layouts_and_errors():
    x = torch.randn(2, 6, 4)
    mask = torch.ones(2, 6, dtype=torch.bool)
    mask[0, 4:] = False
    # (B, C, N) pooled over dim 2 with a (B, N) mask
    a = make_pool("ema-max", dim=2)(x.transpose(1, 2), mask)
    b = make_pool("ema-max")(x, mask)
    assert torch.allclose(a, b)
    # grouped (B, S, K, C) pooled over K with a (B, S, K) mask
    g = torch.randn(2, 3, 5, 4)
    gm = torch.ones(2, 3, 5, dtype=torch.bool)
    gm[1, 2, 2:] = False
    out = make_pool("ema-max", dim=2)(g, gm)
    assert out.shape == (2, 3, 4)
    assert torch.allclose(out[1, 2], g[1, 2, :2].amax(0) - ema_offset(2))
    assert torch.allclose(out[0, 0], g[0, 0].amax(0) - ema_offset(5))
    kd = make_pool("avg", keepdim=True)(x, mask)
    assert kd.shape == (2, 1, 4) and torch.allclose(kd[0, 0], x[0, :4].mean(0))
    with pytest.raises(ValueError, match="mask must have shape"):
        MaxPool()(x, torch.ones(2, 5, dtype=torch.bool))
    empty = mask.clone()
    empty[1] = False
    with pytest.raises(ValueError, match="no valid point"):
        AvgPool()(x, empty)
    with pytest.raises(ValueError, match="unknown pooling kind"):
        make_pool("sum")
    assert isinstance(make_pool("ema-avg"), EMAAvgPool) and isinstance(make_pool("max"), MaxPool)


def test_ema_max_gradient_reaches_the_max():
    x = torch.randn(2, 8, 3, requires_grad=True)
    EMAMaxPool()(x).sum().backward()
    assert torch.equal(x.grad.sum(1), torch.ones(2, 3))


@pytest.mark.parametrize(
    "shape, dim, keepdim, dtype",
    [
        ((4, 50, 7), 1, False, torch.float64),
        ((3, 5, 6, 7), 2, True, torch.float64),
        ((4, 50, 7), -1, False, torch.float64),
        ((4, 50, 7), 0, True, torch.bfloat16),
        ((6, 9), 1, False, torch.float32),
    ],
)
def test_max_over_equals_torch_max_with_ties(shape, dim, keepdim, dtype):
    # integers in {0, 1, 2}: most maxima are tied, so the gradient must go to the first one as torch's does
    from onebit.nn.pool import max_over

    g = torch.Generator().manual_seed(3)
    x = torch.randint(0, 3, shape, generator=g).to(dtype)
    a, b = x.clone().requires_grad_(), x.clone().requires_grad_()
    ref = b.max(dim=dim, keepdim=keepdim).values
    grad = torch.randn(ref.shape, generator=g, dtype=torch.float64).to(dtype)
    out = max_over(a, dim, keepdim)
    assert out.shape == ref.shape and torch.equal(out, ref)
    out.backward(grad)
    ref.backward(grad)
    assert torch.equal(a.grad, b.grad)
    assert int((a.grad != 0).sum()) <= ref.numel()  # one position per reduced row


def test_max_over_double_backward_and_no_grad():
    from onebit.nn.pool import max_over

    x = torch.randn(3, 4, 5, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: max_over(t, 1), (x,))
    assert torch.autograd.gradgradcheck(lambda t: max_over(t, 1), (x,))
    with torch.no_grad():
        assert torch.equal(max_over(x, 2), x.max(dim=2).values)
    with pytest.raises(ValueError, match="at least one dim"):
        max_over(torch.tensor(1.0), 0)


def test_max_pools_backprop_like_torch_max_masked_and_ema():
    g = torch.Generator().manual_seed(1)
    x = torch.randint(-2, 3, (3, 6, 4), generator=g).to(torch.float64)
    mask = torch.ones(3, 6, dtype=torch.bool)
    mask[1, 4:] = False
    for pool in (MaxPool(), EMAMaxPool()):
        a = x.clone().requires_grad_()
        b = x.clone().requires_grad_()
        pool(a, mask).sum().backward()
        filled = b.masked_fill(~mask.unsqueeze(-1), float("-inf"))
        filled.max(dim=1).values.sum().backward()
        assert torch.equal(a.grad, b.grad)


def test_max_over_forward_matches_torch_max_everywhere():
    # values and first-max indices of the fast forward, with grad off (eval) and on, any dim
    from onebit.nn.pool import _max_with_indices, max_over

    g = torch.Generator().manual_seed(5)
    for shape in ((2, 7, 3), (3, 4, 5, 6), (9,), (1, 1, 1)):
        for dtype in (torch.float64, torch.float32, torch.bfloat16):
            x = torch.randint(-3, 4, shape, generator=g).to(dtype)
            for dim in range(-len(shape), len(shape)):
                for keepdim in (False, True):
                    v, i = _max_with_indices(x, dim % x.dim(), keepdim)
                    ref = x.max(dim=dim, keepdim=keepdim)
                    assert torch.equal(v, ref.values) and torch.equal(i, ref.indices), (shape, dtype, dim)
                    assert torch.equal(max_over(x, dim, keepdim), ref.values)
    ints = torch.randint(0, 9, (3, 5, 2), generator=g)
    assert torch.equal(max_over(ints, 1), ints.max(dim=1).values)  # no float kernel: torch.max
    nan = torch.randn(2, 6, 3, generator=g)
    nan[1, 2, 0] = float("nan")
    assert torch.equal(max_over(nan, 1).isnan(), nan.max(dim=1).values.isnan())
