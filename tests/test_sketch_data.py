"""Sketch loaders on small files written in the real formats, the fold files, rasterisation of the
real QuickDraw strokes, and slices of the shared h5 files."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from PIL import Image

from onebit.data import dataset_names, get_dataset, load_all
from onebit.data.errors import DataError
from onebit.data.sketches import folds as F
from onebit.data.sketches.raster import parse_ndjson_line, rasterize_strokes, read_stroke_h5

load_all()
SMALL = {"resize": 32, "crop": 28}


def _png(path: Path, dark_on_light=True, seed=0, size=40):
    rng = np.random.default_rng(seed)
    a = np.zeros((size, size), np.uint8)
    r = rng.integers(5, size - 15)
    a[r : r + 3, 5:35] = 255
    if dark_on_light:
        a = 255 - a
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(a).save(path)


def _tuberlin(root: Path, classes=("airplane", "alarm clock", "zebra"), per=6) -> Path:
    lines, n = [], 0
    for c in classes:
        for _ in range(per):
            n += 1
            _png(root / "png" / c / f"{n}.png", seed=n)
            lines.append(f"{c}/{n}.png")
    (root / "png" / "filelist.txt").write_text("\n".join(lines) + "\n")
    return root


def test_registered_names():
    names = set(dataset_names("sketch"))
    assert {"tuberlin", "sketchy", "sketchy_subset", "quickdraw_bitmap", "quickdraw_strokes", "imagefolder",
            "synthetic_sketches"} <= names


def test_tuberlin_three_folds(tmp_path):
    root = _tuberlin(tmp_path / "tub")
    all_files = {str(p) for p in get_dataset("tuberlin", "all", root=root, **SMALL).files}
    assert len(all_files) == 18
    tests = []
    for fold in (1, 2, 3):
        tr = get_dataset("tuberlin", "train", root=root, fold=fold, **SMALL)
        te = get_dataset("tuberlin", "test", root=root, fold=fold, **SMALL)
        assert tr.num_classes == 3 and tr.class_names == ["airplane", "alarm clock", "zebra"]
        trf, tef = {str(p) for p in tr.files}, {str(p) for p in te.files}
        assert not trf & tef and trf | tef == all_files
        assert Counter(te.labels) == {0: 2, 1: 2, 2: 2} and Counter(tr.labels) == {0: 4, 1: 4, 2: 4}  # 2:1
        tests.append(tef)
        x, y = tr[0]
        assert x.shape == (1, 28, 28) and x.dtype == torch.float32 and isinstance(y, int)
        xt, _ = te[0]
        assert xt.shape == (10, 1, 28, 28)
    assert set().union(*tests) == all_files and sum(map(len, tests)) == 18  # test folds partition the set
    # inverted: the white background becomes 0 (before normalisation)
    raw = get_dataset("tuberlin", "all", root=root).image(0)
    assert raw[0, 0, 0] == 0 and raw.max() == 1
    # explicit fold file
    ff = F.write_folds_for_files({"airplane": [f"airplane/{i}.png" for i in range(1, 7)],
                                  "alarm clock": [f"alarm clock/{i}.png" for i in range(7, 13)],
                                  "zebra": [f"zebra/{i}.png" for i in range(13, 19)]}, tmp_path / "f.json")
    te = get_dataset("tuberlin", "test", root=root, fold=2, folds_file=ff, **SMALL)
    te2 = get_dataset("tuberlin", "test", root=root, fold=2, **SMALL)
    assert sorted(map(str, te.files)) == sorted(map(str, te2.files))


def test_tuberlin_errors(tmp_path):
    root = _tuberlin(tmp_path / "a")
    (root / "png" / "airplane" / "2.png").write_bytes(b"not a png at all")
    ds = get_dataset("tuberlin", "all", root=root)
    with pytest.raises(DataError, match=r"2\.png: unreadable image"):
        ds[1]
    with pytest.raises(DataError, match="filelist.txt"):
        get_dataset("tuberlin", root=tmp_path / "nothing")
    root = _tuberlin(tmp_path / "b")
    (root / "png" / "empty").mkdir()
    with pytest.raises(DataError, match="empty class folder"):
        get_dataset("tuberlin", root=root)
    root = _tuberlin(tmp_path / "c")
    _png(root / "png" / "zebra" / "99.png")
    with pytest.raises(DataError, match="missing filelist entry for zebra/99.png"):
        get_dataset("tuberlin", root=root)
    root = _tuberlin(tmp_path / "d")
    (root / "png" / "zebra" / "18.png").unlink()
    with pytest.raises(DataError, match="18.png: listed in filelist.txt but missing"):
        get_dataset("tuberlin", root=root)
    with pytest.raises(ValueError, match="fold must be 1, 2 or 3"):
        get_dataset("tuberlin", root=_tuberlin(tmp_path / "e"), fold=4)


def test_published_fold_files():
    tub = json.loads((F.FOLDS_DIR / "tuberlin_3fold_seed0.json").read_text())
    assert tub["k"] == 3 and tub["seed"] == 0 and len(tub["parts"]) == 250
    for c, parts in enumerate(tub["parts"]):
        assert sorted(Counter(parts).values()) == [26, 27, 27]  # stratified 2:1 for 80 sketches
        assert parts == F.fold_parts(80, 3, 0, c).tolist()  # the documented rule
    sk = json.loads((F.FOLDS_DIR / "sketchy_subset25_5fold_seed0.json").read_text())
    assert len(sk["parts"]) == 125 and all(Counter(p) == {0: 5, 1: 5, 2: 5, 3: 5, 4: 5} for p in sk["parts"])
    # regenerating gives the same bytes
    assert F.fold_parts(80, 3, 0, 7).tolist() != F.fold_parts(80, 3, 0, 8).tolist()


def test_fold_indices_partition():
    labels = np.repeat(np.arange(4), 25)
    seen = []
    for fold in range(1, 6):
        tr, te = F.fold_indices(labels, 5, fold)
        assert not set(tr) & set(te) and len(tr) + len(te) == 100
        assert Counter(labels[te]) == dict.fromkeys(range(4), 5)
        seen += te.tolist()
    assert sorted(seen) == list(range(100))
    with pytest.raises(ValueError, match="fold must be in 1..5"):
        F.fold_indices(labels, 5, 6)


def _sketchy(root: Path):
    base = root / "sketch" / "tx_000000000000"
    for c, cls in enumerate(["ant", "bee"]):
        for p in range(3):
            for k in (1, 2):
                _png(base / cls / f"n0{c}_{p}-{k}.png", seed=10 * c + 2 * p + k)
    (root / "info").mkdir(parents=True)
    (root / "info" / "testset.txt").write_text("ant/n00_2\nbee/n01_0\n")
    (root / "info" / "invalid-error.txt").write_text("n00_0-1\n")
    return root


def test_sketchy_folder_layout(tmp_path):
    root = _sketchy(tmp_path / "sk")
    tr = get_dataset("sketchy", "train", root=root, **SMALL)
    te = get_dataset("sketchy", "test", root=root, **SMALL)
    assert sorted(p.name for p in te.files) == ["n00_2-1.png", "n00_2-2.png", "n01_0-1.png", "n01_0-2.png"]
    names = sorted(p.name for p in tr.files)
    assert "n00_0-1.png" not in names and len(names) == 7  # invalid sketch dropped
    assert len(get_dataset("sketchy", "train", root=root, exclude_invalid=False).files) == 8
    assert tr.class_names == ["ant", "bee"] and tr[0][0].shape == (1, 28, 28)
    (root / "info" / "testset.txt").unlink()
    with pytest.raises(DataError, match="testset.txt: Sketchy test list not found"):
        get_dataset("sketchy", "train", root=root)
    assert len(get_dataset("sketchy", "all", root=root)) == 11
    (root / "sketch" / "tx_000000000000" / "cat").mkdir()
    with pytest.raises(DataError, match="empty class folder"):
        get_dataset("sketchy", "all", root=root)


def _subset_h5(path: Path, classes=3, per=25, shape=None):
    rng = np.random.default_rng(0)
    n = classes * per
    imgs = np.full((n, 32, 32), 255, np.uint8)
    imgs[:, 10:14, 4:28] = rng.integers(0, 80, size=(n, 4, 24))
    labels = np.repeat(np.arange(classes), per).astype(np.int16)
    with h5py.File(path, "w") as f:
        f["sketches"] = imgs if shape is None else imgs.reshape(shape)
        f["labels"] = labels
        f.attrs["classes"] = json.dumps([f"c{i}" for i in range(classes)])
    return path


def test_sketchy_subset_kfold(tmp_path):
    path = _subset_h5(tmp_path / "s.h5")
    tests = []
    for fold in range(1, 6):
        tr = get_dataset("sketchy_subset", "train", path=path, fold=fold, **SMALL)
        te = get_dataset("sketchy_subset", "test", path=path, fold=fold, **SMALL)
        assert Counter(tr.labels) == {0: 20, 1: 20, 2: 20} and Counter(te.labels) == {0: 5, 1: 5, 2: 5}
        assert te[0][0].shape == (10, 1, 28, 28)
        tests.append({bytes(im) for im in te.images})
    assert sum(map(len, tests)) == 75 and len(set().union(*tests)) == 75
    img = get_dataset("sketchy_subset", "all", path=path).image(0)
    assert img[0, 0, 0] == 0 and img.max() > 0.5  # black-on-white inverted
    bad = _subset_h5(tmp_path / "bad.h5", shape=(75, 1024))
    with pytest.raises(DataError, match=r"bad\.h5: 'sketches' must be \(N, H, W\)"):
        get_dataset("sketchy_subset", path=bad)


def test_quickdraw_bitmap_npy_and_h5(tmp_path):
    rng = np.random.default_rng(1)
    for name in ("cat", "dog"):
        np.save(tmp_path / f"{name}.npy", rng.integers(0, 256, size=(12, 784), dtype=np.uint8))
    tr = get_dataset("quickdraw_bitmap", "train", paths=tmp_path)
    te = get_dataset("quickdraw_bitmap", "test", paths=tmp_path)
    assert tr.class_names == ["cat", "dog"] and len(tr) == 20 and len(te) == 4
    assert tr[0][0].shape == (1, 28, 28)
    with h5py.File(tmp_path / "a.h5", "w") as f:
        f["images"] = np.zeros((4, 28, 28), np.uint8)
        f["label"] = np.array([0, 1, 1, 0])
        f.attrs["classes"] = json.dumps(["bicycle", "cat"])
    merged = get_dataset("quickdraw_bitmap", "all", paths=[tmp_path / "cat.npy", tmp_path / "a.h5"])
    assert merged.class_names == ["bicycle", "cat"] and Counter(merged.labels) == {0: 2, 1: 14}
    np.save(tmp_path / "bad.npy", np.zeros((3, 28, 28), np.float32))
    with pytest.raises(DataError, match=r"bad\.npy: QuickDraw numpy_bitmap must be \(N, 784\) uint8"):
        get_dataset("quickdraw_bitmap", paths=tmp_path / "bad.npy")


def test_quickdraw_strokes_ndjson(tmp_path):
    simplified = {"word": "cat", "key_id": 1, "recognized": True,
                  "drawing": [[[0, 100, 200], [0, 50, 0]], [[10, 10], [200, 255]]]}
    raw = {"word": "dog", "key_id": 2, "recognized": True,
           "drawing": [[[3.5, 120.25, 400.0], [10.0, 80.5, 12.0], [0, 17, 40]]]}
    (tmp_path / "cat.ndjson").write_text("\n".join([json.dumps(simplified)] * 5) + "\n")
    (tmp_path / "dog.ndjson").write_text("\n".join([json.dumps(raw)] * 5) + "\n")
    ds = get_dataset("quickdraw_strokes", "train", paths=[tmp_path / "cat.ndjson", tmp_path / "dog.ndjson"], size=32)
    assert ds.class_names == ["cat", "dog"] and len(ds) == 8
    x, _ = ds[0]
    assert x.shape == (1, 32, 32) and x.max() > 0.5
    rec = parse_ndjson_line(json.dumps(raw))
    assert rec["strokes"][0].shape == (3, 3)
    (tmp_path / "bad.ndjson").write_text(json.dumps(simplified) + "\n{not json\n")
    with pytest.raises(DataError, match=r"bad\.ndjson:2: malformed ndjson line"):
        get_dataset("quickdraw_strokes", paths=tmp_path / "bad.ndjson")
    (tmp_path / "bad2.ndjson").write_text(json.dumps({"word": "x", "drawing": [[[1, 2], [3]]]}) + "\n")
    with pytest.raises(DataError, match=r"bad2\.ndjson:1: stroke 0 has ragged"):
        get_dataset("quickdraw_strokes", paths=tmp_path / "bad2.ndjson")


def test_imagefolder(tmp_path):
    for split in ("train", "test"):
        for c in ("a", "b"):
            for i in range(3):
                _png(tmp_path / split / c / f"{i}.png", dark_on_light=(c == "a"), seed=i)
    tr = get_dataset("imagefolder", "train", root=tmp_path, **SMALL)
    assert tr.class_names == ["a", "b"] and len(tr) == 6
    # both polarities come out as ink on 0
    assert tr.image(0)[0, 0, 0] == 0 and tr.image(4)[0, 0, 0] == 0
    assert get_dataset("imagefolder", "test", root=tmp_path, **SMALL)[0][0].shape == (10, 1, 28, 28)
    (tmp_path / "train" / "c").mkdir()
    with pytest.raises(DataError, match="empty class folder"):
        get_dataset("imagefolder", "train", root=tmp_path)


def test_synthetic_sketches():
    ds = get_dataset("synthetic_sketches", "train", num_classes=12, per_class=2, size=32, augment=False)
    assert ds.num_classes == 12 and len(ds) == 24
    a, la = ds[5]
    b, lb = get_dataset("synthetic_sketches", "train", num_classes=12, per_class=2, size=32, augment=False)[5]
    assert torch.equal(a, b) and la == lb  # seeded
    assert not torch.equal(ds[0][0], ds[12][0])  # same class, different pose
    for i in range(12):
        x, y = ds[i]
        assert y == i and x.shape == (1, 32, 32) and 0.01 < x.mean() < 0.6
    other = get_dataset("synthetic_sketches", "train", seed=1, num_classes=12, per_class=2, size=32, augment=False)
    assert not torch.equal(other[5][0], a)
    with pytest.raises(ValueError, match="num_classes"):
        get_dataset("synthetic_sketches", num_classes=50)


def test_rasterize_geometry():
    img = rasterize_strokes([np.array([[0, 0], [10, 0]]), np.array([[0, 5], [10, 5]])], 40, line_width=2,
                            margin=0.1)
    ys, xs = np.nonzero(img > 0)
    assert img.shape == (40, 40) and img.dtype == np.uint8
    assert xs.min() >= 4 - 2 and xs.max() <= 36 + 1  # fitted into the margin, aspect kept
    assert rasterize_strokes([], 16).max() == 0


# --------------------------------------------------------------------------------- real data


@pytest.mark.realdata
def test_real_strokes_rasterise(shared_data):
    for name in ("quickdraw_simplified_first25.h5", "quickdraw_raw_first100KB.h5"):
        drawings, labels, classes = read_stroke_h5(shared_data / "sketches" / "quickdraw" / name)
        assert len(classes) in (344, 345) and len(drawings) == len(labels)
        for i in (0, 1, len(drawings) // 2, len(drawings) - 1):
            for size, margin in ((28, 0.05), (96, 0.1)):
                img = rasterize_strokes(drawings[i], size, line_width=1.5, margin=margin)
                assert img.shape == (size, size) and img.max() > 0
                ys, xs = np.nonzero(img)
                pad = margin * size - 2  # line half-width + antialiasing
                assert xs.min() >= pad and ys.min() >= pad
                assert xs.max() <= size - 1 - pad and ys.max() <= size - 1 - pad
                # the longer side of the bbox fills the canvas less the margins
                extent = max(xs.max() - xs.min(), ys.max() - ys.min())
                assert extent >= size * (1 - 2 * margin) - 3


@pytest.mark.realdata
def test_real_bitmaps_and_sketchy_slice(shared_data):
    qd = get_dataset("quickdraw_bitmap", "test", per_class=12)
    assert qd.num_classes == 10 and "bicycle" in qd.class_names and Counter(qd.labels) == dict.fromkeys(range(10), 2)
    x, _ = qd[0]
    assert x.shape == (1, 28, 28) and x[0, 0, 0] == 0 and x.max() > 0.5  # white-on-black kept
    sk = get_dataset("sketchy_subset", "test", num_classes=2, fold=3, **SMALL)
    assert sk.class_names == ["airplane", "alarm_clock"] and Counter(sk.labels) == {0: 5, 1: 5}
    raw = sk.image(0)
    assert raw.shape == (1, 256, 256) and raw[0, 0, 0] == 0 and raw.mean() < 0.2  # strokes are sparse ink
    strokes = get_dataset("quickdraw_strokes", "test", size=28, per_class=5)
    assert len(strokes) == strokes.num_classes and strokes[0][0].shape == (1, 28, 28)
