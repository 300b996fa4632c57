"""S3DIS semantic segmentation (13 classes) in 1 m × 1 m blocks of 4096 points, 9 features.

Formats (``format="auto"`` detects them):

- ``"hdf5"``: ``indoor3d_sem_seg_hdf5_data`` (``ply_data_all_N.h5`` with ``data`` (N, 4096, 9)
  and ``label`` (N, 4096), listed in ``all_files.txt``; ``room_filelist.txt`` names the room
  ``Area_k_<room>`` of every block, in order).
- ``"raw"``: ``Stanford3dDataset_v1.2_Aligned_Version/Area_k/<room>/Annotations/<class>_<i>.txt``
  with "x y z r g b" lines; blocks are made here like PointNet's ``indoor3d_util``: the room is
  shifted to min xyz = 0; 1 m blocks on a 1 m stride grid over x, y (bounds inclusive); blocks
  with < 100 points dropped; each sampled to 4096 points (random without replacement, or padded
  with random repeats); features [x − (bx + 0.5), y − (by + 0.5), z, r/255, g/255, b/255,
  x/X, y/Y, z/Z] with (X, Y, Z) the room's max after the shift. Unknown classes (e.g. stairs)
  become clutter, as in the official prep.

Splits: ``test_area`` k (default 5, the "Area-5" protocol; the 6-fold protocol runs k = 1..6):
test = the blocks of Area_k, train = the other areas. Items: ``(points (4096, 9) float32,
labels (4096,) int64)``.
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
from onebit.data.registry import register_dataset

S3DIS_CLASSES = ("ceiling", "floor", "wall", "beam", "column", "window", "door", "table", "chair", "sofa",
                 "bookcase", "board", "clutter")
"""The 13 S3DIS semantic classes in label order."""
_AREA_RE = re.compile(r"^Area_(\d+)_")


def detect_format(root) -> tuple[str, Path]:
    """Find S3DIS under ``root``: ("hdf5" | "raw", the folder holding it); DataError if absent."""
    root = _io.require_dir(root, "S3DIS")
    subs = ("indoor3d_sem_seg_hdf5_data", "Stanford3dDataset_v1.2_Aligned_Version")
    for d in [root] + [root / s for s in subs if (root / s).is_dir()]:
        if (d / "all_files.txt").is_file() or any(d.glob("ply_data_all_*.h5")):
            return "hdf5", d
        if any(d.glob("Area_*/*/Annotations")):
            return "raw", d
    raise DataError(root, "no S3DIS data found: expected all_files.txt + ply_data_all_*.h5 or "
                          "Area_k/<room>/Annotations/*.txt")


def room_to_blocks(points: np.ndarray, labels: np.ndarray, num_points: int = 4096, block_size: float = 1.0,
                   stride: float = 1.0, min_points: int = 100, rng: np.random.Generator | None = None
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Cut a room (xyz rgb, (M, 6)) into blocks → (B, num_points, 9) features, (B, num_points) labels,
    following PointNet's ``room2blocks_wrapper_normalized`` (see the module docstring)."""
    rng = rng or np.random.default_rng(0)
    pts = np.asarray(points, dtype=np.float64).copy()
    pts[:, :3] -= pts[:, :3].min(axis=0)
    limit = pts[:, :3].max(axis=0)
    nx = int(np.ceil((limit[0] - block_size) / stride)) + 1
    ny = int(np.ceil((limit[1] - block_size) / stride)) + 1
    feats, labs = [], []
    for i in range(max(nx, 1)):
        for j in range(max(ny, 1)):
            bx, by = i * stride, j * stride
            m = ((pts[:, 0] >= bx) & (pts[:, 0] <= bx + block_size)
                 & (pts[:, 1] >= by) & (pts[:, 1] <= by + block_size))
            idx = np.flatnonzero(m)
            if len(idx) < min_points:
                continue
            if len(idx) >= num_points:
                sel = idx[rng.choice(len(idx), num_points, replace=False)]
            else:
                sel = np.concatenate([idx, idx[rng.integers(0, len(idx), num_points - len(idx))]])
            b = pts[sel]
            f = np.empty((num_points, 9))
            f[:, 6:9] = b[:, :3] / np.where(limit > 0, limit, 1.0)
            f[:, 0] = b[:, 0] - (bx + block_size / 2)
            f[:, 1] = b[:, 1] - (by + block_size / 2)
            f[:, 2] = b[:, 2]
            f[:, 3:6] = b[:, 3:6] / 255.0
            feats.append(f.astype(np.float32))
            labs.append(labels[sel])
    if not feats:
        return np.zeros((0, num_points, 9), np.float32), np.zeros((0, num_points), np.int64)
    return np.stack(feats), np.stack(labs).astype(np.int64)


