"""ModelNet40/10 loaders on small files written here in the exact real formats, plus the real
repacked copy in ../shared/data/modelnet40 (skipped when absent)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import onebit.data.points  # noqa: F401  (registers the datasets)
from onebit.data import get_dataset
from onebit.data.errors import DataError
from onebit.data.points import MODELNET10_CLASSES, MODELNET40_CLASSES, ModelNet10, ModelNet40
from onebit.data.points.mesh import box, write_off
from onebit.data.points.modelnet import detect_format

h5py = pytest.importorskip("h5py")


def tall_clouds(n, p, rng, axis=1):
    """Unit-sphere clouds elongated along ``axis`` (the up axis of their format)."""
    pts = rng.normal(size=(n, p, 3)) * 0.2
    pts[..., axis] *= 4
    pts -= pts.mean(1, keepdims=True)
    pts /= np.linalg.norm(pts, axis=2).max(1)[:, None, None]
    return pts.astype(np.float32)


def write_std_hdf5(folder, labels_per_file=((0, 1, 2, 8), (23, 35)), test_labels=(1, 2), normals=True):
    """Stanford modelnet40_ply_hdf5_2048 layout: data (N,2048,3) f32, label (N,1) u8, normal."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    (folder / "shape_names.txt").write_text("\n".join(MODELNET40_CLASSES) + "\n")
    for split, groups in (("train", labels_per_file), ("test", (test_labels,))):
        names = []
        for i, labs in enumerate(groups):
            name = f"ply_data_{split}{i}.h5"
            with h5py.File(folder / name, "w") as f:
                f["data"] = tall_clouds(len(labs), 2048, rng)
                f["label"] = np.array(labs, dtype=np.uint8)[:, None]
                if normals:
                    nrm = rng.normal(size=(len(labs), 2048, 3)).astype(np.float32)
                    f["normal"] = nrm / np.linalg.norm(nrm, axis=2, keepdims=True)
            names.append(f"data/modelnet40_ply_hdf5_2048/{name}")
        (folder / f"{split}_files.txt").write_text("\n".join(names) + "\n")
    return folder


def write_normal_resampled(folder, shapes=(("airplane", 1), ("bed", 2), ("chair", 3)), test=(("bed", 9),),
                           npts=300):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(1)
    (folder / "modelnet40_shape_names.txt").write_text("\n".join(MODELNET40_CLASSES) + "\n")
    (folder / "modelnet10_shape_names.txt").write_text("\n".join(MODELNET10_CLASSES) + "\n")
    for split, items in (("train", shapes), ("test", test)):
        ids = [f"{c}_{k:04d}" for c, k in items]
        (folder / f"modelnet40_{split}.txt").write_text("\n".join(ids) + "\n")
        (folder / f"modelnet10_{split}.txt").write_text(
            "\n".join(i for i in ids if i.rsplit("_", 1)[0] in MODELNET10_CLASSES) + "\n")
        for sid in ids:
            cls = sid.rsplit("_", 1)[0]
            (folder / cls).mkdir(exist_ok=True)
            xyz = tall_clouds(1, npts, rng)[0] * 3 + 1  # not normalised on disk
            nrm = rng.normal(size=(npts, 3))
            nrm /= np.linalg.norm(nrm, axis=1, keepdims=True)
            rows = np.concatenate([xyz, nrm], 1)
            (folder / cls / f"{sid}.txt").write_text("\n".join(",".join(f"{v:.6f}" for v in r) for r in rows) + "\n")
    return folder


def write_off_tree(folder, classes=MODELNET40_CLASSES, files=(("bed", "train", 1), ("chair", "test", 2)),
                   malformed=True):
    for c in classes:
        for s in ("train", "test"):
            (folder / c / s).mkdir(parents=True, exist_ok=True)
    v, f = box((1.0, 2.0, 3.0))  # z is the long axis: z is up in raw ModelNet
    for c, s, k in files:
        path = folder / c / s / f"{c}_{k:04d}.off"
        write_off(path, v, f)
        if malformed:  # the known ModelNet header variant: counts glued to "OFF"
            lines = path.read_text().splitlines()
            path.write_text("\n".join([f"OFF{lines[1]}"] + lines[2:]) + "\n")
    return folder


