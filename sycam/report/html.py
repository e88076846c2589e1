"""Self-contained HTML reports and PNG figures.

Each page is ONE file: inline CSS, pictures embedded as base64 PNG data URIs, the search curve as inline
SVG. It uses no JavaScript and fetches nothing, so it can be mailed, archived or opened offline.

* :func:`write_report` — the page for ``sycam synthesize`` (``results.json`` plus a gallery).
* :func:`write_evaluation_report` — the page for ``sycam evaluate`` (methods × metrics plus a gallery).
* :func:`write_figures` — one comparison PNG per gallery sample.
"""

from __future__ import annotations

import base64
import io
import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from html import escape
from pathlib import Path
from typing import Any

from PIL import Image
from torch import Tensor

from sycam import viz

__all__ = [
    "SYNTHESIZED",
    "GalleryItem",
    "render_evaluation_report",
    "render_report",
    "write_evaluation_report",
    "write_figures",
    "write_report",
]

#: The key of the synthesized expression's heatmap in :attr:`GalleryItem.maps`.
SYNTHESIZED = "synthesized"

_SPLIT_TITLES = {"synthesis": "Synthesis split", "test": "Held-out test split", "": "Samples"}


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
        split: ``"synthesis"`` or ``"test"`` (``""`` when the data is not split).
        scores: optional per-sample metric value per method, printed under its heatmap.
    """

    id: str
    label: str
    pixels: Tensor
    boxes: Tensor | None = None
    mask: Tensor | None = None
    maps: dict[str, Tensor] = field(default_factory=dict)
    split: str = ""
    scores: dict[str, float] = field(default_factory=dict)


# ----------------------------------------------------------------------------------------------- formatting


def _esc(x: object) -> str:
    return escape(str(x), quote=True)


def _finite(x: object) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x)


def _fmt(x: object) -> str:
    """A score for people: 4 decimals, or 4 significant digits when very large or very small."""
    if x is None:
        return "—"
    if isinstance(x, bool) or not isinstance(x, int | float):
        return str(x)
    if isinstance(x, int):
        return f"{x:,}"
    if not math.isfinite(x):
        return str(x)
    if x != 0 and (abs(x) >= 1e4 or abs(x) < 1e-3):
        return f"{x:.4g}"
    return f"{x:.4f}"


def _fmt_seconds(s: object) -> str:
    if not _finite(s):
        return _fmt(s)
    s = float(s)  # type: ignore[arg-type]
    if s < 60:
        return f"{s:.2f} s"
    m, sec = divmod(s, 60)
    return f"{int(m)} min {sec:.0f} s" if m < 60 else f"{int(m // 60)} h {int(m % 60)} min"


def _better(a: object, b: object, higher_is_better: bool) -> bool:
    """Whether score ``a`` is strictly better than ``b``; a missing or NaN score is never better."""
    if not _finite(a):
        return False
    if not _finite(b):
        return True
    return a > b if higher_is_better else a < b  # type: ignore[operator]


def _best_key(scores: Mapping[str, object], higher_is_better: bool) -> str | None:
    """The key with the best finite score (the first one on ties), or ``None``."""
    best: str | None = None
    for key, value in scores.items():
        if _finite(value) and (best is None or _better(value, scores[best], higher_is_better)):
            best = key
    return best


def _sort_key(value: object, higher_is_better: bool) -> tuple[int, float]:
    """Sorts best first, missing/NaN last."""
    if not _finite(value):
        return (1, 0.0)
    return (0, -float(value) if higher_is_better else float(value))  # type: ignore[arg-type]


def _direction(higher_is_better: bool) -> str:
    return "higher is better" if higher_is_better else "lower is better"


def _arrow(higher_is_better: bool) -> str:
    return "↑" if higher_is_better else "↓"


def _display_name(method: str) -> str:
    return "Synthesized" if method == SYNTHESIZED else method


# ----------------------------------------------------------------------------------------------- tables


@dataclass(frozen=True)
class _Raw:
    """Trusted HTML (already escaped)."""

    html: str


@dataclass(frozen=True)
class _Col:
    """A table column; ``higher_is_better`` set → numeric, best cell(s) marked."""

    header: str
    higher_is_better: bool | None = None
    numeric: bool = False
    code: bool = False
    title: str = ""


def _cell(value: object, col: _Col, best: bool) -> str:
    if isinstance(value, _Raw):
        inner = value.html
    elif col.code and value is not None:
        inner = f"<code>{_esc(value)}</code>"
    elif col.numeric or col.higher_is_better is not None:
        inner = _esc(_fmt(value))
    else:
        inner = _esc("—" if value is None else value)
    classes = []
    attrs = ""
    if col.numeric or col.higher_is_better is not None:
        classes.append("num")
        if isinstance(value, float):
            attrs = f' title="{_esc(repr(value))}"'
    if best:
        classes.append("best")
        inner = f"<strong>{inner}</strong>"
    cls = f' class="{" ".join(classes)}"' if classes else ""
    return f"<td{cls}{attrs}>{inner}</td>"


def _table(
    cols: Sequence[_Col],
    rows: Sequence[Sequence[object]],
    row_classes: Sequence[str] | None = None,
    table_class: str = "scores",
) -> str:
    """An HTML table; in columns with a direction every cell holding the best finite value is marked."""
    best: list[set[int]] = []
    for j, col in enumerate(cols):
        marked: set[int] = set()
        if col.higher_is_better is not None:
            column = {str(i): r[j] for i, r in enumerate(rows)}
            key = _best_key(column, col.higher_is_better)
            if key is not None:
                marked = {i for i, r in enumerate(rows) if _finite(r[j]) and r[j] == column[key]}
        best.append(marked)
    head = []
    for c in cols:
        title = f' title="{_esc(c.title)}"' if c.title else ""
        cls = ' class="num"' if c.numeric or c.higher_is_better is not None else ""
        head.append(f"<th{cls}{title}>{_esc(c.header)}</th>")
    body = []
    for i, row in enumerate(rows):
        cls = f' class="{_esc(row_classes[i])}"' if row_classes and row_classes[i] else ""
        cells = "".join(_cell(v, c, i in best[j]) for j, (v, c) in enumerate(zip(row, cols, strict=True)))
        body.append(f"<tr{cls}>{cells}</tr>")
    return (
        f'<div class="scroll"><table class="{table_class}"><thead><tr>{"".join(head)}</tr></thead>'
        f"<tbody>{''.join(body)}</tbody></table></div>"
    )


def _kv_table(items: Mapping[str, object]) -> str:
    """Key/value pairs; nested values shown as compact JSON."""
    if not items:
        return '<p class="muted">none recorded</p>'
    rows = []
    for key, value in items.items():
        if isinstance(value, dict | list | tuple):
            text = json.dumps(value, ensure_ascii=False, default=str)
        elif isinstance(value, bool) or value is None:
            text = json.dumps(value)
        else:
            text = _fmt(value) if isinstance(value, float) else str(value)
        rows.append(f"<tr><th>{_esc(key)}</th><td><code>{_esc(text)}</code></td></tr>")
    return f'<table class="kv"><tbody>{"".join(rows)}</tbody></table>'


# ----------------------------------------------------------------------------------------------- svg curve


def _nice_ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    """Round tick values (1, 2 or 5 × 10^k apart) covering ``[lo, hi]``."""
    if not (math.isfinite(lo) and math.isfinite(hi)) or hi <= lo:
        return [lo]
    raw = (hi - lo) / max(1, count)
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    first = math.ceil(lo / step - 1e-9) * step
    ticks = []
    t = first
    while t <= hi + step * 1e-9:
        ticks.append(round(t, 12))
        t += step
    return ticks


def _tick_label(v: float, step: float) -> str:
    if abs(v) >= 1e4 and float(v).is_integer():
        return f"{v:,.0f}"
    decimals = max(0, -math.floor(math.log10(step))) if step > 0 else 2
    return f"{v:.{min(decimals, 6)}f}"


def _curve_svg(
    history: Sequence[Sequence[float]],
    lam: float | None,
    higher_is_better: bool,
    lambda_label: str = "λ",
    width: int = 760,
    height: int = 320,
) -> str:
    """Best synthesis score versus candidates scored: an SVG polyline (one point per history entry) with
    axes, ticks, labels and a dashed horizontal line at λ."""
    points = [(float(x), float(y)) for x, y, *_ in history if _finite(x) and _finite(y)]
    if not points:
        return '<p class="muted">No search history was recorded.</p>'
    left, right, top, bottom = 72, 24, 16, 52
    pw, ph = width - left - right, height - top - bottom
    xs = [p[0] for p in points]
    ys = [p[1] for p in points] + ([float(lam)] if _finite(lam) else [])
    x_lo, x_hi = min(0.0, min(xs)), max(xs)
    if x_hi <= x_lo:
        x_hi = x_lo + 1.0
    y_lo, y_hi = min(ys), max(ys)
    span = y_hi - y_lo
    if span <= 0:
        span = abs(y_hi) * 0.1 or 1.0
        y_lo, y_hi = y_lo - span / 2, y_hi + span / 2
    else:
        y_lo, y_hi = y_lo - 0.08 * span, y_hi + 0.08 * span

    def sx(x: float) -> float:
        return left + (x - x_lo) / (x_hi - x_lo) * pw

    def sy(y: float) -> float:
        return top + (1.0 - (y - y_lo) / (y_hi - y_lo)) * ph

    parts = [
        f'<svg class="curve" viewBox="0 0 {width} {height}" '
        f'width="{width}" height="{height}" role="img" aria-label="best synthesis score versus candidates scored">',
        f'<rect x="{left}" y="{top}" width="{pw}" height="{ph}" class="plot-bg"/>',
    ]
    yt = _nice_ticks(y_lo, y_hi)
    ystep = yt[1] - yt[0] if len(yt) > 1 else (y_hi - y_lo)
    for t in yt:
        y = sy(t)
        parts.append(f'<line x1="{left}" x2="{left + pw}" y1="{y:.1f}" y2="{y:.1f}" class="gridline"/>')
        parts.append(
            f'<text x="{left - 6}" y="{y + 4:.1f}" class="tick" text-anchor="end">{_tick_label(t, ystep)}</text>'
        )
    xt = _nice_ticks(x_lo, x_hi, count=6)
    xstep = xt[1] - xt[0] if len(xt) > 1 else 1.0
    for t in xt:
        x = sx(t)
        parts.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{top + ph}" y2="{top + ph + 5}" class="axis"/>')
        label = _tick_label(t, max(xstep, 1.0))
        parts.append(f'<text x="{x:.1f}" y="{top + ph + 19}" class="tick" text-anchor="middle">{label}</text>')
    parts.append(f'<line x1="{left}" x2="{left}" y1="{top}" y2="{top + ph}" class="axis"/>')
    parts.append(f'<line x1="{left}" x2="{left + pw}" y1="{top + ph}" y2="{top + ph}" class="axis"/>')
    if _finite(lam):
        y = sy(float(lam))  # type: ignore[arg-type]
        parts.append(
            f'<line x1="{left}" x2="{left + pw}" y1="{y:.1f}" y2="{y:.1f}" class="lambda" stroke-dasharray="6 4"/>'
        )
        parts.append(
            f'<text x="{left + pw - 6}" y="{y - 6:.1f}" class="lambda-label" text-anchor="end">'
            f"{_esc(lambda_label)} = {_esc(_fmt(lam))}</text>"
        )
    coords = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in points)
    parts.append(f'<polyline class="best-curve" fill="none" points="{coords}"/>')
    if len(points) <= 200:
        parts.extend(f'<circle cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="3" class="best-point"/>' for x, y in points)
    parts.append(
        f'<text x="{left + pw / 2:.1f}" y="{height - 10}" class="axis-label" text-anchor="middle">'
        "candidates scored</text>"
    )
    parts.append(
        f'<text transform="translate(16 {top + ph / 2:.1f}) rotate(-90)" class="axis-label" text-anchor="middle">'
        f"best synthesis score ({_arrow(higher_is_better)} better)</text>"
    )
    parts.append("</svg>")
    return "".join(parts)


# ----------------------------------------------------------------------------------------------- gallery


def _methods_of(gallery: Iterable[GalleryItem]) -> list[str]:
    """The methods of all samples in first-seen order, ``"synthesized"`` first (next to the image)."""
    seen: dict[str, None] = {}
    for item in gallery:
        for name in item.maps:
            seen.setdefault(name, None)
    names = [n for n in seen if n != SYNTHESIZED]
    return [SYNTHESIZED, *names] if SYNTHESIZED in seen else names


def _sample_images(
    item: GalleryItem, methods: Sequence[str], alpha: float, cmap: str
) -> tuple[Image.Image, list[Image.Image | None]]:
    """The image with its ground truth drawn, and one overlay per method (``None`` where it has no map)."""
    pixels = item.pixels.detach().to("cpu")
    gt = viz.draw_ground_truth(viz.to_image(pixels), item.boxes, item.mask)
    overlays = [
        viz.overlay(pixels, item.maps[m], alpha=alpha, colormap=cmap) if m in item.maps else None for m in methods
    ]
    return gt, overlays


def _thumbnail(image: Image.Image, size: int) -> Image.Image:
    scale = size / max(image.size)
    if scale >= 1.0:
        return image
    return image.resize(
        (max(1, round(image.width * scale)), max(1, round(image.height * scale))), Image.Resampling.LANCZOS
    )


def _data_uri(image: Image.Image) -> str:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _img(image: Image.Image, alt: str) -> str:
    return f'<img src="{_data_uri(image)}" width="{image.width}" height="{image.height}" alt="{_esc(alt)}">'


def _gallery_html(
    gallery: Sequence[GalleryItem],
    thumb: int,
    alpha: float,
    cmap: str,
    column_titles: Mapping[str, str] | None = None,
) -> str:
    """The gallery section: per split a table, one row per sample (image + ground truth, then each
    method's overlay, the synthesized one first) under column headers."""
    head_html = '<section id="gallery"><h2>Gallery</h2>'
    if not gallery:
        return head_html + '<p class="muted">No gallery samples.</p></section>'
    head_html += (
        f'<p class="legend">Heatmaps blended onto the image ({_esc(cmap)} colormap, α = {alpha:g}); '
        "ground truth in green.</p>"
    )
    methods = _methods_of(gallery)
    column_titles = column_titles or {}
    groups: dict[str, list[GalleryItem]] = {}
    for item in gallery:
        groups.setdefault(item.split, []).append(item)
    order = sorted(groups, key=lambda s: (["synthesis", "test"].index(s) if s in ("synthesis", "test") else 2, s))
    head = "<th>Sample</th><th>Image + ground truth</th>" + "".join(
        f'<th class="{"synth" if m == SYNTHESIZED else ""}" title="{_esc(column_titles.get(m, ""))}">'
        f"{_esc(_display_name(m))}</th>"
        for m in methods
    )
    out = []
    for split in order:
        items = groups[split]
        title = _SPLIT_TITLES.get(split, f"{split} split")
        rows = []
        for item in items:
            gt, overlays = _sample_images(item, methods, alpha, cmap)
            cells = [
                f'<th class="sample"><span class="sample-id">{_esc(item.id)}</span>'
                f'<span class="sample-label">{_esc(item.label)}</span></th>',
                f"<td>{_img(_thumbnail(gt, thumb), f'{item.id}: image with ground truth')}</td>",
            ]
            for m, ov in zip(methods, overlays, strict=True):
                if ov is None:
                    cells.append('<td class="missing">—</td>')
                    continue
                score = item.scores.get(m)
                caption = f'<div class="cell-score">{_esc(_fmt(score))}</div>' if score is not None else ""
                cls = ' class="synth"' if m == SYNTHESIZED else ""
                cells.append(f"<td{cls}>{_img(_thumbnail(ov, thumb), f'{item.id}: {_display_name(m)}')}{caption}</td>")
            rows.append(f"<tr>{''.join(cells)}</tr>")
        out.append(
            f'<h3>{_esc(title)} <span class="muted">({len(items)} sample{"s" if len(items) != 1 else ""})</span></h3>'
            f'<div class="scroll"><table class="gallery"><thead><tr>{head}</tr></thead>'
            f"<tbody>{''.join(rows)}</tbody></table></div>"
        )
    return head_html + "".join(out) + "</section>"


# ----------------------------------------------------------------------------------------------- page


_CSS = """
:root { --ink:#1d232b; --muted:#5f6b7a; --line:#dde3ea; --bg:#ffffff; --soft:#f5f7fa; --accent:#2f6fdf;
  --win:#1f7a3f; --win-bg:#e8f6ec; --mixed:#8a5a00; --mixed-bg:#fff4dc; --lose:#a32121; --lose-bg:#fdeaea; }
* { box-sizing: border-box; }
body { margin:0; background:var(--bg); color:var(--ink);
  font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; }
main { max-width: 1360px; margin: 0 auto; padding: 28px 24px 64px; }
h1 { font-size: 26px; margin: 0 0 4px; }
h2 { font-size: 19px; margin: 36px 0 10px; padding-bottom: 4px; border-bottom: 1px solid var(--line); }
h3 { font-size: 16px; margin: 20px 0 8px; }
p { margin: 6px 0; }
code, pre { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, "Liberation Mono", monospace;
  font-size: 13.5px; }
pre { background: var(--soft); border: 1px solid var(--line); border-radius: 6px; padding: 10px 12px;
  overflow-x: auto; white-space: pre-wrap; word-break: break-word; margin: 6px 0; }
pre.expr { font-size: 16px; }
.muted, .subtitle { color: var(--muted); }
.subtitle { margin-bottom: 18px; }
.verdict { border-radius: 8px; padding: 14px 18px; margin: 18px 0; border: 1px solid; }
.verdict .headline { font-size: 18px; font-weight: 600; margin: 0 0 6px; }
.verdict.win { background: var(--win-bg); border-color: #b7e0c3; } .verdict.win .headline { color: var(--win); }
.verdict.mixed { background: var(--mixed-bg); border-color: #f0d49a; } .verdict.mixed .headline { color: var(--mixed); }
.verdict.lose { background: var(--lose-bg); border-color: #f1bcbc; } .verdict.lose .headline { color: var(--lose); }
.verdict.unknown { background: var(--soft); border-color: var(--line); }
.verdict ul { margin: 4px 0 0; padding-left: 20px; }
.scroll { overflow-x: auto; }
table { border-collapse: collapse; margin: 6px 0; }
table.scores th, table.scores td { padding: 5px 12px; border-bottom: 1px solid var(--line); text-align: left;
  vertical-align: top; }
table.scores thead th { background: var(--soft); font-weight: 600; white-space: nowrap; }
table.scores td code { white-space: pre-wrap; word-break: break-word; }
th.num, td.num { text-align: right !important; font-variant-numeric: tabular-nums; white-space: nowrap; }
td.best { background: #e6f0ff; }
td.best strong { color: #0b3d91; }
tr.synth td { background: #fbf7e6; } tr.synth td.best { background: #dbe9ff; }
tr.synth td:first-child { font-weight: 600; }
table.kv th { text-align: left; padding: 3px 16px 3px 0; font-weight: 600; vertical-align: top; white-space: nowrap; }
table.kv td { padding: 3px 0; }
table.kv code { white-space: pre-wrap; word-break: break-word; }
svg.curve { max-width: 100%; height: auto; font-family: inherit; }
svg .plot-bg { fill: #fbfcfd; } svg .gridline { stroke: #e8ecf1; } svg .axis { stroke: #6b7684; }
svg .tick { font-size: 12px; fill: #4a5563; } svg .axis-label { font-size: 13px; fill: #1d232b; }
svg .best-curve { stroke: var(--accent); stroke-width: 2; } svg .best-point { fill: var(--accent); }
svg .lambda { stroke: #c0392b; stroke-width: 1.5; } svg .lambda-label { font-size: 12px; fill: #c0392b; }
table.gallery { border-spacing: 0; }
table.gallery th { font-size: 13px; font-weight: 600; padding: 4px 4px 6px; text-align: center;
  vertical-align: bottom; }
table.gallery td { padding: 3px; text-align: center; vertical-align: top; }
table.gallery img { display: block; border-radius: 3px; }
table.gallery th.synth { color: var(--accent); }
table.gallery td.synth img { outline: 2px solid var(--accent); outline-offset: 1px; }
table.gallery th.sample { text-align: left; vertical-align: middle; max-width: 120px; padding-right: 8px;
  font-weight: normal; }
.sample-id { display: block; font-family: ui-monospace, Menlo, Consolas, monospace; font-size: 12px;
  overflow-wrap: break-word; }
.sample-label { display: block; color: var(--muted); font-size: 13px; }
.cell-score { font-size: 12px; color: var(--muted); font-variant-numeric: tabular-nums; }
td.missing { color: var(--muted); vertical-align: middle !important; }
details { border: 1px solid var(--line); border-radius: 6px; padding: 6px 12px; margin: 8px 0; }
details > summary { cursor: pointer; font-weight: 600; }
ul.notes li { margin: 2px 0; }
.legend { font-size: 13px; color: var(--muted); }
footer { margin-top: 40px; font-size: 12px; color: var(--muted); }
"""


def _page(title: str, body: str) -> str:
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{_esc(title)}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n<main>\n{body}\n"
        "<footer>Generated by sycam — metric-guided synthesis of class activation maps. "
        "Self-contained page: no scripts, no external resources.</footer>\n</main>\n</body>\n</html>\n"
    )


