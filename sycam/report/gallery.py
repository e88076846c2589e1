"""The gallery: each sample's image with its ground truth, then every method's heatmap on it.

Each heatmap is an overlay with the ground truth outlined on it too, its per-image score beneath, and a
flag when the map is degenerate (constant, all zero or non-finite: the metrics score it as a failure).
Pictures are embedded at twice their displayed size (sharp on HiDPI screens) and enlarge on click with
pure CSS (``:target``), so the page still needs no script.
"""

from __future__ import annotations

import base64
import io
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image
from torch import Tensor

from .. import viz
from .charts import colorbar_html
from .format import SYNTHESIZED, esc, finite, fmt, id_html

__all__ = [
    "SPLIT_TITLES",
    "GalleryItem",
    "abbreviations",
    "attach_scores",
    "gallery_html",
    "methods_of",
    "write_figures",
]

SPLIT_TITLES = {
    "synthesis": "Synthesis split",
    "validation": "Validation split",
    "test": "Held-out test split",
    "all": "All images",
    "": "Samples",
}
"""Section titles of the gallery's splits."""


@dataclass
class GalleryItem:
    """One sample of the gallery: an image, its ground truth and one heatmap per method.

    Attributes:
        id: a readable sample id (e.g. ``"cat_on_bricks_03#285"``).
        label: the target class name.
        pixels: ``(3, H, W)`` RGB in [0, 1] (any device).
        boxes: ``(M, 4)`` ground-truth boxes ``x1, y1, x2, y2`` in pixels, or ``None``.
        mask: ``(H, W)`` bool ground-truth mask, or ``None``.
        maps: method name (or ``"synthesized"``) → ``(H, W)`` heatmap in [0, 1]; shown in this order, with
            ``"synthesized"`` first.
        split: ``"synthesis"``, ``"validation"``, ``"test"`` or ``"all"`` (``""`` when not split).
        scores: per-sample score per method, printed under its heatmap: a number (the objective) or
            ``{metric: number}`` (several metrics). Filled from ``results.json``'s ``per_image`` when empty.
    """

    id: str
    label: str
    pixels: Tensor
    boxes: Tensor | None = None
    mask: Tensor | None = None
    maps: dict[str, Tensor] = field(default_factory=dict)
    split: str = ""
    scores: dict[str, float | Mapping[str, float]] = field(default_factory=dict)


def methods_of(gallery: Iterable[GalleryItem]) -> list[str]:
    """The methods of all samples in first-seen order, ``"synthesized"`` first (next to the image)."""
    seen: dict[str, None] = {}
    for item in gallery:
        for name in item.maps:
            seen.setdefault(name, None)
    names = [n for n in seen if n != SYNTHESIZED]
    return [SYNTHESIZED, *names] if SYNTHESIZED in seen else names


def attach_scores(
    gallery: Sequence[GalleryItem],
    per_image: Mapping[str, Mapping[str, object]] | None,
    ids: Mapping[str, Sequence[str]] | None,
    aliases: Mapping[str, Sequence[str]] | None = None,
) -> None:
    """Fill each item's empty ``scores`` from a results file's per-image scores, in place.

    ``per_image[split][name]`` is a list in ``ids[split]`` order (one metric) or ``{metric: list}``;
    ``aliases[map key]`` lists the names to look the map up by (e.g. the synthesized map under
    ``"best"`` or its expression). Samples or methods without a score are left without one.
    """
    if not per_image or not ids:
        return
    for item in gallery:
        if item.scores:
            continue
        split_scores = per_image.get(item.split) or {}
        order = list(ids.get(item.split) or [])
        if item.id not in order:
            continue
        k = order.index(item.id)
        for key in item.maps:
            for name in [key, *((aliases or {}).get(key) or ())]:
                values = split_scores.get(name)
                if isinstance(values, Mapping):
                    picked = {m: v[k] for m, v in values.items() if isinstance(v, Sequence) and k < len(v)}
                    if picked:
                        item.scores[key] = picked
                        break
                elif isinstance(values, Sequence) and k < len(values):
                    item.scores[key] = values[k]  # type: ignore[assignment]
                    break


