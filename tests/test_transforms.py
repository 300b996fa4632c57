"""Point transforms: geometry, target handling, seeding, config."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from onebit.data import transforms as T


def cloud(n=64, c=3, seed=0):
    return np.random.default_rng(seed).normal(size=(n, c)).astype(np.float32)


def test_normalize_scale_unit_sphere():
    p = cloud() * 5 + 3
    out = T.NormalizeScale()(p)
    assert np.allclose(out.mean(0), 0, atol=1e-5)
    assert np.isclose(np.linalg.norm(out, axis=1).max(), 1.0, atol=1e-6)
    assert out.dtype == np.float32 and not np.shares_memory(out, p)


def test_tensor_in_tensor_out():
    p = torch.from_numpy(cloud())
    out = T.NormalizeScale()(p)
    assert isinstance(out, torch.Tensor) and out.dtype == torch.float32 and out.shape == p.shape


def test_rotate_about_up_keeps_up_coordinate_and_norms():
    p = cloud(c=6)
    p[:, 3:] /= np.linalg.norm(p[:, 3:], axis=1, keepdims=True)
    out = T.RandomRotate("y", rng=1)(p)
    assert np.allclose(out[:, 1], p[:, 1], atol=1e-6)  # y is the rotation axis
    assert np.allclose(np.linalg.norm(out[:, :3], axis=1), np.linalg.norm(p[:, :3], axis=1), atol=1e-5)
    assert np.allclose(np.linalg.norm(out[:, 3:], axis=1), 1, atol=1e-5)  # normals rotated too
    assert not np.allclose(out[:, 0], p[:, 0])
    # the same rotation is applied to points and normals: dot products are preserved
    assert np.allclose((out[:, :3] * out[:, 3:]).sum(1), (p[:, :3] * p[:, 3:]).sum(1), atol=1e-5)


def test_rotation_matrix_right_handed():
    r = T.rotation_matrix("z", math.pi / 2)
    assert np.allclose(r @ [1, 0, 0], [0, 1, 0])
    assert np.allclose(T.rotation_matrix("x", math.pi / 2) @ [0, 1, 0], [0, 0, 1])
    assert np.allclose(T.rotation_matrix("y", math.pi / 2) @ [0, 0, 1], [1, 0, 0])
    assert np.isclose(np.linalg.det(r), 1)


def test_perturb_rotation_is_small():
    p = cloud()
    out = T.RandomPerturbRotate(sigma=0.06, clip=0.18, rng=0)(p)
    # three rotations of at most 0.18 rad each move a point by at most ~0.54 |p|
    assert np.all(np.linalg.norm(out - p, axis=1) <= 0.55 * np.linalg.norm(p, axis=1) + 1e-6)
    assert np.allclose(np.linalg.norm(out, axis=1), np.linalg.norm(p, axis=1), atol=1e-5)


def test_jitter_is_clipped_and_only_xyz():
    p = cloud(c=6)
    out = T.Jitter(sigma=1.0, clip=0.05, rng=0)(p)
    assert np.abs(out[:, :3] - p[:, :3]).max() <= 0.05 + 1e-6
    assert np.array_equal(out[:, 3:], p[:, 3:])


def test_scale_and_shift():
    p = cloud()
    iso = T.RandomScale((0.5, 2.0), rng=0)(p)
    ratio = iso / p
    assert np.allclose(ratio, ratio[0, 0], rtol=1e-5) and 0.5 <= ratio[0, 0] <= 2
    an = T.RandomScale((0.5, 2.0), anisotropic=True, rng=0)(p) / p
    assert np.allclose(an, an[0], rtol=1e-5) and not np.allclose(an[0], an[0, 0])
    sh = T.RandomShift(0.2, rng=0)(p) - p
    assert np.allclose(sh, sh[0], atol=1e-6) and np.abs(sh).max() <= 0.2


def test_dropout_replaces_with_first_point_and_indexes_target():
    p = cloud(200)
    seg = np.arange(200)
    out, (seg2, cat) = T.PointDropout(0.8, rng=3)(p, (seg, 7))
    assert out.shape == p.shape and cat == 7
    dropped = seg2 == 0
    assert dropped.sum() > 1  # some points replaced (ratio ~U[0, .8] with this seed)
    assert np.array_equal(out[dropped], np.repeat(p[:1], dropped.sum(), 0))
    assert np.array_equal(out, p[seg2])


def test_fps_spreads_points():
    rng = np.random.default_rng(0)
    # a dense blob plus 4 far corners: FPS must pick the corners early
    blob = rng.normal(scale=0.01, size=(100, 3))
    corners = np.array([[5, 0, 0], [-5, 0, 0], [0, 5, 0], [0, -5, 0]], dtype=float)
    pts = np.concatenate([blob, corners])
    idx = T.farthest_point_sample(pts, 5)
    assert idx[0] == 0 and set(idx[1:]) == {100, 101, 102, 103}
    assert len(set(T.farthest_point_sample(pts, 50))) == 50
    with pytest.raises(ValueError, match="asked for"):
        T.farthest_point_sample(pts, 200)


def test_fps_beats_random_on_coverage():
    p = cloud(2000)
    fps = p[T.farthest_point_sample(p, 64)]
    rnd = p[np.random.default_rng(0).choice(2000, 64, replace=False)]

    def cover(s):  # max distance from any point to the sample
        return np.sqrt(((p[:, None] - s[None]) ** 2).sum(-1)).min(1).max()

    assert cover(fps) < cover(rnd)


def test_sampling_transforms_keep_targets_aligned():
    p = cloud(100)
    lab = np.arange(100)
    for t in (T.FPSSample(32), T.RandomSample(32, rng=0), T.FirstSample(32), T.Shuffle(rng=0)):
        out, lab2 = t(p, lab)
        assert np.array_equal(out, p[lab2]), type(t).__name__
    out, lab2 = T.RandomSample(150, rng=0)(p, lab)  # padding a small cloud
    assert out.shape == (150, 3) and set(lab2) == set(range(100))
    with pytest.raises(ValueError, match="need 200"):
        T.FirstSample(200)(p)


def test_torch_target_indexed():
    p = torch.from_numpy(cloud(10))
    seg = torch.arange(10)
    out, (seg2, cat) = T.Shuffle(rng=0)((p), (seg, torch.tensor(3)))
    assert torch.equal(out, p[seg2]) and int(cat) == 3


def test_compose_and_seeding_reproducible():
    p = cloud()
    a = T.Compose([T.RandomRotate(rng=5), T.Jitter(rng=6), T.Shuffle(rng=7)])
    b = T.Compose([T.RandomRotate(rng=5), T.Jitter(rng=6), T.Shuffle(rng=7)])
    assert np.array_equal(a(p), b(p))
    assert not np.array_equal(a(p), a(p))  # the stream advances


def test_torch_seed_drives_default_rng():
    p = cloud()
    t = T.Jitter()
    torch.manual_seed(123)
    x1 = t(p)
    torch.manual_seed(123)
    x2 = T.Jitter()(p)
    torch.manual_seed(124)
    x3 = T.Jitter()(p)
    assert np.array_equal(x1, x2) and not np.array_equal(x1, x3)


def test_transform_from_config():
    tf = T.transform_from_config(["rotate", {"name": "jitter", "sigma": 0.02}, "shuffle"], rng=0)
    assert [type(t).__name__ for t in tf.transforms] == ["RandomRotate", "Jitter", "Shuffle"]
    assert tf.transforms[1].sigma == 0.02
    again = T.transform_from_config(["rotate", {"name": "jitter", "sigma": 0.02}, "shuffle"], rng=0)
    assert np.array_equal(tf(cloud()), again(cloud()))
    assert T.transform_from_config([]) is None
    with pytest.raises(ValueError, match="unknown transform 'spin'"):
        T.transform_from_config(["spin"])
    with pytest.raises(ValueError, match="bad options"):
        T.transform_from_config([{"name": "jitter", "sigmaa": 1}])


def test_bad_input_shapes():
    with pytest.raises(ValueError, match=r"shape \(N, C>=3\)"):
        T.NormalizeScale()(np.zeros((5, 2)))
    with pytest.raises(ValueError):
        T.RandomRotate(axis="w")
    with pytest.raises(TypeError):
        T.Jitter(rng="seed")


def test_fps_matches_numpy_reference():
    # farthest_point_sample runs onebit.geometry's torch FPS when present: same indices as NumPy
    p = cloud(500, seed=4)
    for start in (0, 17):
        assert np.array_equal(T.farthest_point_sample(p, 64, start), T.farthest_point_sample_numpy(p, 64, start))
