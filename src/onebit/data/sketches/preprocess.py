"""Sketch preprocessing: grayscale, strokes as foreground, optional stroke-width normalisation.

Sketch networks see *ink as signal*: strokes are non-zero and the background is 0 (the DAB-Net
code inverts with 1 - x). QuickDraw bitmaps already are white ink on black; Sketchy and TU-Berlin
PNGs are black ink on white, so they are inverted. ``polarity="auto"`` decides from the image
border, which in a sketch is almost all background.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

__all__ = ["detect_polarity", "normalize_stroke_width", "skeletonize", "to_ink"]

POLARITIES = ("auto", "dark_on_light", "light_on_dark")
"""Ink polarity of an input image: detect it, dark strokes on light paper, or light on dark."""


def detect_polarity(img: np.ndarray) -> str:
    """``"dark_on_light"`` if the border (background) is brighter than mid-grey, else
    ``"light_on_dark"``. ``img`` is a 2-D uint8 or [0, 1] float array."""
    a = np.asarray(img, dtype=np.float32)
    if a.dtype != np.uint8 and a.max() <= 1.0:
        a = a * 255.0
    border = np.concatenate([a[0], a[-1], a[:, 0], a[:, -1]])
    return "dark_on_light" if float(np.median(border)) > 127.5 else "light_on_dark"


def to_ink(img: np.ndarray, polarity: str = "auto") -> torch.Tensor:
    """Grayscale image (H, W) or (H, W, C) uint8 -> float32 tensor (1, H, W) in [0, 1], ink = 1."""
    a = np.asarray(img)
    if a.ndim == 3:
        if a.shape[2] == 4:  # RGBA: composite on white, as a viewer would show it
            alpha = a[..., 3:4].astype(np.float32) / 255.0
            a = a[..., :3].astype(np.float32) * alpha + 255.0 * (1 - alpha)
        a = a[..., :3].astype(np.float32).mean(axis=2)
    if a.ndim != 2:
        raise ValueError(f"a sketch image must be (H, W) or (H, W, C), got shape {np.shape(img)}")
    if polarity not in POLARITIES:
        raise ValueError(f"polarity must be one of {POLARITIES}, not {polarity!r}")
    x = a.astype(np.float32)
    if np.asarray(img).dtype == np.uint8 or x.max() > 1.0:
        x = x / 255.0
    if polarity == "auto":
        polarity = detect_polarity(x)
    if polarity == "dark_on_light":
        x = 1.0 - x
    return torch.from_numpy(np.ascontiguousarray(x))[None]


def _neighbours(b: np.ndarray):
    p = np.pad(b, 1)
    # P2..P9 clockwise from north, as in Zhang & Suen (1984)
    return [p[:-2, 1:-1], p[:-2, 2:], p[1:-1, 2:], p[2:, 2:], p[2:, 1:-1], p[2:, :-2], p[1:-1, :-2], p[:-2, :-2]]


def skeletonize(mask: np.ndarray, max_iter: int = 200) -> np.ndarray:
    """Zhang-Suen thinning of a boolean image to 1-pixel-wide strokes (vectorised)."""
    b = np.asarray(mask, dtype=bool).copy()
    for _ in range(max_iter):
        changed = False
        for step in (0, 1):
            n = [x.astype(np.uint8) for x in _neighbours(b)]
            count = sum(n)
            seq = n + [n[0]]
            transitions = sum(((seq[i] == 0) & (seq[i + 1] == 1)).astype(np.uint8) for i in range(8))
            p2, p4, p6, p8 = n[0], n[2], n[4], n[6]
            if step == 0:
                cond = (p2 * p4 * p6 == 0) & (p4 * p6 * p8 == 0)
            else:
                cond = (p2 * p4 * p8 == 0) & (p2 * p6 * p8 == 0)
            remove = b & (count >= 2) & (count <= 6) & (transitions == 1) & cond
            if remove.any():
                b &= ~remove
                changed = True
        if not changed:
            break
    return b


def normalize_stroke_width(ink: torch.Tensor, width: int, threshold: float = 0.5) -> torch.Tensor:
    """Redraw the strokes with a fixed width: threshold at ``threshold``, skeletonise
    (Zhang-Suen), then dilate the 1-pixel skeleton with a ``width`` x ``width`` disk.

    ``ink`` is (1, H, W) with ink = 1; the result is binary (0/1) float32 of the same shape.
    Different pens (TU-Berlin's thin lines, Sketchy's renderings, rasterised strokes) then look
    alike to the network.
    """
    if width < 1:
        raise ValueError(f"stroke width must be >= 1 pixel, got {width}")
    skel = skeletonize(ink[0].numpy() > threshold)
    out = torch.from_numpy(skel.astype(np.float32))[None, None]
    if width > 1:
        r = (width - 1) / 2
        k = width
        yy, xx = np.mgrid[:k, :k] - (k - 1) / 2
        disk = torch.from_numpy((xx**2 + yy**2 <= r * r + 1e-6).astype(np.float32))[None, None]
        pad_lo, pad_hi = (k - 1) // 2, k // 2
        out = F.pad(out, (pad_lo, pad_hi, pad_lo, pad_hi))
        out = (F.conv2d(out, disk) > 0).float()
    return out[0]