def _data_uri(image: Image.Image) -> str:
    """A JPEG data URI (quality 90, no chroma subsampling: sharp green outlines, a quarter of a PNG's size)."""
    buf = io.BytesIO()
    image.convert("RGB").save(buf, format="JPEG", quality=90, subsampling=0)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _img(image: Image.Image, display: int, alt: str) -> str:
    scale = min(1.0, display / max(image.size))
    w, h = max(1, round(image.width * scale)), max(1, round(image.height * scale))
    return f'<img src="{_data_uri(image)}" width="{w}" height="{h}" alt="{esc(alt)}">'


def _sample_images(
    item: GalleryItem, methods: Sequence[str], alpha: float, cmap: str
) -> tuple[Image.Image, list[Image.Image | None]]:
    """The image with its ground truth drawn, and one overlay per method (``None`` where it has no map),
    each with the ground truth outlined."""
    pixels = item.pixels.detach().to("cpu")
    gt = viz.draw_ground_truth(viz.to_image(pixels), item.boxes, item.mask)
    overlays = [
        viz.draw_ground_truth(
            viz.overlay(pixels, item.maps[m], alpha=alpha, colormap=cmap), item.boxes, item.mask, tint=0.0
        )
        if m in item.maps
        else None
        for m in methods
    ]
    return gt, overlays


def abbreviations(names: Iterable[str]) -> dict[str, str]:
    """Short labels for metric names under thumbnails: the initials of their words (``energy_pointing_game``
    → ``EPG``); a name whose initials collide with another's, or are a single letter, stays whole."""
    names = list(dict.fromkeys(names))
    short = {n: "".join(w[0] for w in re.split(r"[_\W]+", n) if w).upper() for n in names}
    counts: dict[str, int] = {}
    for a in short.values():
        counts[a] = counts.get(a, 0) + 1
    return {n: a if len(a) >= 2 and counts[a] == 1 else n for n, a in short.items()}


def _score_lines(score: object, short: Mapping[str, str] | None = None) -> str:
    if isinstance(score, Mapping):
        short = short or {}
        return "".join(
            f'<div class="cell-score"><abbr title="{esc(m)}">{esc(short.get(m, m))}</abbr> {esc(fmt(v))}</div>'
            for m, v in score.items()
        )
    if score is None:
        return ""
    return f'<div class="cell-score">{esc(fmt(score))}</div>'