def write_repacked(folder, labels_train=(0, 0, 5, 39), labels_test=(3,)):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(2)
    (folder / "shape_names.txt").write_text("\n".join(MODELNET40_CLASSES) + "\n")
    for split, labs in (("train", labels_train), ("test", labels_test)):
        with h5py.File(folder / f"{split}.h5", "w") as f:
            f["points"] = tall_clouds(len(labs), 1024, rng, axis=2)  # z up
            f["label"] = np.array(labs, dtype=np.int64)
            f["shape_id"] = np.array([f"{MODELNET40_CLASSES[k]}_{i + 1:04d}".encode() for i, k in enumerate(labs)])
    return folder


def up_extent_ratio(x, axis):
    ext = x.max(0).values - x.min(0).values
    return float(ext[axis] / ext[[i for i in range(3) if i != axis]].max())


# ----------------------------------------------------------------------------------------------
def test_detect_formats(tmp_path):
    assert detect_format(write_std_hdf5(tmp_path / "a" / "modelnet40_ply_hdf5_2048"))[0] == "hdf5"
    # the archive's parent folder works too
    assert detect_format(tmp_path / "a") == ("hdf5", tmp_path / "a" / "modelnet40_ply_hdf5_2048")
    assert detect_format(write_normal_resampled(tmp_path / "b"))[0] == "normal_resampled"
    assert detect_format(write_off_tree(tmp_path / "c", files=(("bed", "train", 1),)))[0] == "off"
    assert detect_format(write_repacked(tmp_path / "d"))[0] == "repacked"
    write_off_tree(tmp_path / "a" / "ModelNet40", files=(("bed", "test", 4),))  # two formats side by side
    assert detect_format(tmp_path / "a")[0] == "hdf5"
    assert detect_format(tmp_path / "a", want="off") == ("off", tmp_path / "a" / "ModelNet40")
    assert ModelNet40(tmp_path / "a", split="test", format="off", num_points=16).format == "off"
    with pytest.raises(DataError, match="no ModelNet data in format 'repacked'"):
        ModelNet40(tmp_path / "a", format="repacked")
    (tmp_path / "e").mkdir()
    with pytest.raises(DataError, match="no ModelNet data found"):
        detect_format(tmp_path / "e")


def test_standard_hdf5(tmp_path):
    root = write_std_hdf5(tmp_path)
    ds = ModelNet40(root, split="train")
    assert ds.format == "hdf5" and len(ds) == 6 and ds.num_classes == 40 and ds.class_names[8] == "chair"
    assert ds.labels.tolist() == [0, 1, 2, 8, 23, 35]
    x, y = ds[3]
    assert x.shape == (1024, 3) and x.dtype == torch.float32 and y.dtype == torch.int64 and int(y) == 8
    with h5py.File(tmp_path / "ply_data_train0.h5") as f:
        raw = f["data"][3]
    assert np.array_equal(x.numpy(), raw[:1024])  # common protocol: the first 1024 points, y up
    assert up_extent_ratio(x, 1) > 2
    xz, _ = ModelNet40(root, split="train", up_axis="z")[3]
    assert np.array_equal(xz.numpy(), raw[:1024][:, [0, 2, 1]]) and up_extent_ratio(xz, 2) > 2
    xn, _ = ModelNet40(root, split="test", use_normals=True, num_points=512)[0]
    assert xn.shape == (512, 6) and np.allclose(np.linalg.norm(xn[:, 3:].numpy(), axis=1), 1, atol=1e-5)
    lazy = ModelNet40(root, split="train", in_memory=False)
    assert torch.equal(lazy[4][0], ds[4][0])


def test_sampling_modes(tmp_path):
    root = write_std_hdf5(tmp_path)
    fixed = ModelNet40(root, split="test", sampling="random", resample=False, seed=3)
    assert torch.equal(fixed[0][0], fixed[0][0])  # a fixed test set
    assert torch.equal(fixed[0][0], ModelNet40(root, split="test", sampling="random", resample=False, seed=3)[0][0])
    fresh = ModelNet40(root, split="train", sampling="random", resample=True)
    assert not torch.equal(fresh[0][0], fresh[0][0])
    fps = ModelNet40(root, split="test", sampling="fps", num_points=64)[0][0]
    first = ModelNet40(root, split="test", sampling="first", num_points=64)[0][0]
    spread = lambda x: torch.cdist(x, x).fill_diagonal_(9).min(1).values.mean()  # noqa: E731
    assert spread(fps) > spread(first)


