"""onebit.geometry: exact semantics (incl. ties) against brute-force loops on small inputs."""

from __future__ import annotations

import pytest
import torch

from onebit.geometry import (
    ball_query,
    farthest_point_sample,
    index_points,
    knn,
    square_distance,
    three_interpolate,
)


def _brute_dist(a, b):
    return ((a[:, :, None, :] - b[:, None, :, :]) ** 2).sum(-1)


@pytest.mark.parametrize("c", [2, 3, 9, 33])
def test_square_distance_matches_brute_force(c):
    g = torch.Generator().manual_seed(c)
    a, b = torch.randn(2, 17, c, generator=g), torch.randn(2, 11, c, generator=g)
    d = square_distance(a, b)
    assert d.shape == (2, 17, 11)
    torch.testing.assert_close(d, _brute_dist(a, b), rtol=1e-5, atol=1e-5)
    assert (d >= 0).all()


def test_square_distance_xyz_is_exact_and_zero_on_diagonal():
    a = torch.randn(3, 40, 3, dtype=torch.float64)
    d = square_distance(a, a)
    assert (d.diagonal(dim1=1, dim2=2) == 0).all()
    # channel-ordered accumulation, bit for bit
    ref = (a[:, :, None, 0] - a[:, None, :, 0]) ** 2
    ref = ref + (a[:, :, None, 1] - a[:, None, :, 1]) ** 2
    ref = ref + (a[:, :, None, 2] - a[:, None, :, 2]) ** 2
    assert torch.equal(d, ref)


def test_square_distance_rejects_bad_shapes():
    with pytest.raises(ValueError, match="square_distance"):
        square_distance(torch.randn(2, 5, 3), torch.randn(2, 5, 4))
    with pytest.raises(ValueError, match="3-D"):
        square_distance(torch.randn(5, 3), torch.randn(5, 3))


def test_index_points_gathers_per_batch():
    pts = torch.arange(2 * 6 * 2, dtype=torch.float32).view(2, 6, 2)
    idx = torch.tensor([[[0, 5], [1, 1]], [[2, 3], [4, 0]]])
    out = index_points(pts, idx)
    assert out.shape == (2, 2, 2, 2)
    for b in range(2):
        for i in range(2):
            for j in range(2):
                assert torch.equal(out[b, i, j], pts[b, idx[b, i, j]])


def _fps_loop(x, npoint, start):
    n = x.shape[0]
    sel = [start]
    mind = torch.full((n,), float("inf"), dtype=x.dtype)
    for _ in range(npoint - 1):
        mind = torch.minimum(mind, ((x - x[sel[-1]]) ** 2).sum(-1))
        best = max(range(n), key=lambda j: (mind[j].item(), -j))  # largest, lowest index on ties
        sel.append(best)
    return sel


def test_fps_matches_loop_and_start_index():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(3, 50, 3, dtype=torch.float64, generator=g)
    idx = farthest_point_sample(x, 12, start=7)
    assert idx.dtype == torch.int64 and idx.shape == (3, 12)
    for b in range(3):
        assert idx[b].tolist() == _fps_loop(x[b], 12, 7)
    per = farthest_point_sample(x, 5, start=torch.tensor([0, 1, 2]))
    assert per[:, 0].tolist() == [0, 1, 2]
    assert len(set(idx[0].tolist())) == 12  # distinct while npoint <= number of distinct points


def test_fps_ties_pick_lowest_index_and_seeded_random_start():
    # square corners: from corner 0 the two adjacent corners tie with... the opposite corner is
    # farthest; then the two remaining corners tie → lowest index
    x = torch.tensor([[[0.0, 0, 0], [1, 0, 0], [0, 1, 0], [1, 1, 0]]])
    assert farthest_point_sample(x, 4, start=0).tolist() == [[0, 3, 1, 2]]
    a = farthest_point_sample(x.expand(4, -1, -1), 2, start=None, generator=torch.Generator().manual_seed(5))
    b = farthest_point_sample(x.expand(4, -1, -1), 2, start=None, generator=torch.Generator().manual_seed(5))
    assert torch.equal(a, b)
    with pytest.raises(ValueError, match="start"):
        farthest_point_sample(x, 2, start=9)


