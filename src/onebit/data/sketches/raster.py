"""Stroke sketches (QuickDraw ndjson, simplified or raw) and their rasterisation.

``rasterize_strokes`` draws antialiased polylines: PIL ``ImageDraw`` at ``supersample`` times the
target resolution, then a box-filter downsample. The strokes' bounding box is scaled (aspect
kept) into the canvas less a margin and centred, so raw strokes (float coordinates in screen
pixels, with timing) and simplified strokes (integers 0-255) give comparable images.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from onebit.data.errors import DataError

__all__ = ["parse_ndjson_line", "rasterize_strokes", "read_ndjson", "read_stroke_h5"]


def rasterize_strokes(
    strokes,
    size: int | tuple[int, int] = 256,
    line_width: float = 2.0,
    margin: float = 0.05,
    supersample: int = 4,
) -> np.ndarray:
    """Strokes (a list of (n, 2) x, y arrays; extra columns such as time are ignored) ->
    uint8 (H, W) image with ink 255 on 0. ``line_width`` is in output pixels, ``margin`` a
    fraction of the canvas on each side."""
    h, w = (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))
    if h < 1 or w < 1:
        raise ValueError(f"raster size must be positive, got {size}")
    if not 0 <= margin < 0.5:
        raise ValueError(f"margin must be in [0, 0.5), got {margin}")
    pts = [np.asarray(s, dtype=np.float64)[:, :2] for s in strokes if len(s)]
    img = Image.new("L", (w * supersample, h * supersample), 0)
    if pts:
        allp = np.concatenate(pts)
        lo, hi = allp.min(0), allp.max(0)
        extent = float(max(hi - lo))
        avail_w, avail_h = w * (1 - 2 * margin), h * (1 - 2 * margin)
        scale = min(avail_w, avail_h) / extent if extent > 0 else 1.0
        centre = (lo + hi) / 2
        offset = np.array([w / 2, h / 2])
        draw = ImageDraw.Draw(img)
        lw = max(1, round(line_width * supersample))
        r = lw / 2
        for p in pts:
            q = ((p - centre) * scale + offset) * supersample
            xy = [tuple(v) for v in q]
            if len(xy) > 1:
                draw.line(xy, fill=255, width=lw, joint="curve")
            # round caps (and single-point strokes drawn as dots)
            for x, y in (xy[0], xy[-1]):
                draw.ellipse([x - r, y - r, x + r, y + r], fill=255)
    if supersample > 1:
        img = img.resize((w, h), Image.Resampling.BOX)
    return np.asarray(img, dtype=np.uint8)


def parse_ndjson_line(line: str, where: str = "<ndjson>") -> dict:
    """One QuickDraw ndjson line -> ``{"word", "strokes", "recognized", "key_id"}``.

    ``drawing`` is ``[[xs], [ys]]`` per stroke (simplified) or ``[[xs], [ys], [ts]]`` (raw); the
    strokes come back as (n, 2) or (n, 3) float arrays. ``where`` names file:line in errors.
    """
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as e:
        raise DataError(where, f"malformed ndjson line ({e.msg})") from None
    if not isinstance(obj, dict) or "drawing" not in obj:
        raise DataError(where, "ndjson line has no 'drawing' field")
    strokes = []
    drawing = obj["drawing"]
    if not isinstance(drawing, list):
        raise DataError(where, "'drawing' must be a list of strokes")
    for k, s in enumerate(drawing):
        if not isinstance(s, list) or len(s) not in (2, 3):
            raise DataError(where, f"stroke {k} must be [xs, ys] or [xs, ys, ts]")
        try:
            arr = np.asarray(s, dtype=np.float64)
        except (ValueError, TypeError):
            raise DataError(where, f"stroke {k} has ragged or non-numeric coordinates") from None
        if arr.ndim != 2:
            raise DataError(where, f"stroke {k} has ragged coordinate lists")
        strokes.append(arr.T)
    return {
        "word": obj.get("word"),
        "strokes": strokes,
        "recognized": obj.get("recognized"),
        "key_id": obj.get("key_id"),
    }


def read_ndjson(path: str | os.PathLike, limit: int | None = None) -> list[dict]:
    """All drawings of one QuickDraw ``<class>.ndjson`` file (the first ``limit`` if given)."""
    path = Path(path)
    out = []
    try:
        with open(path, encoding="utf-8") as f:
            for i, line in enumerate(f, 1):
                if not line.strip():
                    continue
                out.append(parse_ndjson_line(line, f"{path}:{i}"))
                if limit is not None and len(out) >= limit:
                    break
    except OSError as e:
        raise DataError(path, f"cannot read ({e.strerror})") from None
    except UnicodeDecodeError:
        raise DataError(path, "not a UTF-8 text file") from None
    return out


def read_stroke_h5(path: str | os.PathLike):
    """The stroke tables of the shared QuickDraw h5 copies -> (drawings, labels, classes).

    ``drawings[i]`` is the list of (n, 2) (or (n, 3) with time in ms for the raw file) strokes of
    drawing i; layout: ``drawing_stroke_offsets`` / ``stroke_point_offsets`` / ``points_xy``.
    """
    import h5py

    path = Path(path)
    try:
        with h5py.File(path, "r") as f:
            for key in ("drawing_stroke_offsets", "stroke_point_offsets", "points_xy", "label"):
                if key not in f:
                    raise DataError(path, f"missing dataset {key!r} (not a QuickDraw stroke file)")
            so = f["drawing_stroke_offsets"][:].astype(np.int64)
            po = f["stroke_point_offsets"][:].astype(np.int64)
            xy = f["points_xy"][:].astype(np.float64)
            t = f["points_t_ms"][:].astype(np.float64) if "points_t_ms" in f else None
            labels = f["label"][:].astype(np.int64)
            classes = json.loads(f.attrs["classes"]) if "classes" in f.attrs else None
    except OSError as e:
        raise DataError(path, f"cannot read HDF5 file ({e})") from None
    if xy.ndim != 2 or xy.shape[1] != 2:
        raise DataError(path, f"points_xy must be (P, 2), got {xy.shape}")
    if so.ndim != 1 or len(so) != len(labels) + 1 or so[-1] != len(po) - 1 or po[-1] != len(xy):
        raise DataError(path, "stroke offset tables do not match the label / point counts")
    if classes is None:
        raise DataError(path, "missing the 'classes' attribute")
    if t is not None:
        xy = np.concatenate([xy, t[:, None]], axis=1)
    drawings = []
    for i in range(len(labels)):
        drawings.append([xy[po[s] : po[s + 1]] for s in range(so[i], so[i + 1])])
    return drawings, labels, list(classes)
