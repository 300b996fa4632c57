"""Small composable point-cloud transforms (PyTorch Geometric style).

Every transform is a callable on ``points`` (an (N, C) array or tensor whose channels 0:3 are xyz
and, for C == 6, channels 3:6 are normals) or on ``(points, target)``:

    t(points) -> points
    t(points, target) -> (points, target)

Transforms that change the number or order of points (sampling, dropout, shuffling) index a
per-point target too: a target array of length N, or a tuple whose first element is one
(part segmentation: ``(part_labels, category)``). Tensors in give tensors out.

Randomness: each random transform takes ``rng`` (a ``numpy.random.Generator`` or an int seed).
Without one it draws from a generator seeded by ``torch.initial_seed()``, which PyTorch sets per
DataLoader worker (base seed + worker id), so runs seeded with ``torch.manual_seed`` are
reproducible and workers never share a stream.
"""

from __future__ import annotations

import math
import os
import zlib
from collections.abc import Callable, Sequence

import numpy as np

__all__ = [
    "Compose", "NormalizeScale", "Center", "RandomScale", "RandomShift", "Jitter", "RandomRotate",
    "RandomPerturbRotate", "PointDropout", "FPSSample", "RandomSample", "FirstSample", "Shuffle",
    "farthest_point_sample", "farthest_point_sample_numpy", "rotation_matrix", "worker_rng", "transform_from_config",
    "transform_names", "AXES",
]

AXES = {"x": 0, "y": 1, "z": 2}
"""Axis name -> coordinate channel."""


# ----------------------------------------------------------------------------------------------
# randomness
class _TorchSeeded:
    """A numpy Generator re-seeded whenever torch's initial seed (or the process) changes."""

    def __init__(self, salt: str):
        self.salt = zlib.crc32(salt.encode())
        self._key = None
        self._gen: np.random.Generator | None = None

    def get(self) -> np.random.Generator:
        import torch

        key = (os.getpid(), torch.initial_seed())
        if key != self._key:
            self._key = key
            self._gen = np.random.default_rng([key[1] % (2**63), self.salt])
        return self._gen


def worker_rng(rng: np.random.Generator | int | None, salt: str) -> Callable[[], np.random.Generator]:
    """Return a function giving the generator to use: ``rng`` itself, a Generator seeded with
    the int ``rng``, or (for None) one seeded from ``torch.initial_seed()`` and ``salt``."""
    if rng is None:
        seeded = _TorchSeeded(salt)
        return seeded.get
    if isinstance(rng, np.random.Generator):
        return lambda: rng
    if isinstance(rng, (int, np.integer)):
        gen = np.random.default_rng(int(rng))
        return lambda: gen
    raise TypeError(f"rng must be a numpy Generator, an int seed or None, got {type(rng).__name__}")


class _Transform:
    """Base: handles tensors and the optional target; subclasses implement ``apply``."""

    def __call__(self, points, target=None, *rest):
        if rest:
            raise TypeError(f"{type(self).__name__} takes points or (points, target)")
        is_tensor = not isinstance(points, np.ndarray)
        if is_tensor:
            import torch

            if not isinstance(points, torch.Tensor):
                raise TypeError(f"{type(self).__name__}: points must be an array or tensor")
            dtype = points.dtype
            arr = points.detach().cpu().numpy()
        else:
            arr = points
        if arr.ndim != 2 or arr.shape[1] < 3:
            raise ValueError(f"{type(self).__name__}: points must have shape (N, C>=3), got {arr.shape}")
        out, idx = self.apply(arr)
        if is_tensor:
            import torch

            out = torch.from_numpy(np.ascontiguousarray(out)).to(dtype)
        if target is None:
            return out
        if idx is not None:
            target = _index_target(target, idx, arr.shape[0])
        return out, target

    def apply(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        raise NotImplementedError

    def __repr__(self) -> str:
        fields = {k: v for k, v in vars(self).items() if not k.startswith("_")}
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in fields.items())})"