def _knn_loop(q, r, k):
    d = _brute_dist(q[None], r[None])[0]
    out = []
    for i in range(q.shape[0]):
        order = sorted(range(r.shape[0]), key=lambda j: (d[i, j].item(), j))
        out.append(order[:k])
    return out


def test_knn_matches_brute_force_with_ties():
    # integer grid coordinates → many exact distance ties, plus duplicated points
    g = torch.Generator().manual_seed(3)
    pts = torch.randint(0, 3, (2, 30, 3), generator=g).double()
    idx, dist = knn(pts, pts, 7, return_dist=True)
    for b in range(2):
        assert idx[b].tolist() == _knn_loop(pts[b], pts[b], 7)
    torch.testing.assert_close(dist, square_distance(pts, pts).gather(-1, idx))
    with pytest.raises(ValueError, match="k=31"):
        knn(pts, pts, 31)


def test_knn_wide_features_and_cross_sets():
    g = torch.Generator().manual_seed(4)
    q, r = torch.randn(2, 9, 16, generator=g), torch.randn(2, 20, 16, generator=g)
    idx = knn(q, r, 4)
    ref = _brute_dist(q, r).argsort(-1)[..., :4]
    assert torch.equal(idx, ref)


def test_ball_query_first_in_index_order_padding_and_empty():
    x = torch.tensor([[[0.0, 0, 0], [5, 0, 0], [0.1, 0, 0], [0.2, 0, 0], [0.5, 0, 0], [9, 9, 9]]])
    centres = torch.tensor([[[0.0, 0, 0], [5.05, 0, 0], [9.0, 9, 20]]])
    idx = ball_query(0.3, 4, x, centres)
    assert idx.tolist() == [[[0, 2, 3, 0], [1, 1, 1, 1], [5, 5, 5, 5]]]
    # strict inequality: a point exactly on the radius is outside
    y = torch.tensor([[[0.0, 0, 0], [0.5, 0, 0]]])
    assert ball_query(0.5, 2, y, y[:, :1]).tolist() == [[[0, 0]]]
    # nsample larger than N pads too
    assert ball_query(10.0, 8, y, y[:, :1]).tolist() == [[[0, 1, 0, 0, 0, 0, 0, 0]]]


def test_ball_query_matches_loop():
    g = torch.Generator().manual_seed(6)
    x = torch.rand(2, 60, 3, generator=g)
    c = index_points(x, farthest_point_sample(x, 8))
    idx = ball_query(0.3, 5, x, c)
    d = _brute_dist(c, x)
    for b in range(2):
        for s in range(8):
            inside = [j for j in range(60) if d[b, s, j] < 0.09]
            want = (inside[:5] + [inside[0]] * 5)[:5]
            assert idx[b, s].tolist() == want


def test_three_interpolate_weights_and_exact_hits():
    g = torch.Generator().manual_seed(7)
    src = torch.randn(2, 10, 3, generator=g)
    feats = torch.randn(2, 10, 4, generator=g)
    q = torch.randn(2, 5, 3, generator=g)
    out = three_interpolate(q, src, feats)
    d = _brute_dist(q, src)
    for b in range(2):
        for i in range(5):
            dd, jj = d[b, i].sort()
            w = 1 / (dd[:3] + 1e-8)
            w = w / w.sum()
            torch.testing.assert_close(out[b, i], (feats[b, jj[:3]] * w[:, None]).sum(0))
    # a query on top of a source copies its feature
    torch.testing.assert_close(three_interpolate(src, src, feats), feats, rtol=1e-4, atol=1e-4)
    one = three_interpolate(q, src[:, :1], feats[:, :1])
    assert torch.equal(one, feats[:, :1].expand(-1, 5, -1))
