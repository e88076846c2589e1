"""The model's preprocessing and the normalization arithmetic, shared by images, boxes and masks.

:class:`Preprocess` resizes the shorter side to ``resize``, centre-crops ``size × size``, scales to [0, 1]
and normalizes with ``(pixels - mean) / std``. The same geometry maps boxes and masks from original-image
pixels to model-input pixels, so ground truth stays exactly aligned with what the model sees.
:func:`normalize` / :func:`denormalize` are the one implementation of the normalization (``Samples`` uses
them too).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from .errors import DataError
from .images import to_rgb

IMAGENET_MEAN = (0.485, 0.456, 0.406)
"""ImageNet channel means (RGB), the torchvision convention"""
IMAGENET_STD = (0.229, 0.224, 0.225)
"""ImageNet channel standard deviations (RGB), the torchvision convention"""


def max_resized_pixels() -> int:
    """The most pixels an image may have after the resize that precedes the crop: Pillow's decompression-bomb
    limit (``PIL.Image.MAX_IMAGE_PIXELS``, read at each call), so that neither the decoded image nor the
    resized one can exhaust memory (a 475-byte 1×100000 PNG would otherwise become 256×25600000)."""
    return int(Image.MAX_IMAGE_PIXELS or 2**62)


def _stats(values: Sequence[float], like: Tensor) -> Tensor:
    return torch.tensor(tuple(values), dtype=like.dtype, device=like.device).view(3, 1, 1)


def normalize(pixels: Tensor, mean: Sequence[float], std: Sequence[float]) -> Tensor:
    """``(…, 3, H, W)`` RGB in [0, 1] → model input: ``(pixels - mean) / std`` per channel.

    Example: with ``mean = std = (0.5, 0.5, 0.5)`` a pixel of 1.0 becomes 1.0 and 0.0 becomes -1.0.
    """
    return (pixels - _stats(mean, pixels)) / _stats(std, pixels)


def denormalize(images: Tensor, mean: Sequence[float], std: Sequence[float]) -> Tensor:
    """Model input → RGB in [0, 1]: ``images * std + mean``, clamped to [0, 1]."""
    return (images * _stats(std, images) + _stats(mean, images)).clamp(0, 1)


@dataclass(frozen=True)
class Preprocess:
    """Resize the shorter side to ``resize``, centre-crop ``size``×``size``, scale to [0, 1], normalize.

    The same geometry maps boxes and masks from original-image pixels to model-input pixels, so ground
    truth stays exactly aligned with what the model sees. Images of any Pillow mode are first turned upright
    (EXIF) and decoded to 8-bit RGB (:func:`sycam.data.images.to_rgb`).

    Example::

        pre = Preprocess(size=224, resize=256)
        x = pre(Image.open("cat.jpg"))       # (3, 224, 224) model input
    """

    size: int = 224
    resize: int = 256
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    interpolation: str = "bilinear"  # or "bicubic"

    def geometry(self, width: int, height: int) -> tuple[int, int, int, int]:
        """``(new_w, new_h, left, top)``: the resized size and the crop's top-left corner.

        The shorter side becomes ``resize``, the longer ``int(resize · long / short)``; the crop corner is
        ``round((new - size) / 2)``.
        """
        short, long = (width, height) if width <= height else (height, width)
        new_short, new_long = self.resize, int(self.resize * long / short)
        new_w, new_h = (new_short, new_long) if width <= height else (new_long, new_short)
        limit = max_resized_pixels()
        if new_w * new_h > limit:
            raise DataError(f"a {width}×{height} image would be resized to {new_w}×{new_h} ({new_w * new_h} pixels) "
                            f"before the centre crop, more than the limit of {limit} (an aspect ratio of at most "
                            f"{limit // (self.resize * self.resize)}:1); crop the image first")
        if new_w < self.size or new_h < self.size:
            raise DataError(f"resize {self.resize} is smaller than the crop {self.size}")
        left = int(round((new_w - self.size) / 2.0))
        top = int(round((new_h - self.size) / 2.0))
        return new_w, new_h, left, top

    def pixels(self, image: Image.Image) -> Tensor:
        """Image → ``(3, size, size)`` float tensor in [0, 1] (upright, RGB, resized and cropped, not normalized)."""
        image = to_rgb(image)
        new_w, new_h, left, top = self.geometry(*image.size)
        resample = Image.Resampling.BICUBIC if self.interpolation == "bicubic" else Image.Resampling.BILINEAR
        if (new_w, new_h) != image.size:
            image = image.resize((new_w, new_h), resample)
        image = image.crop((left, top, left + self.size, top + self.size))
        arr = np.asarray(image, dtype=np.float32) / 255.0
        return torch.from_numpy(arr.copy()).permute(2, 0, 1).contiguous()

    def normalize(self, pixels: Tensor) -> Tensor:
        """``(…, 3, H, W)`` pixels in [0, 1] → model input (:func:`normalize` with this mean and std)."""
        return normalize(pixels, self.mean, self.std)

    def denormalize(self, images: Tensor) -> Tensor:
        """Model input → pixels in [0, 1] (:func:`denormalize` with this mean and std)."""
        return denormalize(images, self.mean, self.std)

    def __call__(self, image: Image.Image) -> Tensor:
        """Image → normalized ``(3, size, size)`` model input."""
        return self.normalize(self.pixels(image))

    def boxes(self, boxes: Tensor, width: int, height: int) -> Tensor:
        """Boxes ``(M, 4)`` as ``x1, y1, x2, y2`` in original pixels → model-input pixels, clipped to the crop.

        A box maps as ``x · new_w / width − left``, ``y · new_h / height − top``; one that falls entirely
        outside the crop becomes empty (zero area).
        """
        new_w, new_h, left, top = self.geometry(width, height)
        sx, sy = new_w / width, new_h / height
        b = torch.as_tensor(boxes, dtype=torch.float32).reshape(-1, 4)
        out = torch.stack([b[:, 0] * sx - left, b[:, 1] * sy - top, b[:, 2] * sx - left, b[:, 3] * sy - top], 1)
        return out.clamp(0, self.size)

    def mask(self, mask: Image.Image | np.ndarray) -> Tensor:
        """Ground-truth mask (non-zero = object) → ``(size, size)`` bool, resized with nearest neighbour."""
        if isinstance(mask, np.ndarray):
            arr = mask
            if arr.ndim == 3:
                arr = arr.any(axis=-1)
            mask = Image.fromarray((arr != 0).astype(np.uint8) * 255)
        mask = mask.convert("L")
        new_w, new_h, left, top = self.geometry(*mask.size)
        if (new_w, new_h) != mask.size:
            mask = mask.resize((new_w, new_h), Image.Resampling.NEAREST)
        mask = mask.crop((left, top, left + self.size, top + self.size))
        return torch.from_numpy(np.asarray(mask) > 0)