def test_modelnet10_filters_and_relabels(tmp_path):
    root = write_std_hdf5(tmp_path)
    ds = ModelNet10(root, split="train")
    # ModelNet40 labels 1 bathtub, 2 bed, 8 chair, 23 night_stand, 35 toilet are ModelNet10 classes
    assert ds.num_classes == 10 and ds.class_names == list(MODELNET10_CLASSES)
    assert ds.labels.tolist() == [0, 1, 2, 6, 9]
    assert [ds.class_names[int(ds[i][1])] for i in range(len(ds))] == ["bathtub", "bed", "chair", "night_stand",
                                                                        "toilet"]
    lazy = ModelNet10(root, split="train", in_memory=False)
    assert all(torch.equal(ds.load()[i][0], lazy[i][0]) for i in range(len(ds)))
    with h5py.File(tmp_path / "ply_data_train1.h5") as f:  # night_stand is row 0 of the second file
        assert np.array_equal(ds[3][0].numpy(), f["data"][0, :1024])


def test_normal_resampled(tmp_path):
    root = write_normal_resampled(tmp_path)
    ds = ModelNet40(root, split="train", num_points=256)
    assert ds.format == "normal_resampled" and len(ds) == 3 and ds.labels.tolist() == [0, 2, 8]
    x, y = ds[1]
    assert x.shape == (256, 3) and int(y) == 2
    assert np.isclose(float(x.norm(dim=1).max()), 1, atol=1e-5)  # normalised per cloud
    assert up_extent_ratio(x, 1) > 2
    xn, _ = ModelNet40(root, split="train", num_points=256, use_normals=True)[1]
    assert xn.shape == (256, 6) and np.allclose(xn[:, :3].numpy(), x.numpy(), atol=1e-6)
    ten = ModelNet10(root, split="train", num_points=128)  # uses the modelnet10_* lists
    assert len(ten) == 2 and ten.labels.tolist() == [1, 2]
    assert len(ModelNet40(root, split="test")) == 1


def test_off_meshes(tmp_path):
    root = write_off_tree(tmp_path)
    ds = ModelNet40(root, split="train", num_points=128, normalize=False, off_samples=2000)
    assert ds.format == "off" and len(ds) == 1 and int(ds[0][1]) == MODELNET40_CLASSES.index("bed")
    x = ds[0][0].numpy()
    assert x.shape == (128, 3) and len(np.unique(x, axis=0)) == 128
    # every sample lies on the box surface; up axis y shows the box's long z side (length 3)
    half = np.array([0.5, 1.5, 1.0])  # (x, z, y) half-sizes after the z-up -> y-up swap
    assert np.all(np.abs(x) <= half + 1e-6)
    assert np.all(np.isclose(np.abs(x), half, atol=1e-6).any(axis=1))
    assert np.isclose(x[:, 1].max() - x[:, 1].min(), 3, atol=0.2)
    # FPS reaches the corners: the sample spans the whole box
    assert np.allclose(x.max(0) - x.min(0), 2 * half, atol=0.15)
    xn = ModelNet40(root, split="train", num_points=64, use_normals=True)[0][0].numpy()
    assert xn.shape == (64, 6) and np.allclose(np.abs(xn[:, 3:]).sum(1), 1, atol=1e-6)  # axis-aligned normals
    # fixed test set: the surface sample is cached and deterministic
    t = ModelNet40(root, split="test", num_points=64)
    assert torch.equal(t[0][0], t[0][0]) and torch.equal(t[0][0], ModelNet40(root, split="test", num_points=64)[0][0])


def test_off_modelnet10_own_folder(tmp_path):
    root = write_off_tree(tmp_path, classes=MODELNET10_CLASSES, files=(("toilet", "train", 3),))
    ds = ModelNet10(root, split="train", num_points=32)
    assert len(ds) == 1 and int(ds[0][1]) == 9
    with pytest.raises(DataError, match="ModelNet40 needs classes missing"):
        ModelNet40(root, split="train")


def test_repacked_z_up(tmp_path):
    root = write_repacked(tmp_path)
    ds = ModelNet40(root, split="train")
    assert ds.format == "repacked" and ds.shape_ids[2] == "bottle_0003" and ds.labels.tolist() == [0, 0, 5, 39]
    with h5py.File(tmp_path / "train.h5") as f:
        raw = f["points"][2]
    assert np.array_equal(ds[2][0].numpy(), raw[:, [0, 2, 1]])  # README: z-up -> y-up mapping
    assert np.array_equal(ModelNet40(root, split="train", up_axis="z")[2][0].numpy(), raw)
    assert up_extent_ratio(ds[2][0], 1) > 2
    with pytest.raises(DataError, match="no normals"):
        ModelNet40(root, use_normals=True)