def _index_target(target, idx: np.ndarray, n: int):
    """Index a per-point target (length n) or the first element of a tuple target."""
    if isinstance(target, tuple) and target:
        return (_index_target(target[0], idx, n), *target[1:])
    shape = getattr(target, "shape", None)
    if shape is not None and len(shape) >= 1 and shape[0] == n:
        if isinstance(target, np.ndarray):
            return target[idx]
        import torch

        return target[torch.as_tensor(idx, dtype=torch.long)]
    return target  # a per-cloud label is unchanged


def _geom_channels(points: np.ndarray, normals: bool | str) -> list[slice]:
    """Channel groups that rotate like vectors: xyz, plus normals (3:6) when C == 6 or asked."""
    groups = [slice(0, 3)]
    c = points.shape[1]
    if normals is True or (normals == "auto" and c == 6):
        if c < 6:
            raise ValueError(f"normals=True needs at least 6 channels, got {c}")
        groups.append(slice(3, 6))
    return groups


# ----------------------------------------------------------------------------------------------
class Compose:
    """Apply transforms in order: ``Compose([a, b])(p, t) == b(*a(p, t))``."""

    def __init__(self, transforms: Sequence[Callable]):
        self.transforms = list(transforms)

    def __call__(self, points, target=None):
        if target is None:
            for t in self.transforms:
                points = t(points)
            return points
        for t in self.transforms:
            points, target = t(points, target)
        return points, target

    def __repr__(self) -> str:
        return "Compose([" + ", ".join(repr(t) for t in self.transforms) + "])"


class Center(_Transform):
    """Subtract the centroid of xyz (channels 0:3)."""

    def apply(self, points):
        """Apply the transform to one (N, C) cloud: returns ``(points, index)``, ``index`` the source row of each
        output point (for the per-point targets), or None when the rows keep their order.
        """
        out = np.array(points, dtype=points.dtype, copy=True)
        out[:, :3] -= out[:, :3].mean(axis=0, keepdims=True)
        return out, None


class NormalizeScale(_Transform):
    """Centre xyz on the centroid and scale so the farthest point is at radius 1 (unit sphere),
    as in PointNet++'s ``pc_normalize``. Normals are left unchanged (a uniform scale keeps them)."""

    def apply(self, points):
        """Apply the transform to one (N, C) cloud: returns ``(points, index)``, ``index`` the source row of each
        output point (for the per-point targets), or None when the rows keep their order.
        """
        out = np.array(points, dtype=points.dtype, copy=True)
        xyz = out[:, :3]
        xyz -= xyz.mean(axis=0, keepdims=True)
        r = float(np.sqrt((xyz.astype(np.float64) ** 2).sum(axis=1)).max()) if len(xyz) else 0.0
        if r > 0:
            xyz /= r
        return out, None


class RandomScale(_Transform):
    """Multiply xyz by s ~ U[lo, hi]; ``anisotropic=True`` draws one factor per axis
    (the DGCNN / PointNet++ PyTorch recipe uses U[2/3, 3/2] per axis). Normals are re-normalised
    after an anisotropic scale (n' ∝ n / s)."""

    def __init__(self, scales: tuple[float, float] = (0.8, 1.25), anisotropic: bool = False,
                 normals: bool | str = "auto", rng=None):
        lo, hi = scales
        if not 0 < lo <= hi:
            raise ValueError(f"RandomScale: need 0 < lo <= hi, got {scales}")
        self.scales, self.anisotropic, self.normals = (float(lo), float(hi)), anisotropic, normals
        self._rng = worker_rng(rng, "RandomScale")

    def apply(self, points):
        """Apply the transform to one (N, C) cloud: returns ``(points, index)``, ``index`` the source row of each
        output point (for the per-point targets), or None when the rows keep their order.
        """
        s = self._rng().uniform(*self.scales, size=3 if self.anisotropic else 1)
        out = np.array(points, copy=True)
        out[:, :3] *= s.astype(out.dtype)
        groups = _geom_channels(points, self.normals)
        if self.anisotropic and len(groups) > 1:
            n = out[:, 3:6] / s.astype(out.dtype)
            out[:, 3:6] = n / np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-12)
        return out, None


