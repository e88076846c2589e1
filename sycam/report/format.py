"""Numbers, durations and names as the report prints them (escaping included)."""

from __future__ import annotations

import math
import re
from html import escape

__all__ = [
    "SYNTHESIZED",
    "arrow",
    "direction",
    "esc",
    "finite",
    "fmt",
    "fmt_seconds",
    "fmt_signed",
    "id_html",
]

SYNTHESIZED = "synthesized"
"""The key of the synthesized expression's heatmap in a gallery item's maps."""


def esc(x: object) -> str:
    """``str(x)`` escaped for HTML text and attribute values."""
    return escape(str(x), quote=True)


def finite(x: object) -> bool:
    """Whether ``x`` is a finite real number (``bool`` is not)."""
    return isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x)


def fmt(x: object) -> str:
    """A score for people: 4 decimals, or 4 significant digits when very large or very small;
    integers with thousands separators; ``None`` as an em dash. ``fmt(0.72519) == "0.7252"``."""
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


def fmt_signed(x: object) -> str:
    """Like :func:`fmt` with an explicit sign (``+0.0310``, ``−0.0120``): for differences."""
    if not finite(x):
        return fmt(x)
    text = fmt(abs(float(x)))  # type: ignore[arg-type]
    return ("+" if float(x) >= 0 else "\u2212") + text  # type: ignore[arg-type]


def fmt_ci(ci: object) -> str:
    """A 95% interval ``[lo, hi]`` of a difference, signed like :func:`fmt_signed` (``[−0.0577, +0.0036]``);
    missing bounds print as :func:`fmt` prints them.

    >>> fmt_ci([-0.05, 0.01]), fmt_ci(None)
    ('[\u22120.0500, +0.0100]', '[—, —]')
    """
    lo, hi = [*ci, None, None][:2] if isinstance(ci, list | tuple) else (None, None)
    return f"[{fmt_signed(lo)}, {fmt_signed(hi)}]"


def fmt_seconds(s: object) -> str:
    """A duration: ``12.50 s``, ``3 min 4 s``, ``1 h 2 min``."""
    if not finite(s):
        return fmt(s)
    sec = float(s)  # type: ignore[arg-type]
    if sec < 60:
        return f"{sec:.2f} s"
    m, rest = divmod(sec, 60)
    return f"{int(m)} min {rest:.0f} s" if m < 60 else f"{int(m // 60)} h {int(m % 60)} min"


def direction(higher_is_better: bool) -> str:
    """``"higher is better"`` or ``"lower is better"``."""
    return "higher is better" if higher_is_better else "lower is better"


def arrow(higher_is_better: bool) -> str:
    """``↑`` or ``↓``."""
    return "↑" if higher_is_better else "↓"


def cite(reference: object) -> str:
    """A reference ``"Authors, Title, Venue Year — URL"`` as HTML: the text escaped, an ``http(s)`` URL in it as
    a link; ``""`` for an empty reference.

    >>> cite("Wang et al., Score-CAM, 2020 — https://arxiv.org/abs/1910.01279")
    'Wang et al., Score-CAM, 2020 — <a href="https://arxiv.org/abs/1910.01279">https://arxiv.org/abs/1910.01279</a>'
    """
    text = str(reference or "")
    out, last = [], 0
    for m in re.finditer(r"https?://[^\s()<>\"']+", text):
        out += [esc(text[last : m.start()]), f'<a href="{esc(m.group(0))}">{esc(m.group(0))}</a>']
        last = m.end()
    return "".join([*out, esc(text[last:])])


def id_html(text: str) -> str:
    """A sample id, escaped, that wraps only between its tokens (after ``_``, ``-``, ``#``, ``/``, ``.``)
    and never inside one: ``espresso_on_grass_16`` may break after an underscore, not in ``espresso``."""
    parts = re.split(r"(?<=[_\-#/.])", str(text))
    return "<wbr>".join(esc(p) for p in parts if p)