def _verdict(results: Mapping[str, Any]) -> tuple[str, str, list[str]]:
    """``(css class, headline, detail lines)``: does the synthesized expression beat the best baseline on
    the synthesis split, and on the held-out test split? Ties count as not beating."""
    metric = results.get("metric", {})
    hib = bool(metric.get("higher_is_better", True))
    best = results.get("best") or {}
    baselines: Mapping[str, Mapping[str, Any]] = results.get("baselines") or {}
    if not best:
        return "unknown", "No expression was synthesized.", []
    if not baselines:
        return (
            "unknown",
            "No baselines were scored, so there is nothing to compare the synthesized expression with.",
            [],
        )

    detail: list[str] = []
    outcomes: list[tuple[str, bool | None, str | None]] = []  # (split phrase, beats?, baseline name)
    for split, phrase in (("synthesis", "the synthesis split"), ("test", "held-out images")):
        ours = best.get(f"{split}_score")
        name = _best_key({n: b.get(f"{split}_score") for n, b in baselines.items()}, hib)
        if name is None or ours is None:  # nothing to compare on this split (a NaN score does not beat)
            outcomes.append((phrase, None, name))
            continue
        theirs = baselines[name][f"{split}_score"]
        win = _better(ours, theirs, hib)
        outcomes.append((phrase, win, name))
        relation = "better than" if win else ("tied with" if ours == theirs else "worse than")
        detail.append(
            f"{'Synthesis split' if split == 'synthesis' else 'Held-out test split'}: "
            f"{_fmt(ours)} for the synthesized expression, {relation} {name} ({_fmt(theirs)}), "
            f"the best baseline on this split."
        )

    (p_syn, w_syn, n_syn), (p_test, w_test, n_test) = outcomes

    def clause(phrase: str, win: bool | None, name: str | None) -> str:
        return f"{'beats' if win else 'does not beat'} {name} on {phrase}"

    subject = "The synthesized expression "
    if w_syn is None:
        return "unknown", subject + "has no synthesis-split score to compare.", detail
    if w_test is None:
        headline = (
            subject
            + clause(p_syn, w_syn, n_syn)
            + "; there are no held-out test scores, so generalization is not measured."
        )
        return ("mixed" if w_syn else "lose"), headline, detail
    if w_syn == w_test and n_syn == n_test:
        if w_syn:
            headline = f"{subject}beats the best baseline, {n_syn}, on both the synthesis split and held-out images."
        else:
            headline = (
                f"{subject}does not beat the best baseline, {n_syn}, on the synthesis split or on held-out images."
            )
    else:
        joiner = ", and " if w_syn == w_test else ", but "
        headline = subject + clause(p_syn, w_syn, n_syn) + joiner + clause(p_test, w_test, n_test) + "."
    css = "win" if w_syn and w_test else ("lose" if not w_test else "mixed")
    return css, headline, detail


