"""PointNet++, DGCNN, PointCNN, PointConv: layer semantics checked against explicit loops."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn

from onebit.geometry import ball_query, farthest_point_sample, index_points, knn
from onebit.models import create
from onebit.models.dgcnn import EdgeConv
from onebit.models.pointcnn import XConv
from onebit.models.pointconv import PointConvLayer, kernel_density
from onebit.models.pointnet2 import SetAbstraction
from onebit.nn import EMAMaxPool, ema_offset


def test_pointnet2_ssg_paper_layout():
    m = create("pointnet2_ssg", 40)
    assert [sa.npoint for sa in m.sa] == [512, 128, None]
    assert [sa.radii for sa in m.sa] == [(0.2,), (0.4,), ()]
    widths = [[blk.linear.out_features for blk in sa.branches[0]] for sa in m.sa]
    assert widths == [[64, 64, 128], [128, 128, 256], [256, 512, 1024]]
    assert m.sa[0].branches[0][0].linear.in_features == 3
    assert m.sa[1].branches[0][0].linear.in_features == 128 + 3
    msg = create("pointnet2_msg", 40)
    assert msg.sa[0].nsamples == (16, 32, 128) and msg.sa[0].out_channels == 64 + 128 + 128


def test_set_abstraction_matches_loop_and_ema_offset():
    torch.manual_seed(0)
    sa = SetAbstraction(6, (0.8,), (5,), ((4, 7),), 2, act="relu", pool="ema-max").eval()
    assert isinstance(sa.pool, EMAMaxPool) and sa.pool.dim == 2
    xyz, feats = torch.rand(2, 30, 3), torch.randn(2, 30, 2)
    centres, out = sa(xyz, feats)
    cidx = farthest_point_sample(xyz, 6)
    assert torch.equal(centres, index_points(xyz, cidx))
    gidx = ball_query(0.8, 5, xyz, centres)
    for b in range(2):
        for s in range(6):
            rows = [torch.cat([xyz[b, j] - centres[b, s], feats[b, j]]) for j in gidx[b, s].tolist()]
            h = sa.branches[0](torch.stack(rows))
            torch.testing.assert_close(out[b, s], h.amax(0) - ema_offset(5), rtol=1e-5, atol=1e-5)


def test_pointnet2_partseg_uses_category_and_semseg_channels():
    m = create("pointnet2_ssg", 8, task="partseg", width=0.125, npoints=(16, 8), max_nsample=4).eval()
    x = torch.randn(2, 32, 3)
    a, b = m(x, torch.tensor([0, 1])), m(x, torch.tensor([5, 1]))
    assert not torch.allclose(a[0], b[0]) and torch.allclose(a[1], b[1])
    s = create("pointnet2_ssg", 13, task="semseg", in_channels=9, width=0.125, npoints=(16, 8, 4, 2))
    assert s.sa[0].branches[0][0].linear.in_features == 3 + 6
    assert s.fp[-1].mlp[0].linear.in_features == 9 + s.fp[-2].out_channels
    with pytest.raises(ValueError, match="npoints"):
        create("pointnet2_ssg", 13, task="semseg", npoints=(16, 8))


def test_edgeconv_matches_loop_and_includes_self():
    torch.manual_seed(1)
    ec = EdgeConv(4, [6], 3, act="leaky_relu", pool="max").eval()
    x = torch.randn(2, 10, 4)
    out = ec(x)
    idx = knn(x, x, 3)
    assert (idx[..., 0] == torch.arange(10)).all()
    for b in range(2):
        for i in range(10):
            e = torch.stack([torch.cat([x[b, j] - x[b, i], x[b, i]]) for j in idx[b, i].tolist()])
            torch.testing.assert_close(out[b, i], ec.mlp(e).amax(0), rtol=1e-5, atol=1e-5)


def test_dgcnn_is_permutation_invariant_and_uses_dynamic_graph():
    m = create("dgcnn", 5, width=0.125, k=4).eval()
    x = torch.randn(2, 24, 3)
    perm = torch.randperm(24)
    torch.testing.assert_close(m(x), m(x[:, perm]), rtol=1e-4, atol=1e-5)
    seg = create("dgcnn", 5, task="semseg", in_channels=9, width=0.125, k=4).eval()
    y = torch.randn(2, 24, 9)
    torch.testing.assert_close(seg(y)[:, perm], seg(y[:, perm]), rtol=1e-4, atol=1e-5)
    assert m.ec[1].mlp[0].linear.in_features == 2 * m.ec[0].out_channels


def test_xconv_matches_algorithm_for_one_point():
    torch.manual_seed(2)
    layer = XConv(2, 5, 4, 2, None, 3, 2, act="relu").eval()
    xyz, feats = torch.randn(1, 12, 3), torch.randn(1, 12, 2)
    reps, out = layer(xyz, feats)
    assert torch.equal(reps, xyz) and out.shape == (1, 12, 5)
    idx = knn(xyz, xyz, 8)[:, :, ::2]  # dilation 2: every second of the 8 nearest
    p = 7
    nb = idx[0, p]
    local = xyz[0, nb] - xyz[0, p]  # (K, 3)
    fstar = torch.cat([layer.lift(local), feats[0, nb]], dim=-1)  # (K, C*)
    x = layer.xtrans(local.reshape(1, 12)).view(4, 4)
    fx = x @ fstar
    w = layer.depthwise.weight  # (C*·d, 1, K), groups = C*
    dw = torch.stack([(w[o, 0] * fx[:, o // 2]).sum() for o in range(w.shape[0])])
    torch.testing.assert_close(out[0, p], layer.pointwise(dw.unsqueeze(0))[0], rtol=1e-5, atol=1e-5)


def test_pointcnn_layout_and_default_avg_pool():
    m = create("pointcnn", 40)
    assert [(x.k, x.dilation, x.npoint, x.out_channels) for x in m.xconv] == [
        (8, 1, None, 48), (12, 2, 384, 96), (16, 2, 128, 192), (16, 3, 128, 384)
    ]
    assert type(m.pool).__name__ == "AvgPool"
    assert isinstance(m.xconv[0].depthwise, nn.Conv1d) and m.xconv[0].depthwise.groups == 24


def test_kernel_density_matches_formula():
    xyz = torch.randn(1, 7, 3, dtype=torch.float64)
    sigma = 0.3
    rho = kernel_density(xyz, sigma)
    for i in range(7):
        d = ((xyz[0] - xyz[0, i]) ** 2).sum(-1)
        want = torch.exp(-d / (2 * sigma**2)).mean() / (2.5 * sigma)
        torch.testing.assert_close(rho[0, i], want)


def test_pointconv_efficient_form_equals_weighted_sum():
    torch.manual_seed(3)
    layer = PointConvLayer(4, 5, 0.5, 2, [6], act="relu", c_mid=3).eval()
    xyz, feats = torch.randn(1, 16, 3), torch.randn(1, 16, 2)
    centres, out = layer(xyz, feats)
    idx = knn(centres, xyz, 5)
    inv = 1 / kernel_density(xyz, 0.5)
    for s in range(4):
        nb = idx[0, s]
        rel = xyz[0, nb] - centres[0, s]
        f = layer.mlp(torch.cat([rel, feats[0, nb]], dim=-1))  # (K, C)
        sc = layer.densitynet((inv[0, nb] / inv[0, nb].max()).unsqueeze(-1))  # (K, 1)
        w = layer.weightnet(rel)  # (K, C_mid)
        conv = sum(torch.outer(sc[k, 0] * f[k], w[k]) for k in range(5))  # (C, C_mid)
        torch.testing.assert_close(out[0, s], layer.linear(conv.reshape(1, -1))[0], rtol=1e-5, atol=1e-5)


def test_pointconv_has_no_pool_option():
    with pytest.raises(TypeError, match="pool"):
        create("pointconv", 4, pool="max")
    # a preset's pool option is simply not applicable to PointConv
    m = create("pointconv", 4, binarize="bipointnet", width=0.125, npoints=(16, 4), nsample=4)
    assert "pool" not in m.onebit_config["options"]