def gallery_html(
    gallery: Sequence[GalleryItem],
    thumb: int = 120,
    alpha: float = 0.5,
    cmap: str = "jet",
    titles: Mapping[str, str] | None = None,
    names: Mapping[str, str] | None = None,
    score_note: str = "",
) -> str:
    """The gallery section: per split a table, one row per sample (the sample's id and class, the image
    with its ground truth, then each method's overlay, the synthesized one first).

    ``names`` maps a map key to the display name of its column (as in the score tables), ``titles`` to a
    tooltip (the expression). Images are embedded at ``2 × thumb`` pixels (at most their own size) and
    shown ``thumb`` CSS pixels wide; a click enlarges one.
    """
    head_html = '<section id="gallery"><h2>Gallery</h2>'
    if not gallery:
        return head_html + '<p class="muted">No gallery samples.</p></section>'
    head_html += (
        '<div class="gallery-legend">'
        f'<p class="legend">Heatmaps blended onto the image ({esc(cmap)} colormap, α = {alpha:g}); ground truth '
        f"outlined in green on every picture. {esc(score_note) if any(i.scores for i in gallery) else ''} "
        'A <span class="flag">blank</span> flag marks a '
        "degenerate map (constant, all zero or non-finite), which the metrics score as a failure. Click a picture "
        "to enlarge it.</p>"
        f"{colorbar_html(cmap)}</div>"
    )
    methods = methods_of(gallery)
    names = names or {}
    titles = titles or {}
    short = abbreviations(m for item in gallery for sc in item.scores.values() if isinstance(sc, Mapping) for m in sc)
    if any(a != n for n, a in short.items()):
        key = ", ".join(f"{a} = {n}" for n, a in short.items() if a != n)
        head_html = head_html.replace("Click a picture", f"({esc(key)}.) Click a picture", 1)
    groups: dict[str, list[GalleryItem]] = {}
    for item in gallery:
        groups.setdefault(item.split, []).append(item)
    known = list(SPLIT_TITLES)
    order = sorted(groups, key=lambda s: (known.index(s) if s in known else len(known), s))
    width = ' class="pic"'
    head = f'<th scope="col" class="sample">Sample</th><th scope="col"{width}>Image + ground truth</th>' + "".join(
        f'<th scope="col" class="pic{" synth" if m == SYNTHESIZED else ""}" title="{esc(titles.get(m, ""))}">'
        f"{esc(names.get(m, 'Synthesized' if m == SYNTHESIZED else m))}</th>"
        for m in methods
    )
    out = []
    n = 0
    for split in order:
        items = groups[split]
        title = SPLIT_TITLES.get(split, f"{split} split")
        rows = []
        for item in items:
            gt, overlays = _sample_images(item, methods, alpha, cmap)
            n += 1
            row_id = f"s{n}"
            display = thumb
            size = 2 * thumb

            def cell(
                image: Image.Image, alt: str, key: str, row_id: str = row_id, size: int = size, display: int = display
            ) -> str:
                return (
                    f'<div class="zoom" id="{row_id}-{key}"><a class="open" href="#{row_id}-{key}" '
                    f'title="enlarge">{_img(viz.thumbnail(image, size), display, alt)}</a>'
                    f'<a class="close" href="#{row_id}" aria-label="close"></a></div>'
                )

            cells = [
                f'<th scope="row" class="sample" id="{row_id}"><span class="sample-id">{id_html(item.id)}</span>'
                f'<span class="sample-label">{esc(item.label)}</span></th>',
                f"<td>{cell(gt, f'{item.id}: image with ground truth', 'gt')}</td>",
            ]
            for j, (m, ov) in enumerate(zip(methods, overlays, strict=True)):
                if ov is None:
                    cells.append('<td class="missing">—</td>')
                    continue
                reason = viz.degenerate_reason(item.maps[m])
                flag = (
                    f'<div class="flag" title="degenerate map: {esc(reason)}">blank: {esc(reason)}</div>'
                    if reason
                    else ""
                )
                classes = " ".join(
                    c for c in ("synth" if m == SYNTHESIZED else "", "degenerate" if reason else "") if c
                )
                cls = f' class="{classes}"' if classes else ""
                label = names.get(m, "Synthesized" if m == SYNTHESIZED else m)
                picture = cell(ov, f"{item.id}: {label}", f"m{j}")
                cells.append(f"<td{cls}>{picture}{_score_lines(item.scores.get(m), short)}{flag}</td>")
            rows.append(f"<tr>{''.join(cells)}</tr>")
        out.append(
            f'<h3>{esc(title)} <span class="muted">({len(items)} sample{"s" if len(items) != 1 else ""})</span></h3>'
            f'<div class="scroll"><table class="gallery" style="--thumb: {thumb}px"><thead><tr>{head}</tr></thead>'
            f"<tbody>{''.join(rows)}</tbody></table></div>"
        )
    return head_html + "".join(out) + "</section>"


def _safe_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("._-")[:80] or "sample"


def write_figures(
    out_dir: str | Path,
    gallery: Sequence[GalleryItem],
    alpha: float = 0.5,
    colormap: str = "jet",
    cell: int | None = None,
    names: Mapping[str, str] | None = None,
) -> list[Path]:
    """Write one comparison PNG per sample into ``out_dir`` (created if missing), atomically each.

    A figure is one :func:`sycam.viz.grid` row: the image with its ground truth, then each method's overlay
    (the synthesized one first, ground truth outlined) under its display name (``names``) and the sample's
    score, when given, with ``id (label)`` as row label. Files are named ``NNN_<id>.png`` in gallery order;
    ``cell`` defaults to the image size, at most 224. Returns the paths written.
    """
    out_dir = Path(out_dir)
    names = names or {}
    methods = methods_of(gallery)
    paths = []
    for i, item in enumerate(gallery):
        gt, overlays = _sample_images(item, methods, alpha, colormap)
        size = cell or min(224, max(gt.size))
        labels = []
        for m in methods:
            score = item.scores.get(m)
            text = names.get(m, "Synthesized" if m == SYNTHESIZED else m)
            if finite(score):
                text += f" {fmt(score)}"
            labels.append(text)
        figure = viz.grid(
            [[gt, *overlays]],
            row_labels=[f"{item.id} ({item.label})"],
            col_labels=["image + ground truth", *labels],
            cell=size,
        )
        paths.append(viz.save_png(figure, out_dir / f"{i:03d}_{_safe_name(item.id)}.png"))
    return paths
