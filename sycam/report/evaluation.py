"""The ``sycam evaluate`` page: methods × metrics on one image set, with a gallery."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TypedDict, cast

from .._io import write_atomic
from .format import arrow, direction, esc, finite, fmt, fmt_ci, fmt_signed
from .gallery import GalleryItem, attach_scores, gallery_html
from .names import method_names
from .page import page
from .tables import Col, Raw, best_rows, folded, kv_table, run_details, table

__all__ = ["EvaluationResults", "render_evaluation_report", "write_evaluation_report"]


class EvaluationResults(TypedDict, total=False):
    """``evaluation.json`` as this page reads it: methods × metrics on one image set (``sycam evaluate``).

    ``per_image[split][method][metric]`` lists per-image scores in ``ids[split]`` order (split ``"all"``);
    ``degenerate[method][split]`` counts degenerate maps; ``settings["score_top_k"]`` names a Score-CAM cap.
    """

    metrics: dict[str, dict[str, Any]]
    results: dict[str, dict[str, float]]
    reference: str
    """the method the intervals are against (``--reference``)"""
    grouping: str
    """which clusters the bootstrap resampled, e.g. ``photo (5 groups)``"""
    intervals: dict[str, dict[str, dict[str, Any]]]
    """method → metric → {diff, ci95, verdict}: method − reference (sycam.stats.difference)"""
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
    diffs: Mapping[str, Mapping[str, Mapping[str, Any]]] = ev.get("intervals") or {}
    reference = ev.get("reference")
    if diffs and reference in results:
        cols = [Col("Method")] + [Col(f"{m} {arrow(hib[m])}", numeric=True, title=direction(hib[m])) for m in names]
        rows: list[list[object]] = [
            [display[k], *(_interval_cell(k, m, scores.get(m), results, diffs, str(reference), hib[m]) for m in names)]
            for k, scores in results.items()
        ]
    else:
        cols = [Col("Method")] + [
            Col(f"{m} {arrow(hib[m])}", higher_is_better=hib[m], title=direction(hib[m])) for m in names
        ]
        rows = [[display[k], *(scores.get(m) for m in names)] for k, scores in results.items()]
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
    if diffs and reference in results:
        legend = (
            f"↑ higher is better, ↓ lower is better. Every score is the mean over all images; under it, Δ is the "
            f"difference from the reference <strong>{esc(display.get(str(reference), reference))}</strong> with its "
            f"95% interval (paired bootstrap resampling {esc(ev.get('grouping', 'images'))}). The best value per "
            "metric is <strong>bold</strong> only when its interval against the reference excludes 0 (for the "
            "reference itself: when every other method is distinguishably worse); a degenerate map scores the "
            "metric's worst value on its image."
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
    parts.append(_evidence(ev, names, hib, display))
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

    parts.append(_details(ev, metrics, model, data))
    return page("sycam — evaluation", "\n".join(parts))


def _details(ev: Mapping[str, Any], metrics: Mapping[str, Mapping[str, Any]], model: Mapping[str, Any],
             data: Mapping[str, Any]) -> str:
    """The run details section: notes, metrics, model, data, timings, settings and versions, each folded."""
    blocks = []
    if metrics:
        blocks.append(folded("Metrics", kv_table({m: dict(i) for m, i in metrics.items()})))
    blocks += [folded(title, kv_table(mapping)) for title, mapping in (("Model", model), ("Data", data)) if mapping]
    timings = dict(ev.get("timings") or {})
    if not timings and ev.get("seconds") is not None:
        timings = {"scoring": ev["seconds"]}
    if timings:
        blocks.append(folded("Timings", kv_table(timings)))
    for key, title in (("settings", "Settings"), ("versions", "Versions")):
        blocks.append(folded(title, kv_table(ev.get(key) or {}, "not recorded in this evaluation.json")))
    return run_details([str(x) for x in ev.get("notes") or []], blocks)


def _interval_cell(key: str, metric: str, value: object, results: Mapping[str, Mapping[str, Any]],
                   diffs: Mapping[str, Mapping[str, Mapping[str, Any]]], reference: str, hib: bool) -> Raw:
    """A score with its difference from the reference and interval under it; bold only where the best value of
    the column is distinguishable from the reference."""
    values = [results[k].get(metric) for k in results]
    best = {list(results)[i] for i in best_rows(values, hib)}
    if key == reference:
        others = [diffs.get(k, {}).get(metric, {}) for k in results if k != reference]
        sure = bool(others) and all(e.get("verdict") == "worse" for e in others)
        sub = "reference"
    else:
        e = diffs.get(key, {}).get(metric) or {}
        sure = e.get("verdict") == "better"
        sub = f"Δ {fmt_signed(e.get('diff'))} {fmt_ci(e.get('ci95'))}"
    text = esc(fmt(value))
    if key in best and sure:
        text = f"<strong>{text}</strong>"
    return Raw(f'{text}<br><span class="muted ci-text">{esc(sub)}</span>')


def _evidence(ev: Mapping[str, Any], names: Sequence[str], hib: Mapping[str, bool], display: Mapping[str, str]) -> str:
    """Forest plot (each method − the reference, an interval per metric) and the per-image scatter of the best
    other method against the reference on the first metric; empty without intervals."""
    from .charts import ForestRow, forest_svg, paired_scatter_svg

    diffs: Mapping[str, Mapping[str, Mapping[str, Any]]] = ev.get("intervals") or {}
    reference = str(ev.get("reference") or "")
    results: Mapping[str, Mapping[str, Any]] = ev.get("results") or {}
    if not diffs or reference not in results or not names:
        return ""
    ref_name = display.get(reference, reference)
    forest = ""
    for m in names:  # one plot per metric: their units differ
        rows = []
        for k, per in diffs.items():
            e = per.get(m)
            if e:
                ci = e.get("ci95") or [None, None]
                rows.append(ForestRow(display.get(k, k), e.get("diff"), ci[0], ci[1], str(e.get("verdict"))))
        if rows:
            forest += (f"<h3>{esc(m)} {arrow(hib[m])}: method − {esc(ref_name)}</h3>"
                       + forest_svg(rows, f"method − {ref_name} in {m} ({arrow(hib[m])} better)"))
    first = names[0]
    others = [k for k in results if k != reference]
    scatter = ""
    per_all = ((ev.get("per_image") or {}).get("all") or {})
    if others and per_all:
        best = others[0]
        for k in others[1:]:
            a, b = results[k].get(first), results[best].get(first)
            if finite(a) and (not finite(b) or (a > b if hib[first] else a < b)):  # type: ignore[operator]
                best = k
        xs = (per_all.get(reference) or {}).get(first) or []
        ys = (per_all.get(best) or {}).get(first) or []
        if xs and ys and len(xs) == len(ys):
            scatter = (f"<h3>Per image: {esc(display.get(best, best))} vs {esc(ref_name)} ({esc(first)})</h3>"
                       + paired_scatter_svg(xs, ys, f"{ref_name} ({first})", f"{display.get(best, best)} ({first})")
                       + '<p class="legend">One point per image; above the dashed diagonal the method scores higher '
                       f"({'better' if hib[first] else 'worse: lower is better'}).</p>")
    return (
        '<section id="evidence"><h2>Differences from the reference</h2>'
        f'<p class="legend">Each line is the 95% interval of the mean per-image difference from {esc(ref_name)} '
        f"(paired bootstrap resampling {esc(ev.get('grouping', 'images'))}); green: better, red: worse, grey: "
        f"not distinguishable.</p>{forest}{scatter}</section>"
    )


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
