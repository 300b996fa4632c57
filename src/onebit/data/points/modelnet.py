"""ModelNet40 / ModelNet10 classification from every common on-disk format.

Formats (``format="auto"`` detects them from the folder contents):

- ``"hdf5"``: Stanford ``modelnet40_ply_hdf5_2048`` (``ply_data_{train,test}N.h5`` with ``data``
  (N, 2048, 3), ``label`` (N, 1), optional ``normal``; ``train_files.txt`` / ``test_files.txt``;
  ``shape_names.txt``). Native up axis y; unit-sphere normalised.
- ``"normal_resampled"``: ``modelnet40_normal_resampled`` text files ``<class>/<class>_0001.txt``
  with "x,y,z,nx,ny,nz" lines, ``modelnet{40,10}_shape_names.txt`` and
  ``modelnet{40,10}_{train,test}.txt``. Native up y; normalised per cloud after sampling.
- ``"off"``: Princeton meshes ``<class>/{train,test}/<class>_NNNN.off``; area-weighted surface
  sampling of ``off_samples`` points, then farthest point sampling. Native up z.
- ``"repacked"``: the copy in shared/data/modelnet40 (``train.h5`` / ``test.h5`` with ``points``
  (N, 1024, 3), ``label`` (N,), ``shape_id``). Native up z; unit-sphere normalised.

Output frame: xyz (+ normals) with ``up_axis`` ("y" by default, the frame of the Stanford files
and of PointNet's rotation augmentation) pointing up; y-up ↔ z-up swaps channels 1 and 2.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from onebit.data.errors import DataError
from onebit.data.points import _io
from onebit.data.points.mesh import read_off, sample_surface
from onebit.data.registry import register_dataset
from onebit.data.transforms import worker_rng

MODELNET40_CLASSES = (
    "airplane", "bathtub", "bed", "bench", "bookshelf", "bottle", "bowl", "car", "chair", "cone",
    "cup", "curtain", "desk", "door", "dresser", "flower_pot", "glass_box", "guitar", "keyboard",
    "lamp", "laptop", "mantel", "monitor", "night_stand", "person", "piano", "plant", "radio",
    "range_hood", "sink", "sofa", "stairs", "stool", "table", "tent", "toilet", "tv_stand", "vase",
    "wardrobe", "xbox",
)
"""The 40 ModelNet40 class names in label order (alphabetical, as the Stanford files)."""
MODELNET10_CLASSES = ("bathtub", "bed", "chair", "desk", "dresser", "monitor", "night_stand", "sofa",
                      "table", "toilet")
"""The 10 ModelNet10 class names in label order."""

FORMATS = ("hdf5", "normal_resampled", "off", "repacked")
"""On-disk formats ``ModelNet`` reads (``format=``; "auto" detects them)."""
NATIVE_UP = {"hdf5": "y", "normal_resampled": "y", "off": "z", "repacked": "z"}
"""The up axis of each format as stored (outputs are converted to ``up_axis``)."""
# clouds of these formats are not unit-sphere normalised on disk
_NORMALIZE_DEFAULT = {"hdf5": False, "normal_resampled": True, "off": True, "repacked": False}
_SAMPLING_DEFAULT = {"hdf5": "first", "normal_resampled": "first", "off": "fps", "repacked": "first"}
_SUBDIRS = ("modelnet40_ply_hdf5_2048", "modelnet40_normal_resampled", "ModelNet40", "ModelNet10")


def _format_of(d: Path) -> str | None:
    if (d / "train.h5").is_file() or (d / "test.h5").is_file():
        return "repacked"
    if (d / "train_files.txt").is_file() or any(d.glob("ply_data_*.h5")):
        return "hdf5"
    if any(d.glob("modelnet*_shape_names.txt")) or any(d.glob("modelnet*_train.txt")):
        return "normal_resampled"
    if any(d.glob("*/train/*.off")) or any(d.glob("*/test/*.off")):
        return "off"
    return None


def detect_format(root: str | Path, want: str | None = None) -> tuple[str, Path]:
    """Find which ModelNet format a folder holds (or where format ``want`` is); returns
    (format, folder). Also looks one level down in the usual archive folder names
    (``modelnet40_ply_hdf5_2048``, ``modelnet40_normal_resampled``, ``ModelNet40``, ``ModelNet10``)."""
    root = _io.require_dir(root, "ModelNet")
    for d in [root] + [root / s for s in _SUBDIRS if (root / s).is_dir()]:
        fmt = _format_of(d)
        if fmt is not None and (want is None or fmt == want):
            return fmt, d
    if want is not None:
        raise DataError(root, f"no ModelNet data in format {want!r} found here")
    raise DataError(root, "no ModelNet data found: expected train.h5/test.h5, ply_data_*.h5 with "
                          "train_files.txt, modelnet40_shape_names.txt + text files, or <class>/train/*.off")


class ModelNet(Dataset):
    """ModelNet classification; items ``(points (num_points, 3 or 6) float32, label int64)``.

    Args:
        root: data folder (any supported format); None = the registry's default root.
        split: "train" or "test".
        num_points: points per cloud.
        format: "auto" or one of ``FORMATS``.
        up_axis: "y" (default) or "z": the axis pointing up in the output.
        use_normals: append unit normals (channels 3:6); not available in the repacked copy.
        sampling: "first", "random" or "fps" (None: "fps" for OFF meshes, else "first").
        resample: draw a new random sample at every access (random sampling and OFF surface
            sampling); default True for train, False for test (a fixed test set).
        normalize: unit-sphere normalise each cloud (None: only formats not normalised on disk).
        transform: callable applied to the points (e.g. ``onebit.data.transforms.Compose``).
        seed: seeds the fixed (non-resampled) per-shape sampling.
        in_memory: HDF5 formats: read all clouds at first access (True) or one at a time.
        cache: keep parsed text tables (normal_resampled) and, without resampling, the
            processed clouds of the text and OFF formats in memory.
        off_samples: surface points drawn from each OFF mesh before FPS.
    """

    CLASSES: tuple[str, ...] = MODELNET40_CLASSES
    NAME = "ModelNet40"

    def __init__(self, root=None, split: str = "train", num_points: int = 1024, format: str = "auto",
                 up_axis: str = "y", use_normals: bool = False, sampling: str | None = None,
                 resample: bool | None = None, normalize: bool | None = None,
                 transform: Callable | None = None, seed: int = 0, in_memory: bool = True,
                 cache: bool = True, off_samples: int = 10000):
        self.split = _io.check_split(split, ("train", "test"), self.NAME)
        if root is None:
            root = _io.default_root(self.NAME.lower())
            if not root.is_dir():  # ModelNet10 falls back to the ModelNet40 files (filtered)
                root = _io.default_root("modelnet40")
        if num_points <= 0:
            raise ValueError(f"{self.NAME}: num_points must be positive, got {num_points}")
        if up_axis not in _io.UP_AXES:
            raise ValueError(f"{self.NAME}: up_axis must be one of {_io.UP_AXES}, got {up_axis!r}")
        if format == "auto":
            self.format, self.root = detect_format(root)
        elif format in FORMATS:
            self.format, self.root = detect_format(root, want=format)
        else:
            raise ValueError(f"{self.NAME}: format must be 'auto' or one of {FORMATS}, got {format!r}")
        self.num_points, self.up_axis, self.use_normals = int(num_points), up_axis, bool(use_normals)
        self.sampling = sampling or _SAMPLING_DEFAULT[self.format]
        if self.sampling not in _io.SAMPLINGS:
            raise ValueError(f"{self.NAME}: sampling must be one of {_io.SAMPLINGS}, got {self.sampling!r}")
        self.resample = (split == "train") if resample is None else bool(resample)
        self.normalize = _NORMALIZE_DEFAULT[self.format] if normalize is None else bool(normalize)
        self.transform, self.seed, self.in_memory, self.cache = transform, int(seed), in_memory, cache
        self.off_samples = int(off_samples)
        self.class_names = list(self.CLASSES)
        self.num_classes = len(self.class_names)
        self._cache: dict[int, np.ndarray] = {}  # processed clouds (fixed sampling only)
        self._raw_text: dict[int, np.ndarray] = {}  # parsed text tables (normal_resampled)
        self._arrays: list[np.ndarray] | None = None
        self._rng = worker_rng(None, f"{self.NAME}-{split}")
        getattr(self, f"_index_{self.format}")()

    # ------------------------------------------------------------------ indexing per format
    def _map_classes(self, source_names: list[str], where) -> dict[int, int]:
        """Source label -> our label, for the source classes we keep (ModelNet10 ⊂ ModelNet40)."""
        missing = [c for c in self.class_names if c not in source_names]
        if missing:
            raise DataError(where, f"{self.NAME} needs classes missing from this data: {', '.join(missing[:5])}"
                                   f"{' ...' if len(missing) > 5 else ''} (it has {len(source_names)} classes)")
        return {source_names.index(c): i for i, c in enumerate(self.class_names)}

    def _keep(self, src_labels: np.ndarray, mapping: dict[int, int]) -> tuple[np.ndarray, np.ndarray]:
        keep = np.array([int(lab) in mapping for lab in src_labels], dtype=bool)
        rows = np.flatnonzero(keep)
        labels = np.array([mapping[int(lab)] for lab in src_labels[rows]], dtype=np.int64)
        return rows, labels

    def _source_class_names(self, path: Path, default: tuple[str, ...]) -> list[str]:
        if path.is_file():
            names = _io.read_lines(path, "class-name list")
            if len(set(names)) != len(names):
                raise DataError(path, "duplicate class names")
            return names
        return list(default)

    def _index_h5_files(self, files: list[Path], key: str, label_key: str, names: list[str]):
        mapping = self._map_classes(names, self.root)
        self._files, self._rows, labels, self.shape_ids = [], [], [], []
        for path in files:
            with _io.open_h5(path) as f:
                if key not in f:
                    raise DataError(path, f"missing HDF5 key {key!r} (keys: {', '.join(sorted(f.keys()))})")
                shape = f[key].shape
                if len(shape) != 3 or shape[2] != 3 or shape[1] == 0:
                    raise DataError(path, f"key {key!r} has shape {shape}, expected (N, P>0, 3)")
                if self.use_normals:
                    nkey = "normal"
                    if nkey not in f:
                        raise DataError(path, "use_normals=True but the file has no 'normal' key")
                    if f[nkey].shape != shape:
                        raise DataError(path, f"key 'normal' has shape {f[nkey].shape}, expected {shape}")
                lab = _io.h5_array(f, label_key, path)
                if lab.ndim == 2 and lab.shape[1] == 1:
                    lab = lab[:, 0]
                if lab.shape != (shape[0],):
                    raise DataError(path, f"key {label_key!r} has shape {lab.shape}, expected ({shape[0]},) "
                                          f"or ({shape[0]}, 1) to match {key!r}")
                lab = _io.check_labels(lab, len(names), path)
                ids = None
                if "shape_id" in f:
                    ids = [s.decode() if isinstance(s, bytes) else str(s) for s in f["shape_id"][()]]
            rows, ours = self._keep(lab, mapping)
            self._files.append(path)
            self._rows.append(rows)
            labels.append(ours)
            self.shape_ids += [ids[r] if ids else f"{path.name}:{r}" for r in rows]
        self._h5_key = key
        self.labels = np.concatenate(labels) if labels else np.zeros(0, np.int64)
        self._where = [(fi, int(r)) for fi, rows in enumerate(self._rows) for r in rows]

    def _index_repacked(self):
        path = self.root / f"{self.split}.h5"
        names = self._source_class_names(self.root / "shape_names.txt", MODELNET40_CLASSES)
        if self.use_normals:
            raise DataError(path, "use_normals=True: the repacked ModelNet40 copy has no normals")
        self._index_h5_files([path], "points", "label", names)

    def _index_hdf5(self):
        names = self._source_class_names(self.root / "shape_names.txt", MODELNET40_CLASSES)
        listing = self.root / f"{self.split}_files.txt"
        if listing.is_file():
            files = []
            for line in _io.read_lines(listing, "split list"):
                p = self.root / Path(line).name  # lists hold paths relative to the PointNet repo
                if not p.is_file():
                    raise DataError(listing, f"lists {line!r} but {p} does not exist")
                files.append(p)
        else:
            files = sorted(self.root.glob(f"ply_data_{self.split}*.h5"),
                           key=lambda p: int(re.sub(r"\D", "", p.stem) or 0))
            if not files:
                raise DataError(listing, f"split list missing and no ply_data_{self.split}*.h5 files found")
        if not files:
            raise DataError(listing, "split list is empty")
        self._index_h5_files(files, "data", "label", names)

    def _index_normal_resampled(self):
        tag = "modelnet10" if self.num_classes == 10 and (self.root / "modelnet10_shape_names.txt").is_file() \
            else "modelnet40"
        names_file = self.root / f"{tag}_shape_names.txt"
        names = _io.read_lines(names_file, "class-name list")
        mapping = self._map_classes(names, names_file)
        split_file = self.root / f"{tag}_{self.split}.txt"
        self._paths, labels, self.shape_ids = [], [], []
        for line in _io.read_lines(split_file, "split list"):
            cls = line.rsplit("_", 1)[0]
            if cls not in names:
                raise DataError(split_file, f"entry {line!r} names unknown class {cls!r}")
            src = names.index(cls)
            if src in mapping:
                self._paths.append(self.root / cls / f"{line}.txt")
                labels.append(mapping[src])
                self.shape_ids.append(line)
        self.labels = np.array(labels, dtype=np.int64)

    def _index_off(self):
        names = sorted(d.name for d in self.root.iterdir() if d.is_dir() and (d / self.split).is_dir())
        mapping = self._map_classes(names, self.root)
        self._paths, labels, self.shape_ids = [], [], []
        for src, cls in enumerate(names):
            if src not in mapping:
                continue
            for p in sorted((self.root / cls / self.split).glob("*.off")):
                self._paths.append(p)
                labels.append(mapping[src])
                self.shape_ids.append(p.stem)
        self.labels = np.array(labels, dtype=np.int64)

    # ------------------------------------------------------------------ items
    def __len__(self) -> int:
        return len(self.labels)

    def _item_rng(self, index: int) -> np.random.Generator:
        if self.resample:
            return self._rng()
        return np.random.default_rng([self.seed, index])

    def load(self) -> ModelNet:
        """Read all HDF5 clouds into memory now (``in_memory`` formats; otherwise a no-op).
        Call it before building a multi-worker DataLoader so that forked workers share the
        arrays instead of each reading the files."""
        if self.format in ("hdf5", "repacked") and self.in_memory and self._arrays is None:
            arrays = []
            for p, rows in zip(self._files, self._rows):
                with _io.open_h5(p) as f:
                    pts = _io.h5_array(f, self._h5_key, p)
                    if self.use_normals:
                        pts = np.concatenate([pts, _io.h5_array(f, "normal", p)], axis=-1)
                # keep only this dataset's rows (ModelNet10 uses a quarter of the ModelNet40 files)
                full = np.full(len(pts), -1, dtype=np.int64)
                full[rows] = np.arange(len(rows))
                arrays.append((pts[rows], full))
            self._arrays = arrays
        return self

    def _raw_h5(self, index: int) -> np.ndarray:
        fi, row = self._where[index]
        path = self._files[fi]
        if self.in_memory:
            self.load()
            pts, pos = self._arrays[fi]
            pts = pts[pos[row]]
        else:
            with _io.open_h5(path) as f:
                pts = _io.h5_array(f, self._h5_key, path, rows=slice(row, row + 1))[0]
                if self.use_normals:
                    pts = np.concatenate([pts, _io.h5_array(f, "normal", path, rows=slice(row, row + 1))[0]], -1)
        return _io.check_points(pts, path, f"shape {row}")

    def _cloud(self, index: int) -> np.ndarray:
        """The processed cloud (num_points, C) in the output frame, before ``transform``."""
        if not self.resample and index in self._cache:
            return self._cache[index].copy()  # callers and transforms may modify it in place
        rng = self._item_rng(index)
        ch = 6 if self.use_normals else 3
        if self.format in ("hdf5", "repacked"):
            pts = self._raw_h5(index)
        elif self.format == "normal_resampled":
            path = self._paths[index]
            pts = self._raw_text.get(index)
            if pts is None:
                pts = _io.load_text(path, ",", ch, "point file")[:, :ch].astype(np.float32)
                if self.cache:  # parsing 10k lines costs ~30 ms: keep the table for later epochs
                    self._raw_text[index] = pts
        else:
            path = self._paths[index]
            verts, faces = read_off(path)
            try:
                pts, _ = sample_surface(verts, faces, max(self.off_samples, self.num_points), rng,
                                        normals=self.use_normals)
            except ValueError as e:
                raise DataError(path, str(e)) from None
        pts = pts[:, :ch]
        pts = pts[_io.select_points(pts, self.num_points, self.sampling, rng)]
        if self.normalize:
            pts = _io.normalize_unit_sphere(pts)
        pts = np.ascontiguousarray(_io.to_frame(pts, NATIVE_UP[self.format], self.up_axis), dtype=np.float32)
        if not self.resample and self.cache and self.format in ("normal_resampled", "off"):
            self._cache[index] = pts
        return pts

    def __getitem__(self, index: int):
        if not -len(self) <= index < len(self):
            raise IndexError(f"{self.NAME}: index {index} out of range for {len(self)} shapes")
        index %= len(self)
        pts = self._cloud(index)
        if self.transform is not None:
            pts = self.transform(pts)
        return torch.as_tensor(np.asarray(pts, dtype=np.float32)), torch.tensor(int(self.labels[index]))

    def __repr__(self) -> str:
        return (f"{self.NAME}(split={self.split!r}, n={len(self)}, format={self.format!r}, root='{self.root}', "
                f"num_points={self.num_points}, up_axis={self.up_axis!r}, sampling={self.sampling!r}, "
                f"resample={self.resample})")


class ModelNet40(ModelNet):
    """ModelNet40 (40 classes, alphabetical order as ``shape_names.txt``). See ``ModelNet``."""


class ModelNet10(ModelNet):
    """ModelNet10: its own files, or the 10-class subset of ModelNet40 files (filtered and
    relabelled to the alphabetical ModelNet10 order). See ``ModelNet``."""

    CLASSES = MODELNET10_CLASSES
    NAME = "ModelNet10"


@register_dataset("modelnet40", domain="points", task="cls")
def modelnet40(split: str = "train", root=None, **options) -> ModelNet40:
    """Root default: ``$ONEBIT_DATA/modelnet40``, else ``<repo>/../shared/data/modelnet40``."""
    return ModelNet40(root=root, split=split, **options)


@register_dataset("modelnet10", domain="points", task="cls")
def modelnet10(split: str = "train", root=None, **options) -> ModelNet10:
    """Root default: ``$ONEBIT_DATA/modelnet10`` if it exists, else the ModelNet40 root (filtered)."""
    return ModelNet10(root=root, split=split, **options)