def test_registry_and_options(tmp_path):
    root = write_repacked(tmp_path)
    ds = get_dataset("modelnet40", "test", root=root)
    assert isinstance(ds, ModelNet40) and len(ds) == 1
    assert isinstance(get_dataset("modelnet10", "test", root=write_std_hdf5(tmp_path / "s")), ModelNet10)
    with pytest.raises(ValueError, match="split"):
        ModelNet40(root, split="val")
    with pytest.raises(ValueError, match="sampling"):
        ModelNet40(root, sampling="best")
    with pytest.raises(ValueError, match="up_axis"):
        ModelNet40(root, up_axis="x")
    with pytest.raises(IndexError):
        ds[5]
    loader = torch.utils.data.DataLoader(ds, batch_size=1)
    xb, yb = next(iter(loader))
    assert xb.shape == (1, 1024, 3) and yb.dtype == torch.int64


# ----------------------------------------------------------------------------------------------
# bad files -> DataError naming the file and the problem
def test_truncated_hdf5(tmp_path):
    root = write_std_hdf5(tmp_path)
    f = tmp_path / "ply_data_train1.h5"
    data = f.read_bytes()
    f.write_bytes(data[: len(data) // 3])
    with pytest.raises(DataError, match=r"ply_data_train1\.h5.*(truncated|corrupt)"):
        ModelNet40(root, split="train")


def test_wrong_keys_and_shapes(tmp_path):
    root = write_std_hdf5(tmp_path)
    with h5py.File(tmp_path / "ply_data_test0.h5", "w") as f:
        f["points"] = np.zeros((2, 2048, 3), np.float32)
        f["label"] = np.zeros((2, 1), np.uint8)
    with pytest.raises(DataError, match=r"ply_data_test0\.h5: missing HDF5 key 'data'"):
        ModelNet40(root, split="test")
    with h5py.File(tmp_path / "ply_data_test0.h5", "w") as f:
        f["data"] = np.zeros((2, 2048, 2), np.float32)
        f["label"] = np.zeros((2, 1), np.uint8)
    with pytest.raises(DataError, match=r"ply_data_test0\.h5: key 'data' has shape \(2, 2048, 2\)"):
        ModelNet40(root, split="test")
    with h5py.File(tmp_path / "ply_data_test0.h5", "w") as f:
        f["data"] = np.zeros((2, 2048, 3), np.float32)
        f["label"] = np.zeros((3, 1), np.uint8)
    with pytest.raises(DataError, match=r"key 'label' has shape \(3,\)"):
        ModelNet40(root, split="test")
    with h5py.File(tmp_path / "ply_data_test0.h5", "w") as f:
        f["data"] = np.zeros((2, 2048, 3), np.float32)
        f["label"] = np.zeros((2, 1), np.uint8)
    with pytest.raises(DataError, match="no 'normal' key"):
        ModelNet40(root, split="test", use_normals=True)


def test_nan_empty_and_label_range(tmp_path):
    root = write_std_hdf5(tmp_path)
    with h5py.File(tmp_path / "ply_data_test0.h5", "r+") as f:
        d = f["data"][()]
        d[1, 5, 2] = np.nan
        f["data"][...] = d
    ds = ModelNet40(root, split="test")
    assert ds[0][0].shape == (1024, 3)
    with pytest.raises(DataError, match=r"ply_data_test0\.h5: NaN or inf coordinate in shape 1"):
        ds[1]
    with pytest.raises(DataError, match="NaN or inf"):
        ModelNet40(root, split="test", in_memory=False)[1]
    with h5py.File(tmp_path / "ply_data_test0.h5", "w") as f:
        f["data"] = np.zeros((2, 0, 3), np.float32)
        f["label"] = np.zeros((2, 1), np.uint8)
    with pytest.raises(DataError, match=r"ply_data_test0\.h5: key 'data' has shape \(2, 0, 3\)"):
        ModelNet40(root, split="test")
    with h5py.File(tmp_path / "ply_data_test0.h5", "w") as f:
        f["data"] = np.zeros((2, 2048, 3), np.float32)
        f["label"] = np.array([[3], [45]], np.uint8)
    with pytest.raises(DataError, match=r"ply_data_test0\.h5: label out of range: values 3\.\.45, expected 0\.\.39"):
        ModelNet40(root, split="test")


def test_missing_split_files(tmp_path):
    root = write_std_hdf5(tmp_path)
    (tmp_path / "ply_data_train1.h5").unlink()
    with pytest.raises(DataError, match=r"train_files\.txt: lists .*ply_data_train1\.h5.* does not exist"):
        ModelNet40(root, split="train")
    nr = write_normal_resampled(tmp_path / "nr")
    (nr / "modelnet40_test.txt").unlink()
    with pytest.raises(DataError, match=r"modelnet40_test\.txt: split list not found"):
        ModelNet40(nr, split="test")
    (nr / "chair" / "chair_0003.txt").unlink()
    ds = ModelNet40(nr, split="train")
    with pytest.raises(DataError, match=r"chair_0003\.txt: point file not found"):
        ds[2]


def test_malformed_text_lines(tmp_path):
    root = write_normal_resampled(tmp_path)
    f = root / "bed" / "bed_0002.txt"
    lines = f.read_text().splitlines()
    lines[10] = "0.1,0.2,abc,0,0,1"
    f.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=r"bed_0002\.txt: malformed line"):
        ModelNet40(root, split="train")[1]
    f.write_text("")
    with pytest.raises(DataError, match=r"bed_0002\.txt: empty point cloud"):
        ModelNet40(root, split="train")[1]
    f.write_text("nan,0,0,0,0,1\n1,1,1,0,0,1\n")
    with pytest.raises(DataError, match=r"bed_0002\.txt: NaN or inf value on line 1"):
        ModelNet40(root, split="train")[1]
    (root / "modelnet40_train.txt").write_text("spaceship_0001\n")
    with pytest.raises(DataError, match="unknown class 'spaceship'"):
        ModelNet40(root, split="train")


def test_malformed_off(tmp_path):
    root = write_off_tree(tmp_path, files=(("bed", "train", 1),))
    f = root / "bed" / "train" / "bed_0001.off"
    good = f.read_text()
    cases = {
        "PLY\n": "not an OFF file",
        "OFF\nx y z\n": "bad OFF counts line",
        good.replace("OFF8 12 0", "OFF8 20 0"): "truncated OFF",
        good.replace("3 0 1 3", "3 0 1 99"): r"face index out of range 0\.\.7",
        good.replace("0.500000 1.000000 1.500000", "0.5 nan 1.5"): "NaN or inf",
    }
    for text, msg in cases.items():
        f.write_text(text)
        with pytest.raises(DataError, match=rf"bed_0001\.off: .*{msg}"):
            ModelNet40(root, split="train")[0]


# ----------------------------------------------------------------------------------------------
@pytest.mark.realdata
def test_real_repacked_modelnet40(shared_data):
    root = shared_data / "modelnet40"
    ds = ModelNet40(root, split="test", in_memory=False)  # reads one shape per access
    assert ds.format == "repacked" and len(ds) == 2468 and ds.num_classes == 40
    assert ds.class_names == list(MODELNET40_CLASSES)
    assert np.bincount(ds.labels, minlength=40)[[0, 8, 39]].tolist() == [100, 100, 20]
    with h5py.File(root / "test.h5") as f:
        raw = f["points"][:3]
        ids = [s.decode() for s in f["shape_id"][:3]]
    for i in range(3):
        x, y = ds[i]
        assert x.shape == (1024, 3) and int(y) == 0 and ds.shape_ids[i] == ids[i]
        assert np.array_equal(x.numpy(), raw[i][:, [0, 2, 1]])
        assert float(x.norm(dim=1).max()) <= 1 + 1e-5
    # an airplane is flat along the up axis in the canonical (y-up) frame
    assert up_extent_ratio(ds[0][0], 1) < 0.6
    assert np.array_equal(ModelNet40(root, split="test", in_memory=False, up_axis="z")[1][0].numpy(), raw[1])
    ten = ModelNet10(root, split="test", in_memory=False)
    assert len(ten) == 908 and ten.class_names[int(ten[0][1])] == ten.shape_ids[0].rsplit("_", 1)[0]


def test_read_off_fast_and_checked_paths_agree(tmp_path):
    from onebit.data.points.mesh import read_off

    v, f = box((1.0, 2.0, 3.0))
    plain = tmp_path / "a.off"
    write_off(plain, v, f)
    commented = tmp_path / "b.off"  # a comment sends it through the line-by-line parser
    commented.write_text(plain.read_text().replace("OFF\n", "OFF\n# made by a test\n", 1))
    for path in (plain, commented):
        vv, ff = read_off(path)
        assert np.allclose(vv, v) and np.array_equal(ff, f)
    quads = tmp_path / "q.off"  # a quad and a triangle: fan triangulation
    quads.write_text("OFF\n5 2 0\n0 0 0\n1 0 0\n1 1 0\n0 1 0\n0 0 1\n4 0 1 2 3\n3 0 1 4\n")
    vv, ff = read_off(quads)
    assert ff.tolist() == [[0, 1, 2], [0, 2, 3], [0, 1, 4]]
