"""Geometry: the pixel-centre rule, box checks, and boxes/masks through the model's resize + centre crop,
checked against numbers worked out by hand."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from data_helpers import TV, write_csv, write_mask, write_png

from sycam.data import DataError, load_data, rasterize
from sycam.data.geometry import check_inside, nonempty, parse_box


def test_integer_box_covers_columns_x1_to_x2_minus_1() -> None:
    m = rasterize(torch.tensor([[1.0, 2.0, 4.0, 5.0]]), 6, 6)
    expected = torch.zeros(6, 6, dtype=torch.bool)
    expected[2:5, 1:4] = True
    assert torch.equal(m, expected)


def test_fractional_box_uses_pixel_centres_half_open() -> None:
    # centres 0.5, 1.5, 2.5 ...: x in [0.5, 2.5) holds columns 0 and 1; y in [0.5, 1.6) rows 0 and 1
    m = rasterize(torch.tensor([[0.5, 0.5, 2.5, 1.6]]), 4, 4)
    assert m.nonzero().tolist() == [[0, 0], [0, 1], [1, 0], [1, 1]]
    # a box that holds no pixel centre covers nothing
    assert not rasterize(torch.tensor([[0.6, 0.6, 1.4, 1.4]]), 4, 4).any()


def test_tiling_boxes_assign_every_pixel_once() -> None:
    tiles = torch.tensor([[0, 0, 2.5, 6], [2.5, 0, 6, 3.5], [2.5, 3.5, 6, 6]])
    counts = sum(rasterize(t[None], 6, 6).int() for t in tiles)
    assert torch.equal(counts, torch.ones(6, 6, dtype=torch.int))


def test_union_of_boxes_and_no_boxes() -> None:
    m = rasterize(torch.tensor([[0, 0, 2, 2], [1, 1, 3, 3]]), 4, 4)
    assert int(m.sum()) == 4 + 4 - 1
    assert not rasterize(torch.zeros(0, 4), 3, 5).any()
    assert rasterize(torch.zeros(0, 4), 3, 5).shape == (3, 5)


def test_parse_box_and_check_inside() -> None:
    assert parse_box(["1", 2, 3.5, "4e1"], "w") == (1.0, 2.0, 3.5, 40.0)
    for bad, msg in [([1, 2, 1, 4], "x2 > x1"), ([1, 5, 3, 4], "y2 > y1"), ([1, 2, 3], "4 numbers"),
                     (["a", 2, 3, 4], "x1 must be a number"), ([1, 2, "inf", 4], "finite"),
                     ([1, True, 3, 4], "y1 must be a number")]:
        with pytest.raises(DataError, match=msg):
            parse_box(bad, "m.csv line 3")
    check_inside((0, 0, 10, 8), 10, 8, "w")
    for box in [(-1, 0, 5, 5), (0, -0.5, 5, 5), (0, 0, 10.5, 5), (0, 0, 5, 9)]:
        with pytest.raises(DataError, match=r"m.csv line 3: box .* lies outside the 10×8 image"):
            check_inside(box, 10, 8, "m.csv line 3")


def test_nonempty_drops_zero_area_boxes() -> None:
    b = torch.tensor([[0, 0, 0, 5], [1, 1, 2, 2], [3, 3, 3, 3]], dtype=torch.float32)
    assert nonempty(b).tolist() == [[1, 1, 2, 2]]


def test_box_through_resize_and_centre_crop_by_hand(tmp_path: Path) -> None:
    # 400×300 image, resize 256 / crop 224: the short side 300 → 256, so the image becomes 341×256
    # (int(256·400/300) = 341); the crop starts at left = round(117/2) = 58 (round half to even), top = 16.
    # Box (100, 60, 300, 240) → x: 100·341/400 − 58 = 27.25, 300·341/400 − 58 = 197.75;
    #                           y: 60·256/300 − 16 = 35.2,   240·256/300 − 16 = 188.8.
    # Pixel centres inside: columns 27 … 197 (171), rows 35 … 188 (154).
    write_png(tmp_path / "a.png", 400, 300)
    s = load_data(write_csv(tmp_path / "m.csv", [["a.png", 285, 100, 60, 300, 240, None]]), TV)
    assert s.boxes is not None and s.masks is not None
    assert torch.allclose(s.boxes[0], torch.tensor([[27.25, 35.2, 197.75, 188.8]]), atol=1e-4)
    expected = torch.zeros(224, 224, dtype=torch.bool)
    expected[35:189, 27:198] = True
    assert torch.equal(s.masks[0], expected)
    assert int(s.masks[0].sum()) == 171 * 154


def test_box_is_clipped_to_the_crop(tmp_path: Path) -> None:
    # the whole 400×300 image → (−58, −16, 283, 240) → clipped to the crop (0, 0, 224, 224)
    write_png(tmp_path / "a.png", 400, 300)
    s = load_data(write_csv(tmp_path / "m.csv", [["a.png", 285, 0, 0, 400, 300, None]]), TV)
    assert s.boxes is not None and s.masks is not None
    assert s.boxes[0].tolist() == [[0.0, 0.0, 224.0, 224.0]]
    assert bool(s.masks[0].all())


def test_portrait_image_geometry(tmp_path: Path) -> None:
    # 300×600 (w×h): short side 300 → 256, long 512; crop left 16, top round(288/2) = 144.
    # Box (0, 300, 150, 450) → x: 0·256/300 − 16 = −16 → 0, 150·256/300 − 16 = 112;
    #                          y: 300·512/600 − 144 = 112, 450·512/600 − 144 = 240 → 224.
    write_png(tmp_path / "p.png", 300, 600)
    s = load_data(write_csv(tmp_path / "m.csv", [["p.png", 1, 0, 300, 150, 450, None]]), TV)
    assert s.boxes is not None and s.masks is not None
    assert torch.allclose(s.boxes[0], torch.tensor([[0.0, 112.0, 112.0, 224.0]]), atol=1e-4)
    expected = torch.zeros(224, 224, dtype=torch.bool)
    expected[112:224, 0:112] = True
    assert torch.equal(s.masks[0], expected)


def test_mask_through_resize_and_centre_crop_by_hand(tmp_path: Path) -> None:
    # 512×512 → 256×256 (nearest neighbour takes source pixel 2i+1) → crop 16 on each side.
    # Mask rows/columns 100 … 199 → output i with 100 <= 2i+1 <= 199: i = 50 … 99 → after the crop 34 … 83.
    write_png(tmp_path / "a.png", 512, 512)
    write_mask(tmp_path / "a_mask.png", 512, 512, (100, 100, 200, 200))
    s = load_data(write_csv(tmp_path / "m.csv", [["a.png", 7, None, None, None, None, "a_mask.png"]]), TV)
    assert s.masks is not None and s.boxes is not None
    expected = torch.zeros(224, 224, dtype=torch.bool)
    expected[34:84, 34:84] = True
    assert torch.equal(s.masks[0], expected)
    assert s.boxes[0].shape == (0, 4)


def test_images_follow_the_same_preprocessing(tmp_path: Path) -> None:
    from PIL import Image

    write_png(tmp_path / "a.png", 400, 300)
    s = load_data(write_csv(tmp_path / "m.csv", [["a.png", 3, None, None, None, None, None]]), TV)
    expected = TV(Image.open(tmp_path / "a.png"))
    assert torch.equal(s.images[0], expected)
    assert s.mean == TV.mean and s.std == TV.std
