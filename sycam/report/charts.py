"""Inline SVG charts: the search curve, the Pareto scatter plot and the heatmap colour bar.

Axes use *nice* ticks — multiples of 1, 2 or 5 × 10^k — and each label is the exact decimal value of
its gridline (computed with :class:`decimal.Decimal`, never rounded from a float). Every chart is drawn
twice, for a wide and a narrow screen (CSS shows one), so its text stays about 12 px on a 390 px phone.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal, localcontext

import torch

from .. import viz
from .format import arrow, esc, finite, fmt

__all__ = ["Axis", "colorbar_html", "curve_svg", "forest_svg", "nice_ticks", "paired_scatter_svg", "scatter_svg"]


@dataclass(frozen=True)
class Axis:
    """A nice axis: ``ticks`` from ``lo`` to ``hi`` (both ticks) every ``step``; ``labels[i]`` is the exact
    decimal text of ``ticks[i]``."""

    lo: float
    hi: float
    step: float
    ticks: tuple[float, ...]
    labels: tuple[str, ...]


def nice_ticks(lo: float, hi: float, count: int = 5) -> Axis:
    """An axis covering ``[lo, hi]`` with about ``count`` intervals of a nice step (1, 2 or 5 × 10^k).

    The axis ends on ticks (``lo`` rounded down, ``hi`` up, to the step), so the plot's edges are
    labelled too. ``nice_ticks(0.725, 0.825)`` → ticks 0.72, 0.74, …, 0.84 labelled ``"0.72"`` …
    ``"0.84"``: each label is exactly its gridline's value.
    """
    if not (math.isfinite(lo) and math.isfinite(hi)):
        lo, hi = 0.0, 1.0
    if hi < lo:
        lo, hi = hi, lo
    if hi == lo:
        pad = abs(hi) * 0.05 or 0.5
        lo, hi = lo - pad, hi + pad
    raw = (hi - lo) / max(1, count)
    k = math.floor(math.log10(raw))
    mantissa = next(m for m in (1, 2, 5, 10) if m * 10.0**k >= raw * (1 - 1e-9))
    if mantissa == 10:
        mantissa, k = 1, k + 1
    step_d = Decimal(mantissa) * Decimal(10) ** k
    step = float(step_d)
    with localcontext() as ctx:  # exact: the bounds' binary values divided by the decimal step
        ctx.prec = 60
        slack = Decimal("1e-9")  # in steps: float noise in lo or hi adds no tick
        first = int(((Decimal(lo) / step_d) + slack).to_integral_value(rounding=ROUND_FLOOR))
        last = int(((Decimal(hi) / step_d) - slack).to_integral_value(rounding=ROUND_CEILING))
    if last == first:
        last += 1
    values = [Decimal(i) * step_d for i in range(first, last + 1)]
    decimals = max(0, -k)
    labels = tuple(f"{v:.{decimals}f}" if decimals else f"{int(v):,}" for v in values)
    ticks = tuple(float(v) for v in values)
    return Axis(ticks[0], ticks[-1], step, ticks, labels)


@dataclass(frozen=True)
class _Frame:
    width: int
    height: int
    x: Axis
    y: Axis
    left: int = 56  # margins in px: room for the y tick labels and the axis titles
    right: int = 28
    top: int = 12
    bottom: int = 44

    @property
    def pw(self) -> int:
        return self.width - self.left - self.right

    @property
    def ph(self) -> int:
        return self.height - self.top - self.bottom

    def sx(self, v: float) -> float:
        return self.left + (v - self.x.lo) / (self.x.hi - self.x.lo) * self.pw

    def sy(self, v: float) -> float:
        return self.top + (1.0 - (v - self.y.lo) / (self.y.hi - self.y.lo)) * self.ph


def _axes(f: _Frame, xlabel: str, ylabel: str, aria: str, cls: str) -> list[str]:
    parts = [
        f'<svg class="chart {cls}" viewBox="0 0 {f.width} {f.height}" width="{f.width}" height="{f.height}" '
        f'role="img" aria-label="{esc(aria)}">',
        f'<rect x="{f.left}" y="{f.top}" width="{f.pw}" height="{f.ph}" class="plot-bg"/>',
    ]
    for t, label in zip(f.y.ticks, f.y.labels, strict=True):
        y = f.sy(t)
        parts.append(f'<line x1="{f.left}" x2="{f.left + f.pw}" y1="{y:.1f}" y2="{y:.1f}" class="gridline"/>')
        parts.append(f'<text x="{f.left - 6}" y="{y + 4:.1f}" class="tick" text-anchor="end">{label}</text>')
    for t, label in zip(f.x.ticks, f.x.labels, strict=True):
        x = f.sx(t)
        parts.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{f.top}" y2="{f.top + f.ph}" class="gridline"/>')
        parts.append(f'<text x="{x:.1f}" y="{f.top + f.ph + 17}" class="tick" text-anchor="middle">{label}</text>')
    parts.append(f'<line x1="{f.left}" x2="{f.left}" y1="{f.top}" y2="{f.top + f.ph}" class="axis"/>')
    parts.append(f'<line x1="{f.left}" x2="{f.left + f.pw}" y1="{f.top + f.ph}" y2="{f.top + f.ph}" class="axis"/>')
    parts.append(
        f'<text x="{f.left + f.pw / 2:.1f}" y="{f.height - 8}" class="axis-label" text-anchor="middle">'
        f"{esc(xlabel)}</text>"
    )
    parts.append(
        f'<text transform="translate(14 {f.top + f.ph / 2:.1f}) rotate(-90)" class="axis-label" '
        f'text-anchor="middle">{esc(ylabel)}</text>'
    )
    return parts


def _both(draw: Callable[[int, int, int, int], str]) -> str:
    """The chart for wide screens (720 × 320, more ticks) and for phones (360 × 280)."""
    return f'<div class="chart-box">{draw(720, 320, 7, 5)}{draw(360, 280, 4, 4)}</div>'


def curve_svg(
    history: Sequence[Sequence[float | None]],
    lam: float | None,
    higher_is_better: bool,
    lambda_label: str = "λ",
) -> str:
    """Best synthesis score versus candidates scored: a step line through the history entries (a dot at
    each, up to 200), nice ticks, and a dashed horizontal line at λ."""
    points = [(float(p[0]), float(p[1])) for p in history if len(p) >= 2 and finite(p[0]) and finite(p[1])]
    if not points:
        return '<p class="muted">No search history was recorded.</p>'
    xs = [p[0] for p in points]
    ys = [p[1] for p in points] + ([float(lam)] if lam is not None and finite(lam) else [])

    def draw(width: int, height: int, xcount: int, ycount: int) -> str:
        cls = "wide" if width > 400 else "narrow"
        f = _Frame(width, height, nice_ticks(min(0.0, min(xs)), max(xs), xcount), nice_ticks(min(ys), max(ys), ycount))
        parts = _axes(
            f,
            "candidates scored",
            f"best synthesis score ({arrow(higher_is_better)} better)",
            "best synthesis score versus candidates scored",
            cls,
        )
        if lam is not None and finite(lam):
            y = f.sy(float(lam))
            parts.append(
                f'<line x1="{f.left}" x2="{f.left + f.pw}" y1="{y:.1f}" y2="{y:.1f}" class="lambda" '
                'stroke-dasharray="6 4"/>'
            )
            # on the side of the line the best-so-far curve moves away from (below when it rises), if it fits
            below, above = y + 16, y - 6
            if higher_is_better:
                label_y = below if below + 4 < f.top + f.ph else above
            else:
                label_y = above if above - 12 > f.top else below
            parts.append(
                f'<text x="{f.left + f.pw - 6}" y="{label_y:.1f}" class="lambda-label" text-anchor="end">'
                f"{esc(lambda_label)} = {esc(fmt(lam))}</text>"
            )
        # a step line: the best score holds until the next improvement
        steps = [points[0]]
        for (_, y0), (x1, y1) in itertools.pairwise(points):
            steps += [(x1, y0), (x1, y1)]
        coords = " ".join(f"{f.sx(x):.1f},{f.sy(y):.1f}" for x, y in steps)
        parts.append(f'<polyline class="best-curve" fill="none" points="{coords}"/>')
        if len(points) <= 200:
            parts.extend(f'<circle cx="{f.sx(x):.1f}" cy="{f.sy(y):.1f}" r="3" class="best-point"/>' for x, y in points)
        parts.append("</svg>")
        return "".join(parts)

    return _both(draw)


def scatter_svg(
    points: Sequence[tuple[float, float, str, bool]],
    xlabel: str,
    ylabel: str,
) -> str:
    """A scatter plot of ``(x, y, label, highlighted)`` points (the Pareto front of two metrics): each
    point numbered with its ``label``; highlighted points drawn larger."""
    pts = [p for p in points if finite(p[0]) and finite(p[1])]
    if not pts:
        return '<p class="muted">No points to plot.</p>'

    def draw(width: int, height: int, xcount: int, ycount: int) -> str:
        cls = "wide" if width > 400 else "narrow"
        f = _Frame(width, height, nice_ticks(min(p[0] for p in pts), max(p[0] for p in pts), xcount),
                   nice_ticks(min(p[1] for p in pts), max(p[1] for p in pts), ycount))
        parts = _axes(f, xlabel, ylabel, f"{ylabel} versus {xlabel}", cls)
        for x, y, label, hi in pts:
            cx, cy = f.sx(x), f.sy(y)
            parts.append(
                f'<circle cx="{cx:.1f}" cy="{cy:.1f}" r="{6 if hi else 4}" '
                f'class="{"pareto-best" if hi else "pareto-point"}"/>'
            )
            parts.append(f'<text x="{cx + 8:.1f}" y="{cy - 6:.1f}" class="point-label">{esc(label)}</text>')
        parts.append("</svg>")
        return "".join(parts)

    return _both(draw)


@dataclass(frozen=True)
class ForestRow:
    """One interval of a forest plot: ``label`` (the method and split), the difference and its 95 % CI
    (``lo``/``hi`` None: no interval), and the verdict ("better", "worse", "not distinguishable")."""

    label: str
    diff: float | None
    lo: float | None
    hi: float | None
    verdict: str


_CI_CLASS = {"better": "better", "worse": "worse"}


def forest_svg(rows: Sequence[ForestRow], xlabel: str) -> str:
    """A forest plot: one row per :class:`ForestRow`, its interval as a horizontal line coloured by its verdict
    (green better, red worse, grey not distinguishable), a dot at the difference, a dashed line at 0. Drawn as one
    SVG whose height grows with the rows (22 px each), wide and narrow like the other charts."""
    pts = [r for r in rows if finite(r.diff)]
    if not pts:
        return '<p class="muted">No differences to plot.</p>'
    values = [0.0] + [float(v) for r in pts for v in (r.diff, r.lo, r.hi) if finite(v)]
    row_h = 22

    def draw(width: int, height: int, xcount: int, ycount: int) -> str:
        del height, ycount
        cls = "wide" if width > 400 else "narrow"
        left = 200 if width > 400 else 120
        h = 12 + 44 + row_h * len(pts)
        f = _Frame(width, h, nice_ticks(min(values), max(values), xcount), Axis(0.0, float(len(pts)), 1.0, (), ()),
                   left=left)
        parts = _axes(f, xlabel, "", f"forest plot: {xlabel}", cls)
        parts.append(f'<line x1="{f.sx(0.0):.1f}" x2="{f.sx(0.0):.1f}" y1="{f.top}" y2="{f.top + f.ph}" '
                     'class="zero"/>')
        for i, r in enumerate(pts):
            y = f.top + row_h * (i + 0.5)
            room = (left - 10) // 7  # characters of about 7 px at 12 px that fit left of the plot
            label = r.label if len(r.label) <= room else r.label[:room - 1] + "…"
            parts.append(f'<text x="{f.left - 6}" y="{y + 4:.1f}" class="row-label" text-anchor="end">'
                         f"{esc(label)}</text>")
            if finite(r.lo) and finite(r.hi):
                parts.append(f'<line x1="{f.sx(float(r.lo)):.1f}" x2="{f.sx(float(r.hi)):.1f}" y1="{y:.1f}" '
                             f'y2="{y:.1f}" class="ci {_CI_CLASS.get(r.verdict, "nd")}">'
                             f"<title>{esc(r.label)}: {esc(fmt(r.diff))} [{esc(fmt(r.lo))}, {esc(fmt(r.hi))}], "
                             f"{esc(r.verdict)}</title></line>")
            d = float(r.diff)  # type: ignore[arg-type]
            parts.append(f'<circle cx="{f.sx(d):.1f}" cy="{y:.1f}" r="3.5" class="ci-dot"/>')
        parts.append("</svg>")
        return "".join(parts)

    return _both(draw)


def paired_scatter_svg(xs: Sequence[float], ys: Sequence[float], xlabel: str, ylabel: str) -> str:
    """Per-image scores of two methods, one point per image (``xs[i]``, ``ys[i]``), on equal axes with the
    diagonal y = x dashed: points above it are images where the y method scores higher."""
    pts = [(float(x), float(y)) for x, y in zip(xs, ys, strict=True) if finite(x) and finite(y)]
    if not pts:
        return '<p class="muted">No per-image scores to plot.</p>'
    lo = min(min(p) for p in pts)
    hi = max(max(p) for p in pts)

    def draw(width: int, height: int, xcount: int, ycount: int) -> str:
        cls = "wide" if width > 400 else "narrow"
        side = min(width, height)
        f = _Frame(side + 84, side, nice_ticks(lo, hi, xcount), nice_ticks(lo, hi, ycount))
        parts = _axes(f, xlabel, ylabel, f"per image: {ylabel} versus {xlabel}", f"{cls} square")
        a, b = max(f.x.lo, f.y.lo), min(f.x.hi, f.y.hi)
        parts.append(f'<line x1="{f.sx(a):.1f}" y1="{f.sy(a):.1f}" x2="{f.sx(b):.1f}" y2="{f.sy(b):.1f}" '
                     'class="diagonal"/>')
        parts.extend(f'<circle cx="{f.sx(x):.1f}" cy="{f.sy(y):.1f}" r="3.5" class="pair-point"/>' for x, y in pts)
        parts.append("</svg>")
        return "".join(parts)

    return _both(draw)


def colorbar_html(colormap: str = "jet") -> str:
    """A horizontal colour bar of ``colormap`` (:data:`sycam.viz.COLORMAPS`) from 0 (left) to 1 (right), as
    a CSS gradient (no image, no reference), with 0, 0.5 and 1 labelled."""
    n = 16
    colours = viz.colormap(torch.linspace(0.0, 1.0, n + 1), colormap).tolist()
    stops = ", ".join(f"rgb({r},{g},{b}) {100 * i / n:.2f}%" for i, (r, g, b) in enumerate(colours))
    return (
        f'<figure class="colorbar" aria-label="colour bar: heatmap value from 0 to 1 ({esc(colormap)})">'
        f'<div class="colorbar-ramp" style="background: linear-gradient(to right, {stops})"></div>'
        "<figcaption><span>0</span><span>0.5</span><span>1</span></figcaption></figure>"
    )
