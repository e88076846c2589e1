"""``sycam explain``'s image handling: 16-bit, palette and EXIF-rotated files, the crop box on the original,
overlays drawn on the original image."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from sycam.cli.explain import MAX_SIDE, crop_box, overlay_on_original, read_image
from sycam.models import Preprocess


def test_16_bit_grey_is_scaled_not_white(tmp_path: Path) -> None:
    path = tmp_path / "g16.png"
    Image.fromarray(np.linspace(0, 65535, 64 * 64).reshape(64, 64).astype(np.uint16)).save(path)
    assert Image.open(path).mode.startswith("I")
    rgb = np.asarray(read_image(str(path)))
    assert rgb.shape == (64, 64, 3) and rgb.min() == 0 and rgb.max() == 255 and 120 < rgb.mean() < 135


def test_palette_image_keeps_its_colours(tmp_path: Path) -> None:
    path = tmp_path / "p.png"
    im = Image.new("P", (8, 8))
    im.putpalette([10, 200, 30] * 256)
    im.save(path)
    assert tuple(np.asarray(read_image(str(path)))[0, 0]) == (10, 200, 30)


def test_exif_orientation_is_applied(tmp_path: Path) -> None:
    path = tmp_path / "turned.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6  # stored sideways: displayed turned by 90°
    Image.new("RGB", (40, 20), (200, 10, 10)).save(path, exif=exif)
    assert read_image(str(path)).size == (20, 40)


def test_crop_box_is_the_centre_square_in_original_pixels() -> None:
    pre = Preprocess(size=224, resize=256)
    x1, y1, x2, y2 = crop_box(pre, 600, 400)  # resized to 384×256, crop 224 at (80, 16)
    assert np.allclose([x1, y1, x2, y2], [80 * 600 / 384, 16 * 400 / 256, 304 * 600 / 384, 240 * 400 / 256])


def test_overlay_on_original_keeps_its_size_up_to_a_cap() -> None:
    image = Image.new("RGB", (300, 200), (128, 128, 128))
    heat = torch.zeros(224, 224)
    heat[100:120, 100:120] = 1.0
    out = overlay_on_original(image, heat, crop_box(Preprocess(), 300, 200))
    assert out.size == (300, 200)
    arr = np.asarray(out).astype(int)
    assert arr[0, 0].sum() < 3 * 128  # outside the crop: dimmed
    big = overlay_on_original(Image.new("RGB", (4000, 1000)), heat, crop_box(Preprocess(), 4000, 1000))
    assert max(big.size) == MAX_SIDE