def _same_expression(a: object, b: object) -> bool:
    return isinstance(a, str) and isinstance(b, str) and re.sub(r"\s+", "", a) == re.sub(r"\s+", "", b)


def _notes_and_details(results: Mapping[str, Any], extra: Mapping[str, Mapping[str, Any]]) -> str:
    notes = [str(n) for n in results.get("notes") or []]
    blocks = []
    if notes:
        items = "".join(f"<li>{_esc(n)}</li>" for n in notes)
        blocks.append(f'<details open><summary>Notes ({len(notes)})</summary><ul class="notes">{items}</ul></details>')
    for title, mapping in extra.items():
        if mapping:
            blocks.append(f"<details><summary>{_esc(title)}</summary>{_kv_table(mapping)}</details>")
    timings = results.get("timings") or {}
    if timings:
        rows = [[phase, _Raw(_esc(_fmt_seconds(s)))] for phase, s in timings.items()]
        table = _table([_Col("phase"), _Col("time", numeric=True)], rows)
        blocks.append(f"<details><summary>Timings</summary>{table}</details>")
    for key, title in (("settings", "Settings"), ("versions", "Versions")):
        blocks.append(f"<details><summary>{title}</summary>{_kv_table(results.get(key) or {})}</details>")
    return '<section id="details"><h2>Run details</h2>' + "".join(blocks) + "</section>"


