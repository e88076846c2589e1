"""The ``sycam evaluate`` page: methods × metrics on one image set, with a gallery."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TypedDict, cast

from .._io import write_atomic
from .format import arrow, direction, esc, fmt
from .gallery import GalleryItem, attach_scores, gallery_html
from .names import method_names
from .page import page
from .tables import Col, kv_table, table

__all__ = ["EvaluationResults", "render_evaluation_report", "write_evaluation_report"]


class EvaluationResults(TypedDict, total=False):
    """``evaluation.json`` as this page reads it: methods × metrics on one image set (``sycam evaluate``).

    ``per_image[split][method][metric]`` lists per-image scores in ``ids[split]`` order (split ``"all"``);
    ``degenerate[method][split]`` counts degenerate maps; ``settings["score_top_k"]`` names a Score-CAM cap.
    """

    metrics: dict[str, dict[str, Any]]
    results: dict[str, dict[str, float]]
    methods: dict[str, str]
    model: dict[str, Any]
    data: dict[str, Any]
    per_image: dict[str, dict[str, dict[str, list[float]]]]
    ids: dict[str, list[str]]
    degenerate: dict[str, dict[str, int]]
    seconds: float
    timings: dict[str, float]
    settings: dict[str, Any]
    versions: dict[str, str]
    notes: list[str]


def render_evaluation_report(
    evaluation: EvaluationResults | Mapping[str, Any],
    gallery: Sequence[GalleryItem] = (),
    thumb: int = 120,
    alpha: float = 0.5,
    colormap: str = "jet",
) -> str:
    """The HTML text of the evaluation report (see :func:`write_evaluation_report`)."""
    ev = cast(Mapping[str, Any], evaluation)
    metrics: Mapping[str, Mapping[str, Any]] = ev.get("metrics") or {}
    results: Mapping[str, Mapping[str, Any]] = ev.get("results") or {}
    degenerate: Mapping[str, Mapping[str, int]] = ev.get("degenerate") or {}
    names = list(metrics) or list(dict.fromkeys(m for r in results.values() for m in r))
    keys = list(dict.fromkeys([*results, *(k for item in gallery for k in item.maps)]))
    display = method_names(keys, ev)
    hib = {m: bool(metrics.get(m, {}).get("higher_is_better", True)) for m in names}
    cols = [Col("Method")] + [
        Col(f"{m} {arrow(hib[m])}", higher_is_better=hib[m], title=direction(hib[m])) for m in names
    ]
    rows: list[list[object]] = [[display[k], *(scores.get(m) for m in names)] for k, scores in results.items()]
    if degenerate:
        cols.append(Col("Degenerate maps", numeric=True, title="images whose map is constant, all zero or non-finite"))
        for row, key in zip(rows, results, strict=True):
            counts = degenerate.get(key) or {}
            row.append(sum(int(v) for v in counts.values()) if counts else None)

    model = ev.get("model") or {}
    data = ev.get("data") or {}
    bits = [
        f"{len(results)} method{'s' if len(results) != 1 else ''} × {len(names)} metric{'s' if len(names) != 1 else ''}"
    ]
    if model:
        bits.append(
            f"model <strong>{esc(model.get('name', '?'))}</strong> at layer <code>{esc(model.get('layer', '?'))}</code>"
        )
    if data:
        n = data.get("n")
        bits.append(f"data {esc(data.get('source', '?'))}" + (f": {esc(fmt(n))} images" if n is not None else ""))
    legend = (
        "↑ higher is better, ↓ lower is better; the best value per metric is <strong>bold</strong>. Every score is "
        "the mean over all images; a degenerate map scores the metric's worst value on its image."
    )
    top_k = (ev.get("settings") or {}).get("score_top_k")
    if top_k:
        legend += (
            f" Score-CAM is approximated: its channel scores S were computed for the top-{esc(top_k)} "
            "channels only (<code>--score-top-k</code>)."
        )
    parts = [
        "<h1>CAM evaluation</h1>",
        f'<p class="subtitle">{" · ".join(bits)}</p>',
        '<section id="scores"><h2>Scores on all images</h2>'
        + (table(cols, rows) if rows else '<p class="muted">No results.</p>')
        + f'<p class="legend">{legend}</p></section>',
    ]
    per_image = ev.get("per_image")
    if per_image and gallery and not any(s in per_image for s in {i.split for i in gallery}):
        per_image = {split: per_image for split in {i.split for i in gallery}}  # not split: one set of images
    aliases = {k: [n for n, v in display.items() if v == display[k] and n != k] for k in keys}
    attach_scores(gallery, per_image, ev.get("ids") if isinstance(ev.get("ids"), Mapping) else None, aliases)
    parts.append(
        gallery_html(
            gallery,
            thumb,
            alpha,
            colormap,
            {k: k for k in keys},
            display,
            "Under each heatmap: its score on that image for each metric.",
        )
    )

    blocks = []
    notes = [str(x) for x in ev.get("notes") or []]
    if notes:
        blocks.append(
            f'<details open><summary>Notes ({len(notes)})</summary><ul class="notes">'
            + "".join(f"<li>{esc(x)}</li>" for x in notes)
            + "</ul></details>"
        )
    if metrics:
        blocks.append(
            f"<details><summary>Metrics</summary>{kv_table({m: dict(i) for m, i in metrics.items()})}</details>"
        )
    for title, mapping in (("Model", model), ("Data", data)):
        if mapping:
            blocks.append(f"<details><summary>{title}</summary>{kv_table(mapping)}</details>")
    timings = dict(ev.get("timings") or {})
    if not timings and ev.get("seconds") is not None:
        timings = {"scoring": ev["seconds"]}
    if timings:
        blocks.append(f"<details><summary>Timings</summary>{kv_table(timings)}</details>")
    for key, title in (("settings", "Settings"), ("versions", "Versions")):
        blocks.append(
            f"<details><summary>{title}</summary>"
            f"{kv_table(ev.get(key) or {}, 'not recorded in this evaluation.json')}</details>"
        )
    parts.append('<section id="details"><h2>Run details</h2>' + "".join(blocks) + "</section>")
    return page("sycam — evaluation", "\n".join(parts))


def write_evaluation_report(
    path: str | Path,
    evaluation: EvaluationResults | Mapping[str, Any],
    gallery: Sequence[GalleryItem] = (),
    thumb: int = 120,
    alpha: float = 0.5,
    colormap: str = "jet",
) -> Path:
    """Write the ``sycam evaluate`` page, atomically: the methods × metrics table with the best value per
    metric marked (in each metric's direction), degenerate-map counts, the gallery (display names as in the
    table, per-image scores) and the settings and versions recorded.

    ``evaluation`` is ``{"metrics": {name: {"higher_is_better": bool, ...}}, "results": {method:
    {metric: float}}}``; optional ``methods`` (name → expression), ``per_image``, ``ids``, ``degenerate``,
    ``notes``, ``settings``, ``versions``, ``timings`` are shown too.
    """
    return write_atomic(path, render_evaluation_report(evaluation, gallery, thumb, alpha, colormap))
