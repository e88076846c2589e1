"""Pictures of heatmaps: colormaps, overlays, ground truth, comparison grids and atomic PNG writing.

Pure torch/numpy + Pillow (no matplotlib). Everything here works on CPU copies of the tensors it is
given, so heatmaps may live on any device.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw, ImageFont
from torch import Tensor

from ._io import write_atomic  # re-exported: the one atomic writer lives in sycam._io

__all__ = [
    "COLORMAPS",
    "GT_COLOR",
    "colormap",
    "degenerate_reason",
    "draw_ground_truth",
    "grid",
    "overlay",
    "save_png",
    "thumbnail",
    "to_image",
    "write_atomic",
]

# Each colormap is three piecewise-linear channels: (x, value) anchors with x and value in [0, 1].
_Channel = tuple[tuple[float, float], ...]


def _hex_anchors(spaced_hex: str) -> tuple[_Channel, _Channel, _Channel]:
    """Equally spaced colours, given as space-separated ``#rrggbb`` → three piecewise-linear channels."""
    colors = spaced_hex.split()
    xs = np.linspace(0.0, 1.0, len(colors))
    rgb = [tuple(int(c[i : i + 2], 16) / 255.0 for i in (1, 3, 5)) for c in colors]
    return tuple(tuple((float(x), col[ch]) for x, col in zip(xs, rgb, strict=True)) for ch in range(3))  # type: ignore[return-value]


COLORMAPS: dict[str, tuple[_Channel, _Channel, _Channel]] = {
    # The classic MATLAB/matplotlib "jet" segment data: dark blue → blue → cyan → yellow → red → dark red.
    "jet": (
        ((0.0, 0.0), (0.35, 0.0), (0.66, 1.0), (0.89, 1.0), (1.0, 0.5)),
        ((0.0, 0.0), (0.125, 0.0), (0.375, 1.0), (0.64, 1.0), (0.91, 0.0), (1.0, 0.0)),
        ((0.0, 0.5), (0.11, 1.0), (0.34, 1.0), (0.65, 0.0), (1.0, 0.0)),
    ),
    # Perceptually uniform maps, 17 equally spaced anchors (every 1/16) of the published viridis and
    # inferno tables; linear interpolation between them stays within ~7/255 of the 256-entry originals.
    "viridis": _hex_anchors(
        "#440154 #48186a #472d7b #424086 #3b528b #33638d #2c728e #26828e #21918c "
        "#1fa088 #28ae80 #3fbc73 #5ec962 #84d44b #addc30 #d8e219 #fde725"
    ),
    "inferno": _hex_anchors(
        "#000004 #0b0724 #210c4a #3d0965 #57106e #71196e #8a226a #a32c61 #bc3754 "
        "#d24644 #e45a31 #f1731d #f98e09 #fcac11 #f9cb35 #f2ea69 #fcffa4"
    ),
    "gray": (((0.0, 0.0), (1.0, 1.0)),) * 3,
}

GT_COLOR: tuple[int, int, int] = (0, 230, 64)
"""Outline colour of ground-truth boxes and mask contours (bright green: visible on photos)."""


def _to_numpy(x: Tensor | np.ndarray) -> np.ndarray:
    if isinstance(x, Tensor):
        return x.detach().to("cpu", torch.float64).numpy()
    return np.asarray(x, dtype=np.float64)


def colormap(maps: Tensor | np.ndarray, name: str = "jet") -> Tensor:
    """Colour heatmaps with a piecewise-linear colormap.

    Args:
        maps: ``(..., H, W)`` values in [0, 1]; values outside are clamped, NaN is drawn as 0.
        name: one of :data:`COLORMAPS` (``"jet"``, ``"viridis"``, ``"inferno"``, ``"gray"``).

    Returns:
        ``(..., H, W, 3)`` uint8 RGB on the CPU. Each channel is the exact linear interpolation between
        the colormap's anchors, scaled to 0..255 and rounded half up (so jet(0) = (0, 0, 128),
        jet(0.5) = (123, 255, 123), jet(1) = (128, 0, 0)).
    """
    try:
        channels = COLORMAPS[name]
    except KeyError:
        raise ValueError(f"unknown colormap {name!r}; choose one of {', '.join(sorted(COLORMAPS))}") from None
    x = np.nan_to_num(_to_numpy(maps), nan=0.0, posinf=1.0, neginf=0.0).clip(0.0, 1.0)
    out = np.empty((*x.shape, 3), dtype=np.uint8)
    for ch, anchors in enumerate(channels):
        xs, ys = zip(*anchors, strict=True)
        out[..., ch] = np.floor(np.interp(x, xs, ys) * 255.0 + 0.5).astype(np.uint8)
    return torch.from_numpy(out)


