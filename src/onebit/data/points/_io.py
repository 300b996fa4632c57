"""Shared helpers of the point loaders: checked HDF5/text reading, frames, sampling, roots."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np

from onebit.data.errors import DataError
from onebit.data.transforms import farthest_point_sample

UP_AXES = ("y", "z")
SAMPLINGS = ("first", "random", "fps")


def open_h5(path: str | os.PathLike):
    """Open an HDF5 file read-only, turning a missing, truncated or corrupt file into DataError."""
    import h5py

    path = Path(path)
    if not path.is_file():
        raise DataError(path, "file not found")
    try:
        return h5py.File(path, "r")
    except OSError as e:
        raise DataError(path, f"not a readable HDF5 file (truncated or corrupt?): {e}") from None


def h5_array(f, key: str, path, *, ndim: int | None = None, shape_tail: tuple | None = None,
             rows: slice | None = None) -> np.ndarray:
    """Read dataset ``key`` (optionally a slice of rows), checking that it exists and its shape."""
    if key not in f:
        raise DataError(path, f"missing HDF5 key {key!r} (keys: {', '.join(sorted(f.keys())) or 'none'})")
    ds = f[key]
    if ndim is not None and ds.ndim != ndim:
        raise DataError(path, f"key {key!r} has shape {ds.shape}, expected {ndim} dimensions")
    if shape_tail is not None:
        tail = ds.shape[len(ds.shape) - len(shape_tail):]
        if any(t is not None and a != t for a, t in zip(tail, shape_tail)):
            raise DataError(path, f"key {key!r} has shape {ds.shape}, expected (..., "
                                  f"{', '.join('*' if t is None else str(t) for t in shape_tail)})")
    try:
        return ds[rows] if rows is not None else ds[()]
    except (OSError, RuntimeError) as e:
        raise DataError(path, f"cannot read key {key!r} (truncated or corrupt?): {e}") from None


def check_points(points: np.ndarray, path, what: str = "points") -> np.ndarray:
    """Reject empty clouds and NaN/inf coordinates; return float32."""
    if points.size == 0 or (points.ndim >= 2 and points.shape[-2] == 0):
        raise DataError(path, f"empty point cloud in {what}")
    pts = np.asarray(points, dtype=np.float32)
    if not np.isfinite(pts).all():
        bad = np.argwhere(~np.isfinite(pts))[0]
        raise DataError(path, f"NaN or inf coordinate in {what} at index {tuple(int(i) for i in bad)}")
    return pts


def check_labels(labels: np.ndarray, num_classes: int, path, what: str = "label") -> np.ndarray:
    """Integer labels in 0..num_classes-1, else DataError; returns int64."""
    lab = np.asarray(labels)
    if lab.size and not np.issubdtype(lab.dtype, np.integer):
        if not np.all(np.isfinite(lab)) or not np.all(lab == np.round(lab)):
            raise DataError(path, f"{what} values are not integers")
    lab = lab.astype(np.int64)
    if lab.size and (lab.min() < 0 or lab.max() >= num_classes):
        raise DataError(path, f"{what} out of range: values {int(lab.min())}..{int(lab.max())}, "
                              f"expected 0..{num_classes - 1}")
    return lab


def load_text(path, delimiter: str | None, min_cols: int, what: str = "point file") -> np.ndarray:
    """Load a numeric text table (one point per line), DataError naming the line on bad input."""
    path = Path(path)
    if not path.is_file():
        raise DataError(path, f"{what} not found")
    try:
        with warnings.catch_warnings():  # an empty file is reported below, not warned about
            warnings.simplefilter("ignore", UserWarning)
            arr = np.loadtxt(path, delimiter=delimiter, dtype=np.float64, ndmin=2)
    except ValueError as e:
        raise DataError(path, f"malformed line: {e}") from None
    if arr.shape[0] == 0:
        raise DataError(path, "empty point cloud (no lines)")
    if arr.shape[1] < min_cols:
        raise DataError(path, f"each line needs at least {min_cols} values, found {arr.shape[1]}")
    if not np.isfinite(arr).all():
        row = int(np.argwhere(~np.isfinite(arr))[0, 0])
        raise DataError(path, f"NaN or inf value on line {row + 1}")
    return arr


def read_lines(path, what: str) -> list[str]:
    """Non-empty stripped lines of a small text file (split lists, class names)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(path, f"{what} not found")
    with open(path) as f:
        return [ln.strip() for ln in f if ln.strip()]


def to_frame(points: np.ndarray, native_up: str, up_axis: str) -> np.ndarray:
    """Express xyz (and normals, channels 3:6 when C == 6) with ``up_axis`` up.

    Converting between y-up and z-up swaps the y and z channels (``points[..., [0, 2, 1]]``,
    the mapping checked in shared/data/README.md; it is a reflection, so handedness flips)."""
    if up_axis not in UP_AXES:
        raise ValueError(f"up_axis must be one of {UP_AXES}, got {up_axis!r}")
    if native_up == up_axis:
        return points
    perm = [0, 2, 1] + list(range(3, points.shape[-1]))
    if points.shape[-1] == 6:
        perm = [0, 2, 1, 3, 5, 4]
    return points[..., perm]


def normalize_unit_sphere(xyz: np.ndarray) -> np.ndarray:
    """Centre on the centroid and scale the farthest point to radius 1 (xyz channels only)."""
    out = np.array(xyz, dtype=np.float32, copy=True)
    out[:, :3] -= out[:, :3].mean(axis=0)
    r = float(np.sqrt((out[:, :3].astype(np.float64) ** 2).sum(1)).max())
    if r > 0:
        out[:, :3] /= r
    return out


def select_points(points: np.ndarray, num: int, sampling: str, rng: np.random.Generator) -> np.ndarray:
    """Indices of ``num`` points by ``sampling``: "first", "random" (without replacement) or
    "fps" (farthest point sampling from index 0). A smaller cloud is padded by repeating
    random points (as PointNet++'s loaders do)."""
    n = len(points)
    if sampling not in SAMPLINGS:
        raise ValueError(f"sampling must be one of {SAMPLINGS}, got {sampling!r}")
    if n == 0:
        raise ValueError("cannot sample an empty cloud")
    if n <= num:
        extra = rng.integers(0, n, num - n)
        idx = np.concatenate([np.arange(n), extra])
        return rng.permutation(idx) if sampling == "random" else idx
    if sampling == "first":
        return np.arange(num)
    if sampling == "random":
        return rng.choice(n, num, replace=False)
    return farthest_point_sample(points, num)


def default_root(name: str) -> Path:
    """``$ONEBIT_DATA/<name>`` if ONEBIT_DATA is set, else ``<repo>/../shared/data/<name>`` when
    that exists (a source checkout next to the shared data), else ``~/.cache/onebit/<name>``."""
    env = os.environ.get("ONEBIT_DATA")
    if env:
        return Path(env).expanduser() / name
    repo = Path(__file__).resolve().parents[4]
    shared = repo.parent / "shared" / "data" / name
    if shared.is_dir():
        return shared
    return Path.home() / ".cache" / "onebit" / name


def require_dir(root, dataset: str) -> Path:
    root = Path(root).expanduser()
    if not root.is_dir():
        raise DataError(root, f"{dataset} data directory not found (pass root=... or set $ONEBIT_DATA)")
    return root


def check_split(split: str, allowed: tuple[str, ...], dataset: str) -> str:
    if split not in allowed:
        raise ValueError(f"{dataset}: split must be one of {allowed}, got {split!r}")
    return split
