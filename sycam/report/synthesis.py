"""The ``sycam synthesize`` page: verdict, winner, evidence, search, gallery and run details.

It renders from the typed ``results.json`` schema (:class:`sycam.results.SynthesisResults`); every section
beyond the basic ones appears only when its key is present, so results written by older versions still
render.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, cast

from .._io import write_atomic
from ..results import SynthesisResults
from .format import SYNTHESIZED, direction, esc, finite, fmt, fmt_seconds
from .gallery import GalleryItem, attach_scores, gallery_html
from .page import page
from .synthesis_tables import TableSections
from .synthesis_verdict import VerdictSections
from .synthesis_view import SPLITS, comparison_verdict
from .tables import Col, Raw, folded, kv_table, run_details, table

__all__ = ["SPLITS", "comparison_verdict", "counter_sum", "render_report", "write_report"]

COUNTER_PARTS: tuple[tuple[str, str], ...] = (
    ("candidates_scored", "scored"),
    ("equivalent_pruned", "pruned: heatmap equal to an earlier candidate's"),
    ("rejected_total", "rejected by the correctness oracle"),
    ("subexpressions_pruned", "merged in the bank (a sub-expression equal to an earlier one)"),
    ("form_skipped", "skipped: wrong form for a heatmap"),
    ("duplicates_of_seeds", "duplicates of a seeded baseline"),
    ("unscored", "not scored: the budget ran out first"),
    ("raced_out", "dropped by racing: could no longer enter the leaderboard"),
)
"""The parts ``candidates_enumerated`` is split into: (results key, what it counts)."""

def counter_sum(results: Mapping[str, Any]) -> tuple[int | None, list[tuple[str, int]]]:
    """``(candidates_enumerated, [(what, count), ...])``: the parts the enumerated candidates split into.
    Without ``rejected_total``, the sum of ``rejected`` stands in for it."""
    parts: list[tuple[str, int]] = []
    for key, label in COUNTER_PARTS:
        value = results.get(key)
        if value is None and key == "rejected_total" and isinstance(results.get("rejected"), Mapping):
            value = sum(int(v) for v in results["rejected"].values())
        if isinstance(value, int) and not isinstance(value, bool):
            parts.append((label, value))
    total = results.get("candidates_enumerated")
    return (total if isinstance(total, int) else None), parts


class _Synthesis(VerdictSections, TableSections):
    """The page's pieces, each from its part of the results: the header and verdict
    (:class:`~sycam.report.synthesis_verdict.VerdictSections`), the winner and tables
    (:class:`~sycam.report.synthesis_tables.TableSections`), and here the search, the gallery and the run's
    details."""

    # ------------------------------------------------------------------------------------------- search

    def search(self) -> str:
        """Stop reason, counters that add up, rejection reasons, time, and the best-score curve."""
        from .charts import curve_svg

        lam = self.r.get("lambda")
        src = self.r.get("lambda_source")
        label = "λ" + (" (best baseline)" if src == "best_baseline" else " (user)" if src == "user" else "")
        facts = []
        stop = self.r.get("stopped_because")
        if stop:
            facts.append(f"<li>Stopped because: <strong>{esc(stop)}</strong>.</li>")
        if self.r.get("incomplete"):
            facts.append("<li><strong>Incomplete:</strong> the search was cut short before its budget was spent.</li>")
        elif "incomplete" in self.r:
            whole = "exhausted" in str(stop or "")
            facts.append(
                "<li>"
                + (
                    "The whole search space was scored."
                    if whole
                    else "The search ran to its budget; nothing cut it short."
                )
                + "</li>"
            )
        total, parts = counter_sum(self.r)
        counters = ""
        if total is not None and parts:
            added = sum(v for _, v in parts)
            check = (
                '<span class="ok">✓ the parts add up to the candidates enumerated</span>'
                if added == total
                else f'<span class="bad">✗ {fmt(total - added)} enumerated candidates are not accounted for</span>'
            )
            rows = "".join(f'<tr><td>{esc(label_)}</td><td class="num">{fmt(v)}</td></tr>' for label_, v in parts)
            counters = (
                '<div class="scroll"><table class="scores counters"><thead><tr><th scope="col">Candidates</th>'
                f'<th scope="col" class="num">Count</th></tr></thead><tbody>{rows}</tbody>'
                f'<tfoot><tr><td>enumerated (the sum)</td><td class="num">{fmt(total)}</td></tr></tfoot></table></div>'
                f'<p class="legend">{check}.</p>'
            )
        failed, unchecked = self.r.get("constraint_failed"), self.r.get("constraint_unchecked")
        if isinstance(failed, int) or isinstance(unchecked, int):
            facts.append(
                "<li>Of the scored candidates, "
                + " and ".join(
                    t
                    for t in (
                        f"{fmt(failed)} failed a constraint" if isinstance(failed, int) else "",
                        f"{fmt(unchecked)} were not checked against the constraints (they could not enter the "
                        "leaderboard or the front)"
                        if isinstance(unchecked, int)
                        else "",
                    )
                    if t
                )
                + ".</li>"
            )
        rejected = self.r.get("rejected") or {}
        if rejected:
            facts.append(
                "<li>Rejected, by reason: "
                + ", ".join(f"{esc(fmt(c))} {esc(r)}" for r, c in sorted(rejected.items(), key=lambda kv: -kv[1]))
                + ".</li>"
            )
        timings = cast(Mapping[str, float], self.r.get("timings") or {})  # phase → seconds
        if "search" in timings:
            facts.append(
                f"<li>The search loop took {esc(fmt_seconds(timings['search']))}"
                + (f" of {esc(fmt_seconds(sum(timings.values())))} in all (see Timings)." if len(timings) > 1 else ".")
                + "</li>"
            )
        return (
            '<section id="curve"><h2>Search</h2>'
            + (f'<ul class="facts">{"".join(facts)}</ul>' if facts else "")
            + counters
            + curve_svg(self.r.get("history") or [], lam if finite(lam) else None, self.hib, label)
            + '<p class="legend">Best synthesis-split score found so far versus the number of candidates scored; '
            "the dashed line is the acceptance threshold λ.</p></section>"
        )

    def splits_html(self) -> str:
        """Split sizes and what the splits share."""
        data = self.r.get("data") or {}
        if not data:
            return ""
        rows = [
            [SPLITS[s] if s != "test" else "Held-out test", data.get(f"n_{s}")]
            for s in SPLITS
            if data.get(f"n_{s}") is not None
        ]
        shared = data.get("shared_sources")
        if shared is None:
            note = "Which source photos or textures the splits share was not recorded by this run."
        elif not shared:
            note = "No source photo, object or texture appears in more than one split."
        else:
            note = (
                f"The splits share {len(shared)} source{'s' if len(shared) != 1 else ''}: "
                f"{', '.join(map(str, shared))}. Held-out scores measure new layouts of these, not new objects."
            )
        body = table([Col("Split"), Col("Images", numeric=True)], rows) if rows else ""
        return f'<section id="splits"><h2>Splits</h2>{body}<p class="legend">{esc(note)}</p></section>'

    def timings(self) -> str:
        """Time per phase and in all."""
        timings = cast(Mapping[str, float], self.r.get("timings") or {})  # phase → seconds
        if not timings:
            return ""
        rows: list[list[object]] = [[phase, Raw(esc(fmt_seconds(s)))] for phase, s in timings.items()]
        rows.append([Raw("<strong>total</strong>"), Raw(f"<strong>{esc(fmt_seconds(sum(timings.values())))}</strong>")])
        return (
            f'<section id="timings"><h2>Timings</h2>{table([Col("Phase"), Col("Time", numeric=True)], rows)}</section>'
        )

    def details(self) -> str:
        """Notes, metric, model, data, settings and versions."""
        metric = {k: v for k, v in (self.r.get("metric") or {}).items() if k != "name"}
        blocks = [folded(title, kv_table(mapping)) for title, mapping in (
            ("Metric", metric),
            ("Model", self.r.get("model") or {}),
            ("Data", self.r.get("data") or {}),
        ) if mapping]
        for recorded, title in ((self.r.get("settings"), "Settings"), (self.r.get("versions"), "Versions")):
            blocks.append(folded(title, kv_table(recorded or {})))
        return run_details([str(n) for n in self.r.get("notes") or []], blocks)

    # ------------------------------------------------------------------------------------------- gallery

    def gallery(self, gallery: Sequence[GalleryItem], thumb: int, alpha: float, colormap: str) -> str:
        """The gallery with per-image scores and display names from the results."""
        aliases = {SYNTHESIZED: ["best", "Synthesized", str(self.best.get("expression", ""))]}
        attach_scores(gallery, self.r.get("per_image"), self.r.get("ids"), aliases)
        titles = {n: str(b.get("expression", "")) for n, b in self.baselines.items()}
        titles[SYNTHESIZED] = str(self.best.get("expression", ""))
        names = {n: self.name(n) for n in self.baselines}
        names[SYNTHESIZED] = "Synthesized"
        note = f"Under each heatmap: its {self.metric_name} score on that image ({direction(self.hib)})."
        return gallery_html(gallery, thumb, alpha, colormap, titles, names, note)


def render_report(
    results: SynthesisResults | Mapping[str, Any],
    gallery: Sequence[GalleryItem] = (),
    thumb: int = 120,
    alpha: float = 0.5,
    colormap: str = "jet",
) -> str:
    """The HTML text of the synthesis report (see :func:`write_report`)."""
    s = _Synthesis(cast(SynthesisResults, results))
    parts = [
        s.header(),
        s.headline(),
        s.diagnostics(),
        s.winner(),
        s.scores(),
        s.evidence(),
        s.constraints(),
        s.pareto(),
        s.leaderboard(),
        s.search(),
        s.gallery(gallery, thumb, alpha, colormap),
        s.splits_html(),
        s.timings(),
        s.details(),
    ]
    return page(f"SyCAM — {s.metric_name}", "\n".join(p for p in parts if p))


def write_report(
    path: str | Path,
    results: SynthesisResults | Mapping[str, Any],
    gallery: Sequence[GalleryItem] = (),
    thumb: int = 120,
    alpha: float = 0.5,
    colormap: str = "jet",
) -> Path:
    """Write the synthesis report for ``results`` (``results.json`` of ``sycam synthesize``) as one
    self-contained HTML file, atomically.

    The page shows the headline verdict (from the paired bootstrap CI in ``comparison`` when present:
    better / not distinguishable / worse than the best baseline on the test split), the winning expression
    typeset as MathML with its LaTeX source, the score table (winner, every baseline and the control on
    each split, best per column marked, degenerate-map counts), constraints, the Pareto front, the
    leaderboard, the search (stop reason, counters that add up, the best-score curve with λ), the gallery
    (``thumb``-pixel thumbnails at 2× resolution, per-image scores, degenerate maps flagged, ground truth on
    every picture, a colour bar), the splits and what they share, timings, settings, versions and notes.
    """
    return write_atomic(path, render_report(results, gallery, thumb, alpha, colormap))
