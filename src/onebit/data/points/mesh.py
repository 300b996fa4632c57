"""Triangle meshes: OFF reading, area-weighted surface sampling and procedural primitives.

A mesh is ``(vertices (V, 3) float64, faces (F, 3) int64)``. Primitives are closed (or open
where said) surfaces centred near the origin with y up, fitting roughly in the unit sphere.
"""

from __future__ import annotations

import math
import os
import warnings
from functools import cache

import numpy as np

from onebit.data.errors import DataError

Mesh = tuple[np.ndarray, np.ndarray]
"""A triangle mesh: ``(vertices (V, 3) float64, faces (F, 3) int64)``."""


# ----------------------------------------------------------------------------------------------
# OFF files
def read_off(path: str | os.PathLike) -> Mesh:
    """Read an OFF mesh; polygons with more than 3 vertices are fan-triangulated.

    Handles the malformed header of many ModelNet files where the counts follow "OFF" on the
    first line without a separator (``OFF490 518 0``). Raises ``DataError`` on anything else
    malformed (bad header, short or non-numeric lines, face indices out of range, NaN/inf).
    """
    path = os.fspath(path)
    try:
        with open(path, encoding="ascii", errors="strict") as f:
            text = f.read()
    except UnicodeDecodeError:
        raise DataError(path, "not an ASCII OFF file (binary content)") from None
    except OSError as e:
        raise DataError(path, f"cannot read: {e.strerror or e}") from None
    fast = _read_off_fast(text)
    if fast is not None:
        return fast
    lines = [ln.split("#", 1)[0].strip() for ln in text.splitlines()]
    lines = [ln for ln in lines if ln]
    if not lines or not lines[0].startswith("OFF"):
        raise DataError(path, "not an OFF file (first line must start with 'OFF')")
    head = lines[0][3:].strip()
    pos = 1
    if not head:  # the normal layout: counts on the second line
        if len(lines) < 2:
            raise DataError(path, "OFF header has no counts line")
        head, pos = lines[1], 2
    try:
        counts = [int(t) for t in head.split()]
        nv, nf = counts[0], counts[1]
    except (ValueError, IndexError):
        raise DataError(path, f"bad OFF counts line {head!r} (expected 'nverts nfaces nedges')") from None
    if nv <= 0 or nf < 0:
        raise DataError(path, f"bad OFF counts: {nv} vertices, {nf} faces")
    if len(lines) < pos + nv + nf:
        raise DataError(path, f"truncated OFF: header promises {nv} vertices and {nf} faces, "
                              f"file has {len(lines) - pos} data lines")
    try:
        verts = np.array([ln.split()[:3] for ln in lines[pos:pos + nv]], dtype=np.float64)
    except ValueError:
        raise DataError(path, "malformed vertex line (need 3 numbers per vertex)") from None
    if verts.shape != (nv, 3):
        raise DataError(path, "malformed vertex line (need 3 numbers per vertex)")
    if not np.isfinite(verts).all():
        raise DataError(path, "vertex coordinates contain NaN or inf")
    tris = []
    for k, ln in enumerate(lines[pos + nv:pos + nv + nf]):
        try:
            vals = [int(t) for t in ln.split()]
        except ValueError:
            raise DataError(path, f"malformed face line {k + 1}: {ln[:60]!r}") from None
        if not vals or len(vals) < vals[0] + 1 or vals[0] < 3:
            raise DataError(path, f"malformed face line {k + 1}: {ln[:60]!r}")
        poly = vals[1:vals[0] + 1]
        tris.extend((poly[0], poly[j], poly[j + 1]) for j in range(1, len(poly) - 1))
    faces = np.array(tris, dtype=np.int64).reshape(-1, 3)
    if faces.size and (faces.min() < 0 or faces.max() >= nv):
        raise DataError(path, f"face index out of range 0..{nv - 1}")
    if len(faces) == 0:
        raise DataError(path, "mesh has no faces")
    return verts, faces