def load_room(room_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    """All annotated points of a raw room: (M, 6) xyz rgb and (M,) labels."""
    ann = room_dir / "Annotations"
    files = sorted(ann.glob("*.txt"))
    if not files:
        raise DataError(ann, "no annotation files (<class>_<i>.txt) in this room")
    pts, labs = [], []
    for f in files:
        cls = f.stem.rsplit("_", 1)[0]
        label = S3DIS_CLASSES.index(cls) if cls in S3DIS_CLASSES else S3DIS_CLASSES.index("clutter")
        arr = _io.load_text(f, None, 6, "annotation file")
        pts.append(arr[:, :6])
        labs.append(np.full(len(arr), label, dtype=np.int64))
    return np.concatenate(pts), np.concatenate(labs)


class S3DIS(Dataset):
    """S3DIS blocks; ``split`` "train" (all areas but ``test_area``) or "test" (``test_area``).

    Args: root, split, test_area (1..6; 5 = the Area-5 protocol), format ("auto", "hdf5", "raw"),
    num_points (raw format only; the HDF5 blocks have 4096), block_size / stride (raw), seed
    (raw: the block sampling), transform (called on ``(points, labels)``).
    """

    def __init__(self, root=None, split: str = "train", test_area: int = 5, format: str = "auto",
                 num_points: int = 4096, block_size: float = 1.0, stride: float = 1.0, seed: int = 0,
                 transform: Callable | None = None):
        _io.check_split(split, ("train", "test"), "S3DIS")
        if test_area not in range(1, 7):
            raise ValueError(f"S3DIS: test_area must be 1..6, got {test_area!r}")
        if root is None:
            root = _io.default_root("s3dis")
        if format == "auto":
            self.format, self.root = detect_format(root)
        elif format in ("hdf5", "raw"):
            self.format, self.root = format, _io.require_dir(root, "S3DIS")
        else:
            raise ValueError(f"S3DIS: format must be 'auto', 'hdf5' or 'raw', got {format!r}")
        self.split, self.test_area, self.transform = split, int(test_area), transform
        self.class_names, self.num_classes = list(S3DIS_CLASSES), len(S3DIS_CLASSES)
        if self.format == "hdf5":
            data, labels, rooms = self._read_hdf5()
        else:
            data, labels, rooms = self._read_raw(num_points, block_size, stride, seed)
        # both readers return only this split's blocks
        self.points, self.labels, self.rooms = data, labels, rooms

    @staticmethod
    def _area(room: str) -> int:
        m = _AREA_RE.match(room)
        return int(m.group(1)) if m else -1

    def _read_hdf5(self):
        listing = self.root / "all_files.txt"
        if listing.is_file():
            files = []
            for ln in _io.read_lines(listing, "file list"):
                p = self.root / Path(ln).name
                if not p.is_file():
                    raise DataError(listing, f"lists {ln!r} but {p} does not exist")
                files.append(p)
        else:
            raise DataError(listing, "file list not found (all_files.txt names the ply_data_all_N.h5 files)")
        rooms_file = self.root / "room_filelist.txt"
        rooms = _io.read_lines(rooms_file, "room list")
        bad = [r for r in rooms if not _AREA_RE.match(r)]
        if bad:
            raise DataError(rooms_file, f"entry {bad[0]!r} does not name Area_k_<room>")
        # keep only this split's blocks, file by file (the full release is ~3.5 GB as float32)
        want = np.array([(self._area(r) == self.test_area) == (self.split == "test") for r in rooms])
        data, labels, offset = [], [], 0
        for p in files:
            with _io.open_h5(p) as f:
                d = _io.h5_array(f, "data", p, ndim=3, shape_tail=(None, 9))
                lab = _io.h5_array(f, "label", p, ndim=2)
            if lab.shape != d.shape[:2]:
                raise DataError(p, f"key 'label' has shape {lab.shape}, expected {d.shape[:2]} to match 'data'")
            if offset + len(d) > len(rooms):
                raise DataError(rooms_file, f"names {len(rooms)} blocks but the HDF5 files hold more")
            rows = np.flatnonzero(want[offset:offset + len(d)])
            offset += len(d)
            data.append(_io.check_points(d[rows], p, "key 'data'") if len(rows) else d[:0].astype(np.float32))
            labels.append(_io.check_labels(lab[rows], self.num_classes, p))
        if offset != len(rooms):
            raise DataError(rooms_file, f"names {len(rooms)} blocks but the HDF5 files hold {offset}")
        return np.concatenate(data), np.concatenate(labels), [r for r, w in zip(rooms, want) if w]

    def _read_raw(self, num_points, block_size, stride, seed):
        room_dirs = sorted(d for d in self.root.glob("Area_*/*") if (d / "Annotations").is_dir())
        if not room_dirs:
            raise DataError(self.root, "no rooms (Area_k/<room>/Annotations) found")
        data, labels, rooms = [], [], []
        for k, d in enumerate(room_dirs):
            area = d.parent.name
            if self.split == "test" and area != f"Area_{self.test_area}":
                continue
            if self.split == "train" and area == f"Area_{self.test_area}":
                continue
            pts, lab = load_room(d)
            rng = np.random.default_rng([int(seed), k])
            f, lab = room_to_blocks(pts, lab, num_points, block_size, stride, rng=rng)
            data.append(f)
            labels.append(lab)
            rooms += [f"{area}_{d.name}"] * len(f)
        if not data:
            return np.zeros((0, num_points, 9), np.float32), np.zeros((0, num_points), np.int64), []
        return np.concatenate(data), np.concatenate(labels), rooms

    def __len__(self) -> int:
        return len(self.points)

    def __getitem__(self, index: int):
        pts, lab = self.points[index], self.labels[index]
        if self.transform is not None:
            pts, lab = self.transform(pts, lab)
        return torch.tensor(np.asarray(pts, dtype=np.float32)), torch.tensor(np.asarray(lab, dtype=np.int64))


@register_dataset("s3dis", domain="points", task="semseg")
def s3dis(split: str = "train", root=None, **options) -> S3DIS:
    """Root default: ``$ONEBIT_DATA/s3dis``, else ``<repo>/../shared/data/s3dis``."""
    return S3DIS(root=root, split=split, **options)
