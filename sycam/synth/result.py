"""What a synthesis run returns: :class:`SynthesisResult`, whose :meth:`~SynthesisResult.to_dict` is the
``results.json`` schema (:class:`sycam.results.SynthesisResults`), and :func:`versions`, the software versions
recorded with every result.

:class:`~sycam.synth.search.Search` builds the result (:meth:`~sycam.synth.search.Search.result`).
"""

from __future__ import annotations

import math
import platform
from dataclasses import dataclass, field
from typing import Any

import torch

from ..expr import parse
from ..metrics.base import Metric
from ..results import SynthesisResults
from .constraints import Constraint
from .selection import Candidate

__all__ = ["SynthesisResult", "versions"]


@dataclass(kw_only=True)
class SynthesisResult:
    """What a search found; :meth:`to_dict` is the ``results.json`` schema (:class:`sycam.results.SynthesisResults`).

    Built by keyword only (as :meth:`~sycam.synth.search.Search.result` does); a copy with one field changed::

        result = synthesize(net, "layer4", syn, test, get_metric("iou"))
        dataclasses.replace(result, notes=[*result.notes, "re-scored"]).to_dict()["notes"]
    """

    metric: Metric
    """the first objective"""
    best: Candidate
    """the winner (see the module doc for the rule), with its scores on every split"""
    baselines: dict[str, dict[str, Any]]
    """classic method key → its expression, title, exactness and scores (``results.json``'s ``baselines``)"""
    leaderboard: list[Candidate]
    """the best admissible candidates on the first objective, best first"""
    history: list[tuple[int, float]]
    """``(candidates scored, best synthesis score so far)`` after each admissible candidate (the report's curve)"""
    lambda_: float | None
    """λ of the first objective (None: no exact baseline to take it from)"""
    lambda_source: str
    """where λ came from: "user", "best_baseline" or "none" (no λ)"""
    counters: dict[str, Any]
    """the candidate counters, which add up (:meth:`~sycam.synth.search.Search.counters`)"""
    timings: dict[str, float]
    """seconds per phase"""
    settings: dict[str, Any]
    """provenance: the caller's settings, the config, the extraction options, the metrics, the synthesis ids"""
    notes: list[str]
    """what a reader of the result should know: a capped Score-CAM terminal, a resume, an interrupt, a full
    bank, how the winner was chosen on validation"""
    stopped_because: str
    """search space exhausted | max candidates | beat λ | time limit | interrupted"""
    metrics: list[Metric] = field(default_factory=list)
    """every objective, the first one first"""
    lambdas: dict[str, float | None] = field(default_factory=dict)
    """λ per objective, by metric name"""
    lambda_baseline: str | None = None
    """the baseline whose score is λ of the first objective"""
    accepted: bool = False
    """the winner beats λ on every objective and every constraint holds"""
    constraints: list[tuple[Constraint, float]] = field(default_factory=list)
    """each constraint with its resolved bound"""
    pareto: list[Candidate] = field(default_factory=list)
    """the Pareto front of admissible candidates (several objectives only)"""
    per_image: dict[str, dict[str, list[float]]] = field(default_factory=dict)
    """split → method → primary score per image, in ``ids`` order"""
    ids: dict[str, list[str]] = field(default_factory=dict)
    """split → sample ids"""
    degenerate: dict[str, dict[str, int]] = field(default_factory=dict)
    """method → split → images whose heatmap is degenerate (constant, all-zero or non-finite)"""
    comparison: dict[str, Any] | None = None
    """winner minus the best exact baseline on the test split with a paired bootstrap CI and the verdict"""
    control: dict[str, Any] | None = None
    """Grad-CAM thresholded to the winner's sparsity, scored on each split"""
    incomplete: bool = False
    """a bank cap, a time limit or an interrupt cut the search"""
    power_control: dict[str, Any] | None = None
    """Grad-CAM's final map to the power fitted on the synthesis split, scored on each split"""
    selection: dict[str, Any] = field(default_factory=dict)
    """why the winner (one line), the leaderboard's top row, the min effect, the merged rescalings"""
    diagnostics: dict[str, Any] | None = None
    """the target layer's :class:`~sycam.diagnostics.Diagnosis` (``as_dict``), None where it was not run"""

    @property
    def optimism(self) -> float | None:
        """Synthesis minus validation score of the winner (its selection bias); None without validation."""
        v = self.best.validation_score
        return None if v is None else self.best.synthesis_score - v

    def _repr_html_(self) -> str:
        """The synthesis report inline in a notebook (rendered by :func:`sycam.notebook.result_html`)."""
        from ..notebook import result_html  # the rendering lives above; this only hands the result over

        return result_html(self)

    def to_dict(self) -> SynthesisResults:
        """The ``results.json`` content (JSON-ready: non-finite numbers become ``None``)."""
        objectives = self.metrics or [self.metric]
        best = self.best
        out: dict[str, Any] = {
            "metric": self.metric.describe(),
            "metrics": [m.describe() for m in objectives],
            "model": self.settings.get("model", {}),
            "data": self.settings.get("data", {}),
            "lambda": finite_or_none(self.lambda_),
            "lambda_source": self.lambda_source,
            "lambdas": {k: finite_or_none(v) for k, v in self.lambdas.items()},
            "lambda_baseline": self.lambda_baseline,
            "accepted": bool(self.accepted),
            "best": {"expression": best.expression, "latex": parse(best.expression).latex(), "size": best.size,
                     "synthesis_score": finite_or_none(best.synthesis_score),
                     "validation_score": finite_or_none(best.validation_score),
                     "test_score": finite_or_none(best.test_score),
                     "is_baseline": best.seed, "scores": _finite_map(best.scores),
                     "test_scores": _finite_map(best.test_scores), "accepted": bool(self.accepted)},
            "baselines": {k: {**v, "synthesis_score": finite_or_none(v["synthesis_score"]),
                              "validation_score": finite_or_none(v.get("validation_score")),
                              "test_score": finite_or_none(v.get("test_score")),
                              "scores": _finite_map(v.get("scores", {})),
                              "test_scores": _finite_map(v.get("test_scores", {}))}
                          for k, v in self.baselines.items()},
            "leaderboard": [{"rank": i + 1, "expression": c.expression, "size": c.size,
                             "synthesis_score": finite_or_none(c.synthesis_score),
                             "validation_score": finite_or_none(c.validation_score),
                             "test_score": finite_or_none(c.test_score),
                             "is_baseline": c.seed}
                            for i, c in enumerate(self.leaderboard)],
            "history": [[n, finite_or_none(s)] for n, s in self.history],
            "guards": self.settings.get("guards", "user" if self.constraints else "off"),
            "constraints": [{"text": c.text, "metric": c.metric, "op": c.op,
                             "rhs": c.rhs if c.rhs is not None else repr(c.scale), "bound": finite_or_none(bound),
                             "synthesis_value": finite_or_none(best.scores.get(c.metric)),
                             "holds": c.holds(best.scores.get(c.metric, math.nan), bound)}
                            for c, bound in self.constraints],
            "per_image": self.per_image,
            "ids": self.ids,
            "degenerate": self.degenerate,
            "comparison": self.comparison,
            "control": self.control,
            "power_control": self.power_control,
            "selection": self.selection,
            "validation_score": finite_or_none(best.validation_score),
            "optimism": finite_or_none(self.optimism),
            "incomplete": bool(self.incomplete),
            **self.counters,
            "stopped_because": self.stopped_because,
            "seconds": round(sum(self.timings.values()), 3),
            "timings": {k: round(v, 3) for k, v in self.timings.items()},
            "settings": self.settings,
            "versions": versions(),
            "notes": self.notes,
        }
        if self.diagnostics is not None:
            out["diagnostics"] = self.diagnostics
        if len(objectives) > 1:
            out["pareto"] = [{"expression": c.expression, "size": c.size,
                              "scores": {m.name: finite_or_none(c.scores.get(m.name)) for m in objectives}}
                             for c in self.pareto]
        return out  # type: ignore[return-value]


def finite_or_none(x: float | None) -> float | None:
    """``x`` as a float, or None where it is None, NaN or infinite (strict JSON has no NaN)."""
    return None if x is None or not math.isfinite(x) else float(x)


def _finite_map(d: dict[str, float]) -> dict[str, float | None]:
    return {k: finite_or_none(v) for k, v in d.items()}


def versions() -> dict[str, str]:
    """Versions of sycam, torch, torchvision and Python (recorded with every result)."""
    import torchvision

    from .. import __version__

    return {"sycam": __version__, "torch": torch.__version__, "torchvision": torchvision.__version__,
            "python": platform.python_version()}
