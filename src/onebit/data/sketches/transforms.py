"""Sketch transforms on (C, H, W) float tensors, without torchvision.

Every transform is a small callable; ``Compose`` chains them. Randomness comes from torch's
global generator (DataLoader seeds it per worker; the trainer seeds it per epoch), or from an
explicit ``generator``. The images are expected *after* inversion (strokes = 1, background = 0),
so every fill value defaults to 0 = background: the DAB-Net official code rotates before it
inverts and fills black, which turns the empty corners into ink (notes §a7); here the fill is
background.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F

__all__ = [
    "CenterCrop",
    "Compose",
    "Normalize",
    "RandomCrop",
    "RandomHorizontalFlip",
    "RandomResizedCrop",
    "RandomRotation",
    "Resize",
    "TenCrop",
    "hflip",
    "resize",
    "rotate",
    "sketch_transform",
]


def _pair(size) -> tuple[int, int]:
    if isinstance(size, int):
        return size, size
    h, w = size
    return int(h), int(w)


def _check(img: torch.Tensor) -> None:
    if not isinstance(img, torch.Tensor) or img.dim() != 3:
        got = tuple(img.shape) if isinstance(img, torch.Tensor) else type(img).__name__
        raise ValueError(f"sketch transforms take a (C, H, W) tensor, got {got}")


def _rand(generator: torch.Generator | None) -> float:
    return float(torch.rand((), generator=generator))


def _uniform(lo: float, hi: float, generator: torch.Generator | None) -> float:
    return lo + (hi - lo) * _rand(generator)


def _randint(lo: int, hi: int, generator: torch.Generator | None) -> int:
    """Integer in [lo, hi] inclusive."""
    return int(torch.randint(lo, hi + 1, (), generator=generator))


def resize(img: torch.Tensor, size, mode: str = "bilinear") -> torch.Tensor:
    """Resize to ``size``: an int resizes the shorter side (aspect kept), a pair is (H, W).

    Down-scaling is antialiased so that thin strokes do not vanish.
    """
    _check(img)
    h, w = img.shape[-2:]
    if isinstance(size, int):
        if h <= w:
            oh, ow = size, max(1, round(w * size / h))
        else:
            oh, ow = max(1, round(h * size / w)), size
    else:
        oh, ow = _pair(size)
    if (oh, ow) == (h, w):
        return img
    antialias = mode in ("bilinear", "bicubic") and (oh < h or ow < w)
    kw = {"align_corners": False} if mode in ("bilinear", "bicubic") else {}
    out = F.interpolate(img[None].float(), size=(oh, ow), mode=mode, antialias=antialias, **kw)[0]
    return out.clamp_(0.0, 1.0) if mode == "bicubic" and img.min() >= 0 and img.max() <= 1 else out


def hflip(img: torch.Tensor) -> torch.Tensor:
    """Mirror an image tensor (..., H, W) left-right."""
    return img.flip(-1)


def rotate(img: torch.Tensor, angle: float, mode: str = "bilinear", fill: float = 0.0) -> torch.Tensor:
    """Rotate by ``angle`` degrees (counter-clockwise) about the centre; outside pixels get ``fill``."""
    _check(img)
    if angle == 0:
        return img
    theta = math.radians(angle)
    c, s = math.cos(theta), math.sin(theta)
    h, w = img.shape[-2:]
    # affine_grid works in normalised coordinates; correct for a non-square aspect ratio
    mat = torch.tensor([[c, -s * h / w, 0.0], [s * w / h, c, 0.0]], dtype=torch.float32)[None]
    grid = F.affine_grid(mat, (1, img.shape[0], h, w), align_corners=False)
    x = img[None].float() - fill  # zero padding then means `fill` after adding it back
    out = F.grid_sample(x, grid, mode=mode, padding_mode="zeros", align_corners=False)[0] + fill
    if mode == "bicubic":
        lo, hi = float(img.min()), float(img.max())
        out = out.clamp_(min(lo, fill), max(hi, fill))  # bicubic overshoot
    return out


class Compose:
    """Apply ``transforms`` in order to one image."""
    def __init__(self, transforms: Sequence[Callable]):
        self.transforms = list(transforms)

    def __call__(self, img):
        for t in self.transforms:
            img = t(img)
        return img

    def __repr__(self) -> str:
        return "Compose(" + ", ".join(repr(t) for t in self.transforms) + ")"


class Resize:
    """Resize (shorter side to ``size`` for an int, else to (H, W))."""

    def __init__(self, size, mode: str = "bilinear"):
        self.size, self.mode = size, mode

    def __call__(self, img):
        return resize(img, self.size, self.mode)

    def __repr__(self):
        return f"Resize({self.size})"


class CenterCrop:
    """Crop the central ``size`` (int or (h, w)) of a (..., H, W) image; larger than the image is an error."""
    def __init__(self, size):
        self.size = _pair(size)

    def __call__(self, img):
        _check(img)
        th, tw = self.size
        h, w = img.shape[-2:]
        if th > h or tw > w:
            raise ValueError(f"CenterCrop{self.size} is larger than the image ({h}, {w})")
        top, left = (h - th) // 2, (w - tw) // 2
        return img[..., top : top + th, left : left + tw]

    def __repr__(self):
        return f"CenterCrop({self.size})"


class RandomCrop:
    """Crop a random ``size`` window (the paper's 224/225 crop of the 256 image)."""

    def __init__(self, size, generator: torch.Generator | None = None):
        self.size, self.generator = _pair(size), generator

    def __call__(self, img):
        _check(img)
        th, tw = self.size
        h, w = img.shape[-2:]
        if th > h or tw > w:
            raise ValueError(f"RandomCrop{self.size} is larger than the image ({h}, {w})")
        top = _randint(0, h - th, self.generator)
        left = _randint(0, w - tw, self.generator)
        return img[..., top : top + th, left : left + tw]

    def __repr__(self):
        return f"RandomCrop({self.size})"


class RandomResizedCrop:
    """Crop a random area fraction in ``scale`` with aspect ratio in ``ratio`` (log-uniform),
    resized to ``size``; the official DAB code's ``RandomSizedCrop`` (scale 0.08-1, ratio 3/4-4/3).
    Falls back to a centre crop after 10 failed draws, as the usual implementation does."""

    def __init__(self, size, scale=(0.08, 1.0), ratio=(3 / 4, 4 / 3), mode: str = "bilinear",
                 generator: torch.Generator | None = None):
        self.size, self.scale, self.ratio, self.mode = _pair(size), scale, ratio, mode
        self.generator = generator

    def _window(self, h: int, w: int) -> tuple[int, int, int, int]:
        area = h * w
        log_r = (math.log(self.ratio[0]), math.log(self.ratio[1]))
        for _ in range(10):
            target = area * _uniform(self.scale[0], self.scale[1], self.generator)
            aspect = math.exp(_uniform(log_r[0], log_r[1], self.generator))
            cw = round(math.sqrt(target * aspect))
            ch = round(math.sqrt(target / aspect))
            if 0 < cw <= w and 0 < ch <= h:
                return _randint(0, h - ch, self.generator), _randint(0, w - cw, self.generator), ch, cw
        in_ratio = w / h
        if in_ratio < self.ratio[0]:
            cw, ch = w, round(w / self.ratio[0])
        elif in_ratio > self.ratio[1]:
            ch, cw = h, round(h * self.ratio[1])
        else:
            cw, ch = w, h
        return (h - ch) // 2, (w - cw) // 2, ch, cw

    def __call__(self, img):
        _check(img)
        top, left, ch, cw = self._window(*img.shape[-2:])
        return resize(img[..., top : top + ch, left : left + cw], self.size, self.mode)

    def __repr__(self):
        return f"RandomResizedCrop({self.size}, scale={self.scale}, ratio={self.ratio})"


class RandomHorizontalFlip:
    """Mirror the image with probability ``p`` (drawn from ``generator`` or torch's global RNG)."""
    def __init__(self, p: float = 0.5, generator: torch.Generator | None = None):
        self.p, self.generator = p, generator

    def __call__(self, img):
        return hflip(img) if _rand(self.generator) < self.p else img

    def __repr__(self):
        return f"RandomHorizontalFlip(p={self.p})"


class RandomRotation:
    """Rotate by an angle drawn uniformly in [-degrees, degrees] (``integer=True``: an integer
    angle, as the official code); outside pixels get ``fill`` (0 = background after inversion)."""

    def __init__(self, degrees: float, mode: str = "bilinear", fill: float = 0.0, integer: bool = False,
                 generator: torch.Generator | None = None):
        if mode not in ("bilinear", "bicubic", "nearest"):
            raise ValueError(f"RandomRotation mode must be bilinear, bicubic or nearest, not {mode!r}")
        self.degrees, self.mode, self.fill, self.integer = float(degrees), mode, fill, integer
        self.generator = generator

    def __call__(self, img):
        if self.integer:
            angle = float(_randint(-int(self.degrees), int(self.degrees), self.generator))
        else:
            angle = _uniform(-self.degrees, self.degrees, self.generator)
        return rotate(img, angle, self.mode, self.fill)

    def __repr__(self):
        return f"RandomRotation({self.degrees}, mode={self.mode!r}, fill={self.fill})"


class TenCrop:
    """The 4 corner crops and the centre crop of the image and of its mirror: (10, C, h, w)."""

    def __init__(self, size):
        self.size = _pair(size)

    def __call__(self, img):
        _check(img)
        th, tw = self.size
        h, w = img.shape[-2:]
        if th > h or tw > w:
            raise ValueError(f"TenCrop{self.size} is larger than the image ({h}, {w})")
        crops = []
        for im in (img, hflip(img)):
            crops += [
                im[..., :th, :tw],
                im[..., :th, w - tw :],
                im[..., h - th :, :tw],
                im[..., h - th :, w - tw :],
                CenterCrop(self.size)(im),
            ]
        return torch.stack(crops)

    def __repr__(self):
        return f"TenCrop({self.size})"


class Normalize:
    """(x - mean) / std; works on (C, H, W) and on ten-crop stacks (N, C, H, W)."""

    def __init__(self, mean: float, std: float):
        if std <= 0:
            raise ValueError(f"Normalize std must be positive, got {std}")
        self.mean, self.std = float(mean), float(std)

    def __call__(self, img):
        return (img - self.mean) / self.std

    def __repr__(self):
        return f"Normalize({self.mean}, {self.std})"


def sketch_transform(
    train: bool,
    *,
    resize: int | None = 256,
    crop: int | None = 224,
    crop_mode: str = "random",
    flip: bool = True,
    rotation: float = 10.0,
    rotation_mode: str = "bilinear",
    ten_crop: bool = True,
    mean: float | None = None,
    std: float | None = None,
) -> Compose:
    """The DAB-Net protocol (paper §5.1): resize to 256, then for training a random 224 (225 for
    Sketch-A-Net) crop, horizontal flip and a random rotation; for testing ten-crop (else centre
    crop). ``crop_mode="random_resized"`` is the official code's RandomSizedCrop (notes §a7).
    ``resize=None`` / ``crop=None`` skip those steps (native-size sets such as 28x28 QuickDraw)."""
    steps: list[Callable] = []
    if resize:
        steps.append(Resize(resize))
    if train:
        if crop:
            if crop_mode == "random":
                steps.append(RandomCrop(crop))
            elif crop_mode == "random_resized":
                steps.append(RandomResizedCrop(crop))
            else:
                raise ValueError(f"crop_mode must be 'random' or 'random_resized', not {crop_mode!r}")
        if flip:
            steps.append(RandomHorizontalFlip())
        if rotation:
            steps.append(RandomRotation(rotation, mode=rotation_mode))
    elif crop:
        steps.append(TenCrop(crop) if ten_crop else CenterCrop(crop))
    if mean is not None or std is not None:
        steps.append(Normalize(mean or 0.0, 1.0 if std is None else std))
    return Compose(steps)