def to_image(pixels: Tensor | np.ndarray) -> Image.Image:
    """``(3, H, W)`` RGB in [0, 1] → an RGB :class:`PIL.Image.Image` (rounded, clamped)."""
    p = _to_numpy(pixels)
    if p.ndim != 3 or p.shape[0] != 3:
        raise ValueError(f"pixels must be (3, H, W), got {tuple(p.shape)}")
    arr = np.floor(np.nan_to_num(p, nan=0.0).clip(0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    return Image.fromarray(np.ascontiguousarray(arr.transpose(1, 2, 0)), mode="RGB")


def overlay(
    pixels: Tensor | np.ndarray,
    heatmap: Tensor | np.ndarray,
    alpha: float = 0.5,
    colormap: str = "jet",
) -> Image.Image:
    """Blend a coloured heatmap onto an image.

    ``out = round((1 - alpha) * 255 * pixels + alpha * colormap(heatmap))`` per pixel and channel.

    Args:
        pixels: ``(3, H, W)`` RGB in [0, 1].
        heatmap: ``(H, W)`` in [0, 1]. A heatmap of another size (e.g. at layer resolution) is resized
            bilinearly (``align_corners=False``) to the image first.
        alpha: weight of the heatmap, in [0, 1].
        colormap: a colormap name, see :func:`colormap`.

    Example::

        maps = sycam.CAM(model, method="gradcam")(samples.images, targets=samples.labels)
        overlay(samples.pixels()[0], maps[0], alpha=0.4).save("gradcam.png")
    """
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    p = _to_numpy(pixels)
    if p.ndim != 3 or p.shape[0] != 3:
        raise ValueError(f"pixels must be (3, H, W), got {tuple(p.shape)}")
    h = torch.as_tensor(_to_numpy(heatmap))
    if h.dim() != 2:
        raise ValueError(f"heatmap must be (H, W), got {tuple(h.shape)}")
    if tuple(h.shape) != p.shape[1:]:
        h = F.interpolate(h[None, None], size=p.shape[1:], mode="bilinear", align_corners=False)[0, 0]
    colours = _colormap_fn(h, colormap).numpy().astype(np.float64)
    base = np.nan_to_num(p, nan=0.0).clip(0.0, 1.0).transpose(1, 2, 0) * 255.0
    out = np.floor((1.0 - alpha) * base + alpha * colours + 0.5).clip(0, 255).astype(np.uint8)
    return Image.fromarray(np.ascontiguousarray(out), mode="RGB")


_colormap_fn = colormap  # ``overlay``'s ``colormap`` argument shadows the function inside it.


def _line_width(size: tuple[int, int]) -> int:
    return max(1, round(min(size) / 112))


def draw_ground_truth(
    image: Image.Image,
    boxes: Tensor | None = None,
    mask: Tensor | None = None,
    color: tuple[int, int, int] = GT_COLOR,
    tint: float = 0.25,
) -> Image.Image:
    """Draw the ground truth on a copy of ``image``.

    Args:
        image: the picture (any mode; the result is RGB).
        boxes: ``(M, 4)`` boxes ``x1, y1, x2, y2`` in pixel-edge coordinates (a box ``0, 0, W, H`` covers
            the whole image), drawn as outlines just inside the box; ``None`` or empty for none.
        mask: ``(H, W)`` bool region, drawn as a translucent ``tint`` of ``color`` plus its contour.
        color: RGB of outlines, contour and tint.
        tint: opacity of the mask tint, in [0, 1].
    """
    out = image.convert("RGB")
    w, h = out.size
    width = _line_width(out.size)
    if mask is not None:
        m = torch.as_tensor(mask).detach().to("cpu").bool()
        if tuple(m.shape) != (h, w):
            raise ValueError(f"mask must be ({h}, {w}) like the image, got {tuple(m.shape)}")
        if m.any():
            # Contour: mask pixels with a non-mask pixel within ``width`` (erosion by max-pooling the complement).
            outside = (~m).float()[None, None]
            k = 2 * width + 1
            near_outside = F.max_pool2d(F.pad(outside, (width,) * 4, value=1.0), k, stride=1)[0, 0].bool()
            contour = (m & near_outside).numpy()
            arr = np.asarray(out, dtype=np.float64).copy()
            col = np.asarray(color, dtype=np.float64)
            inside = m.numpy()
            arr[inside] = (1.0 - tint) * arr[inside] + tint * col
            arr[contour] = col
            out = Image.fromarray(np.floor(arr + 0.5).astype(np.uint8), mode="RGB")
    if boxes is not None:
        b = torch.as_tensor(boxes).detach().to("cpu", torch.float64).reshape(-1, 4)
        draw = ImageDraw.Draw(out)
        for x1, y1, x2, y2 in b.tolist():
            left, top = max(0, int(np.floor(x1))), max(0, int(np.floor(y1)))
            right, bottom = min(w, int(np.ceil(x2))) - 1, min(h, int(np.ceil(y2))) - 1
            if right < left or bottom < top:
                continue
            draw.rectangle((left, top, right, bottom), outline=color, width=width)
    return out


def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, ImportError, OSError):  # Pillow < 10.1 or no FreeType: the fixed bitmap font
        return ImageFont.load_default()


def _text_width(font: ImageFont.FreeTypeFont | ImageFont.ImageFont, text: str) -> int:
    left, _, right, _ = font.getbbox(text)
    return int(np.ceil(right - min(0, left)))


def _fit_lines(text: str, font: ImageFont.FreeTypeFont | ImageFont.ImageFont, width: int, max_lines: int) -> list[str]:
    """Wrap ``text`` on spaces into at most ``max_lines`` lines of at most ``width`` pixels; shorten
    the last line with an ellipsis when it does not fit."""
    lines: list[str] = []
    words = text.split()
    current = ""
    for word in words:
        trial = f"{current} {word}".strip()
        if current and _text_width(font, trial) > width:
            lines.append(current)
            current = word
        else:
            current = trial
    if current or not lines:
        lines.append(current)
    if len(lines) > max_lines:
        lines = [*lines[: max_lines - 1], " ".join(lines[max_lines - 1 :])]
    last = lines[-1]
    if _text_width(font, last) > width:
        while last and _text_width(font, last + "…") > width:
            last = last[:-1]
        lines[-1] = last + "…"
    return lines


def grid(
    rows: Sequence[Sequence[Image.Image | None]],
    row_labels: Sequence[str] | None = None,
    col_labels: Sequence[str] | None = None,
    cell: int | tuple[int, int] = 160,
    pad: int = 4,
    font_size: int = 14,
    max_row_label_width: int = 220,
    background: tuple[int, int, int] = (255, 255, 255),
) -> Image.Image:
    """A comparison grid: ``rows[i][j]`` in cell ``(i, j)`` with column headers and row labels.

    Each image is scaled to fit its ``cell`` (``int`` for square cells, or ``(width, height)``) keeping
    its aspect ratio, and centred; ``None`` (or a short row) leaves the cell blank.

    Layout, exactly: cells are ``pad`` pixels apart and from the border, so the picture is
    ``label_w + n_cols * cell_w + (n_cols + 1) * pad`` wide and
    ``header_h + n_rows * cell_h + (n_rows + 1) * pad`` high, where ``label_w`` (0 without row labels) is
    the widest row label plus ``pad`` (at most ``max_row_label_width``) and ``header_h`` (0 without
    column labels) is the height of up to two wrapped header lines plus ``pad``.
    """
    cell_w, cell_h = (cell, cell) if isinstance(cell, int) else (int(cell[0]), int(cell[1]))
    if cell_w < 1 or cell_h < 1:
        raise ValueError(f"cell must be positive, got {cell}")
    n_rows = len(rows)
    n_cols = max((len(r) for r in rows), default=0)
    if col_labels is not None:
        n_cols = max(n_cols, len(col_labels))
    if n_rows == 0 and col_labels is None:
        raise ValueError("grid needs at least one row or column labels")
    if row_labels is not None and len(row_labels) != n_rows:
        raise ValueError(f"got {len(row_labels)} row labels for {n_rows} rows")

    font = _font(font_size)
    ascent, descent = font.getmetrics() if hasattr(font, "getmetrics") else (font_size, 0)
    line_h = ascent + descent + 2

    headers = [_fit_lines(str(c), font, cell_w, 2) for c in col_labels] if col_labels is not None else []
    header_h = (max(len(h) for h in headers) * line_h + pad) if headers else 0
    labels = []
    label_w = 0
    if row_labels is not None:
        text_w = min(max_row_label_width, max((_text_width(font, str(r)) for r in row_labels), default=0))
        labels = [_fit_lines(str(r), font, max(text_w, 1), max(1, cell_h // line_h)) for r in row_labels]
        label_w = text_w + pad

    width = label_w + n_cols * cell_w + (n_cols + 1) * pad
    height = header_h + n_rows * cell_h + (n_rows + 1) * pad
    canvas = Image.new("RGB", (width, height), background)
    draw = ImageDraw.Draw(canvas)
    ink = (20, 20, 20)

    def cell_origin(i: int, j: int) -> tuple[int, int]:
        return label_w + pad + j * (cell_w + pad), header_h + pad + i * (cell_h + pad)

    for j, lines in enumerate(headers):
        x0, _ = cell_origin(0, j)
        y = header_h - len(lines) * line_h  # bottom-aligned, just above the cells
        for line in lines:
            draw.text((x0 + (cell_w - _text_width(font, line)) // 2, y), line, fill=ink, font=font)
            y += line_h
    for i, row in enumerate(rows):
        if labels:
            _, y0 = cell_origin(i, 0)
            y = y0 + (cell_h - len(labels[i]) * line_h) // 2
            for line in labels[i]:
                draw.text((pad, y), line, fill=ink, font=font)
                y += line_h
        for j, img in enumerate(row):
            if img is None:
                continue
            x0, y0 = cell_origin(i, j)
            scale = min(cell_w / img.width, cell_h / img.height)
            size = (max(1, round(img.width * scale)), max(1, round(img.height * scale)))
            thumb = img.convert("RGB")
            if size != thumb.size:
                thumb = thumb.resize(size, Image.Resampling.BILINEAR)
            canvas.paste(thumb, (x0 + (cell_w - size[0]) // 2, y0 + (cell_h - size[1]) // 2))
    return canvas


def save_png(image: Image.Image, path: str | os.PathLike[str]) -> Path:
    """Save ``image`` as PNG at ``path`` atomically (see :func:`write_atomic`); returns the path."""
    return write_atomic(path, lambda f: image.save(f, format="PNG"))


def degenerate_reason(heatmap: Tensor | np.ndarray, atol: float = 1e-12) -> str | None:
    """Why a heatmap explains nothing, or ``None`` when it does: ``"non-finite"`` (a NaN or infinity),
    ``"all zero"``, or ``"constant"`` (every pixel within ``atol`` of the same value). The metrics give such
    maps their worst score; the report flags them."""
    h = _to_numpy(heatmap)
    if h.size == 0 or not np.isfinite(h).all():
        return "non-finite"
    lo, hi = float(h.min()), float(h.max())
    if hi - lo <= atol:
        return "all zero" if abs(hi) <= atol else "constant"
    return None


def thumbnail(image: Image.Image, size: int) -> Image.Image:
    """``image`` scaled down (Lanczos) so that its longer side is at most ``size`` pixels; never enlarged."""
    scale = size / max(image.size)
    if scale >= 1.0:
        return image
    return image.resize(
        (max(1, round(image.width * scale)), max(1, round(image.height * scale))), Image.Resampling.LANCZOS
    )
