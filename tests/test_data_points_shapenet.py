"""ShapeNet Part loaders on small files written here in the two real release formats."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import onebit.data.points  # noqa: F401
from onebit.data import get_dataset
from onebit.data.errors import DataError
from onebit.data.points import (
    SHAPENET_PART_CATEGORIES,
    ShapeNetPart,
    part_to_category,
    shapenet_category_parts,
)
from onebit.data.transforms import Compose, RandomRotate, Shuffle

h5py = pytest.importorskip("h5py")
NAMES = list(SHAPENET_PART_CATEGORIES)


def shape_with_parts(cat, n, rng):
    """Points whose part id is decided by height (y), inside the category's part range."""
    parts = SHAPENET_PART_CATEGORIES[NAMES[cat]][1]
    xyz = rng.uniform(-1, 1, (n, 3))
    band = np.minimum(((xyz[:, 1] + 1) / 2 * len(parts)).astype(int), len(parts) - 1)
    return xyz.astype(np.float32), np.array(parts)[band]


def write_hdf5(folder, splits=None, npts=256):
    splits = splits or {"train": [(0, 4, 12), (15,)], "val": [(4,)], "test": [(12, 15)]}
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for split, groups in splits.items():
        names = []
        for i, cats in enumerate(groups):
            pts, pid = zip(*(shape_with_parts(c, npts, rng) for c in cats))
            name = f"ply_data_{split}{i}.h5"
            with h5py.File(folder / name, "w") as f:
                f["data"] = np.stack(pts)
                f["label"] = np.array(cats, np.uint8)[:, None]
                f["pid"] = np.stack(pid).astype(np.uint8)
            names.append(name)
        (folder / f"{split}_hdf5_file_list.txt").write_text("\n".join(names) + "\n")
    return folder


def write_normal(folder, splits=None, npts=300):
    splits = splits or {"train": [(0, "a1"), (11, "m1"), (15, "t1")], "val": [(11, "m2")], "test": [(0, "a2")]}
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "synsetoffset2category.txt").write_text(
        "".join(f"{n}\t{s}\n" for n, (s, _) in SHAPENET_PART_CATEGORIES.items()))
    (folder / "train_test_split").mkdir(exist_ok=True)
    rng = np.random.default_rng(1)
    for split, items in splits.items():
        entries = []
        for cat, sid in items:
            synset = SHAPENET_PART_CATEGORIES[NAMES[cat]][0]
            (folder / synset).mkdir(exist_ok=True)
            xyz, part = shape_with_parts(cat, npts, rng)
            nrm = np.tile([0.0, 1.0, 0.0], (npts, 1))
            rows = np.concatenate([xyz * 2 + 0.5, nrm, part[:, None]], 1)
            (folder / synset / f"{sid}.txt").write_text("\n".join(" ".join(f"{v:.6f}" for v in r) for r in rows) + "\n")
            entries.append(f"shape_data/{synset}/{sid}")
        (folder / "train_test_split" / f"shuffled_{split}_file_list.json").write_text(json.dumps(entries))
    return folder


def test_category_part_map_is_standard():
    parts = shapenet_category_parts()
    assert len(parts) == 16 and sum(len(p) for p in parts.values()) == 50
    flat = [i for p in parts.values() for i in p]
    assert flat == list(range(50))  # contiguous ranges in category order
    assert parts["Airplane"] == [0, 1, 2, 3] and parts["Motorbike"] == [30, 31, 32, 33, 34, 35]
    assert parts["Table"] == [47, 48, 49] and SHAPENET_PART_CATEGORIES["Chair"][0] == "03001627"
    p2c = part_to_category()
    assert p2c[0] == 0 and p2c[49] == 15 and p2c[36] == NAMES.index("Mug")


def test_hdf5_release(tmp_path):
    root = write_hdf5(tmp_path / "shapenet_part_seg_hdf5_data")
    ds = ShapeNetPart(tmp_path, split="train", num_points=128)
    assert ds.format == "hdf5" and len(ds) == 4 and ds.num_classes == 50 and ds.num_categories == 16
    x, (seg, cat) = ds[1]
    assert x.shape == (128, 3) and seg.shape == (128,) and seg.dtype == torch.int64 and int(cat) == 4
    assert set(seg.tolist()) <= set(ds.category_parts["Chair"])  # category 4 = Chair
    # labels follow their points: part id is a function of height
    with h5py.File(root / "ply_data_train0.h5") as f:
        raw, pid = f["data"][1], f["pid"][1]
    lookup = {tuple(p): int(q) for p, q in zip(raw, pid)}
    assert all(lookup[tuple(p)] == int(s) for p, s in zip(x.numpy(), seg))
    assert len(ShapeNetPart(root, split="val")) == 1 and len(ShapeNetPart(root, split="trainval")) == 5
    test = ShapeNetPart(root, split="test", num_points=400)  # padded: 256 stored points
    a, b = test[0], test[0]
    assert a[0].shape == (400, 3) and torch.equal(a[0], b[0]) and torch.equal(a[1][0], b[1][0])
    only = ShapeNetPart(root, split="train", categories=["Chair", "Table"])
    assert sorted(only.categories.tolist()) == [4, 15] and only.num_classes == 50


