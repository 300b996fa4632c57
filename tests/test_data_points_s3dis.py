"""S3DIS loaders on small files written here in the real HDF5-block and raw-area formats."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import onebit.data.points  # noqa: F401
from onebit.data import get_dataset
from onebit.data.errors import DataError
from onebit.data.points import S3DIS, S3DIS_CLASSES, room_to_blocks

h5py = pytest.importorskip("h5py")

ROOMS = ["Area_1_office_1", "Area_1_office_1", "Area_5_hallway_2", "Area_6_lobby_1", "Area_5_office_3"]


def write_hdf5(folder, rooms=ROOMS, per_file=(3, 2)):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    names, k = [], 0
    for i, n in enumerate(per_file):
        name = f"ply_data_all_{i}.h5"
        with h5py.File(folder / name, "w") as f:
            data = rng.uniform(0, 1, (n, 4096, 9)).astype(np.float32)
            data[:, 0, 0] = np.arange(k, k + n)  # tag each block with its global index
            f["data"] = data
            f["label"] = rng.integers(0, 13, (n, 4096)).astype(np.uint8)
        names.append(f"indoor3d_sem_seg_hdf5_data/{name}")
        k += n
    (folder / "all_files.txt").write_text("\n".join(names) + "\n")
    (folder / "room_filelist.txt").write_text("\n".join(rooms) + "\n")
    return folder


def write_raw(folder, areas=(1, 5, 6), n=3000):
    rng = np.random.default_rng(1)
    for a in areas:
        ann = folder / f"Area_{a}" / f"office_{a}" / "Annotations"
        ann.mkdir(parents=True)
        for j, cls in enumerate(("wall", "chair", "stairs")):
            xyz = rng.uniform(0, 1, (n // 3, 3)) * [2.5, 1.5, 3.0] + [10, -4, 0.5]  # room not at 0
            rgb = rng.integers(0, 256, (n // 3, 3))
            rows = [f"{x:.3f} {y:.3f} {z:.3f} {r} {g} {b}" for (x, y, z), (r, g, b) in zip(xyz, rgb)]
            (ann / f"{cls}_{j + 1}.txt").write_text("\n".join(rows) + "\n")
    return folder


def test_hdf5_blocks_area5_and_folds(tmp_path):
    root = write_hdf5(tmp_path / "indoor3d_sem_seg_hdf5_data")
    test = S3DIS(tmp_path, split="test", test_area=5)
    assert test.format == "hdf5" and test.num_classes == 13 and test.class_names == list(S3DIS_CLASSES)
    assert test.rooms == ["Area_5_hallway_2", "Area_5_office_3"]
    assert [int(test[i][0][0, 0]) for i in range(len(test))] == [2, 4]  # blocks 2 and 4, across files
    train = S3DIS(root, split="train", test_area=5)
    assert [int(train[i][0][0, 0]) for i in range(len(train))] == [0, 1, 3]
    x, y = train[0]
    assert x.shape == (4096, 9) and x.dtype == torch.float32 and y.shape == (4096,) and y.dtype == torch.int64
    fold1 = S3DIS(root, split="test", test_area=1)
    assert len(fold1) == 2 and len(S3DIS(root, split="train", test_area=1)) == 3
    assert len(get_dataset("s3dis", "test", root=root, test_area=6)) == 1
    with pytest.raises(ValueError, match="test_area must be 1..6"):
        S3DIS(root, test_area=7)


def test_raw_rooms_to_blocks(tmp_path):
    root = write_raw(tmp_path / "Stanford3dDataset_v1.2_Aligned_Version")
    test = S3DIS(tmp_path, split="test", test_area=5, num_points=512)
    assert test.format == "raw" and len(test) > 0 and set(test.rooms) == {"Area_5_office_5"}
    train = S3DIS(root, split="train", test_area=5, num_points=512)
    assert {r[:6] for r in train.rooms} == {"Area_1", "Area_6"}
    x, y = test[0]
    assert x.shape == (512, 9) and y.shape == (512,)
    assert set(np.unique(train.labels)) <= {S3DIS_CLASSES.index(c) for c in ("wall", "chair", "clutter")}
    assert S3DIS_CLASSES.index("clutter") in set(np.unique(train.labels))  # stairs -> clutter


def test_room_to_blocks_features():
    rng = np.random.default_rng(0)
    xyz = rng.uniform(0, 1, (6000, 3)) * [2.5, 1.5, 3.0] + [3, 7, 1]
    rgb = rng.integers(0, 256, (6000, 3))
    labels = rng.integers(0, 13, 6000)
    feats, labs = room_to_blocks(np.concatenate([xyz, rgb], 1), labels, num_points=256, rng=rng)
    # a 2.5 x 1.5 room gives a 3 x 2 grid of 1 m blocks
    assert feats.shape == (6, 256, 9) and labs.shape == (6, 256)
    shifted_max = (xyz - xyz.min(0)).max(0)
    assert np.all((feats[..., 6:9] >= 0) & (feats[..., 6:9] <= 1 + 1e-6))
    assert np.all(np.abs(feats[..., 0:2]) <= 0.5 + 1e-5)  # xy centred on the block
    assert np.all((feats[..., 3:6] >= 0) & (feats[..., 3:6] <= 1))
    # x = (x / X) * X must equal the block origin + 0.5 + the centred x; origins are whole metres
    origin = feats[..., 6] * shifted_max[0] - feats[..., 0] - 0.5
    assert np.allclose(origin, np.round(origin), atol=1e-4)
    assert sorted(np.unique(np.round(origin)).tolist()) == [0.0, 1.0, 2.0]
    assert np.allclose(feats[..., 2], feats[..., 8] * shifted_max[2], atol=1e-5)  # z is not centred
    # each block's labels are those of its points
    b = feats[0]
    pts = b[:, 6:9] * shifted_max
    d = np.linalg.norm(pts[:, None] - (xyz - xyz.min(0))[None], axis=2)
    assert d.min(1).max() < 1e-4 and np.array_equal(labels[d.argmin(1)], labs[0])
    # tiny blocks (< 100 points) are dropped
    few, _ = room_to_blocks(np.concatenate([xyz[:50], rgb[:50]], 1), labels[:50], num_points=64)
    assert len(few) == 0


def test_bad_files(tmp_path):
    root = write_hdf5(tmp_path)
    (root / "room_filelist.txt").write_text("\n".join(ROOMS[:4]) + "\n")
    with pytest.raises(DataError, match=r"room_filelist\.txt: names 4 blocks but the HDF5 files hold more"):
        S3DIS(root)
    (root / "room_filelist.txt").write_text("\n".join(ROOMS[:4] + ["office_9"]) + "\n")
    with pytest.raises(DataError, match=r"room_filelist\.txt: entry 'office_9' does not name Area_k_<room>"):
        S3DIS(root)
    (root / "room_filelist.txt").unlink()
    with pytest.raises(DataError, match=r"room_filelist\.txt: room list not found"):
        S3DIS(root)
    write_hdf5(root)
    with h5py.File(root / "ply_data_all_1.h5", "r+") as f:
        f["label"][0, 0] = 13
    with pytest.raises(DataError, match=r"ply_data_all_1\.h5: label out of range: values 0\.\.13, expected 0\.\.12"):
        S3DIS(root, split="train")
    write_hdf5(root)
    with h5py.File(root / "ply_data_all_0.h5", "r+") as f:
        del f["data"]
        f["data"] = np.zeros((3, 4096, 6), np.float32)
    with pytest.raises(DataError, match=r"ply_data_all_0\.h5: key 'data' has shape \(3, 4096, 6\)"):
        S3DIS(root)
    (root / "all_files.txt").unlink()
    with pytest.raises(DataError, match=r"all_files\.txt: file list not found"):
        S3DIS(root, format="hdf5")

    raw = write_raw(tmp_path / "raw", areas=(2,))
    f = raw / "Area_2" / "office_2" / "Annotations" / "chair_2.txt"
    lines = f.read_text().splitlines()
    lines[7] = "1.0 2.0 3.0 12 34 5\x10"  # the kind of stray byte found in real S3DIS files
    f.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=r"chair_2\.txt: malformed line"):
        S3DIS(raw, split="test", test_area=2)
