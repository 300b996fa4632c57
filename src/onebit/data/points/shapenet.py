"""ShapeNet Part segmentation (16 categories, 50 parts), one dataset for all categories.

Formats (``format="auto"`` detects them):

- ``"hdf5"``: ``shapenet_part_seg_hdf5_data/ply_data_{train,val,test}N.h5`` with ``data``
  (N, 2048, 3) float32, ``label`` (N, 1) uint8 category in 0..15, ``pid`` (N, 2048) uint8 global
  part id in 0..49; optional ``{train,val,test}_hdf5_file_list.txt``.
- ``"normal"``: ``shapenetcore_partanno_segmentation_benchmark_v0_normal`` with
  ``synsetoffset2category.txt``, ``<synset>/<id>.txt`` ("x y z nx ny nz part" lines, part a
  global id) and ``train_test_split/shuffled_{train,val,test}_file_list.json``.

Items: ``(points (num_points, 3 or 6) float32, (part labels (num_points,) int64, category int64))``.
Both formats are y up. ``SHAPENET_PART_CATEGORIES`` gives the standard category → part ids map.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from onebit.data.errors import DataError
from onebit.data.points import _io
from onebit.data.registry import register_dataset
from onebit.data.transforms import worker_rng

# name: (synset id, global part ids) in the standard alphabetical order; 50 parts in total
SHAPENET_PART_CATEGORIES: dict[str, tuple[str, tuple[int, ...]]] = {
    "Airplane": ("02691156", (0, 1, 2, 3)),
    "Bag": ("02773838", (4, 5)),
    "Cap": ("02954340", (6, 7)),
    "Car": ("02958343", (8, 9, 10, 11)),
    "Chair": ("03001627", (12, 13, 14, 15)),
    "Earphone": ("03261776", (16, 17, 18)),
    "Guitar": ("03467517", (19, 20, 21)),
    "Knife": ("03624134", (22, 23)),
    "Lamp": ("03636649", (24, 25, 26, 27)),
    "Laptop": ("03642806", (28, 29)),
    "Motorbike": ("03790512", (30, 31, 32, 33, 34, 35)),
    "Mug": ("03797390", (36, 37)),
    "Pistol": ("03948459", (38, 39, 40)),
    "Rocket": ("04099429", (41, 42, 43)),
    "Skateboard": ("04225966", (44, 45, 46)),
    "Table": ("04379243", (47, 48, 49)),
}
"""The 16 ShapeNet Part categories: name -> (synset id, global part ids)."""
NUM_PARTS = 50
"""Number of part labels over all categories."""


def shapenet_category_parts() -> dict[str, list[int]]:
    """Category name → its global part ids (for instance / class mIoU)."""
    return {name: list(parts) for name, (_, parts) in SHAPENET_PART_CATEGORIES.items()}


def part_to_category() -> np.ndarray:
    """(50,) array: the category index of each global part id."""
    out = np.empty(NUM_PARTS, dtype=np.int64)
    for ci, (_, parts) in enumerate(SHAPENET_PART_CATEGORIES.values()):
        out[list(parts)] = ci
    return out


def detect_format(root) -> tuple[str, Path]:
    """Find ShapeNet Part under ``root``: ("hdf5" | "normal", the folder holding it); DataError if absent."""
    root = _io.require_dir(root, "ShapeNet Part")
    subs = ("shapenet_part_seg_hdf5_data", "shapenetcore_partanno_segmentation_benchmark_v0_normal")
    for d in [root] + [root / s for s in subs if (root / s).is_dir()]:
        if any(d.glob("ply_data_*.h5")):
            return "hdf5", d
        if (d / "synsetoffset2category.txt").is_file() or (d / "train_test_split").is_dir():
            return "normal", d
    raise DataError(root, "no ShapeNet Part data found: expected ply_data_*.h5 (HDF5 release) or "
                          "synsetoffset2category.txt + train_test_split/ (normal release)")


class ShapeNetPart(Dataset):
    """ShapeNet Part, all categories in one dataset (``categories`` selects a subset).

    Args:
        root: data folder (either format); None = the registry's default root.
        split: "train", "val", "test" or "trainval".
        num_points: points per shape (default 2048, the paper's).
        format: "auto", "hdf5" or "normal".
        use_normals: append unit normals (normal format only).
        categories: category names to keep (None: all 16).
        sampling: "first", "random" or "fps"; smaller clouds are padded by repeating points.
        resample: draw a new sample at every access (default: True for train splits).
        normalize: unit-sphere normalisation (default: True for the normal format, whose clouds
            are not normalised on disk).
        transform: called on ``(points, (part_labels, category))``.
        seed: seed of the fixed per-shape samples.
        up_axis: "y" (default) or "z": the axis pointing up in the output.
    """

    def __init__(self, root=None, split: str = "train", num_points: int = 2048, format: str = "auto",
                 use_normals: bool = False, categories: list[str] | None = None, sampling: str = "random",
                 resample: bool | None = None, normalize: bool | None = None,
                 transform: Callable | None = None, seed: int = 0, up_axis: str = "y"):
        _io.check_split(split, ("train", "val", "test", "trainval"), "ShapeNetPart")
        if root is None:
            root = _io.default_root("shapenet_part")
        if format == "auto":
            self.format, self.root = detect_format(root)
        elif format in ("hdf5", "normal"):
            self.format, self.root = format, _io.require_dir(root, "ShapeNetPart")
        else:
            raise ValueError(f"ShapeNetPart: format must be 'auto', 'hdf5' or 'normal', got {format!r}")
        if sampling not in _io.SAMPLINGS:
            raise ValueError(f"ShapeNetPart: sampling must be one of {_io.SAMPLINGS}, got {sampling!r}")
        self.split, self.num_points, self.use_normals, self.sampling = split, int(num_points), use_normals, sampling
        self.resample = split in ("train", "trainval") if resample is None else bool(resample)
        self.normalize = (self.format == "normal") if normalize is None else bool(normalize)
        self.transform, self.seed, self.up_axis = transform, int(seed), up_axis
        self.category_names = list(SHAPENET_PART_CATEGORIES)
        self.num_categories = len(self.category_names)
        self.category_parts = shapenet_category_parts()
        self.class_names = [f"{c}/{i}" for c, parts in self.category_parts.items() for i in range(len(parts))]
        self.num_classes = NUM_PARTS
        self._part_cat = part_to_category()
        unknown = [c for c in categories or [] if c not in SHAPENET_PART_CATEGORIES]
        if unknown:
            raise ValueError(f"ShapeNetPart: unknown categories {unknown}; known: {', '.join(self.category_names)}")
        keep = {self.category_names.index(c) for c in categories} if categories else None
        self._rng = worker_rng(None, f"ShapeNetPart-{split}")
        splits = ("train", "val") if split == "trainval" else (split,)
        if self.format == "hdf5":
            self._index_hdf5(splits, keep)
        else:
            self._index_normal(splits, keep)

    # ------------------------------------------------------------------ hdf5
    def _index_hdf5(self, splits, keep):
        if self.use_normals:
            raise DataError(self.root, "use_normals=True: the ShapeNet Part HDF5 release has no normals")
        pts_all, seg_all, cat_all = [], [], []
        for s in splits:
            listing = self.root / f"{s}_hdf5_file_list.txt"
            if listing.is_file():
                files = [self.root / Path(ln).name for ln in _io.read_lines(listing, "split list")]
            else:
                files = sorted(self.root.glob(f"ply_data_{s}*.h5"), key=lambda p: int(re.sub(r"\D", "", p.stem) or 0))
            if not files:
                raise DataError(listing, f"split list missing and no ply_data_{s}*.h5 files found")
            for path in files:
                with _io.open_h5(path) as f:
                    pts = _io.h5_array(f, "data", path, ndim=3, shape_tail=(None, 3))
                    cat = _io.h5_array(f, "label", path)
                    pid = _io.h5_array(f, "pid", path, ndim=2)
                if cat.ndim == 2 and cat.shape[1] == 1:
                    cat = cat[:, 0]
                if cat.shape != (len(pts),) or pid.shape != pts.shape[:2]:
                    raise DataError(path, f"shapes do not match: data {pts.shape}, label {cat.shape}, pid {pid.shape}")
                pts = _io.check_points(pts, path, "key 'data'")
                cat = _io.check_labels(cat, self.num_categories, path, "category label")
                pid = _io.check_labels(pid, NUM_PARTS, path, "part id")
                self._check_parts(pid, cat, path)
                rows = np.arange(len(pts)) if keep is None else np.flatnonzero(np.isin(cat, list(keep)))
                pts_all.append(pts[rows])
                seg_all.append(pid[rows])
                cat_all.append(cat[rows])
        self._points = np.concatenate(pts_all)
        self._seg = np.concatenate(seg_all)
        self.categories = np.concatenate(cat_all)

    def _check_parts(self, pid: np.ndarray, cat: np.ndarray, path) -> None:
        """Every part id must belong to its shape's category."""
        bad = self._part_cat[pid] != np.reshape(cat, (-1,) + (1,) * (pid.ndim - 1))
        if bad.any():
            where = np.argwhere(bad)[0]
            shape = int(where[0]) if pid.ndim > 1 else 0
            c = int(np.reshape(cat, -1)[shape])
            raise DataError(path, f"part id {int(pid[tuple(where)])} (shape {shape}) is not a part of category "
                                  f"{self.category_names[c]} (parts {list(self.category_parts[self.category_names[c]])})")

    # ------------------------------------------------------------------ normal (text) release
    def _index_normal(self, splits, keep):
        mapping_file = self.root / "synsetoffset2category.txt"
        synset_to_cat = {}
        for ln in _io.read_lines(mapping_file, "category list"):
            parts = ln.split()
            if len(parts) != 2:
                raise DataError(mapping_file, f"malformed line {ln!r} (expected '<Name> <synset>')")
            name, synset = parts
            if name not in SHAPENET_PART_CATEGORIES:
                raise DataError(mapping_file, f"unknown category {name!r}")
            synset_to_cat[synset] = self.category_names.index(name)
        self._paths, cats = [], []
        for s in splits:
            split_file = self.root / "train_test_split" / f"shuffled_{s}_file_list.json"
            if not split_file.is_file():
                raise DataError(split_file, "split file not found")
            try:
                entries = json.loads(split_file.read_text())
            except json.JSONDecodeError as e:
                raise DataError(split_file, f"not valid JSON: {e}") from None
            if not isinstance(entries, list):
                raise DataError(split_file, "expected a JSON list of 'shape_data/<synset>/<id>' entries")
            for e in entries:
                bits = str(e).split("/")
                if len(bits) < 2:
                    raise DataError(split_file, f"malformed entry {e!r}")
                synset, sid = bits[-2], bits[-1]
                if synset not in synset_to_cat:
                    raise DataError(split_file, f"entry {e!r}: synset {synset} not in synsetoffset2category.txt")
                c = synset_to_cat[synset]
                if keep is None or c in keep:
                    self._paths.append(self.root / synset / f"{sid}.txt")
                    cats.append(c)
        self.categories = np.array(cats, dtype=np.int64)
        self._cache: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    def _load_text(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        if index in self._cache:
            return self._cache[index]
        path = self._paths[index]
        arr = _io.load_text(path, None, 7, "point file")
        pts = arr[:, :6].astype(np.float32)
        seg = _io.check_labels(arr[:, -1], NUM_PARTS, path, "part label")
        self._check_parts(seg, np.array(self.categories[index]), path)
        self._cache[index] = (pts, seg.astype(np.uint8))  # parts < 50: a quarter of int64's memory
        return pts, self._cache[index][1]

    # ------------------------------------------------------------------ items
    def __len__(self) -> int:
        return len(self.categories)

    def __getitem__(self, index: int):
        if not -len(self) <= index < len(self):
            raise IndexError(f"ShapeNetPart: index {index} out of range for {len(self)} shapes")
        index %= len(self)
        if self.format == "hdf5":
            pts, seg = self._points[index], self._seg[index]
        else:
            pts, seg = self._load_text(index)
            pts = pts[:, :6 if self.use_normals else 3]
        rng = self._rng() if self.resample else np.random.default_rng([self.seed, index])
        idx = _io.select_points(pts, self.num_points, self.sampling, rng)
        pts, seg = pts[idx], seg[idx]
        if self.normalize:
            pts = _io.normalize_unit_sphere(pts)
        pts = _io.to_frame(pts, "y", self.up_axis)
        cat = torch.tensor(int(self.categories[index]))
        seg = torch.as_tensor(np.asarray(seg, dtype=np.int64))
        if self.transform is not None:
            pts, (seg, cat) = self.transform(pts, (seg, cat))
        return torch.as_tensor(np.asarray(pts, dtype=np.float32)), (seg, cat)


@register_dataset("shapenet_part", domain="points", task="partseg")
def shapenet_part(split: str = "train", root=None, **options) -> ShapeNetPart:
    """Root default: ``$ONEBIT_DATA/shapenet_part``, else ``<repo>/../shared/data/shapenet_part``."""
    return ShapeNetPart(root=root, split=split, **options)