class RandomShift(_Transform):
    """Add one offset t ~ U[−shift, shift]³ to every point's xyz."""

    def __init__(self, shift: float = 0.1, rng=None):
        self.shift = float(shift)
        self._rng = worker_rng(rng, "RandomShift")

    def apply(self, points):
        """Apply the transform to one (N, C) cloud: returns ``(points, index)``, ``index`` the source row of each
        output point (for the per-point targets), or None when the rows keep their order.
        """
        t = self._rng().uniform(-self.shift, self.shift, size=3).astype(points.dtype)
        out = np.array(points, copy=True)
        out[:, :3] += t
        return out, None


class Jitter(_Transform):
    """Add clipped Gaussian noise to xyz: clip(N(0, σ²), −clip, clip) (PointNet: σ 0.01, clip 0.05)."""

    def __init__(self, sigma: float = 0.01, clip: float = 0.05, rng=None):
        if sigma < 0 or clip <= 0:
            raise ValueError(f"Jitter: need sigma >= 0 and clip > 0, got {sigma}, {clip}")
        self.sigma, self.clip = float(sigma), float(clip)
        self._rng = worker_rng(rng, "Jitter")

    def apply(self, points):
        """Apply the transform to one (N, C) cloud: returns ``(points, index)``, ``index`` the source row of each
        output point (for the per-point targets), or None when the rows keep their order.
        """
        noise = np.clip(self.sigma * self._rng().standard_normal((len(points), 3)), -self.clip, self.clip)
        out = np.array(points, copy=True)
        out[:, :3] += noise.astype(out.dtype)
        return out, None


def rotation_matrix(axis: str | int, angle: float) -> np.ndarray:
    """Right-handed rotation by ``angle`` radians about axis x, y or z (3×3, float64)."""
    a = AXES[axis] if isinstance(axis, str) else int(axis)
    c, s = math.cos(angle), math.sin(angle)
    i, j = [(1, 2), (2, 0), (0, 1)][a]
    r = np.eye(3)
    r[i, i], r[i, j], r[j, i], r[j, j] = c, -s, s, c
    return r


def _rotate(points: np.ndarray, r: np.ndarray, normals) -> np.ndarray:
    out = np.array(points, copy=True)
    for g in _geom_channels(points, normals):
        out[:, g] = (points[:, g].astype(np.float64) @ r.T).astype(out.dtype)
    return out


class RandomRotate(_Transform):
    """Rotate about one axis (default the up axis ``y``) by θ ~ U[−degrees, degrees]
    (default 180: a uniform random pose about the up axis, PointNet's augmentation)."""

    def __init__(self, axis: str = "y", degrees: float = 180.0, normals: bool | str = "auto", rng=None):
        if axis not in AXES:
            raise ValueError(f"RandomRotate: axis must be one of x, y, z, got {axis!r}")
        self.axis, self.degrees, self.normals = axis, float(degrees), normals
        self._rng = worker_rng(rng, "RandomRotate")

    def apply(self, points):
        """Apply the transform to one (N, C) cloud: returns ``(points, index)``, ``index`` the source row of each
        output point (for the per-point targets), or None when the rows keep their order.
        """
        theta = math.radians(self._rng().uniform(-self.degrees, self.degrees))
        return _rotate(points, rotation_matrix(self.axis, theta), self.normals), None


