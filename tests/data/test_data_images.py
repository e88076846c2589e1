"""Reading images: 16-bit, palette and other Pillow modes decode to the right 8-bit RGB, EXIF orientation
is applied (boxes are in the displayed image), and Pillow's decompression-bomb limit gives a clean error."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from data_helpers import SMALL
from PIL import Image

from sycam.data import DataError, Preprocess, load_data, read_image, to_rgb
from sycam.data.images import displayed_size
from sycam.models import Preprocess as ModelsPreprocess

RAMP = np.linspace(0, 65535, 32 * 32).round().astype(np.uint16).reshape(32, 32)


def png16(path: Path, arr: np.ndarray) -> Path:
    """A 16-bit PNG written by hand (gray, gray+alpha, RGB or RGBA from the array's channels)."""
    h, w = arr.shape[:2]
    channels = 1 if arr.ndim == 2 else arr.shape[2]
    color_type = {1: 0, 2: 4, 3: 2, 4: 6}[channels]
    raw = b"".join(b"\x00" + arr[y].astype(">u2").tobytes() for y in range(h))

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", w, h, 16, color_type, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw))
                     + chunk(b"IEND", b""))
    return path


def rgb(path: Path) -> np.ndarray:
    return np.asarray(to_rgb(read_image(path)))


def test_preprocess_lives_in_data() -> None:
    assert ModelsPreprocess is Preprocess


@pytest.mark.parametrize("channels", [1, 2, 3, 4])
def test_16_bit_png_is_scaled_not_clipped(tmp_path: Path, channels: int) -> None:
    arr = RAMP if channels == 1 else np.stack([RAMP] * min(channels, 3) + [np.full_like(RAMP, 65535)] *
                                                (channels in (2, 4)), -1)
    got = rgb(png16(tmp_path / "a.png", arr))
    assert got.dtype == np.uint8 and got.shape == (32, 32, 3)
    expected = np.round(RAMP / 257.0)
    assert np.abs(got[..., 0].astype(int) - expected).max() <= 1  # 65535 → 255, 32768 → 128, never white
    assert got[0, 0, 0] == 0 and got[-1, -1, 0] == 255 and 120 <= got[16, 0, 0] <= 135


def test_16_bit_gray_via_tiff_and_pgm_and_i_mode(tmp_path: Path) -> None:
    Image.fromarray(RAMP).save(tmp_path / "g.tif")  # I;16
    (tmp_path / "g.pgm").write_bytes(b"P5\n32 32\n65535\n" + RAMP.astype(">u2").tobytes())  # opens as I
    for name in ("g.tif", "g.pgm"):
        got = rgb(tmp_path / name)
        assert np.abs(got[..., 1].astype(int) - np.round(RAMP / 257.0)).max() <= 1, name
    with pytest.raises(DataError, match="mode I"):
        to_rgb(Image.fromarray(np.full((4, 4), 70000, dtype=np.int32)))
    floats = Image.fromarray((RAMP / 65535.0).astype(np.float32))
    assert np.asarray(to_rgb(floats))[-1, -1, 0] == 255
    with pytest.raises(DataError, match="mode F"):
        to_rgb(Image.fromarray(np.full((4, 4), 2.0, dtype=np.float32)))


@pytest.mark.parametrize("mode", ["P", "PA", "L", "LA", "1", "CMYK", "YCbCr", "RGBA", "La", "RGBa", "I;16"])
def test_modes_decode_to_rgb(mode: str) -> None:
    base = Image.new("RGB", (8, 8), (200, 100, 50))
    if mode in ("P", "PA"):
        image = base.convert("P").convert(mode)
    elif mode == "I;16":
        image = Image.fromarray(np.full((8, 8), 200 * 257, dtype=np.uint16))
    elif mode in ("La", "RGBa"):
        image = base.convert("RGBA" if mode == "RGBa" else "LA").convert(mode)
    else:
        image = base.convert(mode)
    out = to_rgb(image)
    assert out.mode == "RGB" and out.size == (8, 8)
    want = {"L": 124, "LA": 124, "La": 124, "I;16": 200}
    pixel = np.asarray(out)[0, 0]
    if mode == "1":
        assert int(pixel[0]) in (0, 255)  # dithered black and white
    elif mode in want:
        assert abs(int(pixel[0]) - want[mode]) <= 2, (mode, pixel)
    else:
        assert np.abs(pixel.astype(int) - [200, 100, 50]).max() <= 12, (mode, pixel)


def test_palette_png_through_the_loader(tmp_path: Path) -> None:
    arr = np.zeros((32, 32, 3), np.uint8)
    arr[:, 16:] = (0, 200, 0)
    Image.fromarray(arr).convert("P", palette=Image.Palette.ADAPTIVE, colors=4).save(tmp_path / "p.png")
    (tmp_path / "data.csv").write_text("image,label,x1,y1,x2,y2\np.png,1,16,0,32,32\n")
    s = load_data(tmp_path / "data.csv", SMALL, classes=["a", "b"])
    pix = s.pixels[0]
    assert torch.allclose(pix[:, 5, 20], torch.tensor([0.0, 200 / 255, 0.0]), atol=1e-6)
    assert torch.allclose(pix[:, 5, 3], torch.zeros(3), atol=1e-6)