def _read_off_fast(text: str) -> Mesh | None:
    """The common case in C speed: a header, nv lines "x y z", nf lines "3 a b c", no comments.
    Returns None whenever anything differs, so that the checked line parser handles it."""
    if "#" in text:
        return None
    head, sep, rest = text.partition("\n")
    head = head.strip()
    if not head.startswith("OFF"):
        return None
    if head == "OFF":
        counts, sep, rest = rest.partition("\n")
    else:
        counts = head[3:]
    try:
        nv, nf = (int(t) for t in counts.split()[:2])
    except ValueError:
        return None
    if nv <= 0 or nf <= 0:
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        vals = np.fromstring(rest, sep=" ")
    if vals.size != 3 * nv + 4 * nf:
        return None
    verts = vals[:3 * nv].reshape(nv, 3)
    f = vals[3 * nv:].reshape(nf, 4)
    if not (f[:, 0] == 3).all() or not np.isfinite(verts).all():
        return None
    faces = f[:, 1:].astype(np.int64)
    if not np.array_equal(faces, f[:, 1:]) or faces.min() < 0 or faces.max() >= nv:
        return None
    return verts, faces


def write_off(path: str | os.PathLike, vertices: np.ndarray, faces: np.ndarray) -> None:
    """Write a triangle mesh as an OFF file (standard two-line header)."""
    with open(path, "w") as f:
        f.write(f"OFF\n{len(vertices)} {len(faces)} 0\n")
        for v in vertices:
            f.write(f"{v[0]:.6f} {v[1]:.6f} {v[2]:.6f}\n")
        for t in faces:
            f.write(f"3 {t[0]} {t[1]} {t[2]}\n")


