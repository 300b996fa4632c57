"""Sketch transforms and preprocessing: shapes, flips, rotation fill, ten-crop, polarity, stroke width."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from onebit.data.sketches import transforms as T
from onebit.data.sketches.preprocess import detect_polarity, normalize_stroke_width, skeletonize, to_ink


def _img(h=12, w=16):
    return torch.arange(h * w, dtype=torch.float32).reshape(1, h, w) / (h * w)


def test_ten_crop_shapes_and_content():
    img = _img()
    out = T.TenCrop((8, 10))(img)
    assert out.shape == (10, 1, 8, 10)
    assert torch.equal(out[0], img[..., :8, :10])  # top-left
    assert torch.equal(out[3], img[..., 4:, 6:])  # bottom-right
    assert torch.equal(out[4], img[..., 2:10, 3:13])  # centre
    mirror = img.flip(-1)
    assert torch.equal(out[5], mirror[..., :8, :10])
    assert torch.equal(out[9], T.CenterCrop((8, 10))(mirror))
    norm = T.Normalize(0.5, 2.0)(out)
    assert norm.shape == out.shape and torch.allclose(norm, (out - 0.5) / 2)


def test_flip_and_random_flip():
    img = _img()
    assert torch.equal(T.hflip(T.hflip(img)), img)
    assert torch.equal(T.RandomHorizontalFlip(p=1.0)(img), img.flip(-1))
    assert torch.equal(T.RandomHorizontalFlip(p=0.0)(img), img)


def test_rotation_fills_background_not_ink():
    ones = torch.ones(1, 21, 21)
    rot = T.rotate(ones, 45.0)
    assert rot[0, 10, 10] == pytest.approx(1.0, abs=1e-5)  # centre stays ink
    assert rot[0, 0, 0] == pytest.approx(0.0, abs=1e-6)  # empty corner = background 0
    assert T.rotate(ones, 45.0, fill=0.25)[0, 0, 0] == pytest.approx(0.25, abs=1e-6)
    zeros = torch.zeros(1, 17, 17)
    for mode in ("bilinear", "bicubic"):
        assert T.RandomRotation(30, mode=mode)(zeros).abs().max() == 0
    # 90 degrees is an exact pixel permutation of a square image (counter-clockwise)
    img = torch.rand(1, 9, 9)
    assert torch.allclose(T.rotate(img, 90.0), torch.rot90(img, 1, (-2, -1)), atol=1e-5)


def test_crops_and_resize():
    torch.manual_seed(0)
    img = _img(20, 30)
    rc = T.RandomCrop(10)(img)
    assert rc.shape == (1, 10, 10)
    # the crop is a window of the input
    found = any(torch.equal(img[..., i : i + 10, j : j + 10], rc) for i in range(11) for j in range(21))
    assert found
    for _ in range(5):
        assert T.RandomResizedCrop(12)(img).shape == (1, 12, 12)
    assert T.Resize(10)(img).shape == (1, 10, 15)  # shorter side
    assert T.Resize((8, 9))(img).shape == (1, 8, 9)
    with pytest.raises(ValueError, match="larger than the image"):
        T.CenterCrop(40)(img)
    with pytest.raises(ValueError, match="RandomRotation mode"):
        T.RandomRotation(10, mode="lanczos")


def test_sketch_transform_protocol():
    img = torch.zeros(1, 40, 50)
    train = T.sketch_transform(True, resize=32, crop=28, mean=0.1, std=0.5)
    test = T.sketch_transform(False, resize=32, crop=28)
    assert train(img).shape == (1, 28, 28)
    assert torch.allclose(train(img), torch.full((1, 28, 28), -0.2))  # background normalised, fill = 0
    assert test(img).shape == (10, 1, 28, 28)
    assert T.sketch_transform(False, resize=32, crop=28, ten_crop=False)(img).shape == (1, 28, 28)
    assert T.sketch_transform(True, resize=32, crop=28, crop_mode="random_resized")(img).shape == (1, 28, 28)
    with pytest.raises(ValueError, match="crop_mode"):
        T.sketch_transform(True, crop=28, crop_mode="bogus")


def test_polarity_and_inversion():
    white_bg = np.full((16, 16), 255, np.uint8)
    white_bg[5:8, 3:12] = 0  # a black stroke
    assert detect_polarity(white_bg) == "dark_on_light"
    ink = to_ink(white_bg)
    assert ink.shape == (1, 16, 16) and ink.dtype == torch.float32
    assert ink[0, 0, 0] == 0 and ink[0, 6, 5] == 1
    black_bg = 255 - white_bg
    assert detect_polarity(black_bg) == "light_on_dark"
    assert torch.equal(to_ink(black_bg), ink)
    rgb = np.stack([white_bg] * 3, -1)
    assert torch.equal(to_ink(rgb), ink)
    with pytest.raises(ValueError, match="polarity"):
        to_ink(white_bg, "upside_down")


def test_stroke_width_normalisation():
    img = torch.zeros(1, 40, 40)
    img[0, 15:24, 5:35] = 1.0  # a 9-pixel-thick horizontal bar
    skel = skeletonize(img[0].numpy() > 0.5)
    col_counts = skel[:, 10:30].sum(0)
    assert skel.sum() > 0 and col_counts.max() <= 2  # thinned to ~1 px
    for width in (1, 3, 5):
        out = normalize_stroke_width(img, width)
        assert out.shape == img.shape and set(out.unique().tolist()) <= {0.0, 1.0}
        thickness = out[0, :, 12:28].sum(0)
        assert thickness.median().item() == pytest.approx(width, abs=1)
    with pytest.raises(ValueError, match="stroke width"):
        normalize_stroke_width(img, 0)
