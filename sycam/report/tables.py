"""HTML tables: score tables that mark the best value per column, and key/value tables.

Every table sits in a ``div.scroll`` box that scrolls sideways on its own (the page never does), with
its first column (the method) sticky, so a phone shows which row a number belongs to.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from ..metrics.base import score_sort_key
from .format import esc, finite, fmt

__all__ = ["Col", "Raw", "best_rows", "kv_table", "table"]


@dataclass(frozen=True)
class Raw:
    """Trusted HTML (already escaped)."""

    html: str


@dataclass(frozen=True)
class Col:
    """A table column; ``higher_is_better`` set → numeric, best cell(s) marked."""

    header: str
    higher_is_better: bool | None = None
    numeric: bool = False
    code: bool = False
    title: str = ""


def best_rows(values: Sequence[object], higher_is_better: bool) -> set[int]:
    """Indices of the best finite values (all of them on ties); NaN and missing are never best."""
    keys = [score_sort_key(float(v), higher_is_better) if finite(v) else math.inf for v in values]  # type: ignore[arg-type]
    top = min(keys, default=math.inf)
    return set() if top == math.inf else {i for i, k in enumerate(keys) if k == top}


def _cell(value: object, col: Col, best: bool) -> str:
    if isinstance(value, Raw):
        inner = value.html
    elif col.code and value is not None:
        inner = f"<code>{esc(value)}</code>"
    elif col.numeric or col.higher_is_better is not None:
        inner = esc(fmt(value))
    else:
        inner = esc("—" if value is None else value)
    classes = []
    attrs = ""
    if col.numeric or col.higher_is_better is not None:
        classes.append("num")
        if isinstance(value, float):
            attrs = f' title="{esc(repr(value))}"'
    if best:
        classes.append("best")
        inner = f"<strong>{inner}</strong>"
    cls = f' class="{" ".join(classes)}"' if classes else ""
    return f"<td{cls}{attrs}>{inner}</td>"


def table(
    cols: Sequence[Col],
    rows: Sequence[Sequence[object]],
    row_classes: Sequence[str] | None = None,
    table_class: str = "scores",
    caption: str = "",
) -> str:
    """An HTML table in a sideways-scrolling box; in columns with a direction every cell holding the best
    finite value is marked ``best`` and bold."""
    best = [
        best_rows([r[j] for r in rows], c.higher_is_better) if c.higher_is_better is not None else set()
        for j, c in enumerate(cols)
    ]
    head = []
    for c in cols:
        title = f' title="{esc(c.title)}"' if c.title else ""
        cls = ' class="num"' if c.numeric or c.higher_is_better is not None else ""
        text = esc(c.header).replace("_", "_<wbr>")  # long metric names wrap between their words
        head.append(f'<th scope="col"{cls}{title}>{text}</th>')
    body = []
    for i, row in enumerate(rows):
        cls = f' class="{esc(row_classes[i])}"' if row_classes and row_classes[i] else ""
        cells = "".join(_cell(v, c, i in best[j]) for j, (v, c) in enumerate(zip(row, cols, strict=True)))
        body.append(f"<tr{cls}>{cells}</tr>")
    cap = f"<caption>{esc(caption)}</caption>" if caption else ""
    return (
        f'<div class="scroll"><table class="{table_class}">{cap}<thead><tr>{"".join(head)}</tr></thead>'
        f"<tbody>{''.join(body)}</tbody></table></div>"
    )


def kv_table(items: Mapping[str, object], empty: str = "none recorded") -> str:
    """Key/value pairs; nested values shown as compact JSON."""
    if not items:
        return f'<p class="muted">{esc(empty)}</p>'
    rows = []
    for key, value in items.items():
        if isinstance(value, dict | list | tuple):
            text = json.dumps(value, ensure_ascii=False, default=str)
        elif isinstance(value, bool) or value is None:
            text = json.dumps(value)
        else:
            text = fmt(value) if isinstance(value, float) else str(value)
        rows.append(f'<tr><th scope="row">{esc(key)}</th><td><code>{esc(text)}</code></td></tr>')
    return f'<div class="scroll"><table class="kv"><tbody>{"".join(rows)}</tbody></table></div>'


def folded(title: str, body: str) -> str:
    """A closed ``<details>`` block titled ``title`` around ``body`` (HTML)."""
    return f"<details><summary>{esc(title)}</summary>{body}</details>"


def run_details(notes: Sequence[str], blocks: Sequence[str]) -> str:
    """Both reports' "Run details" section: the run's notes (open, when there are any), then ``blocks``
    (:func:`folded` tables of what the run recorded)."""
    head = []
    if notes:
        items = "".join(f"<li>{esc(n)}</li>" for n in notes)
        head.append(f'<details open><summary>Notes ({len(notes)})</summary><ul class="notes">{items}</ul></details>')
    return '<section id="details"><h2>Run details</h2>' + "".join([*head, *blocks]) + "</section>"
