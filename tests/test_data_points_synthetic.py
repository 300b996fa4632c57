"""Synthetic point sets: determinism, geometry, speed, separability, part labels."""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch

import onebit.data.points  # noqa: F401
from onebit.data import get_dataset
from onebit.data.points import SyntheticParts, SyntheticShapes, synthetic_category_parts
from onebit.data.points.mesh import PRIMITIVES, sample_surface, sphere
from onebit.data.points.synthetic import random_rotations


def test_shapes_seeded_and_split():
    a = SyntheticShapes(num_per_class=4, num_points=128, seed=7)
    b = SyntheticShapes(num_per_class=4, num_points=128, seed=7)
    c = SyntheticShapes(num_per_class=4, num_points=128, seed=8)
    t = SyntheticShapes("test", num_per_class=4, num_points=128, seed=7)
    assert np.array_equal(a.points, b.points) and np.array_equal(a.labels, b.labels)
    assert not np.allclose(a.points, c.points)
    assert len(t) == 10 and not np.allclose(a.points[:1], t.points[:1])  # 4 // 4 = 1 per class
    assert a.num_classes == len(PRIMITIVES) >= 8 and a.class_names == list(PRIMITIVES)
    assert np.bincount(a.labels).tolist() == [4] * a.num_classes
    x, y = a[5]
    assert x.shape == (128, 3) and x.dtype == torch.float32 and y.dtype == torch.int64 and int(y) == 1
    assert len(SyntheticShapes("val", num_per_class=4, val_per_class=2)) == 20


def test_shapes_geometry_exact_without_pose():
    kw = dict(num_per_class=2, num_points=256, noise=0.0, rotation="none", scale=(1.0, 1.0), anisotropy=0.0)
    ds = SyntheticShapes(**kw)
    cube = ds.points[ds.labels == PRIMITIVES.index("cube")][0]
    assert np.allclose(np.abs(cube).max(1), 0.55, atol=1e-6)  # every point on a face of the cube
    sph = ds.points[ds.labels == PRIMITIVES.index("sphere")][0]
    r = np.linalg.norm(sph, axis=1)
    assert r.max() <= 0.9 + 1e-6 and r.min() > 0.88  # on the (faceted) sphere of radius 0.9
    rot = SyntheticShapes(**{**kw, "rotation": "so3"})
    r2 = np.linalg.norm(rot.points[rot.labels == PRIMITIVES.index("sphere")][0], axis=1)
    assert r2.max() <= 0.9 + 1e-5


def test_random_rotations_are_rotations():
    rng = np.random.default_rng(0)
    for mode in ("so3", "up", "none"):
        r = random_rotations(rng, 20, mode)
        assert np.allclose(r @ r.transpose(0, 2, 1), np.eye(3), atol=1e-10)
        assert np.allclose(np.linalg.det(r), 1)
    assert np.allclose(random_rotations(rng, 5, "up")[:, 1], [0, 1, 0])  # y is kept
    with pytest.raises(ValueError):
        random_rotations(rng, 1, "tilt")


def test_surface_sampling_is_area_uniform():
    # a sphere mesh sampled area-uniformly: equal-height bands have equal area (Archimedes)
    v, f = sphere(1.0, k=48)
    pts, _ = sample_surface(v, f, 40000, np.random.default_rng(0))
    counts = np.histogram(pts[:, 1], bins=4, range=(-1, 1))[0]
    assert np.all(np.abs(counts / 10000 - 1) < 0.05)


def test_shapes_fast():
    t = time.process_time()  # CPU time: robust to other jobs sharing the machine
    ds = SyntheticShapes(num_per_class=100, num_points=1024)
    dt = time.process_time() - t
    assert len(ds) == 1000 and dt < 3.0, f"1000 clouds took {dt:.2f} s of CPU"


def test_shapes_are_separable():
    """1-NN on rotation-invariant descriptors (radial histogram + PCA spectrum) beats chance by far."""

    def desc(p):
        c = p - p.mean(0)
        r = np.linalg.norm(c, axis=1)
        h = np.histogram(r / r.max(), bins=12, range=(0, 1))[0] / len(p)
        ev = np.sort(np.linalg.eigvalsh(np.cov(c.T)))
        return np.concatenate([h, ev / ev.sum(), [r.std() / r.mean()]])

    tr = SyntheticShapes(num_per_class=30, num_points=512, seed=1)
    te = SyntheticShapes("test", num_per_class=40, num_points=512, seed=1)
    a = np.stack([desc(p) for p in tr.points])
    b = np.stack([desc(p) for p in te.points])
    pred = tr.labels[np.linalg.norm(b[:, None] - a[None], axis=2).argmin(1)]
    acc = (pred == te.labels).mean()
    assert acc > 0.6, acc  # chance is 0.1


def test_parts_labels_and_determinism():
    a = SyntheticParts(num_per_class=3, num_points=256, seed=2)
    b = get_dataset("synthetic_parts", "train", num_per_class=3, num_points=256, seed=2)
    assert np.array_equal(a.points, b.points) and np.array_equal(a.part_labels, b.part_labels)
    parts = synthetic_category_parts()
    assert a.category_parts == parts and len(parts) >= 6
    assert [i for p in parts.values() for i in p] == list(range(a.num_classes))
    assert {"mug", "lamp", "table"} <= set(parts) and len(parts["lamp"]) == 3
    for i in range(len(a)):
        x, (seg, cat) = a[i]
        allowed = parts[a.category_names[int(cat)]]
        assert set(seg.tolist()) == set(allowed)  # every part sampled, no foreign part
        assert x.shape == (256, 3) and seg.shape == (256,) and seg.dtype == torch.int64
        assert np.isclose(float(np.linalg.norm(a.points[i], axis=1).max()), 1, atol=0.05)  # ~unit sphere
    assert len(SyntheticParts("test", num_per_class=8)) == 2 * len(parts)


def test_parts_geometry_lamp_shade_above_base():
    ds = SyntheticParts(num_per_class=2, num_points=512, rotation="none", noise=0.0)
    base, pole, shade = synthetic_category_parts()["lamp"]
    for i in np.flatnonzero(ds.categories == ds.category_names.index("lamp")):
        y, seg = ds.points[i][:, 1], ds.part_labels[i]
        assert y[seg == base].mean() < y[seg == pole].mean() < y[seg == shade].mean()


def test_registered():
    assert isinstance(get_dataset("synthetic_shapes", "test", num_per_class=4, num_points=64), SyntheticShapes)
    with pytest.raises(ValueError, match="unknown classes"):
        SyntheticShapes(classes=("sphere", "blob"))


def test_items_do_not_alias_dataset_storage():
    ds = SyntheticShapes(num_per_class=1, num_points=32)
    before = ds.points[0].copy()
    ds[0][0].mul_(0)  # an in-place op on an item must not change the dataset
    assert np.array_equal(ds.points[0], before)
