"""The ``sycam synthesize`` page: verdict, winner, evidence, search, gallery and run details.

It renders from the typed ``results.json`` schema (:class:`sycam.results.SynthesisResults`); every section
beyond the basic ones appears only when its key is present, so results written by older versions still
render.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, cast

from .._io import write_atomic
from ..results import SynthesisResults
from ..stats import verdict
from .format import SYNTHESIZED, arrow, cite, direction, esc, finite, fmt, fmt_ci, fmt_seconds, fmt_signed
from .formula import formula_html
from .gallery import GalleryItem, attach_scores, gallery_html
from .names import method_names
from .page import page
from .tables import Col, Raw, best_rows, kv_table, table

__all__ = ["SPLITS", "comparison_verdict", "counter_sum", "render_report", "write_report"]

SPLITS: dict[str, str] = {"synthesis": "Synthesis split", "validation": "Validation split", "test": "Held-out test"}
"""The splits a synthesis scores, in order, with how the report names them."""

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

_VERDICT_CSS = {"better": "win", "not distinguishable": "mixed", "worse": "lose"}


def comparison_verdict(comparison: Mapping[str, Any], higher_is_better: bool) -> str:
    """``"better"``, ``"not distinguishable"`` or ``"worse"``: from the 95% CI by :func:`sycam.stats.verdict`
    (the one verdict rule; the CLI prints the same, recorded by the search), else the recorded verdict."""
    ci = comparison.get("ci95") or []
    if len(ci) == 2 and finite(ci[0]) and finite(ci[1]):
        return str(verdict(float(ci[0]), float(ci[1]), higher_is_better))
    return str(comparison.get("verdict", "not distinguishable"))


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


def _same_expression(a: object, b: object) -> bool:
    return isinstance(a, str) and isinstance(b, str) and re.sub(r"\s+", "", a) == re.sub(r"\s+", "", b)


class _Synthesis:
    """The page's pieces, each from its part of the results."""

    def __init__(self, results: SynthesisResults) -> None:
        self.r: Mapping[str, Any] = cast(Mapping[str, Any], results)
        metric = self.r.get("metric") or {}
        self.metric_name = str(metric.get("name", "metric"))
        self.hib = bool(metric.get("higher_is_better", True))
        self.best: Mapping[str, Any] = self.r.get("best") or {}
        self.baselines: Mapping[str, Mapping[str, Any]] = self.r.get("baselines") or {}
        self.splits = [s for s in SPLITS if self._has_split(s)]

    def _has_split(self, split: str) -> bool:
        if split != "validation":
            return True
        rows = [self.best, *self.baselines.values()]
        return any(finite(r.get("validation_score")) for r in rows) or finite(self.r.get("validation_score"))

    def name(self, key: str) -> str:
        """The display name of a baseline: its ``display_name`` (``"Score-CAM (top-16 channels)"`` for an
        approximation), else its title with a Score-CAM cap named, else the method's title, else the key."""
        b = self.baselines.get(key) or {}
        if b.get("display_name"):
            return str(b["display_name"])
        settings = self.r.get("settings") or {}
        extraction = settings.get("extraction") if isinstance(settings.get("extraction"), Mapping) else {}
        top_k = (extraction or {}).get("score_top_k") or settings.get("score_top_k")
        if b.get("title") and "exact" in b:  # the search named it, approximation included
            return str(b["title"])
        if b.get("title"):
            uses_s = "S" in re.findall(r"[A-Z]", str(b.get("expression", "")))
            return str(b["title"]) + (f" (top-{top_k} channels)" if uses_s and top_k else "")
        return method_names([key], {"settings": {"score_top_k": top_k}}).get(key, key)

    def score(self, row: Mapping[str, Any], split: str) -> object:
        """A row's score on ``split`` (the winner's validation score may sit at the top level)."""
        value = row.get(f"{split}_score")
        if split == "validation" and value is None and row is self.best:
            value = self.r.get("validation_score")
        return value

    # ------------------------------------------------------------------------------------------- header

    def header(self) -> str:
        """Title and subtitle: model, layer, data and the metric(s)."""
        model = self.r.get("model") or {}
        data = self.r.get("data") or {}
        bits = []
        if model:
            bits.append(
                f"model <strong>{esc(model.get('name', '?'))}</strong> "
                f"at layer <code>{esc(model.get('layer', '?'))}</code>"
            )
        if data:
            counts = [
                f"{fmt(data.get(f'n_{s}'))} {label}"
                for s, label in (("synthesis", "synthesis"), ("validation", "validation"), ("test", "held-out test"))
                if data.get(f"n_{s}") is not None
            ]
            bits.append(f"data {esc(data.get('source', '?'))}: {esc(' + '.join(counts) or fmt(data.get('n')))} images")
        objectives = self.r.get("metrics") or []
        if len(objectives) > 1:
            bits.append(
                "metrics "
                + ", ".join(
                    f"<strong>{esc(m.get('name'))}</strong> {arrow(bool(m.get('higher_is_better', True)))}"
                    for m in objectives
                )
            )
        else:
            bits.append(f"metric <strong>{esc(self.metric_name)}</strong> ({direction(self.hib)})")
        primary = self.r.get("metric") or {}
        cited_by = {m.get("name"): m.get("reference") for m in [*objectives, primary] if m.get("reference")}
        refs = [f"{esc(name)}: {cite(ref)}" for name, ref in cited_by.items()]
        cited = f'<p class="subtitle">metric reference: {"; ".join(refs)}</p>' if refs else ""
        return (f'<h1>SyCAM: synthesized CAM for {esc(self.metric_name)}</h1><p class="subtitle">{" · ".join(bits)}</p>'
                + cited)

    # ------------------------------------------------------------------------------------------- verdict

    def verdict(self) -> tuple[str, str, list[str]]:
        """``(css class, headline, detail lines)``. With a ``comparison`` block the headline is the paired
        bootstrap's verdict on the test split; otherwise it compares point scores on each split."""
        if not self.best:
            return "unknown", "No expression was synthesized.", []
        if not self.baselines:
            return (
                "unknown",
                "No baselines were scored, so there is nothing to compare the synthesized expression with.",
                [],
            )
        detail = self._split_details()
        comp = self.r.get("comparison")
        if comp and comp.get("methods"):
            return self._verdict_all(comp, detail)
        if comp:
            v = comparison_verdict(comp, self.hib)
            base = self.name(str(comp.get("baseline", "the best baseline")))
            ci = comp.get("ci95") or [None, None]
            relation = {"better": "is better than", "worse": "is worse than"}.get(v, "is not distinguishable from")
            headline = (
                f"On held-out test images the synthesized expression {relation} {base}, the best baseline: "
                f"difference {fmt_signed(comp.get('diff'))}, 95% CI {fmt_ci(ci)}."
            )
            detail.insert(
                0,
                (
                    "Verdict from a paired bootstrap 95% confidence interval of the per-image difference "
                    f"(synthesized − {base}) in {self.metric_name} on the test split: better when the whole interval "
                    f"lies on the {'positive' if self.hib else 'negative'} side, worse when it lies on the other, "
                    "not distinguishable when it contains 0."
                ),
            )
            return _VERDICT_CSS.get(v, "mixed"), headline, detail
        return (*self._point_verdict(), detail)

    def _verdict_all(self, comp: Mapping[str, Any], detail: list[str]) -> tuple[str, str, list[str]]:
        """The verdict against every exact classic method (``comparison.methods``)."""
        methods: Mapping[str, Mapping[str, Any]] = comp["methods"]
        v = str(comp.get("verdict", "not distinguishable"))
        n = int(comp.get("n_comparisons", len(methods)))
        base = self.name(str(comp.get("baseline", "")))
        ci = comp.get("ci95") or [None, None]
        counts = {k: sum(1 for e in methods.values() if e.get("verdict") == k) for k in _VERDICT_CSS}
        if v == "better":
            headline = (f"On held-out test images the synthesized expression is better than all {n} exact classic "
                        f"methods it was compared with; the closest, {base}: difference "
                        f"{fmt_signed(comp.get('diff'))}, "
                        f"95% CI {fmt_ci(ci)}.")
        else:
            relation = "worse than" if v == "worse" else "not distinguishable from"
            headline = (f"On held-out test images the synthesized expression is {relation} {base} "
                        f"(difference {fmt_signed(comp.get('diff'))}, 95% CI {fmt_ci(ci)}), so not better than "
                        f"every classic method: of {n} comparisons, "
                        f"{counts['better']} better, {counts['not distinguishable']} not distinguishable, "
                        f"{counts['worse']} worse.")
        if comp.get("beats_power_control") is False:
            headline += (f" It is not better than Grad-CAM sharpened to the power p = {_power(comp.get('power'))} (the "
                         "power control): its gain may be contrast, not a better-placed map.")
        detail.insert(0, (
            f"Verdict from {n} paired bootstrap 95% confidence intervals of the per-image difference (synthesized − "
            f"each exact classic method) in {self.metric_name} on the test split, resampling "
            f"{comp.get('grouping', 'images')} and images: better only when every interval lies on the "
            f"{'positive' if self.hib else 'negative'} side, worse when any lies on the other."))
        images, groups = comp.get("ci95_images"), comp.get("ci95_groups")
        if images and groups and all(finite(x) for x in (*images, *groups)):
            detail.insert(1, f"Against {base}, resampling groups gives {fmt_ci(groups)} and resampling images "
                             f"{fmt_ci(images)}; each interval shown is the hull of the two, so a verdict holds "
                             "under either.")
        return _VERDICT_CSS.get(v, "mixed"), headline, detail

    def _split_details(self) -> list[str]:
        lines = []
        for split in self.splits:
            ours = self.score(self.best, split)
            scores = {n: self.score(b, split) for n, b in self.baselines.items()}
            names = list(scores)
            marked = best_rows([scores[n] for n in names], self.hib)
            if not marked or not finite(ours):
                continue
            name = names[min(marked)]
            theirs = scores[name]
            win = (ours > theirs) if self.hib else (ours < theirs)  # type: ignore[operator]
            relation = "better than" if win else ("tied with" if ours == theirs else "worse than")
            lines.append(
                f"{SPLITS[split] if split != 'test' else 'Held-out test split'}: {fmt(ours)} for the synthesized "
                f"expression, {relation} {self.name(name)} ({fmt(theirs)}), the best baseline on this split."
            )
        return lines

    def _point_verdict(self) -> tuple[str, str]:
        outcomes: list[tuple[str, bool | None, str | None]] = []
        for split, phrase in (("synthesis", "the synthesis split"), ("test", "held-out images")):
            ours = self.best.get(f"{split}_score")
            names = list(self.baselines)
            marked = best_rows([self.baselines[n].get(f"{split}_score") for n in names], self.hib)
            name = self.name(names[min(marked)]) if marked else None
            if not marked or ours is None:  # nothing to compare on this split (a NaN score does not beat)
                outcomes.append((phrase, None, name))
                continue
            theirs = self.baselines[names[min(marked)]][f"{split}_score"]
            outcomes.append((phrase, finite(ours) and ((ours > theirs) if self.hib else (ours < theirs)), name))
        (p_syn, w_syn, n_syn), (p_test, w_test, n_test) = outcomes

        def clause(phrase: str, win: bool | None, name: str | None) -> str:
            return f"{'beats' if win else 'does not beat'} {name} on {phrase}"

        subject = "The synthesized expression "
        if w_syn is None:
            return "unknown", subject + "has no synthesis-split score to compare."
        if w_test is None:
            return ("mixed" if w_syn else "lose"), (
                subject + clause(p_syn, w_syn, n_syn) + "; there are no held-out test scores, so generalization is "
                "not measured."
            )
        if w_syn == w_test and n_syn == n_test:
            if w_syn:
                headline = (
                    f"{subject}beats the best baseline, {n_syn}, on both the synthesis split and held-out images."
                )
            else:
                headline = (
                    f"{subject}does not beat the best baseline, {n_syn}, on the synthesis split or on held-out images."
                )
        else:
            joiner = ", and " if w_syn == w_test else ", but "
            headline = subject + clause(p_syn, w_syn, n_syn) + joiner + clause(p_test, w_test, n_test) + "."
        return ("win" if w_syn and w_test else ("lose" if not w_test else "mixed")), headline

    def headline(self) -> str:
        """The verdict box, after an 'incomplete' warning when the search was cut short."""
        css, headline, detail = self.verdict()
        for name, b in self.baselines.items():
            if _same_expression(self.best.get("expression"), b.get("expression")):
                detail.append(f"The winning expression is {self.name(name)}'s own expression.")
        control = self.r.get("control") or {}
        c_test, w_test = (control.get("scores") or {}).get("test"), self.best.get("test_score")
        if finite(c_test) and finite(w_test):
            relation = "beats" if (c_test > w_test if self.hib else c_test < w_test) else "does not beat"
            detail.append(
                f"Control: {control.get('name', 'the control')} scores {fmt(c_test)} on the test split, and so "
                f"{relation} the synthesized expression ({fmt(w_test)})."
            )
        power = self.r.get("power_control") or {}
        p_test = (power.get("scores") or {}).get("test")
        if finite(p_test) and finite(w_test):
            relation = "beats" if (p_test > w_test if self.hib else p_test < w_test) else "does not beat"
            detail.append(
                f"Power control: {power.get('name', 'Grad-CAM sharpened')} "
                f"(final map to p = {_power(power.get('power'))}, "
                f"fitted on the synthesis split) scores {fmt(p_test)} on the test split, and so {relation} the "
                f"synthesized expression ({fmt(w_test)})."
            )
        why = (self.r.get("selection") or {}).get("why")
        if why:
            detail.append(f"Why this winner: {why}")
        guards = self.r.get("guards")
        if guards:
            n_c = len(self.r.get("constraints") or [])
            detail.append({"default": f"Constraints: the objective's {n_c} default guards.",
                           "user": f"Constraints: {n_c} given by the user.",
                           "off": "Constraints: none (the default guards were turned off)."}.get(str(guards), ""))
        lam = self.r.get("lambda")
        if finite(lam):
            src = {"best_baseline": "the best exact baseline's synthesis score", "user": "set by the user"}.get(
                str(self.r.get("lambda_source")), str(self.r.get("lambda_source") or "")
            )
            detail.append(f"Acceptance threshold λ = {fmt(lam)}{f' ({src})' if src else ''}.")
        items = "".join(f"<li>{esc(d)}</li>" for d in detail)
        out = (
            f'<section id="headline" class="verdict {css}"><p class="headline">{esc(headline)}</p>'
            f"{f'<ul>{items}</ul>' if items else ''}</section>"
        )
        if self.r.get("incomplete"):
            why = self.r.get("stopped_because") or "a budget ran out"
            out = (
                f'<p class="warning" id="incomplete">The search is incomplete: it stopped because {esc(why)}, '
                "before the "
                "whole search space was scored. A larger budget may find a better expression.</p>" + out
            )
        return out

    def diagnostics(self) -> str:
        """The target layer's diagnostics sentence (only when its terminals are degenerate)."""
        sentence = (self.r.get("diagnostics") or {}).get("sentence")
        if not sentence:
            return ""
        return f'<p class="warning" id="diagnostics">{esc(sentence)}</p>'

    # ------------------------------------------------------------------------------------------- winner

    def winner(self) -> str:
        """The winning expression typeset, as text and LaTeX, with size, validation score and optimism."""
        if not self.best:
            return ""
        facts = []
        if "size" in self.best:
            facts.append(f"size {esc(self.best['size'])} (AST nodes)")
        if self.best.get("is_baseline"):
            facts.append(f"this is the seeded baseline {esc(self.best['is_baseline'])}")
        val = self.score(self.best, "validation")
        if finite(val):
            facts.append(f"validation score {esc(fmt(val))}")
        optimism = self.r.get("optimism")
        if finite(optimism):
            facts.append(
                f"optimism {esc(fmt_signed(optimism))} (synthesis − validation score: how much the synthesis score "
                "overstates the winner, having been picked among many candidates on those images)"
            )
        return (
            '<section id="winner"><h2>Winning expression</h2>'
            + formula_html(str(self.best.get("expression", "")), self.best.get("latex"))
            + (f'<p class="muted">{"; ".join(facts)}.</p>' if facts else "")
            + "</section>"
        )

    # ------------------------------------------------------------------------------------------- tables

    def scores(self) -> str:
        """Winner, baselines and control on every split, best per column marked, degenerate counts."""
        a = arrow(self.hib)
        degenerate: Mapping[str, Mapping[str, int]] = self.r.get("degenerate") or {}
        # (display name, results key, expression, scores by split, row class); numbers before the expression,
        # so that a phone shows them beside the sticky method column
        entries: list[tuple[str, str, object, list[object], str]] = []
        if self.best:
            entries.append(
                (
                    "Synthesized",
                    "synthesized",
                    self.best.get("expression"),
                    [self.score(self.best, s) for s in self.splits],
                    "synth",
                )
            )
        for n, b in self.baselines.items():
            entries.append((self.name(n), n, b.get("expression"), [self.score(b, s) for s in self.splits], ""))
        control = self.r.get("control")
        if control:
            cs = control.get("scores") or {}
            entries.append((str(control.get("name", "control")), "", None, [cs.get(s) for s in self.splits], "control"))
        power = self.r.get("power_control")
        if power:
            ps = power.get("scores") or {}
            entries.append((f"{power.get('name', 'power control')} (p = {_power(power.get('power'))})", "power_control",
                            None, [ps.get(s) for s in self.splits], "control"))
        test_col = self.splits.index("test")
        entries.sort(key=lambda e: _rank(e[3][test_col], self.hib) + _rank(e[3][0], self.hib))
        cols = [Col("Method")] + [
            Col(f"{SPLITS[s]} {a}", higher_is_better=self.hib, title=direction(self.hib)) for s in self.splits
        ]
        rows: list[list[object]] = [[e[0], *e[3]] for e in entries]
        if degenerate:
            short = {"synthesis": "syn", "validation": "val", "test": "test"}
            cols.append(
                Col(
                    f"Degenerate ({'/'.join(short[s] for s in self.splits)})",
                    numeric=True,
                    title="images whose map is constant, all zero or non-finite, per split",
                )
            )
            for row, e in zip(rows, entries, strict=True):
                counts = degenerate.get(e[1]) or (degenerate.get("best") if e[1] == "synthesized" else None) or {}
                row.append(" / ".join(str(counts.get(s, "—")) for s in self.splits) if counts else "—")
        cols.append(Col("Expression", code=True))
        for row, e in zip(rows, entries, strict=True):
            row.append(e[2])
        rows_classes = [e[4] for e in entries]
        body = table(cols, rows, rows_classes)
        legend = "Sorted by held-out test score; the best value in each column is <strong>bold</strong>."
        if control:
            legend += (
                f" <em>{esc(control.get('name'))}</em> is a control: if it scores like the winner, the winner's gain "
                "is what thresholding Grad-CAM gives."
            )
        approx = [self.name(n) for n, b in self.baselines.items() if b.get("approximate") or b.get("exact") is False]
        if approx:
            legend += f" Approximations ({esc(', '.join(approx))}) never set λ."
        return (
            f'<section id="scores"><h2>Scores: {esc(self.metric_name)} ({direction(self.hib)})</h2>{body}'
            f'<p class="legend">{legend}</p></section>'
        )

    def evidence(self) -> str:
        """The forest plot (winner − each exact classic method, an interval per split) and the per-image scatter
        of the winner against the best classic method on the test split (empty without comparisons)."""
        from .charts import ForestRow, forest_svg, paired_scatter_svg

        comp = self.r.get("comparison") or {}
        splits = comp.get("splits") or {}
        if not splits:
            return ""
        rows = []
        for name in comp.get("methods") or {}:
            for split in SPLITS:
                e = ((splits.get(split) or {}).get("methods") or {}).get(name)
                if e:
                    ci = e.get("ci95") or [None, None]
                    short = {"synthesis": "syn", "validation": "val"}.get(split, split)
                    rows.append(ForestRow(f"{self.name(name)} · {short}", e.get("diff"), ci[0], ci[1],
                                          str(e.get("verdict"))))
        groupings = "; ".join(f"{s}: {(splits.get(s) or {}).get('grouping')}" for s in SPLITS if s in splits)
        forest = forest_svg(rows, f"synthesized − classic method ({self.metric_name}, {arrow(self.hib)} better)")
        per = (self.r.get("per_image") or {}).get("test") or {}
        exact = [n for n, b in self.baselines.items() if b.get("exact", True) and n in per]
        scatter = ""
        if exact and per.get(SYNTHESIZED):
            best = min(exact, key=lambda n: _rank(self.baselines[n].get("test_score"), self.hib))
            scatter = (f"<h3>Per image on the test split: synthesized vs {esc(self.name(best))}</h3>"
                       + paired_scatter_svg(per[best], per[SYNTHESIZED], f"{self.name(best)} ({self.metric_name})",
                                            f"synthesized ({self.metric_name})")
                       + '<p class="legend">One point per test image; above the dashed diagonal the synthesized '
                       f"expression scores higher ({'better' if self.hib else 'worse: lower is better'}) than "
                       f"{esc(self.name(best))}, the best classic method on the test split.</p>")
        return (
            '<section id="evidence"><h2>Evidence: differences with intervals</h2>'
            f'<p class="legend">{len(comp.get("methods") or {})} comparisons with the exact classic methods. Each line '
            "is the 95% interval of the mean per-image difference (synthesized − method) on one split, from a "
            f"clustered paired bootstrap ({esc(groupings)}); green: better, red: worse, grey: not distinguishable.</p>"
            f"{forest}{scatter}</section>"
        )

    def constraints(self) -> str:
        """The oracle's constraints and whether the winner satisfies each (empty without constraints)."""
        items = self.r.get("constraints") or []
        if not items:
            return ""
        rows = []
        classes = []
        for c in items:
            holds = c.get("holds")
            rows.append(
                [
                    Raw(f"<code>{esc(c.get('text', ''))}</code>"),
                    c.get("metric"),
                    c.get("op"),
                    c.get("bound"),
                    c.get("synthesis_value"),
                    Raw("✓ holds" if holds else "✗ violated"),
                ]
            )
            classes.append("" if holds else "violated")
        body = table(
            [
                Col("Constraint"),
                Col("Metric"),
                Col("Op"),
                Col("Bound", numeric=True),
                Col("Winner (synthesis)", numeric=True),
                Col("Holds"),
            ],
            rows,
            classes,
        )
        body = body.replace("<td>✓ holds</td>", '<td class="yes">✓ holds</td>').replace(
            "<td>✗ violated</td>", '<td class="no">✗ violated</td>'
        )
        return (
            '<section id="constraints"><h2>Constraints</h2>'
            '<p class="legend">A candidate is correct when it beats λ on the objective and every constraint holds on '
            "the synthesis split; a bound named after a baseline or <code>best</code> is that baseline's synthesis "
            f"score, scaled.</p>{body}</section>"
        )

    def pareto(self) -> str:
        """The non-dominated set of a several-metric search: table and scatter plot (empty otherwise)."""
        front = self.r.get("pareto") or []
        if not front:
            return ""
        from .charts import scatter_svg

        infos = {m.get("name"): m for m in (self.r.get("metrics") or [])}
        names = list(infos) or list(dict.fromkeys(k for e in front for k in (e.get("scores") or {})))
        hib = {n: bool((infos.get(n) or {}).get("higher_is_better", True)) for n in names}
        best_expr = self.best.get("expression")
        rows, classes = [], []
        for i, e in enumerate(front, 1):
            sc = e.get("scores") or {}
            rows.append([i, e.get("expression"), *(sc.get(n) for n in names)])
            classes.append("synth" if _same_expression(e.get("expression"), best_expr) else "")
        body = table(
            [Col("#", numeric=True), Col("Expression", code=True)]
            + [Col(f"{n} {arrow(hib[n])}", higher_is_better=hib[n]) for n in names],
            rows,
            classes,
        )
        plot = ""
        if len(names) >= 2:
            x, y = names[0], names[1]
            pts = [
                ((e.get("scores") or {}).get(x), (e.get("scores") or {}).get(y), str(i), bool(classes[i - 1]))
                for i, e in enumerate(front, 1)
            ]
            plot = scatter_svg(pts, f"{x} ({arrow(hib[x])} better)", f"{y} ({arrow(hib[y])} better)")
        return (
            '<section id="pareto"><h2>Pareto front</h2>'
            f'<p class="legend">{len(front)} non-dominated expression{"s" if len(front) != 1 else ""} on the synthesis '
            "split: none is beaten on every metric by another. The highlighted row (the larger point) is the winner "
            f"chosen from them.</p>{body}{plot}</section>"
        )

    def leaderboard(self) -> str:
        """The top candidates on the synthesis split."""
        board = self.r.get("leaderboard") or []
        if not board:
            return ""
        a = arrow(self.hib)
        splits = self.splits
        body = table(
            [Col("Rank", numeric=True)]
            + [Col(f"{SPLITS[s]} {a}", higher_is_better=self.hib) for s in splits]
            + [Col("Size", numeric=True), Col("Expression", code=True)],
            [
                [e.get("rank"), *(e.get(f"{s}_score") for s in splits), e.get("size"), e.get("expression")]
                for e in board
            ],
        )
        return (
            f'<section id="leaderboard"><h2>Leaderboard</h2>{body}'
            '<p class="legend">The top candidates on the synthesis split; — where a score was not computed.</p>'
            "</section>"
        )

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
        timings = self.r.get("timings") or {}
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
        timings = self.r.get("timings") or {}
        if not timings:
            return ""
        rows: list[list[object]] = [[phase, Raw(esc(fmt_seconds(s)))] for phase, s in timings.items()]
        rows.append([Raw("<strong>total</strong>"), Raw(f"<strong>{esc(fmt_seconds(sum(timings.values())))}</strong>")])
        return (
            f'<section id="timings"><h2>Timings</h2>{table([Col("Phase"), Col("Time", numeric=True)], rows)}</section>'
        )

    def details(self) -> str:
        """Notes, metric, model, data, settings and versions."""
        notes = [str(n) for n in self.r.get("notes") or []]
        blocks = []
        if notes:
            items = "".join(f"<li>{esc(n)}</li>" for n in notes)
            blocks.append(
                f'<details open><summary>Notes ({len(notes)})</summary><ul class="notes">{items}</ul></details>'
            )
        metric = {k: v for k, v in (self.r.get("metric") or {}).items() if k != "name"}
        for title, mapping in (
            ("Metric", metric),
            ("Model", self.r.get("model") or {}),
            ("Data", self.r.get("data") or {}),
        ):
            if mapping:
                blocks.append(f"<details><summary>{esc(title)}</summary>{kv_table(mapping)}</details>")
        for key, title in (("settings", "Settings"), ("versions", "Versions")):
            blocks.append(f"<details><summary>{title}</summary>{kv_table(self.r.get(key) or {})}</details>")
        return '<section id="details"><h2>Run details</h2>' + "".join(blocks) + "</section>"

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


def _power(p: object) -> str:
    """A power as written: 8, 1.5."""
    return f"{float(p):g}" if finite(p) else "?"  # type: ignore[arg-type]


def _rank(value: object, higher_is_better: bool) -> tuple[int, float]:
    if not finite(value):
        return (1, 0.0)
    return (0, -float(value) if higher_is_better else float(value))  # type: ignore[arg-type]


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