# ----------------------------------------------------------------------------------------------
# sampling
def face_areas_normals(vertices: np.ndarray, faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Areas (F,) and unit normals (F, 3) of the triangles (zero normal for degenerate ones)."""
    a, b, c = (vertices[faces[:, i]] for i in range(3))
    cross = np.cross(b - a, c - a)
    norm = np.linalg.norm(cross, axis=1)
    return 0.5 * norm, cross / np.maximum(norm, 1e-300)[:, None]


def sample_surface(vertices: np.ndarray, faces: np.ndarray, n: int, rng: np.random.Generator,
                   normals: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Sample ``n`` points uniformly on the surface: pick triangles with probability ∝ area,
    then uniform barycentric coordinates (u, v) → a + u(b−a) + v(c−a) folded into the triangle.

    Returns (points (n, 3) or (n, 6) with face normals, face index (n,)).
    """
    areas, fnormals = face_areas_normals(vertices, faces)
    total = areas.sum()
    if not np.isfinite(total) or total <= 0:
        raise ValueError("mesh has zero surface area")
    cdf = np.cumsum(areas)
    fidx = np.minimum(np.searchsorted(cdf, rng.random(n) * cdf[-1], side="right"), len(faces) - 1)
    u, v = rng.random(n), rng.random(n)
    flip = u + v > 1
    u[flip], v[flip] = 1 - u[flip], 1 - v[flip]
    a, b, c = (vertices[faces[fidx, i]] for i in range(3))
    pts = a + u[:, None] * (b - a) + v[:, None] * (c - a)
    if normals:
        pts = np.concatenate([pts, fnormals[fidx]], axis=1)
    return pts, fidx


# ----------------------------------------------------------------------------------------------
# procedural primitives (y up)
def _grid_faces(rows: int, cols: int, wrap: bool) -> np.ndarray:
    """Triangles of a rows×cols vertex grid (row-major), wrapping the columns if asked."""
    f = []
    cmax = cols if wrap else cols - 1
    for i in range(rows - 1):
        for j in range(cmax):
            a, b = i * cols + j, i * cols + (j + 1) % cols
            c, d = a + cols, b + cols
            f += [(a, c, b), (b, c, d)]
    return np.array(f, dtype=np.int64)


def revolve(profile: list[tuple[float, float]], segments: int = 32) -> Mesh:
    """Surface of revolution about the y axis of a profile of (radius, height) points.
    Profile points with radius 0 become poles (degenerate triangles have zero area)."""
    prof = np.asarray(profile, dtype=np.float64)
    t = np.linspace(0, 2 * math.pi, segments, endpoint=False)
    r, h = prof[:, 0:1], prof[:, 1:2]
    verts = np.stack([r * np.cos(t), np.broadcast_to(h, (len(prof), segments)), r * np.sin(t)], axis=-1)
    return verts.reshape(-1, 3), _grid_faces(len(prof), segments, wrap=True)


def box(size=(1.0, 1.0, 1.0), center=(0.0, 0.0, 0.0)) -> Mesh:
    """Axis-aligned box with the given edge lengths."""
    s = np.asarray(size, dtype=np.float64) / 2
    v = np.array([[x, y, z] for x in (-1, 1) for y in (-1, 1) for z in (-1, 1)], dtype=np.float64) * s
    f = np.array([[0, 1, 3], [0, 3, 2], [4, 6, 7], [4, 7, 5], [0, 4, 5], [0, 5, 1],
                  [2, 3, 7], [2, 7, 6], [0, 2, 6], [0, 6, 4], [1, 5, 7], [1, 7, 3]], dtype=np.int64)
    return v + np.asarray(center, dtype=np.float64), f


def _arc(r: float, y0: float, a0: float, a1: float, k: int) -> list[tuple[float, float]]:
    return [(r * math.cos(a), y0 + r * math.sin(a)) for a in np.linspace(a0, a1, k)]


def sphere(radius: float = 1.0, k: int = 16) -> Mesh:
    """UV sphere of ``radius`` (``k`` rings), as a surface of revolution about y."""
    return revolve(_arc(radius, 0.0, -math.pi / 2, math.pi / 2, k))


def cylinder(radius: float = 1.0, height: float = 2.0, caps: bool = True, bottom: bool = True) -> Mesh:
    """Cylinder of ``radius`` and ``height`` about y, centred; ``caps``/``bottom`` close its ends."""
    h = height / 2
    prof = [(radius, -h), (radius, h)]
    if caps:
        prof = ([(0.0, -h)] if bottom else []) + prof + [(0.0, h)]
    return revolve(prof)


def frustum(r0: float, r1: float, height: float, caps: bool = True) -> Mesh:
    """Truncated cone from radius r0 at y = −h/2 to r1 at y = +h/2 (r1 = 0: a cone)."""
    h = height / 2
    prof = [(r0, -h), (r1, h)]
    if caps:
        prof = [(0.0, -h)] + prof + ([(0.0, h)] if r1 > 0 else [])
    return revolve(prof)


def torus(major: float = 0.7, minor: float = 0.3, k: int = 16, arc: float = 2 * math.pi) -> Mesh:
    """Torus about the y axis (tube radius ``minor``); ``arc`` < 2π gives an open partial torus."""
    t = np.linspace(0, 2 * math.pi, k, endpoint=False)
    full = arc >= 2 * math.pi - 1e-9
    s = np.linspace(0, arc, 32, endpoint=not full)
    ring = major + minor * np.cos(t)
    verts = np.stack([ring[None, :] * np.cos(s)[:, None], np.broadcast_to(minor * np.sin(t), (len(s), k)),
                      ring[None, :] * np.sin(s)[:, None]], axis=-1).reshape(-1, 3)
    # rows = positions along the arc, columns = around the tube (always wrapped)
    f = []
    rows = len(s) if full else len(s) - 1
    for i in range(rows):
        for j in range(k):
            a, b = i * k + j, i * k + (j + 1) % k
            c, d = ((i + 1) % len(s)) * k + j, ((i + 1) % len(s)) * k + (j + 1) % k
            f += [(a, b, c), (b, d, c)]
    return verts, np.array(f, dtype=np.int64)


def capsule(radius: float = 0.5, length: float = 1.0) -> Mesh:
    """Capsule: a cylinder of ``length`` with hemispherical ends of ``radius``, about y."""
    h = length / 2
    prof = _arc(radius, -h, -math.pi / 2, 0, 8) + _arc(radius, h, 0, math.pi / 2, 8)
    return revolve(prof)


def hemisphere(radius: float = 1.0) -> Mesh:
    """Upper hemisphere of ``radius`` with its flat disc, about y."""
    return revolve([(0.0, 0.0)] + _arc(radius, 0.0, 0, math.pi / 2, 10))


def pyramid(base: float = 1.6, height: float = 1.6) -> Mesh:
    """Square pyramid, base side ``base`` and ``height``, apex up (+y), centred."""
    b, h = base / 2, height / 2
    v = np.array([[-b, -h, -b], [b, -h, -b], [b, -h, b], [-b, -h, b], [0, h, 0]], dtype=np.float64)
    f = np.array([[0, 1, 2], [0, 2, 3], [0, 4, 1], [1, 4, 2], [2, 4, 3], [3, 4, 0]], dtype=np.int64)
    return v, f


def octahedron(r: float = 1.0) -> Mesh:
    """Regular octahedron with vertices at distance ``r`` on the axes."""
    v = np.array([[r, 0, 0], [-r, 0, 0], [0, r, 0], [0, -r, 0], [0, 0, r], [0, 0, -r]], dtype=np.float64)
    f = np.array([[0, 2, 4], [4, 2, 1], [1, 2, 5], [5, 2, 0], [0, 4, 3], [4, 1, 3], [1, 5, 3], [5, 0, 3]],
                 dtype=np.int64)
    return v, f


def transformed(mesh: Mesh, scale=(1.0, 1.0, 1.0), offset=(0.0, 0.0, 0.0), rot: np.ndarray | None = None) -> Mesh:
    """Scale, rotate (3×3) then translate a mesh."""
    v = mesh[0] * np.asarray(scale, dtype=np.float64)
    if rot is not None:
        v = v @ np.asarray(rot).T
    return v + np.asarray(offset, dtype=np.float64), mesh[1]


def merge(parts: list[Mesh]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Concatenate meshes; returns (vertices, faces, part index per face)."""
    verts, faces, labels, off = [], [], [], 0
    for k, (v, f) in enumerate(parts):
        verts.append(v)
        faces.append(f + off)
        labels.append(np.full(len(f), k, dtype=np.int64))
        off += len(v)
    return np.concatenate(verts), np.concatenate(faces), np.concatenate(labels)


@cache
def primitive(name: str) -> Mesh:
    """The unit-size primitive meshes used by ``synthetic_shapes``."""
    table = {
        "sphere": lambda: sphere(0.9),
        "cube": lambda: box((1.1, 1.1, 1.1)),
        "cylinder": lambda: cylinder(0.5, 1.5),
        "cone": lambda: frustum(0.7, 0.0, 1.5),
        "torus": lambda: torus(0.65, 0.25),
        "pyramid": lambda: pyramid(1.3, 1.2),
        "capsule": lambda: capsule(0.4, 1.0),
        "ellipsoid": lambda: transformed(sphere(1.0), (0.95, 0.35, 0.6)),
        "octahedron": lambda: octahedron(0.95),
        "hemisphere": lambda: transformed(hemisphere(0.9), offset=(0, -0.3, 0)),
    }
    if name not in table:
        raise KeyError(f"unknown primitive {name!r}; known: {', '.join(table)}")
    v, f = table[name]()
    v.setflags(write=False)
    f.setflags(write=False)
    return v, f


PRIMITIVES = ("sphere", "cube", "cylinder", "cone", "torus", "pyramid", "capsule", "ellipsoid",
              "octahedron", "hemisphere")
"""The ten primitive names of ``synthetic_shapes`` (its class names, in label order)."""
