"""Fixtures for the data tests: small images, masks, manifests and XML files written into tmp dirs."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from sycam.models import Preprocess

#: a small preprocessing: resize the short side to 32, centre-crop 32 (no crop for square images)
SMALL = Preprocess(size=32, resize=32)
#: torchvision-style geometry: resize 256, centre-crop 224
TV = Preprocess(size=224, resize=256)


def write_png(path: Path, width: int, height: int, color: tuple[int, int, int] = (120, 60, 30)) -> Path:
    """An RGB image whose red channel is the column index (so pixels can be told apart)."""
    arr = np.zeros((height, width, 3), dtype=np.uint8)
    arr[...] = color
    arr[..., 0] = (np.arange(width) % 256)[None, :]
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path)
    return path


def write_mask(path: Path, width: int, height: int, rect: tuple[int, int, int, int] | None,
               mode: str = "L") -> Path:
    """A mask image with the pixels ``rect = x1, y1, x2, y2`` (half-open) set; ``None`` for an empty mask."""
    arr = np.zeros((height, width), dtype=np.uint8)
    if rect is not None:
        x1, y1, x2, y2 = rect
        arr[y1:y2, x1:x2] = 255
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).convert(mode).save(path)
    return path


def write_csv(path: Path, rows: Sequence[Sequence[object]],
              header: str = "image,label,x1,y1,x2,y2,mask") -> Path:
    lines = [header] + [",".join("" if c is None else str(c) for c in row) for row in rows]
    path.write_text("\n".join(lines) + "\n")
    return path


def write_json(path: Path, items: object) -> Path:
    path.write_text(json.dumps(items))
    return path


def voc_xml(filename: str | None, objects: Sequence[tuple[str, tuple[float, float, float, float] | None]],
            size: tuple[int, int] | None = None) -> str:
    """An XML annotation; each object is ``(name, (xmin, ymin, xmax, ymax))`` or ``(name, None)``."""
    parts = ["<annotation>", "<folder>val</folder>"]
    if filename is not None:
        parts.append(f"<filename>{filename}</filename>")
    if size is not None:
        parts.append(f"<size><width>{size[0]}</width><height>{size[1]}</height><depth>3</depth></size>")
    for name, box in objects:
        parts.append(f"<object><name>{name}</name><difficult>0</difficult>")
        if box is not None:
            xmin, ymin, xmax, ymax = box
            parts.append(f"<bndbox><xmin>{xmin}</xmin><ymin>{ymin}</ymin><xmax>{xmax}</xmax>"
                         f"<ymax>{ymax}</ymax></bndbox>")
        parts.append("</object>")
    parts.append("</annotation>")
    return "\n".join(parts)
