"""Sketch datasets: TU-Berlin, Sketchy (folder layout and the shared subset), QuickDraw (bitmaps
and strokes) and any ImageFolder tree. Items are ``(image (1, H, W) float32, label int)``
with ink = 1 on background 0; ten-crop test items are (10, 1, H, W).

Every loader takes the same transform options (see ``sketch_transform``): ``resize``, ``crop``,
``crop_mode``, ``flip``, ``rotation``, ``rotation_mode``, ``ten_crop``, ``mean``, ``std``,
``augment`` (default: on for the train split), ``stroke_width`` (None, or a width in pixels for
skeletonise + redraw, applied before the transforms), or ``transform`` (any callable, replacing them).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torch.utils.data import Dataset

from onebit.data.errors import DataError
from onebit.data.registry import register_dataset
from onebit.data.sketches.folds import FOLDS_DIR, fold_indices, fold_parts, load_rank_folds, sort_files
from onebit.data.sketches.preprocess import normalize_stroke_width, to_ink
from onebit.data.sketches.raster import rasterize_strokes, read_ndjson, read_stroke_h5
from onebit.data.sketches.transforms import sketch_transform

__all__ = [
    "IMAGE_EXTENSIONS",
    "SketchDataset",
    "default_data_root",
    "imagefolder",
    "quickdraw_bitmap",
    "quickdraw_strokes",
    "read_image",
    "sketchy",
    "sketchy_subset",
    "tuberlin",
]

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp")
"""File extensions read as sketch images."""
SPLITS = ("train", "test", "all")
"""Split names every sketch dataset accepts ("all" = train and test together)."""
_TRANSFORM_KEYS = ("resize", "crop", "crop_mode", "flip", "rotation", "rotation_mode", "ten_crop", "mean", "std")


def default_data_root() -> Path:
    """``$ONEBIT_SHARED_DATA`` or ``<repo>/../shared/data`` (the shared real data)."""
    env = os.environ.get("ONEBIT_SHARED_DATA")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[4].parent / "shared" / "data"


def read_image(path: str | os.PathLike) -> np.ndarray:
    """A PNG/JPEG as a 2-D uint8 array (colour averaged, alpha composited on white)."""
    try:
        with Image.open(path) as im:
            im.load()
            if im.mode in ("RGBA", "LA", "P", "PA"):
                im = im.convert("RGBA")
                bg = Image.new("RGBA", im.size, (255, 255, 255, 255))
                im = Image.alpha_composite(bg, im)
            return np.asarray(im.convert("L"), dtype=np.uint8)
    except FileNotFoundError:
        raise DataError(path, "image file not found") from None
    except (UnidentifiedImageError, OSError, SyntaxError) as e:
        raise DataError(path, f"unreadable image ({e})") from None


def _check_split(split: str, where: str) -> None:
    if split not in SPLITS:
        raise ValueError(f"{where}: split must be one of {SPLITS}, not {split!r}")


class SketchDataset(Dataset):
    """Base class: subclasses give ``_raw(i) -> (uint8 2-D array, polarity)`` and the labels."""

    def __init__(self, labels: Sequence[int], class_names: Sequence[str], split: str, *,
                 transform: Callable | None, stroke_width: int | None, name: str):
        self.labels = [int(x) for x in labels]
        self.class_names = list(class_names)
        self.num_classes = len(self.class_names)
        self.split = split
        self.transform = transform
        self.stroke_width = stroke_width
        self.name = name

    def __len__(self) -> int:
        return len(self.labels)

    def _raw(self, i: int) -> tuple[np.ndarray, str]:  # pragma: no cover - abstract
        raise NotImplementedError

    def image(self, i: int) -> torch.Tensor:
        """Item ``i`` before the transforms: (1, H, W) float32, ink = 1."""
        arr, polarity = self._raw(i)
        ink = to_ink(arr, polarity)
        if self.stroke_width:
            ink = normalize_stroke_width(ink, self.stroke_width)
        return ink

    def __getitem__(self, i: int):
        if not -len(self) <= i < len(self):
            raise IndexError(f"{self.name}: index {i} out of range for {len(self)} items")
        img = self.image(i % len(self))
        if self.transform is not None:
            img = self.transform(img)
        return img.float().contiguous(), self.labels[i % len(self)]

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name}, split={self.split!r}, {len(self)} items, {self.num_classes} classes)"


def _build_transform(split: str, defaults: dict, opts: dict):
    """Pop the transform options from ``opts`` and return the transform for ``split``."""
    if "transform" in opts:
        return opts.pop("transform")
    cfg = dict(defaults)
    for k in _TRANSFORM_KEYS:
        if k in opts:
            cfg[k] = opts.pop(k)
    augment = opts.pop("augment", split == "train")
    return sketch_transform(bool(augment), **cfg)


def _no_extra(opts: dict, where: str) -> None:
    if opts:
        raise TypeError(f"{where} does not take option(s) {sorted(opts)}")


# --------------------------------------------------------------------------------------------
# image files (TU-Berlin, Sketchy, ImageFolder)


class _FileDataset(SketchDataset):
    def __init__(self, files: Sequence[Path], labels, class_names, split, polarity="auto", **kw):
        super().__init__(labels, class_names, split, **kw)
        self.files = [Path(f) for f in files]
        self.polarity = polarity

    def _raw(self, i):
        return read_image(self.files[i]), self.polarity


def _list_images(folder: Path) -> list[str]:
    return [p.name for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS]


# TU-Berlin's official statistics after inversion (notes §a7)
TUBERLIN_MEAN, TUBERLIN_STD = 0.06, 0.93
SKETCHY_MEAN, SKETCHY_STD = 0.0465, 0.9


@register_dataset("tuberlin", domain="sketch")
def tuberlin(split: str = "train", root: str | os.PathLike | None = None, fold: int = 1,
             folds_file: str | os.PathLike | None = None, seed: int = 0, stroke_width: int | None = None,
             polarity: str = "auto", **opts) -> SketchDataset:
    """TU-Berlin (Eitz et al. 2012): ``root/png/<class>/<n>.png`` with ``root/png/filelist.txt``.

    Three-fold cross validation, 2:1 train/test, stratified (DAB-Net §5.1); ``fold`` in 1..3.
    The split is onebit's published rule (``folds/tuberlin_3fold_seed0.json``, see
    ``onebit.data.sketches.folds``); ``folds_file`` takes an explicit fold JSON instead
    (``{"fold1": {"train": [...], "test": [...]}, ...}`` of ``class/file.png`` entries).
    """
    _check_split(split, "tuberlin")
    if root is None:
        root = default_data_root() / "sketches" / "tuberlin"
    root = Path(root)
    png = root / "png" if (root / "png").is_dir() else root
    filelist = png / "filelist.txt"
    if not filelist.is_file():
        raise DataError(filelist, "TU-Berlin file list not found (expected root/png/filelist.txt)")
    entries = [ln.strip() for ln in filelist.read_text().splitlines() if ln.strip()]
    by_class: dict[str, list[str]] = {}
    for e in entries:
        parts = e.replace("\\", "/").split("/")
        if len(parts) != 2:
            raise DataError(filelist, f"entry {e!r} is not '<class>/<file>'")
        by_class.setdefault(parts[0], []).append(e)
    for cls_dir in sorted(p for p in png.iterdir() if p.is_dir()):
        present = _list_images(cls_dir)
        if not present:
            raise DataError(cls_dir, "empty class folder (no images)")
        listed = {Path(e).name for e in by_class.get(cls_dir.name, [])}
        extra = sorted(set(present) - listed)
        if extra:
            raise DataError(filelist, f"missing filelist entry for {cls_dir.name}/{extra[0]}")
    classes = sorted(by_class)
    for cls in classes:
        for e in by_class[cls]:
            if not (png / e).is_file():
                raise DataError(png / e, "listed in filelist.txt but missing")
    ordered = {c: sort_files(by_class[c]) for c in classes}
    if split == "all":
        chosen = [(e, c) for c, cls in enumerate(classes) for e in ordered[cls]]
    elif folds_file is not None:
        ff = Path(folds_file)
        try:
            data = json.loads(ff.read_text())
        except (OSError, json.JSONDecodeError) as e:
            raise DataError(ff, f"cannot read fold file ({e})") from None
        key = f"fold{fold}"
        if key not in data or split not in data[key]:
            raise DataError(ff, f"fold file has no {key}/{split} list")
        cidx = {c: i for i, c in enumerate(classes)}
        chosen = []
        for e in data[key][split]:
            cls = e.replace("\\", "/").split("/")[0]
            if cls not in cidx or not (png / e).is_file():
                raise DataError(ff, f"entry {e!r} is not in {filelist}")
            chosen.append((e, cidx[cls]))
    else:
        if not 1 <= fold <= 3:
            raise ValueError(f"tuberlin: fold must be 1, 2 or 3, got {fold}")
        published = FOLDS_DIR / f"tuberlin_3fold_seed{seed}.json"
        parts_table = None
        if published.is_file() and len(classes) == 250:
            doc = load_rank_folds(published)
            if all(len(doc["parts"][c]) == len(ordered[cls]) for c, cls in enumerate(classes)):
                parts_table = doc["parts"]
        chosen = []
        for c, cls in enumerate(classes):
            parts = parts_table[c] if parts_table is not None else fold_parts(len(ordered[cls]), 3, seed, c)
            for e, p in zip(ordered[cls], parts):
                if (p == fold - 1) == (split == "test"):
                    chosen.append((e, c))
    transform = _build_transform(split, {"resize": 256, "crop": 224, "mean": TUBERLIN_MEAN,
                                         "std": TUBERLIN_STD}, opts)
    _no_extra(opts, "tuberlin")
    return _FileDataset([png / e for e, _ in chosen], [c for _, c in chosen], classes, split,
                        polarity=polarity, transform=transform, stroke_width=stroke_width,
                        name=f"tuberlin fold {fold}")


def _read_lines(path: Path) -> list[str]:
    try:
        return [ln.strip() for ln in path.read_text().splitlines() if ln.strip()]
    except OSError as e:
        raise DataError(path, f"cannot read ({e.strerror})") from None


@register_dataset("sketchy", domain="sketch")
def sketchy(split: str = "train", root: str | os.PathLike | None = None,
            augmentation: str = "tx_000000000000", test_list: str | os.PathLike | None = None,
            exclude_invalid: bool = True, stroke_width: int | None = None, polarity: str = "auto",
            **opts) -> SketchDataset:
    """Sketchy (Sangkloy et al. 2016) from its released layout
    ``root/sketch/<augmentation>/<class>/<photo>-<k>.png``.

    DAB-Net §5.1: the retrieval training photos' sketches train, the sketches of the retrieval test
    photos (``root/info/testset.txt``, or ``test_list``: one ``<class>/<photo>`` or ``<photo>`` per
    line) test. ``exclude_invalid`` drops the sketches named in ``root/info/invalid-*.txt``.
    """
    _check_split(split, "sketchy")
    if root is None:
        root = default_data_root() / "sketches" / "sketchy"
    root = Path(root)
    base = next((p for p in (root / "sketch" / augmentation, root / augmentation, root) if p.is_dir()), None)
    if base is None:
        raise DataError(root / "sketch" / augmentation, "Sketchy sketch folder not found")
    classes = sorted(p.name for p in base.iterdir() if p.is_dir())
    if not classes:
        raise DataError(base, "no class folders")
    invalid: set[str] = set()
    if exclude_invalid and (root / "info").is_dir():
        for f in sorted((root / "info").glob("invalid*.txt")):
            invalid |= {Path(x).stem for x in _read_lines(f)}
    test_photos: set[str] | None = None
    if split != "all":
        tl = Path(test_list) if test_list is not None else root / "info" / "testset.txt"
        if not tl.is_file():
            raise DataError(tl, "Sketchy test list not found; pass test_list=PATH or use split='all'")
        test_photos = {Path(x.replace("\\", "/").split("/")[-1]).stem for x in _read_lines(tl)}
    files, labels = [], []
    for c, cls in enumerate(classes):
        names = sorted(_list_images(base / cls))
        if not names:
            raise DataError(base / cls, "empty class folder (no images)")
        for n in names:
            stem = Path(n).stem
            if stem in invalid:
                continue
            if test_photos is not None:
                photo = stem.rsplit("-", 1)[0]
                if (photo in test_photos) != (split == "test"):
                    continue
            files.append(base / cls / n)
            labels.append(c)
    transform = _build_transform(split, {"resize": 256, "crop": 224, "mean": SKETCHY_MEAN,
                                         "std": SKETCHY_STD}, opts)
    _no_extra(opts, "sketchy")
    return _FileDataset(files, labels, classes, split, polarity=polarity, transform=transform,
                        stroke_width=stroke_width, name="sketchy")


@register_dataset("imagefolder", domain="sketch")
def imagefolder(split: str = "train", root: str | os.PathLike | None = None, stroke_width: int | None = None,
                polarity: str = "auto", **opts) -> SketchDataset:
    """Any ``root/<class>/*.png|jpg`` tree; if ``root/<split>`` exists (``train``/``test``, or
    ``val`` for test) that sub-tree is used. Polarity is detected per image unless given."""
    if root is None:
        raise ValueError("imagefolder needs root=PATH")
    root = Path(root)
    if not root.is_dir():
        raise DataError(root, "image folder not found")
    base = root
    for cand in ([split] + (["val"] if split == "test" else [])):
        if (root / cand).is_dir():
            base = root / cand
            break
    classes = sorted(p.name for p in base.iterdir() if p.is_dir())
    if not classes:
        raise DataError(base, "no class sub-folders")
    files, labels = [], []
    for c, cls in enumerate(classes):
        names = sorted(_list_images(base / cls))
        if not names:
            raise DataError(base / cls, "empty class folder (no images)")
        files += [base / cls / n for n in names]
        labels += [c] * len(names)
    transform = _build_transform(split, {"resize": 256, "crop": 224}, opts)
    _no_extra(opts, "imagefolder")
    return _FileDataset(files, labels, classes, split, polarity=polarity, transform=transform,
                        stroke_width=stroke_width, name=f"imagefolder {base}")


# --------------------------------------------------------------------------------------------
# arrays (Sketchy subset h5, QuickDraw bitmaps)


class _ArrayDataset(SketchDataset):
    def __init__(self, images: np.ndarray, labels, class_names, split, polarity: str, **kw):
        super().__init__(labels, class_names, split, **kw)
        self.images = images
        self.polarity = polarity

    def _raw(self, i):
        return self.images[i], self.polarity


def _h5(path: Path):
    import h5py

    try:
        return h5py.File(path, "r")
    except FileNotFoundError:
        raise DataError(path, "file not found") from None
    except OSError as e:
        raise DataError(path, f"cannot read HDF5 file ({e})") from None


def _classes_attr(f, path: Path, key: str = "classes") -> list[str]:
    if key not in f.attrs:
        raise DataError(path, f"missing the {key!r} attribute")
    try:
        return list(json.loads(f.attrs[key]))
    except (TypeError, json.JSONDecodeError):
        raise DataError(path, f"attribute {key!r} is not a JSON list") from None


def _limit_per_class(labels: np.ndarray, idx: np.ndarray, n: int | None) -> np.ndarray:
    if n is None:
        return idx
    keep = []
    for c in np.unique(labels[idx]):
        keep.append(idx[labels[idx] == c][:n])
    return np.sort(np.concatenate(keep)) if keep else idx


@register_dataset("sketchy_subset", domain="sketch")
def sketchy_subset(split: str = "train", path: str | os.PathLike | None = None, folds: int = 5,
                   fold: int = 1, seed: int = 0, num_classes: int | None = None,
                   stroke_width: int | None = None, **opts) -> SketchDataset:
    """The shared Sketchy subset (125 classes x 25 sketches, 256x256, black on white): k-fold
    cross validation, stratified (``folds=5``: 20 train / 5 test per class), ``fold`` in 1..k,
    by the rule of ``onebit.data.sketches.folds`` (published: ``sketchy_subset25_5fold_seed0.json``).
    ``num_classes`` keeps the first N classes (faster runs)."""
    _check_split(split, "sketchy_subset")
    path = Path(path) if path is not None else default_data_root() / "sketches" / "sketchy" / "sketchy_subset25.h5"
    with _h5(path) as f:
        for key in ("sketches", "labels"):
            if key not in f:
                raise DataError(path, f"missing dataset {key!r}")
        classes = _classes_attr(f, path)
        labels = f["labels"][:].astype(np.int64)
        shape = f["sketches"].shape
        if len(shape) != 3 or shape[0] != len(labels):
            raise DataError(path, f"'sketches' must be (N, H, W) with N = {len(labels)} labels, got {shape}")
        if labels.size and (labels.min() < 0 or labels.max() >= len(classes)):
            raise DataError(path, "labels out of range of the 'classes' attribute")
        # sort by (class, original order) so that fold ranks follow each class's file order
        order = np.lexsort((np.arange(len(labels)), labels))
        keep_cls = len(classes) if num_classes is None else int(num_classes)
        order = order[labels[order] < keep_cls]
        if split == "all":
            sel = order
        else:
            tr, te = fold_indices(labels[order], folds, fold, seed)
            sel = order[te if split == "test" else tr]
        sel = np.sort(sel)
        images = f["sketches"][sel] if len(sel) else np.zeros((0,) + shape[1:], np.uint8)
    transform = _build_transform(split, {"resize": 256, "crop": 224, "mean": SKETCHY_MEAN,
                                         "std": SKETCHY_STD}, opts)
    _no_extra(opts, "sketchy_subset")
    return _ArrayDataset(images, labels[sel], classes[:keep_cls], split, "dark_on_light", transform=transform,
                         stroke_width=stroke_width, name=f"sketchy_subset fold {fold}/{folds}")


def _default_quickdraw_bitmaps() -> list[Path]:
    d = default_data_root() / "sketches" / "quickdraw"
    return [d / "quickdraw_6class_28x28.h5", d / "quickdraw_bitmap28_5cls_8000.h5"]


def _read_bitmap_source(path: Path) -> tuple[np.ndarray, list[str]]:
    """-> (images (N, 28, 28) uint8, class name of each image)."""
    if path.suffix == ".npy":
        try:
            a = np.load(path, mmap_mode="r", allow_pickle=False)
        except (OSError, ValueError) as e:
            raise DataError(path, f"cannot read .npy ({e})") from None
        a = a.reshape(a.shape[0], -1) if a.ndim == 3 and a.shape[1] == 1 else a
        if a.ndim != 2 or a.shape[1] != 784 or a.dtype != np.uint8:
            raise DataError(path, f"QuickDraw numpy_bitmap must be (N, 784) uint8, got {a.shape} {a.dtype}")
        return np.asarray(a).reshape(-1, 28, 28), [path.stem] * a.shape[0]
    if path.suffix in (".h5", ".hdf5"):
        with _h5(path) as f:
            for key in ("images", "label"):
                if key not in f:
                    raise DataError(path, f"missing dataset {key!r}")
            imgs = f["images"][:]
            labels = f["label"][:].astype(np.int64)
            if "classes" in f.attrs:
                classes = _classes_attr(f, path)
            elif (path.parent / "class_names.txt").is_file():
                classes = _read_lines(path.parent / "class_names.txt")
            else:
                raise DataError(path, "no 'classes' attribute and no class_names.txt beside it")
        if imgs.ndim == 2 and imgs.shape[1] == 784:
            imgs = imgs.reshape(-1, 28, 28)
        if imgs.ndim != 3 or imgs.dtype != np.uint8 or imgs.shape[0] != len(labels):
            raise DataError(path, f"'images' must be (N, H, W) uint8 with N = {len(labels)}, got {imgs.shape} {imgs.dtype}")
        if labels.size and (labels.min() < 0 or labels.max() >= len(classes)):
            raise DataError(path, "labels out of range of the class names")
        return imgs, [classes[i] for i in labels]
    raise DataError(path, "QuickDraw bitmaps must be .npy (numpy_bitmap) or .h5 files")


def _per_class_split(labels: np.ndarray, num_classes: int, split: str, per_class: int | None,
                     test_fraction: float, *, keep_singletons: bool, test_count: int | None = None,
                     train_count: int | None = None) -> np.ndarray:
    """Sorted indices of ``split``: per class the first ``per_class`` items, the last
    ``test_fraction`` of them (at least one; exactly ``test_count`` if given) as test, the rest
    (its first ``train_count`` if given) as train ("all" keeps both). With ``keep_singletons`` a
    class with a single item keeps it in train."""
    sel = []
    for c in range(num_classes):
        idx = np.flatnonzero(labels == c)
        if per_class is not None:
            idx = idx[:per_class]
        n_test = max(1, round(len(idx) * test_fraction)) if test_count is None else min(int(test_count), len(idx))
        if keep_singletons and len(idx) <= 1:
            n_test = 0
        if split == "train":
            idx = idx[: len(idx) - n_test][:train_count]
        elif split == "test":
            idx = idx[len(idx) - n_test :]
        sel.append(idx)
    return np.sort(np.concatenate(sel)) if sel else np.zeros(0, np.int64)


@register_dataset("quickdraw_bitmap", domain="sketch")
def quickdraw_bitmap(split: str = "train", paths: str | os.PathLike | Sequence | None = None,
                     test_fraction: float = 1 / 6, per_class: int | None = None,
                     test_per_class: int | None = None, train_per_class: int | None = None,
                     stroke_width: int | None = None, **opts) -> SketchDataset:
    """QuickDraw ``numpy_bitmap`` (28x28, white ink on black): ``.npy`` files (N, 784) uint8 per
    class (class = file stem), a folder of them, or the shared ``.h5`` copies (default: both
    files, 10 classes; a class in several files, such as bicycle, is merged into one).

    QuickDraw has no official split: the last ``test_fraction`` of each class (in file order)
    is the test set; ``per_class`` keeps the first N drawings of each class before splitting.
    ``test_per_class`` takes exactly the last N of those as test instead of a fraction, and
    ``train_per_class`` keeps only the first N of the rest for training (so runs with different
    training sizes share one test set)."""
    _check_split(split, "quickdraw_bitmap")
    if paths is None:
        paths = _default_quickdraw_bitmaps()
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    files: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            found = sorted(p.glob("*.npy"))
            if not found:
                raise DataError(p, "folder holds no .npy bitmap files")
            files += found
        else:
            files.append(p)
    chunks, names = [], []
    for p in files:
        imgs, cls = _read_bitmap_source(p)
        chunks.append(imgs)
        names += cls
    images = np.concatenate(chunks) if chunks else np.zeros((0, 28, 28), np.uint8)
    classes = sorted(set(names))
    cidx = {c: i for i, c in enumerate(classes)}
    labels = np.array([cidx[n] for n in names], dtype=np.int64)
    if not 0 < test_fraction < 1:
        raise ValueError(f"quickdraw_bitmap: test_fraction must be in (0, 1), got {test_fraction}")
    for key, v in (("test_per_class", test_per_class), ("train_per_class", train_per_class)):
        if v is not None and int(v) < 1:
            raise ValueError(f"quickdraw_bitmap: {key} must be >= 1, got {v}")
    sel = _per_class_split(labels, len(classes), split, per_class, test_fraction, keep_singletons=False,
                           test_count=test_per_class, train_count=train_per_class)
    transform = _build_transform(split, {"resize": None, "crop": None}, opts)
    _no_extra(opts, "quickdraw_bitmap")
    return _ArrayDataset(images[sel], labels[sel], classes, split, "light_on_dark", transform=transform,
                         stroke_width=stroke_width, name="quickdraw_bitmap")


class _StrokeDataset(SketchDataset):
    def __init__(self, drawings, labels, class_names, split, size, line_width, margin, **kw):
        super().__init__(labels, class_names, split, **kw)
        self.drawings, self.size, self.line_width, self.margin = drawings, size, line_width, margin

    def _raw(self, i):
        return rasterize_strokes(self.drawings[i], self.size, self.line_width, self.margin), "light_on_dark"


@register_dataset("quickdraw_strokes", domain="sketch")
def quickdraw_strokes(split: str = "train", paths: str | os.PathLike | Sequence | None = None,
                      size: int = 64, line_width: float = 1.5, margin: float = 0.05,
                      test_fraction: float = 0.2, per_class: int | None = None,
                      stroke_width: int | None = None, **opts) -> SketchDataset:
    """QuickDraw strokes (simplified or raw ndjson: ``.ndjson`` files, one class each, class =
    the ``word`` field; or the shared ``.h5`` stroke tables, default the simplified one),
    rasterised at ``size`` with antialiased lines ``line_width`` pixels wide, strokes' bounding
    box fitted into the canvas less ``margin``. Last ``test_fraction`` of each class = test."""
    _check_split(split, "quickdraw_strokes")
    if paths is None:
        paths = [default_data_root() / "sketches" / "quickdraw" / "quickdraw_simplified_first25.h5"]
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    drawings, names = [], []
    for p in map(Path, paths):
        if p.suffix in (".h5", ".hdf5"):
            d, lab, cls = read_stroke_h5(p)
            drawings += d
            names += [cls[i] for i in lab]
        elif p.suffix == ".ndjson":
            for rec in read_ndjson(p):
                drawings.append(rec["strokes"])
                names.append(rec["word"] or p.stem)
        else:
            raise DataError(p, "QuickDraw strokes must be .ndjson or .h5 files")
    classes = sorted(set(names))
    cidx = {c: i for i, c in enumerate(classes)}
    labels = np.array([cidx[n] for n in names], dtype=np.int64)
    sel = _per_class_split(labels, len(classes), split, per_class, test_fraction, keep_singletons=True)
    transform = _build_transform(split, {"resize": None, "crop": None}, opts)
    _no_extra(opts, "quickdraw_strokes")
    return _StrokeDataset([drawings[i] for i in sel], labels[sel], classes, split, size, line_width, margin,
                          transform=transform, stroke_width=stroke_width, name="quickdraw_strokes")
