"""Geometry of ground truth: box checks and rasterization in model-input pixels.

Conventions (the same everywhere in sycam):

- Coordinates are continuous pixel *edges*: pixel ``(row i, column j)`` covers ``[j, j+1) × [i, i+1)``, so
  a box ``0, 0, W, H`` covers a whole ``W × H`` image and a box's width is ``x2 - x1``.
- A pixel belongs to a box when its centre ``(j + 0.5, i + 0.5)`` lies in the half-open box
  ``[x1, x2) × [y1, y2)``. Boxes with integer corners cover exactly columns ``x1 … x2-1`` and rows
  ``y1 … y2-1``; boxes that tile the plane assign every pixel to exactly one tile.
- Boxes are mapped from original-image pixels to model-input pixels with the model's own resize and
  centre crop (:meth:`sycam.data.preprocess.Preprocess.boxes`), then clipped to the crop; masks are resized
  with nearest neighbour and cropped the same way (:meth:`sycam.data.preprocess.Preprocess.mask`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

from .errors import DataError

Box = tuple[float, float, float, float]


def parse_box(values: Sequence[object], where: str) -> Box:
    """Four numbers ``x1, y1, x2, y2`` → a box; non-numbers, non-finite values and ``x2 <= x1`` or
    ``y2 <= y1`` are a :class:`DataError` at ``where``."""
    if len(values) != 4:
        raise DataError(f"{where}: a box needs 4 numbers x1, y1, x2, y2, got {len(values)}")
    out: list[float] = []
    for name, v in zip(("x1", "y1", "x2", "y2"), values, strict=True):
        if isinstance(v, bool):
            raise DataError(f"{where}: {name} must be a number, got {v!r}")
        try:
            f = float(v)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            raise DataError(f"{where}: {name} must be a number, got {v!r}") from None
        if not math.isfinite(f):
            raise DataError(f"{where}: {name} must be finite, got {v!r}")
        out.append(f)
    x1, y1, x2, y2 = out
    if x2 <= x1 or y2 <= y1:
        raise DataError(f"{where}: empty box ({x1:g}, {y1:g}, {x2:g}, {y2:g}): need x2 > x1 and y2 > y1")
    return x1, y1, x2, y2


def check_inside(box: Box, width: int, height: int, where: str) -> None:
    """A :class:`DataError` unless ``0 <= x1 < x2 <= width`` and ``0 <= y1 < y2 <= height``."""
    x1, y1, x2, y2 = box
    if x1 < 0 or y1 < 0 or x2 > width or y2 > height:
        raise DataError(
            f"{where}: box ({x1:g}, {y1:g}, {x2:g}, {y2:g}) lies outside the {width}×{height} image "
            f"(need 0 <= x1 < x2 <= {width}, 0 <= y1 < y2 <= {height})"
        )


def rasterize(boxes: Tensor, height: int, width: int) -> Tensor:
    """``(H, W)`` bool: the union of ``boxes`` ``(M, 4)`` under the pixel-centre rule (see module doc)."""
    b = torch.as_tensor(boxes, dtype=torch.float64).reshape(-1, 4)
    cols = torch.arange(width, dtype=torch.float64) + 0.5
    rows = torch.arange(height, dtype=torch.float64) + 0.5
    in_x = (cols >= b[:, 0:1]) & (cols < b[:, 2:3])  # (M, W)
    in_y = (rows >= b[:, 1:2]) & (rows < b[:, 3:4])  # (M, H)
    return (in_y[:, :, None] & in_x[:, None, :]).any(0)


def nonempty(boxes: Tensor) -> Tensor:
    """The boxes ``(M, 4)`` that keep a positive area (after clipping to a crop)."""
    b = boxes.reshape(-1, 4)
    return b[(b[:, 2] > b[:, 0]) & (b[:, 3] > b[:, 1])]
