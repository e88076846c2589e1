"""The top of the ``sycam synthesize`` page: title and subtitle (model, layer, data, metrics and their
references), the verdict headline with every held-out comparison and the controls, and the layer diagnosis.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .format import arrow, cite, direction, esc, finite, fmt, fmt_ci, fmt_signed
from .synthesis_view import (
    SPLITS,
    VERDICT_CSS,
    SynthesisView,
    comparison_verdict,
    power_text,
    same_expression,
)
from .tables import best_rows

__all__ = ["VerdictSections"]


class VerdictSections(SynthesisView):
    """The page's header, verdict headline and diagnosis (each method returns one section's HTML).

    >>> VerdictSections({"metric": {"name": "iou"}}).header().startswith("<h1>SyCAM: synthesized CAM for iou")
    True
    """

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
            return VERDICT_CSS.get(v, "mixed"), headline, detail
        return (*self._point_verdict(), detail)

    def _verdict_all(self, comp: Mapping[str, Any], detail: list[str]) -> tuple[str, str, list[str]]:
        """The verdict against every exact classic method (``comparison.methods``)."""
        methods: Mapping[str, Mapping[str, Any]] = comp["methods"]
        v = str(comp.get("verdict", "not distinguishable"))
        n = int(comp.get("n_comparisons", len(methods)))
        base = self.name(str(comp.get("baseline", "")))
        ci = comp.get("ci95") or [None, None]
        counts = {k: sum(1 for e in methods.values() if e.get("verdict") == k) for k in VERDICT_CSS}
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
            p = power_text(comp.get("power"))
            headline += (f" It is not better than Grad-CAM sharpened to the power p = {p} (the "
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
        return VERDICT_CSS.get(v, "mixed"), headline, detail

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
            if same_expression(self.best.get("expression"), b.get("expression")):
                detail.append(f"The winning expression is {self.name(name)}'s own expression.")
        control: Mapping[str, Any] = self.r.get("control") or {}
        c_test: Any = (control.get("scores") or {}).get("test")
        w_test: Any = self.best.get("test_score")
        if finite(c_test) and finite(w_test):
            relation = "beats" if (c_test > w_test if self.hib else c_test < w_test) else "does not beat"
            detail.append(
                f"Control: {control.get('name', 'the control')} scores {fmt(c_test)} on the test split, and so "
                f"{relation} the synthesized expression ({fmt(w_test)})."
            )
        power: Mapping[str, Any] = self.r.get("power_control") or {}
        p_test: Any = (power.get("scores") or {}).get("test")
        if finite(p_test) and finite(w_test):
            relation = "beats" if (p_test > w_test if self.hib else p_test < w_test) else "does not beat"
            detail.append(
                f"Power control: {power.get('name', 'Grad-CAM sharpened')} "
                f"(final map to p = {power_text(power.get('power'))}, "
                f"fitted on the synthesis split) scores {fmt(p_test)} on the test split, and so {relation} the "
                f"synthesized expression ({fmt(w_test)})."
            )
        selection: Mapping[str, Any] = self.r.get("selection") or {}
        why = selection.get("why")
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
        diagnosis: Mapping[str, Any] = self.r.get("diagnostics") or {}
        sentence = diagnosis.get("sentence")
        if not sentence:
            return ""
        return f'<p class="warning" id="diagnostics">{esc(sentence)}</p>'