def render_report(
    results: Mapping[str, Any],
    gallery: Sequence[GalleryItem] = (),
    thumb: int = 120,
    alpha: float = 0.5,
    colormap: str = "jet",
) -> str:
    """The HTML text of the synthesis report (see :func:`write_report`)."""
    metric = results.get("metric") or {}
    hib = bool(metric.get("higher_is_better", True))
    metric_name = str(metric.get("name", "metric"))
    model = results.get("model") or {}
    data = results.get("data") or {}
    best = results.get("best") or {}
    baselines: Mapping[str, Mapping[str, Any]] = results.get("baselines") or {}
    lam = results.get("lambda")
    lam_source = results.get("lambda_source")

    # --- header and verdict
    bits = []
    if model:
        name, layer = _esc(model.get("name", "?")), _esc(model.get("layer", "?"))
        bits.append(f"model <strong>{name}</strong> at layer <code>{layer}</code>")
    if data:
        bits.append(
            f"data {_esc(data.get('source', '?'))}: {_esc(_fmt(data.get('n_synthesis')))} synthesis + "
            f"{_esc(_fmt(data.get('n_test')))} held-out test images"
        )
    bits.append(f"metric <strong>{_esc(metric_name)}</strong> ({_direction(hib)})")
    css, headline, detail = _verdict(results)
    for name, b in baselines.items():
        if _same_expression(best.get("expression"), b.get("expression")):
            detail.append(f"The winning expression is {name}'s own expression.")
    if _finite(lam):
        src = {"best_baseline": "the best baseline's synthesis score", "user": "set by the user"}.get(
            str(lam_source), str(lam_source or "")
        )
        detail.append(f"Acceptance threshold λ = {_fmt(lam)}{f' ({src})' if src else ''}.")
    detail_html = "".join(f"<li>{_esc(d)}</li>" for d in detail)
    parts = [
        f"<h1>SyCAM: synthesized CAM for {_esc(metric_name)}</h1>",
        f'<p class="subtitle">{" · ".join(bits)}</p>',
        f'<section id="headline" class="verdict {css}"><p class="headline">{_esc(headline)}</p>'
        f"{f'<ul>{detail_html}</ul>' if detail_html else ''}</section>",
    ]

    # --- winner
    if best:
        stats = []
        if "size" in best:
            stats.append(f"size {_esc(best['size'])} (AST nodes)")
        for key, label in (
            ("candidates_enumerated", "enumerated"),
            ("candidates_scored", "scored"),
            ("equivalent_pruned", "pruned as equivalent"),
        ):
            if key in results:
                stats.append(f"{_esc(_fmt(results[key]))} candidates {label}")
        rejected = results.get("rejected") or {}
        if rejected:
            stats.append(
                "rejected: "
                + ", ".join(f"{_esc(_fmt(c))} {_esc(r)}" for r, c in sorted(rejected.items(), key=lambda kv: -kv[1]))
            )
        if "seconds" in results:
            stats.append(f"search took {_esc(_fmt_seconds(results['seconds']))}")
        latex = best.get("latex")
        parts.append(
            '<section id="winner"><h2>Winning expression</h2>'
            f'<pre class="expr"><code>{_esc(best.get("expression", ""))}</code></pre>'
            + (
                f'<p class="muted">LaTeX source:</p><pre class="latex"><code>{_esc(latex)}</code></pre>'
                if latex
                else ""
            )
            + (f'<p class="muted">{"; ".join(stats)}.</p>' if stats else "")
            + "</section>"
        )

    # --- score table: winner and every baseline, sorted by test score in the metric's direction
    rows: list[tuple[str, str | None, object, object, bool]] = (
        [("Synthesized", best.get("expression"), best.get("synthesis_score"), best.get("test_score"), True)]
        if best
        else []
    )
    rows += [
        (n, b.get("expression"), b.get("synthesis_score"), b.get("test_score"), False) for n, b in baselines.items()
    ]
    rows.sort(key=lambda r: (_sort_key(r[3], hib), _sort_key(r[2], hib)))
    arrow = _arrow(hib)
    table = _table(
        [
            _Col("Method"),
            _Col("Expression", code=True),
            _Col(f"Synthesis split {arrow}", higher_is_better=hib, title=_direction(hib)),
            _Col(f"Held-out test {arrow}", higher_is_better=hib, title=_direction(hib)),
        ],
        [[r[0], r[1], r[2], r[3]] for r in rows],
        row_classes=["synth" if r[4] else "" for r in rows],
    )
    parts.append(
        f'<section id="scores"><h2>Scores: {_esc(metric_name)} ({_direction(hib)})</h2>{table}'
        '<p class="legend">Sorted by held-out test score; the best value in each column is <strong>bold</strong>.</p>'
        "</section>"
    )

    # --- leaderboard
    board = results.get("leaderboard") or []
    if board:
        table = _table(
            [
                _Col("Rank", numeric=True),
                _Col("Expression", code=True),
                _Col("Size", numeric=True),
                _Col(f"Synthesis split {arrow}", higher_is_better=hib),
                _Col(f"Held-out test {arrow}", higher_is_better=hib),
            ],
            [
                [e.get("rank"), e.get("expression"), e.get("size"), e.get("synthesis_score"), e.get("test_score")]
                for e in board
            ],
        )
        parts.append(
            f'<section id="leaderboard"><h2>Leaderboard</h2>{table}'
            '<p class="legend">The top candidates on the synthesis split; — where a test score was not computed.</p>'
            "</section>"
        )

    # --- curve
    lam_label = "λ" + (
        " (best baseline)" if lam_source == "best_baseline" else " (user)" if lam_source == "user" else ""
    )
    parts.append(
        '<section id="curve"><h2>Search progress</h2>'
        + _curve_svg(results.get("history") or [], lam if _finite(lam) else None, hib, lam_label)
        + '<p class="legend">Best synthesis-split score found so far versus the number of candidates scored; '
        "the dashed line is the acceptance threshold λ.</p></section>"
    )

    # --- gallery
    titles = {n: str(b.get("expression", "")) for n, b in baselines.items()}
    titles[SYNTHESIZED] = str(best.get("expression", ""))
    parts.append(_gallery_html(gallery, thumb, alpha, colormap, titles))

    # --- details
    metric_info = {k: v for k, v in metric.items() if k != "name"}
    parts.append(_notes_and_details(results, {"Metric": metric_info, "Model": model, "Data": data}))
    return _page(f"SyCAM — {metric_name}", "\n".join(parts))