class RandomPerturbRotate(_Transform):
    """Small random rotations about all three axes: angles clip(N(0, σ²), ±clip) radians,
    R = Rz·Ry·Rx (PointNet++'s ``rotate_perturbation_point_cloud``: σ 0.06, clip 0.18)."""

    def __init__(self, sigma: float = 0.06, clip: float = 0.18, normals: bool | str = "auto", rng=None):
        self.sigma, self.clip, self.normals = float(sigma), float(clip), normals
        self._rng = worker_rng(rng, "RandomPerturbRotate")

    def apply(self, points):
        """Apply the transform to one (N, C) cloud: returns ``(points, index)``, ``index`` the source row of each
        output point (for the per-point targets), or None when the rows keep their order.
        """
        ang = np.clip(self.sigma * self._rng().standard_normal(3), -self.clip, self.clip)
        r = rotation_matrix("z", ang[2]) @ rotation_matrix("y", ang[1]) @ rotation_matrix("x", ang[0])
        return _rotate(points, r, self.normals), None


class PointDropout(_Transform):
    """PointNet++ random input dropout: draw a ratio r ~ U[0, max_ratio], drop each point with
    probability r and replace the dropped points by the first point (the count stays N)."""

    def __init__(self, max_ratio: float = 0.875, rng=None):
        if not 0 <= max_ratio < 1:
            raise ValueError(f"PointDropout: max_ratio must be in [0, 1), got {max_ratio}")
        self.max_ratio = float(max_ratio)
        self._rng = worker_rng(rng, "PointDropout")

    def apply(self, points):
        """Apply the transform to one (N, C) cloud: returns ``(points, index)``, ``index`` the source row of each
        output point (for the per-point targets), or None when the rows keep their order.
        """
        g = self._rng()
        ratio = g.uniform(0, self.max_ratio)
        drop = g.random(len(points)) <= ratio
        idx = np.arange(len(points))
        idx[drop] = 0
        return points[idx], idx


def farthest_point_sample(points: np.ndarray, n: int, start: int = 0) -> np.ndarray:
    """Indices (n,) of farthest point sampling on xyz (channels 0:3) from index ``start``:
    idx[t] = argmax_j min_{s<t} |x_j − x_idx[s]|², ties → lowest j. Runs
    ``onebit.geometry.farthest_point_sample`` (the engine's reference semantics) when that
    module is present, else the identical NumPy loop ``farthest_point_sample_numpy``."""
    xyz = np.asarray(points)[:, :3].astype(np.float64)
    m = len(xyz)
    if n > m:
        raise ValueError(f"farthest_point_sample: asked for {n} points from a cloud of {m}")
    if n <= 0:
        return np.zeros(0, dtype=np.int64)
    try:
        from onebit.geometry import farthest_point_sample as torch_fps
    except ImportError:
        return farthest_point_sample_numpy(xyz, n, start)
    import torch

    return torch_fps(torch.from_numpy(xyz)[None], n, int(start))[0].numpy()


def farthest_point_sample_numpy(xyz: np.ndarray, n: int, start: int = 0) -> np.ndarray:
    """NumPy farthest point sampling (same definition as ``farthest_point_sample``)."""
    xyz = np.asarray(xyz, dtype=np.float64)[:, :3]
    idx = np.empty(n, dtype=np.int64)
    dist = np.full(len(xyz), np.inf)
    cur = int(start)
    for i in range(n):
        idx[i] = cur
        d = ((xyz - xyz[cur]) ** 2).sum(axis=1)
        np.minimum(dist, d, out=dist)
        cur = int(np.argmax(dist))
    return idx


class FPSSample(_Transform):
    """Keep ``num_points`` points by farthest point sampling (start index 0, or random when
    ``random_start``). Clouds with fewer points are padded by repeating random points."""

    def __init__(self, num_points: int, random_start: bool = False, rng=None):
        self.num_points, self.random_start = int(num_points), random_start
        self._rng = worker_rng(rng, "FPSSample")

    def apply(self, points):
        """Apply the transform to one (N, C) cloud: returns ``(points, index)``, ``index`` the source row of each
        output point (for the per-point targets), or None when the rows keep their order.
        """
        n = len(points)
        if n <= self.num_points:
            return _pad(points, self.num_points, self._rng())
        start = int(self._rng().integers(n)) if self.random_start else 0
        idx = farthest_point_sample(points, self.num_points, start)
        return points[idx], idx


