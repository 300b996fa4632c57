"""Sketch data: TU-Berlin, Sketchy, QuickDraw, ImageFolder and synthetic sketches, their
preprocessing (ink as foreground, stroke width), stroke rasterisation, folds and transforms.

Importing this package registers the datasets ``tuberlin``, ``sketchy``, ``sketchy_subset``,
``quickdraw_bitmap``, ``quickdraw_strokes``, ``imagefolder`` and ``synthetic_sketches``.
See docs/data_sketches.md.
"""

from onebit.data.sketches import transforms
from onebit.data.sketches.datasets import (
    SketchDataset,
    default_data_root,
    imagefolder,
    quickdraw_bitmap,
    quickdraw_strokes,
    read_image,
    sketchy,
    sketchy_subset,
    tuberlin,
)
from onebit.data.sketches.folds import fold_indices, fold_parts, write_folds_for_files, write_published_folds
from onebit.data.sketches.preprocess import detect_polarity, normalize_stroke_width, skeletonize, to_ink
from onebit.data.sketches.raster import parse_ndjson_line, rasterize_strokes, read_ndjson, read_stroke_h5
from onebit.data.sketches.synthetic import SHAPES, SyntheticSketches, draw_shape, synthetic_sketches
from onebit.data.sketches.transforms import sketch_transform

__all__ = [
    "SHAPES",
    "SketchDataset",
    "SyntheticSketches",
    "default_data_root",
    "detect_polarity",
    "draw_shape",
    "fold_indices",
    "fold_parts",
    "imagefolder",
    "normalize_stroke_width",
    "parse_ndjson_line",
    "quickdraw_bitmap",
    "quickdraw_strokes",
    "rasterize_strokes",
    "read_image",
    "read_ndjson",
    "read_stroke_h5",
    "sketch_transform",
    "sketchy",
    "sketchy_subset",
    "skeletonize",
    "synthetic_sketches",
    "to_ink",
    "transforms",
    "tuberlin",
    "write_folds_for_files",
    "write_published_folds",
]