def write_report(
    path: str | Path,
    results: Mapping[str, Any],
    gallery: Sequence[GalleryItem] = (),
    thumb: int = 120,
    alpha: float = 0.5,
    colormap: str = "jet",
) -> Path:
    """Write the synthesis report for ``results`` (the ``results.json`` schema of ``sycam synthesize``)
    as one self-contained HTML file, atomically.

    The page shows an honest headline (does the synthesized expression beat the best baseline on the
    synthesis split and on the held-out test split, in the metric's direction), the winning expression
    and its LaTeX source, the score table (winner and every baseline on both splits, best per column
    marked), the leaderboard, the best-score-versus-candidates curve with λ, the gallery (``thumb``-pixel
    thumbnails, overlays with ``alpha`` and ``colormap``) and settings, timings, versions and notes.
    """
    return viz.write_atomic(path, render_report(results, gallery, thumb, alpha, colormap))


def render_evaluation_report(
    evaluation: Mapping[str, Any],
    gallery: Sequence[GalleryItem] = (),
    thumb: int = 120,
    alpha: float = 0.5,
    colormap: str = "jet",
) -> str:
    """The HTML text of the evaluation report (see :func:`write_evaluation_report`)."""
    metrics: Mapping[str, Mapping[str, Any]] = evaluation.get("metrics") or {}
    results: Mapping[str, Mapping[str, Any]] = evaluation.get("results") or {}
    names = list(metrics) or list(dict.fromkeys(m for r in results.values() for m in r))
    cols = [_Col("Method")] + [
        _Col(
            f"{m} {_arrow(bool(metrics.get(m, {}).get('higher_is_better', True)))}",
            higher_is_better=bool(metrics.get(m, {}).get("higher_is_better", True)),
            title=_direction(bool(metrics.get(m, {}).get("higher_is_better", True))),
        )
        for m in names
    ]
    rows = [[method, *(scores.get(m) for m in names)] for method, scores in results.items()]
    parts = [
        "<h1>CAM evaluation</h1>",
        f'<p class="subtitle">{len(results)} method{"s" if len(results) != 1 else ""} × {len(names)} '
        f"metric{'s' if len(names) != 1 else ''}"
        + "".join(
            f" · {_esc(k)} {_esc(v.get('name', v) if isinstance(v, dict) else v)}"
            for k, v in evaluation.items()
            if k in ("model", "data") and v
        )
        + "</p>",
        '<section id="scores"><h2>Scores</h2>'
        + (_table(cols, rows) if rows else '<p class="muted">No results.</p>')
        + '<p class="legend">↑ higher is better, ↓ lower is better; '
        "the best value per metric is <strong>bold</strong>.</p>"
        "</section>",
        _gallery_html(gallery, thumb, alpha, colormap),
    ]
    details = {k: v for k, v in evaluation.items() if k not in ("metrics", "results")}
    metric_params = {m: dict(info) for m, info in metrics.items()}
    parts.append(_notes_and_details(details, {"Metrics": metric_params}))
    return _page("sycam — evaluation", "\n".join(parts))


