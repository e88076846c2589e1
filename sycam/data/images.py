"""Reading image files: one place that opens them, applies EXIF orientation and decodes any Pillow mode to
8-bit RGB.

- **Orientation.** A photo whose EXIF ``Orientation`` tag says it is stored sideways (phones do this) is
  turned the way viewers display it (:func:`PIL.ImageOps.exif_transpose`). Boxes and masks are in the
  *displayed* image's coordinates, so a box drawn in any image viewer fits.
- **Bit depth and modes.** 16-bit grayscale (``I;16``, ``I;16B``, ``I;16L``) and 32-bit integer ``I``
  images are scaled from 0…65535 to 0…255 (``I`` values outside that range are an error), float ``F``
  images from [0, 1] (outside it is an error); Pillow's own ``convert("RGB")`` would clip them to white.
  Palette (``P``, ``PA``), grayscale (``1``, ``L``, ``LA``), ``CMYK``, ``YCbCr``, ``LAB``, ``HSV`` and
  16-bit RGB(A) PNGs (which Pillow already reads as 8-bit) go through Pillow's conversion. An alpha channel
  is dropped (the colour under it is kept), as torchvision's loaders do.
- **Decompression bombs.** Pillow's protection stays on: an image of more than ``2 ×
  PIL.Image.MAX_IMAGE_PIXELS`` pixels (about 179 million by default) is refused with a
  :class:`DataError`; between one and two times the limit Pillow warns (``DecompressionBombWarning``).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from .errors import DataError

_SIXTEEN_BIT = ("I;16", "I;16L", "I;16B", "I;16N")
_ORIENTATION = 0x0112  # the EXIF tag


def read_image(path: str | Path, where: str | None = None, what: str = "image") -> Image.Image:
    """Open and fully decode an image file, turned by its EXIF orientation; the mode is kept (see :func:`to_rgb`).

    Args:
        path: the file.
        where: who names the file (``"data.csv line 3"``), for messages; defaults to the path.
        what: what the file is (``"image"``, ``"mask"``), for messages.

    Raises:
        DataError: one line naming ``where`` and the path: missing file, not an image, truncated, or larger
            than Pillow's decompression-bomb limit.

    Example::

        image = to_rgb(read_image("cat.jpg"))   # 8-bit RGB, upright
    """
    with _opened(path, where, what) as im:
        im.load()
        return upright(im)


def displayed_size(path: str | Path, where: str | None = None) -> tuple[int, int]:
    """``(width, height)`` of the image file as displayed (EXIF orientation applied), reading only its header.

    Raises:
        DataError: as :func:`read_image`.
    """
    with _opened(path, where, "image") as im:
        width, height = im.size
        orientation = im.getexif().get(_ORIENTATION, 1)
    return (height, width) if orientation in (5, 6, 7, 8) else (width, height)


@contextmanager
def _opened(path: str | Path, where: str | None, what: str) -> Iterator[Image.Image]:
    """``Image.open(path)`` with every failure as one :class:`DataError` line naming ``where`` and the path."""
    path = Path(path)
    where = where or str(path)
    if not path.is_file():
        raise DataError(f"{where}: {what} file not found: {path}")
    try:
        with Image.open(path) as im:
            yield im
    except Image.DecompressionBombError as exc:
        raise DataError(f"{where}: refusing {what} {path}: {exc} (Pillow's decompression-bomb protection; "
                        f"shrink the image, or raise PIL.Image.MAX_IMAGE_PIXELS if you trust it)") from None
    except DataError:
        raise
    except Exception as exc:  # Pillow raises many types for broken files
        raise DataError(f"{where}: cannot read {what} {path}: {type(exc).__name__}: {exc}".splitlines()[0]) from None


def upright(image: Image.Image) -> Image.Image:
    """A copy of ``image`` turned the way its EXIF orientation tag says it is displayed (the tag removed)."""
    turned = ImageOps.exif_transpose(image)
    return image.copy() if turned is None else turned


def to_rgb(image: Image.Image) -> Image.Image:
    """``image`` as 8-bit RGB, upright, with high-bit-depth modes scaled rather than clipped (module doc).

    Example: a 16-bit grayscale PNG pixel of 32768 becomes ``(128, 128, 128)``, not ``(255, 255, 255)``.
    """
    image = upright(image)
    mode = image.mode
    if mode == "RGB":
        return image
    if mode in _SIXTEEN_BIT or mode in ("I", "F"):
        arr = np.asarray(image)
        if mode == "F":
            if arr.size and not (np.isfinite(arr).all() and arr.min() >= 0.0 and arr.max() <= 1.0):
                raise DataError("a 32-bit float (mode F) image must hold values in [0, 1]; convert it to 8-bit")
            gray = np.round(arr.astype(np.float64) * 255.0)
        else:
            wide = arr.astype(np.int64)
            if mode == "I" and wide.size and (wide.min() < 0 or wide.max() > 65535):
                raise DataError("a 32-bit integer (mode I) image must hold values in 0…65535 (read as 16-bit); "
                                "convert it to 8-bit")
            gray = np.round(wide / 257.0)
        return Image.fromarray(gray.astype(np.uint8), "L").convert("RGB")
    if mode in ("La", "RGBa"):  # premultiplied alpha: undo it first
        image = image.convert("LA" if mode == "La" else "RGBA")
    try:
        return image.convert("RGB")
    except (ValueError, OSError) as exc:
        raise DataError(f"cannot convert a {mode} image to RGB: {exc}") from None