def exif_rotated(path: Path, orientation: int) -> Path:
    """A 40×20 stored image (left half red, right half blue) whose EXIF says ``orientation``."""
    arr = np.zeros((20, 40, 3), np.uint8)
    arr[:, :20] = (255, 0, 0)
    arr[:, 20:] = (0, 0, 255)
    image = Image.fromarray(arr)
    exif = image.getexif()
    exif[0x0112] = orientation
    image.save(path, exif=exif)
    return path


def test_exif_orientation_is_applied(tmp_path: Path) -> None:
    path = exif_rotated(tmp_path / "r.png", 6)  # 6: rotate 90° clockwise to display
    shown = rgb(path)
    assert shown.shape == (40, 20, 3)  # displayed 20 wide, 40 tall
    assert tuple(shown[5, 10]) == (255, 0, 0) and tuple(shown[35, 10]) == (0, 0, 255)  # red on top
    assert displayed_size(path) == (20, 40)
    # a box drawn on the displayed image (the red top half) fits and lands on red pixels
    (tmp_path / "data.csv").write_text("image,label,x1,y1,x2,y2\nr.png,0,0,0,20,20\n")
    s = load_data(tmp_path / "data.csv", Preprocess(size=16, resize=16), classes=["a"])
    assert s.masks[0, :8].all() and not s.masks[0, 8:].any()
    assert torch.allclose(s.pixels[0][:, 2, 4], torch.tensor([1.0, 0.0, 0.0]), atol=1e-6)
    # and Preprocess applies the orientation to an image opened by hand too (the explain path)
    with Image.open(path) as im:
        x = Preprocess(size=16, resize=16).pixels(im)
    assert torch.allclose(x[:, 2, 4], torch.tensor([1.0, 0.0, 0.0]), atol=1e-6)


def test_exif_size_checked_against_voc_xml(tmp_path: Path) -> None:
    exif_rotated(tmp_path / "r.png", 8)
    (tmp_path / "r.xml").write_text("<annotation><filename>r.png</filename><size><width>20</width>"
                                    "<height>40</height></size><object><name>0</name><bndbox><xmin>1</xmin>"
                                    "<ymin>21</ymin><xmax>20</xmax><ymax>40</ymax></bndbox></object></annotation>")
    s = load_data(tmp_path, Preprocess(size=16, resize=16), classes=["a"])
    assert s.masks[0, 8:].all() and not s.masks[0, :8].any()


def test_decompression_bomb_is_a_clean_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "big.png"
    Image.new("RGB", (64, 64)).save(path)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # 4096 pixels > 2 × 1000
    for call in (lambda: read_image(path), lambda: displayed_size(path)):
        with pytest.raises(DataError, match="decompression-bomb") as info:
            call()
        assert "\n" not in str(info.value) and "big.png" in str(info.value)
    (tmp_path / "data.csv").write_text("image,label\nbig.png,0\n")
    with pytest.raises(DataError, match=r"data.csv line 2: refusing image .*big.png.*decompression-bomb"):
        load_data(tmp_path / "data.csv", SMALL, classes=["a"])
    (tmp_path / "big.xml").write_text("<annotation><filename>big.png</filename><size><width>64</width>"
                                      "<height>64</height></size><object><name>0</name></object></annotation>")
    with pytest.raises(DataError, match="decompression-bomb"):
        load_data(tmp_path, SMALL, classes=["a"], annotations=tmp_path, images=tmp_path)


def test_broken_and_missing_files(tmp_path: Path) -> None:
    (tmp_path / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    with pytest.raises(DataError, match=r"^x: cannot read image .*bad.png: \w+"):
        read_image(tmp_path / "bad.png", "x")
    with pytest.raises(DataError, match="mask file not found"):
        read_image(tmp_path / "none.png", "y", "mask")


def test_the_size_after_the_resize_is_bounded_too(monkeypatch) -> None:
    """A 1×100000 image passes Pillow's decoded-size check but would be resized to 256×25600000 (issue 22 §6)."""
    from sycam.data import preprocess

    pre = Preprocess(size=224, resize=256)
    with pytest.raises(DataError, match=r"^a 1×100000 image would be resized to 256×25600000 \(6553600000 pixels\) "
                                        r"before the centre crop, more than the limit of 89478485 \(an aspect ratio "
                                        r"of at most 1365:1\); crop the image first$"):
        pre.pixels(Image.new("L", (1, 100000)))
    assert pre.geometry(4000, 300) == (3413, 256, 1594, 16)  # a wide panorama is fine
    monkeypatch.setattr(preprocess.Image, "MAX_IMAGE_PIXELS", 256 * 1000)  # the limit is read at each call
    with pytest.raises(DataError, match="resized to 2560×256"):
        pre.geometry(3000, 300)
    with pytest.raises(DataError, match="a 256×1001 image would be resized to 256×1001"):  # masks too
        pre.mask(np.ones((1001, 256), dtype=bool))
