"""How the ``sycam synthesize`` page reads ``results.json``: the splits it shows, the one verdict rule, a
baseline's display name and a row's score on a split (:class:`SynthesisView`, the base of the page's sections),
and the small rules its sections share (how a power is written, how rows are ranked).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from ..results import SynthesisResults
from ..stats import verdict
from .format import finite
from .names import method_names

__all__ = ["SPLITS", "VERDICT_CSS", "SynthesisView", "comparison_verdict", "power_text", "rank_key",
           "same_expression"]

SPLITS: dict[str, str] = {"synthesis": "Synthesis split", "validation": "Validation split", "test": "Held-out test"}
"""The splits a synthesis scores, in order, with how the report names them."""

VERDICT_CSS = {"better": "win", "not distinguishable": "mixed", "worse": "lose"}
"""The CSS class of each verdict's badge."""


def comparison_verdict(comparison: Mapping[str, Any], higher_is_better: bool) -> str:
    """``"better"``, ``"not distinguishable"`` or ``"worse"``: from the 95% CI by :func:`sycam.stats.verdict`
    (the one verdict rule; the CLI prints the same, recorded by the search), else the recorded verdict."""
    ci = comparison.get("ci95") or []
    if len(ci) == 2 and finite(ci[0]) and finite(ci[1]):
        return str(verdict(float(ci[0]), float(ci[1]), higher_is_better))
    return str(comparison.get("verdict", "not distinguishable"))


def same_expression(a: object, b: object) -> bool:
    """Whether ``a`` and ``b`` are the same expression text, whitespace aside."""
    return isinstance(a, str) and isinstance(b, str) and re.sub(r"\s+", "", a) == re.sub(r"\s+", "", b)


def power_text(p: object) -> str:
    """A power as written: 8, 1.5."""
    return f"{float(p):g}" if finite(p) else "?"  # type: ignore[arg-type]


def rank_key(value: object, higher_is_better: bool) -> tuple[int, float]:
    """Sort key of a score, best first; a missing or non-finite score last."""
    if not finite(value):
        return (1, 0.0)
    return (0, -float(value) if higher_is_better else float(value))  # type: ignore[arg-type]


class SynthesisView:
    """The synthesis page's reading of ``results.json``: the results, the first objective's name and direction,
    the winner's and the baselines' rows, the splits shown, a baseline's display name and a row's score per
    split. The page's sections (:mod:`~sycam.report.synthesis_verdict`, :mod:`~sycam.report.synthesis_tables`,
    :mod:`~sycam.report.synthesis`) are methods of its subclasses.

    >>> view = SynthesisView({"metric": {"name": "iou", "higher_is_better": True}})
    >>> view.metric_name, view.hib, view.splits
    ('iou', True, ['synthesis', 'test'])
    """

    def __init__(self, results: SynthesisResults) -> None:
        self.r: SynthesisResults = results
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