def _pad(points, num, g):
    n = len(points)
    if n == 0:
        raise ValueError("cannot sample points from an empty cloud")
    idx = np.concatenate([np.arange(n), g.integers(0, n, num - n)]) if num > n else np.arange(n)
    return points[idx], idx


class RandomSample(_Transform):
    """Keep ``num_points`` points drawn at random without replacement (with replacement only
    for the missing ones when the cloud is smaller)."""

    def __init__(self, num_points: int, rng=None):
        self.num_points = int(num_points)
        self._rng = worker_rng(rng, "RandomSample")

    def apply(self, points):
        """Apply the transform to one (N, C) cloud: returns ``(points, index)``, ``index`` the source row of each
        output point (for the per-point targets), or None when the rows keep their order.
        """
        g = self._rng()
        n = len(points)
        if n <= self.num_points:
            pts, idx = _pad(points, self.num_points, g)
            perm = g.permutation(len(idx))
            return pts[perm], idx[perm]
        idx = g.choice(n, self.num_points, replace=False)
        return points[idx], idx


class FirstSample(_Transform):
    """Keep the first ``num_points`` points (the common ModelNet40 HDF5 protocol)."""

    def __init__(self, num_points: int):
        self.num_points = int(num_points)

    def apply(self, points):
        """Apply the transform to one (N, C) cloud: returns ``(points, index)``, ``index`` the source row of each
        output point (for the per-point targets), or None when the rows keep their order.
        """
        if len(points) < self.num_points:
            raise ValueError(f"FirstSample: cloud has {len(points)} points, need {self.num_points}")
        idx = np.arange(self.num_points)
        return points[idx], idx


class Shuffle(_Transform):
    """Randomly permute the points (and a per-point target)."""

    def __init__(self, rng=None):
        self._rng = worker_rng(rng, "Shuffle")

    def apply(self, points):
        """Apply the transform to one (N, C) cloud: returns ``(points, index)``, ``index`` the source row of each
        output point (for the per-point targets), or None when the rows keep their order.
        """
        idx = self._rng().permutation(len(points))
        return points[idx], idx


# ----------------------------------------------------------------------------------------------
# config: a transform list as YAML-friendly names or {"name": ..., **options}
_BY_NAME: dict[str, type] = {
    "center": Center, "normalize": NormalizeScale, "scale": RandomScale, "shift": RandomShift,
    "jitter": Jitter, "rotate": RandomRotate, "perturb_rotate": RandomPerturbRotate,
    "dropout": PointDropout, "fps": FPSSample, "random_sample": RandomSample,
    "first_sample": FirstSample, "shuffle": Shuffle,
}


def transform_names() -> list[str]:
    """Sorted names accepted by ``transform_from_config`` (e.g. "rotate", "jitter", "shuffle")."""
    return sorted(_BY_NAME)


def transform_from_config(spec, rng=None) -> Compose | None:
    """Build a ``Compose`` from a list of names or ``{"name": ..., **options}`` dicts
    (e.g. ``["rotate", {"name": "jitter", "sigma": 0.01}]``); None or [] gives None.
    ``rng`` (an int seed or Generator) seeds the random transforms deterministically."""
    if not spec:
        return None
    out = []
    for i, item in enumerate(spec):
        if isinstance(item, str):
            name, opts = item, {}
        elif isinstance(item, dict) and "name" in item:
            opts = dict(item)
            name = opts.pop("name")
        else:
            raise ValueError(f"transform #{i}: expected a name or a dict with 'name', got {item!r}")
        cls = _BY_NAME.get(name)
        if cls is None:
            raise ValueError(f"unknown transform {name!r}; known: {', '.join(transform_names())}")
        if rng is not None and "rng" in cls.__init__.__code__.co_varnames and "rng" not in opts:
            opts["rng"] = rng if isinstance(rng, np.random.Generator) else np.random.default_rng([int(rng), i])
        try:
            out.append(cls(**opts))
        except TypeError as e:
            raise ValueError(f"transform {name!r}: bad options {opts}: {e}") from None
    return Compose(out)
