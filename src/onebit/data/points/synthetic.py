"""Seeded procedural point-cloud sets: ``synthetic_shapes`` (cls) and ``synthetic_parts`` (partseg).

Shapes: surface samples (area-weighted, exact on the triangle meshes of ``mesh.py``) of
primitives under a random pose, scale and anisotropy, plus Gaussian noise. Parts: objects
assembled from labelled part meshes with random proportions; part ids are global over all
categories, like ShapeNet Part. All data is generated at construction from ``seed`` (same
seed and options → identical arrays) in the y-up frame.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch
from torch.utils.data import Dataset

from onebit.data.points import mesh as M
from onebit.data.points._io import check_split, to_frame
from onebit.data.registry import register_dataset
from onebit.data.transforms import rotation_matrix as _rot

_SPLIT_STREAM = {"train": 0, "val": 1, "test": 2}


def random_rotations(rng: np.random.Generator, n: int, mode: str) -> np.ndarray:
    """(n, 3, 3) rotations: "so3" uniform (QR of Gaussian matrices, det +1), "up" about y, "none"."""
    if mode == "none":
        return np.broadcast_to(np.eye(3), (n, 3, 3)).copy()
    if mode == "up":
        t = rng.uniform(0, 2 * math.pi, n)
        c, s = np.cos(t), np.sin(t)
        r = np.zeros((n, 3, 3))
        r[:, 0, 0], r[:, 0, 2], r[:, 1, 1], r[:, 2, 0], r[:, 2, 2] = c, s, 1, -s, c
        return r
    if mode == "so3":
        q, rr = np.linalg.qr(rng.standard_normal((n, 3, 3)))
        q = q * np.sign(np.diagonal(rr, axis1=1, axis2=2))[:, None, :]
        q[np.linalg.det(q) < 0, :, 0] *= -1
        return q
    raise ValueError(f"rotation must be 'so3', 'up' or 'none', got {mode!r}")


def _split_sizes(split: str, num_per_class: int, test_per_class: int | None, val_per_class: int) -> int:
    if num_per_class <= 0:
        raise ValueError(f"num_per_class must be positive, got {num_per_class}")
    if split == "train":
        return num_per_class
    if split == "val":
        return val_per_class
    return max(1, num_per_class // 4) if test_per_class is None else test_per_class


def _sample_batch(vertices, faces, count, num_points, rng):
    """Area-weighted samples of one mesh for ``count`` clouds at once: (count, num_points, 3)."""
    pts, _ = M.sample_surface(vertices, faces, count * num_points, rng)
    return pts.reshape(count, num_points, 3)


class SyntheticShapes(Dataset):
    """Procedural classification set; items ``(points (num_points, 3) float32, label int64)``.

    Each cloud: surface samples of a primitive (``classes``), anisotropic stretch
    diag(1 + U[−a, a]) per axis, uniform scale U[scale], a random rotation (``rotation``:
    "up" about the y axis, "so3" any pose, "none"), Gaussian noise σ = ``noise``.
    """

    def __init__(self, split: str = "train", num_per_class: int = 100, num_points: int = 1024,
                 seed: int = 0, noise: float = 0.01, classes: tuple[str, ...] = M.PRIMITIVES,
                 rotation: str = "up", scale: tuple[float, float] = (0.7, 1.0), anisotropy: float = 0.2,
                 test_per_class: int | None = None, val_per_class: int = 0, up_axis: str = "y",
                 transform: Callable | None = None):
        check_split(split, ("train", "val", "test"), "synthetic_shapes")
        unknown = [c for c in classes if c not in M.PRIMITIVES]
        if unknown or not classes:
            raise ValueError(f"synthetic_shapes: unknown classes {unknown}; known: {', '.join(M.PRIMITIVES)}")
        if not 0 <= anisotropy < 1:
            raise ValueError(f"synthetic_shapes: anisotropy must be in [0, 1), got {anisotropy}")
        count = _split_sizes(split, num_per_class, test_per_class, val_per_class)
        self.split, self.class_names, self.num_classes = split, list(classes), len(classes)
        self.num_points, self.seed, self.transform = int(num_points), int(seed), transform
        rng = np.random.default_rng([int(seed), _SPLIT_STREAM[split], 1])
        clouds, labels = [], []
        for label, name in enumerate(classes):
            v, f = M.primitive(name)
            pts = _sample_batch(v, f, count, self.num_points, rng)
            stretch = 1 + rng.uniform(-anisotropy, anisotropy, (count, 1, 3))
            s = rng.uniform(*scale, (count, 1, 1))
            rot = random_rotations(rng, count, rotation)
            pts = np.einsum("bnj,bij->bni", pts * stretch * s, rot)
            pts += noise * rng.standard_normal(pts.shape)
            clouds.append(pts.astype(np.float32))
            labels.append(np.full(count, label, dtype=np.int64))
        self.points = to_frame(np.concatenate(clouds), "y", up_axis) if clouds else np.zeros((0, num_points, 3))
        self.labels = np.concatenate(labels)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int):
        pts = self.points[index]
        if self.transform is not None:
            pts = self.transform(pts)
        return torch.tensor(np.asarray(pts, dtype=np.float32)), torch.tensor(int(self.labels[index]))


# ----------------------------------------------------------------------------------------------
# part segmentation
def _mug(r):
    h, rad = r.uniform(0.9, 1.3), r.uniform(0.4, 0.55)
    body = M.cylinder(rad, h, caps=True, bottom=True)
    hr = r.uniform(0.22, 0.32)
    handle = M.transformed(M.torus(hr, 0.06, arc=math.pi), rot=_rot("z", -math.pi / 2) @ _rot("x", -math.pi / 2),
                           offset=(rad, 0, 0))
    return [body, handle]


def _lamp(r):
    base_h, pole_h = r.uniform(0.08, 0.15), r.uniform(0.9, 1.4)
    base = M.transformed(M.cylinder(r.uniform(0.3, 0.45), base_h), offset=(0, base_h / 2, 0))
    pole = M.transformed(M.cylinder(0.04, pole_h), offset=(0, base_h + pole_h / 2, 0))
    sh = r.uniform(0.3, 0.5)
    shade = M.transformed(M.frustum(r.uniform(0.35, 0.5), r.uniform(0.1, 0.2), sh, caps=False),
                          offset=(0, base_h + pole_h + sh / 2 - 0.05, 0))
    return [base, pole, shade]


def _table(r):
    w, d, h, t = r.uniform(1.2, 1.8), r.uniform(0.7, 1.1), r.uniform(0.6, 0.9), r.uniform(0.05, 0.1)
    top = M.box((w, t, d), (0, h + t / 2, 0))
    lw = r.uniform(0.06, 0.1)
    legs = [M.box((lw, h, lw), (sx * (w / 2 - lw), h / 2, sz * (d / 2 - lw))) for sx in (-1, 1) for sz in (-1, 1)]
    v, f, _ = M.merge(legs)
    return [top, (v, f)]


def _chair(r):
    w, h, t = r.uniform(0.8, 1.0), r.uniform(0.7, 0.9), 0.08
    seat = M.box((w, t, w), (0, h, 0))
    bh = r.uniform(0.7, 1.1)
    back = M.box((w, bh, t), (0, h + bh / 2, -w / 2 + t / 2))
    lw = 0.07
    legs = [M.box((lw, h, lw), (sx * (w / 2 - lw), h / 2, sz * (w / 2 - lw))) for sx in (-1, 1) for sz in (-1, 1)]
    v, f, _ = M.merge(legs)
    return [seat, back, (v, f)]


def _airplane(r):
    length, rad = r.uniform(2.0, 2.6), r.uniform(0.15, 0.22)
    body = M.transformed(M.capsule(rad, length), rot=_rot("z", math.pi / 2))
    span = r.uniform(1.8, 2.4)
    wing = M.box((r.uniform(0.35, 0.5), 0.04, span), (r.uniform(-0.1, 0.2), 0, 0))
    tail = M.merge([M.box((0.25, 0.04, 0.8), (-length / 2 - 0.05, 0.05, 0)),
                    M.box((0.3, 0.45, 0.04), (-length / 2 - 0.05, 0.25, 0))])
    return [body, wing, tail[:2]]


def _rocket(r):
    h, rad = r.uniform(1.6, 2.2), r.uniform(0.2, 0.28)
    body = M.cylinder(rad, h, caps=True)
    nh = r.uniform(0.4, 0.7)
    nose = M.transformed(M.frustum(rad, 0.0, nh, caps=False), offset=(0, h / 2 + nh / 2, 0))
    fins = [M.transformed(M.box((0.35, 0.45, 0.03), (rad + 0.15, -h / 2 + 0.2, 0)), rot=_rot("y", a))
            for a in (0, math.pi / 2, math.pi, 3 * math.pi / 2)]
    v, f, _ = M.merge(fins)
    return [body, nose, (v, f)]


PART_CATEGORIES: dict[str, tuple[tuple[str, ...], Callable]] = {
    "airplane": (("body", "wing", "tail"), _airplane),
    "chair": (("seat", "back", "leg"), _chair),
    "lamp": (("base", "pole", "shade"), _lamp),
    "mug": (("body", "handle"), _mug),
    "rocket": (("body", "nose", "fin"), _rocket),
    "table": (("top", "leg"), _table),
}
"""Categories of ``synthetic_parts``: name -> (part names, the function that samples a shape)."""


def synthetic_category_parts() -> dict[str, list[int]]:
    """Category → its global part ids (same layout as ``shapenet_category_parts()``)."""
    out, k = {}, 0
    for name, (parts, _) in PART_CATEGORIES.items():
        out[name] = list(range(k, k + len(parts)))
        k += len(parts)
    return out


class SyntheticParts(Dataset):
    """Procedural part segmentation; items ``(points (N, 3), (part labels (N,) int64, category int64))``.

    Each object is a random instance of a category (random proportions), sampled area-weighted
    over all its parts, unit-sphere normalised, rotated about the up axis (``rotation``),
    with Gaussian noise. ``num_classes`` is the number of parts over all categories;
    ``category_parts`` maps each category to its part ids.
    """

    def __init__(self, split: str = "train", num_per_class: int = 50, num_points: int = 1024, seed: int = 0,
                 noise: float = 0.005, rotation: str = "up", test_per_class: int | None = None,
                 val_per_class: int = 0, up_axis: str = "y", transform: Callable | None = None):
        check_split(split, ("train", "val", "test"), "synthetic_parts")
        count = _split_sizes(split, num_per_class, test_per_class, val_per_class)
        self.category_parts = synthetic_category_parts()
        self.category_names = list(PART_CATEGORIES)
        self.num_categories = len(self.category_names)
        self.class_names = [f"{c}/{p}" for c, (parts, _) in PART_CATEGORIES.items() for p in parts]
        self.num_classes = len(self.class_names)
        self.num_points, self.transform = int(num_points), transform
        rng = np.random.default_rng([int(seed), _SPLIT_STREAM[split], 2])
        pts_all, parts_all, cats = [], [], []
        for ci, (name, (_, build)) in enumerate(PART_CATEGORIES.items()):
            first = self.category_parts[name][0]
            for _ in range(count):
                v, f, part = M.merge(build(rng))
                p, fidx = M.sample_surface(v, f, self.num_points, rng)
                p -= p.mean(0)
                p /= np.sqrt((p ** 2).sum(1)).max()
                p = p @ random_rotations(rng, 1, rotation)[0].T + noise * rng.standard_normal(p.shape)
                pts_all.append(p.astype(np.float32))
                parts_all.append(part[fidx] + first)
                cats.append(ci)
        self.points = to_frame(np.stack(pts_all), "y", up_axis)
        self.part_labels = np.stack(parts_all).astype(np.int64)
        self.categories = np.array(cats, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.categories)

    def __getitem__(self, index: int):
        pts, seg = self.points[index], self.part_labels[index]
        cat = torch.tensor(int(self.categories[index]))
        if self.transform is not None:
            pts, (seg, cat) = self.transform(pts, (seg, cat))
        return torch.tensor(np.asarray(pts, dtype=np.float32)), (torch.tensor(np.asarray(seg)), cat)


@register_dataset("synthetic_shapes", domain="points", task="cls")
def synthetic_shapes(split: str = "train", **options) -> SyntheticShapes:
    """Registered as ``synthetic_shapes``: ``SyntheticShapes(split=split, **options)``."""
    return SyntheticShapes(split=split, **options)


@register_dataset("synthetic_parts", domain="points", task="partseg")
def synthetic_parts(split: str = "train", **options) -> SyntheticParts:
    """Registered as ``synthetic_parts``: ``SyntheticParts(split=split, **options)``."""
    return SyntheticParts(split=split, **options)
