"""The evidence of the ``sycam synthesize`` page: the winner typeset, the scores on every split, the held-out
comparisons, the constraints, the Pareto front and the leaderboard.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .format import SYNTHESIZED, arrow, direction, esc, finite, fmt, fmt_signed
from .formula import formula_html
from .synthesis_view import (
    SPLITS,
    SynthesisView,
    power_text,
    rank_key,
    same_expression,
)
from .tables import Col, Raw, table

__all__ = ["TableSections"]


class TableSections(SynthesisView):
    """The page's winner and tables (each method returns one section's HTML, empty where the results lack it).

    >>> TableSections({"metric": {"name": "iou"}}).pareto()
    ''
    """

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
            label = f"{power.get('name', 'power control')} (p = {power_text(power.get('power'))})"
            entries.append((label, "power_control", None, [ps.get(s) for s in self.splits], "control"))
        test_col = self.splits.index("test")
        entries.sort(key=lambda e: rank_key(e[3][test_col], self.hib) + rank_key(e[3][0], self.hib))
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

        comp: Mapping[str, Any] = self.r.get("comparison") or {}
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
            best = min(exact, key=lambda n: rank_key(self.baselines[n].get("test_score"), self.hib))
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
        names: list[Any] = list(infos) or list(dict.fromkeys(k for e in front for k in (e.get("scores") or {})))
        hib = {n: bool((infos.get(n) or {}).get("higher_is_better", True)) for n in names}
        best_expr = self.best.get("expression")
        rows, classes = [], []
        for i, e in enumerate(front, 1):
            sc: Mapping[str, Any] = e.get("scores") or {}
            rows.append([i, e.get("expression"), *(sc.get(n) for n in names)])
            classes.append("synth" if same_expression(e.get("expression"), best_expr) else "")
        body = table(
            [Col("#", numeric=True), Col("Expression", code=True)]
            + [Col(f"{n} {arrow(hib[n])}", higher_is_better=hib[n]) for n in names],
            rows,
            classes,
        )
        plot = ""
        if len(names) >= 2:
            x, y = names[0], names[1]
            pts: list[tuple[Any, Any, str, bool]] = [
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