def write_evaluation_report(
    path: str | Path,
    evaluation: Mapping[str, Any],
    gallery: Sequence[GalleryItem] = (),
    thumb: int = 120,
    alpha: float = 0.5,
    colormap: str = "jet",
) -> Path:
    """Write the ``sycam evaluate`` page, atomically: the methods × metrics table with the best value per
    metric marked (respecting each metric's direction) and the gallery.

    ``evaluation`` is ``{"metrics": {name: {"higher_is_better": bool, ...}}, "results": {method_or_expression:
    {metric: float}}}``; optional ``notes``, ``settings``, ``versions``, ``timings`` are shown as details.
    """
    return viz.write_atomic(path, render_evaluation_report(evaluation, gallery, thumb, alpha, colormap))


def _safe_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("._-")[:80] or "sample"


def write_figures(
    out_dir: str | Path,
    gallery: Sequence[GalleryItem],
    alpha: float = 0.5,
    colormap: str = "jet",
    cell: int | None = None,
) -> list[Path]:
    """Write one comparison PNG per sample into ``out_dir`` (created if missing), atomically each.

    A figure is one :func:`sycam.viz.grid` row: the image with its ground truth, then each method's overlay
    (the synthesized one first) under its name (and the sample's score, when given), with ``id (label)`` as
    row label.
    Files are named ``NNN_<id>.png`` in gallery order; ``cell`` defaults to the image size, at most 224.
    Returns the paths written.
    """
    out_dir = Path(out_dir)
    methods = _methods_of(gallery)
    paths = []
    for i, item in enumerate(gallery):
        gt, overlays = _sample_images(item, methods, alpha, colormap)
        size = cell or min(224, max(gt.size))
        figure = viz.grid(
            [[gt, *overlays]],
            row_labels=[f"{item.id} ({item.label})"],
            col_labels=[
                "image + ground truth",
                *(
                    _display_name(m) + (f" {_fmt(item.scores[m])}" if _finite(item.scores.get(m)) else "")
                    for m in methods
                ),
            ],
            cell=size,
        )
        paths.append(viz.save_png(figure, out_dir / f"{i:03d}_{_safe_name(item.id)}.png"))
    return paths
