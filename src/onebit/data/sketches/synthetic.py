"""``synthetic_sketches``: procedurally drawn stroke sketches of simple shapes and symbols.

Each class is a shape drawn as a few polylines in [-1, 1]^2; every item gets a random pose
(rotation, scale, aspect, translation), smooth per-point jitter and a random line width, then is
rasterised with ``rasterize_strokes``. Item ``i`` of a split is a pure function of
``(seed, split, i)``, so the set is reproducible and needs no storage.
"""

from __future__ import annotations

import math

import numpy as np

from onebit.data.registry import register_dataset
from onebit.data.sketches.datasets import SketchDataset, _build_transform, _check_split, _no_extra
from onebit.data.sketches.raster import rasterize_strokes

__all__ = ["SHAPES", "SyntheticSketches", "draw_shape", "synthetic_sketches"]


def _poly(points, closed=False, n_per_edge=8):
    p = np.asarray(points, dtype=np.float64)
    if closed:
        p = np.vstack([p, p[:1]])
    segs = [np.linspace(p[i], p[i + 1], n_per_edge, endpoint=False) for i in range(len(p) - 1)]
    return np.vstack(segs + [p[-1:]])


def _circle(rng):
    t = np.linspace(0, 2 * math.pi, 48)
    return [np.stack([np.cos(t), np.sin(t)], 1)]


def _square(rng):
    return [_poly([(-1, -1), (1, -1), (1, 1), (-1, 1)], closed=True)]


def _triangle(rng):
    return [_poly([(0, -1), (0.95, 0.8), (-0.95, 0.8)], closed=True)]


def _star(rng):
    pts = [(math.sin(k * 4 * math.pi / 5), -math.cos(k * 4 * math.pi / 5)) for k in range(5)]
    return [_poly(pts, closed=True)]


def _arrow(rng):
    return [_poly([(-1, 0), (1, 0)]), _poly([(0.4, -0.5), (1, 0), (0.4, 0.5)])]


def _cross(rng):
    return [_poly([(-1, -1), (1, 1)]), _poly([(-1, 1), (1, -1)])]


def _spiral(rng):
    t = np.linspace(0, 5 * math.pi, 80)
    r = t / t[-1]
    return [np.stack([r * np.cos(t), r * np.sin(t)], 1)]


def _zigzag(rng):
    xs = np.linspace(-1, 1, 7)
    return [_poly([(x, -0.5 if k % 2 else 0.5) for k, x in enumerate(xs)])]


def _heart(rng):
    t = np.linspace(0, 2 * math.pi, 60)
    x = 16 * np.sin(t) ** 3
    y = -(13 * np.cos(t) - 5 * np.cos(2 * t) - 2 * np.cos(3 * t) - np.cos(4 * t))
    return [np.stack([x, y], 1) / 17.0]


def _house(rng):
    return [_poly([(-0.8, 1), (-0.8, -0.1), (0, -1), (0.8, -0.1), (0.8, 1)], closed=True),
            _poly([(-0.2, 1), (-0.2, 0.4), (0.2, 0.4), (0.2, 1)])]


def _smiley(rng):
    t = np.linspace(0, 2 * math.pi, 48)
    m = np.linspace(0.2 * math.pi, 0.8 * math.pi, 16)
    return [np.stack([np.cos(t), np.sin(t)], 1), np.array([[-0.35, -0.3], [-0.33, -0.3]]),
            np.array([[0.35, -0.3], [0.37, -0.3]]), np.stack([0.55 * np.cos(m), 0.55 * np.sin(m)], 1)]


def _wave(rng):
    x = np.linspace(-1, 1, 60)
    return [np.stack([x, 0.5 * np.sin(3 * math.pi * x)], 1)]


SHAPES = {
    "circle": _circle, "square": _square, "triangle": _triangle, "star": _star, "arrow": _arrow,
    "cross": _cross, "spiral": _spiral, "zigzag": _zigzag, "heart": _heart, "house": _house,
    "smiley": _smiley, "wave": _wave,
}
"""Shape name -> the function drawing its strokes; the first ``num_classes`` are the classes."""


def draw_shape(name: str, rng: np.random.Generator, size: int = 64, jitter: float = 0.03) -> np.ndarray:
    """One random drawing of shape ``name`` -> uint8 (size, size), ink 255 on 0."""
    strokes = SHAPES[name](rng)
    ang = rng.uniform(-math.pi, math.pi) if name not in ("house", "smiley", "heart") else rng.uniform(-0.4, 0.4)
    c, s = math.cos(ang), math.sin(ang)
    rot = np.array([[c, -s], [s, c]]) @ np.diag([rng.uniform(0.75, 1.25), rng.uniform(0.75, 1.25)])
    shift = rng.uniform(-0.15, 0.15, size=2)
    out = []
    for st in strokes:
        p = st @ rot.T + shift
        # smooth jitter: a random walk low-passed along the stroke, like an unsteady hand
        noise = np.cumsum(rng.normal(0, jitter, size=p.shape), axis=0)
        noise -= np.linspace(0, 1, len(p))[:, None] * noise[-1:]
        out.append(p + noise)
    # rasterise into a canvas margin that depends on the drawing's scale, so objects vary in size
    margin = rng.uniform(0.04, 0.2)
    return rasterize_strokes(out, size, line_width=rng.uniform(1.0, 2.2) * size / 64, margin=margin)


class SyntheticSketches(SketchDataset):
    """The ``synthetic_sketches`` dataset (built by ``synthetic_sketches``): ``length`` items cycling over
    the first ``num_classes`` shapes, item ``i`` drawn from ``(seed, split, i)`` at ``size`` pixels.
    """
    def __init__(self, split, num_classes, size, length, seed, **kw):
        names = list(SHAPES)[:num_classes]
        labels = [i % num_classes for i in range(length)]
        super().__init__(labels, names, split, **kw)
        self.size, self.seed = size, seed
        self._split_id = {"train": 0, "test": 1, "all": 2}[split]

    def _raw(self, i):
        rng = np.random.default_rng([self.seed, self._split_id, i])
        return draw_shape(self.class_names[self.labels[i]], rng, self.size), "light_on_dark"


@register_dataset("synthetic_sketches", domain="sketch")
def synthetic_sketches(split: str = "train", num_classes: int = 8, size: int = 32, per_class: int | None = None,
                       seed: int = 0, stroke_width: int | None = None, **opts) -> SketchDataset:
    """Procedural sketches of ``num_classes`` (<= 12) shapes at ``size`` x ``size``;
    ``per_class`` items per class (default 64 train / 16 test). Train augmentation by default:
    flip + rotation 10 degrees; no resize or crop (set ``resize``/``crop`` for the ten-crop path)."""
    _check_split(split, "synthetic_sketches")
    if not 1 <= num_classes <= len(SHAPES):
        raise ValueError(f"synthetic_sketches: num_classes must be in 1..{len(SHAPES)}, got {num_classes}")
    if per_class is None:
        per_class = 64 if split != "test" else 16
    transform = _build_transform(split, {"resize": None, "crop": None}, opts)
    _no_extra(opts, "synthetic_sketches")
    return SyntheticSketches(split, num_classes, size, per_class * num_classes, seed, transform=transform,
                             stroke_width=stroke_width, name="synthetic_sketches")