def test_normal_release(tmp_path):
    root = write_normal(tmp_path)
    ds = ShapeNetPart(root, split="train", num_points=200, use_normals=True, sampling="first")
    assert ds.format == "normal" and len(ds) == 3 and ds.categories.tolist() == [0, 11, 15]
    x, (seg, cat) = ds[1]
    assert x.shape == (200, 6) and int(cat) == 11 and set(seg.tolist()) <= {36, 37}
    assert np.isclose(float(x[:, :3].norm(dim=1).max()), 1, atol=1e-5)  # normalised (not on disk)
    assert np.allclose(x[:, 3:].numpy(), [0, 1, 0])
    xz, _ = ShapeNetPart(root, split="train", num_points=200, use_normals=True, sampling="first", up_axis="z")[1]
    assert np.allclose(xz[:, 5].numpy(), 1) and torch.equal(xz[:, 2], x[:, 1])
    assert len(ShapeNetPart(root, split="test")) == 1
    assert get_dataset("shapenet_part", "val", root=root).categories.tolist() == [11]


def test_transform_gets_points_and_targets(tmp_path):
    root = write_hdf5(tmp_path)
    plain = ShapeNetPart(root, split="test", num_points=64)
    tf = ShapeNetPart(root, split="test", num_points=64,
                      transform=Compose([RandomRotate("y", rng=0), Shuffle(rng=0)]))
    x, (seg, cat) = tf[0]
    x0, (seg0, cat0) = plain[0]
    assert int(cat) == int(cat0) and sorted(seg.tolist()) == sorted(seg0.tolist())
    # rotation about y keeps heights, and labels moved with their points
    order = torch.argsort(x[:, 1])
    order0 = torch.argsort(x0[:, 1])
    assert torch.allclose(x[order, 1], x0[order0, 1], atol=1e-6) and torch.equal(seg[order], seg0[order0])
    loader = torch.utils.data.DataLoader(tf, batch_size=2)
    xb, (sb, cb) = next(iter(loader))
    assert xb.shape == (2, 64, 3) and sb.shape == (2, 64) and cb.shape == (2,)


def test_bad_files(tmp_path):
    root = write_hdf5(tmp_path / "h")
    with h5py.File(root / "ply_data_val0.h5", "r+") as f:
        del f["pid"]
    with pytest.raises(DataError, match=r"ply_data_val0\.h5: missing HDF5 key 'pid'"):
        ShapeNetPart(root, split="val")
    with h5py.File(root / "ply_data_val0.h5", "r+") as f:
        f["pid"] = np.full((1, 256), 20, np.uint8)  # a Guitar part on a Chair (category 4)
    with pytest.raises(DataError, match=r"ply_data_val0\.h5: part id 20 .* not a part of category Chair"):
        ShapeNetPart(root, split="val")
    with h5py.File(root / "ply_data_val0.h5", "r+") as f:
        f["pid"][...] = 60
    with pytest.raises(DataError, match=r"part id out of range: values 60\.\.60, expected 0\.\.49"):
        ShapeNetPart(root, split="val")
    with h5py.File(root / "ply_data_val0.h5", "r+") as f:
        f["label"][...] = 16
    with pytest.raises(DataError, match="category label out of range"):
        ShapeNetPart(root, split="val")
    with h5py.File(root / "ply_data_test0.h5", "r+") as f:
        d = f["data"][()]
        d[0, 0, 0] = np.inf
        f["data"][...] = d
    with pytest.raises(DataError, match=r"ply_data_test0\.h5: NaN or inf"):
        ShapeNetPart(root, split="test")
    (root / "ply_data_train1.h5").write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 50)
    with pytest.raises(DataError, match=r"ply_data_train1\.h5: not a readable HDF5 file"):
        ShapeNetPart(root, split="train")

    nr = write_normal(tmp_path / "n")
    f = next((nr / SHAPENET_PART_CATEGORIES["Mug"][0]).glob("m1.txt"))
    lines = f.read_text().splitlines()
    lines[3] = "0.1 0.2 0.3 0 1"
    f.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=r"m1\.txt: malformed line"):
        ShapeNetPart(nr, split="train")[1]
    (nr / "train_test_split" / "shuffled_test_file_list.json").unlink()
    with pytest.raises(DataError, match=r"shuffled_test_file_list\.json: split file not found"):
        ShapeNetPart(nr, split="test")
    (nr / "train_test_split" / "shuffled_val_file_list.json").write_text("[oops")
    with pytest.raises(DataError, match="not valid JSON"):
        ShapeNetPart(nr, split="val")
    with pytest.raises(ValueError, match="unknown categories"):
        ShapeNetPart(nr, split="train", categories=["Spaceship"])
