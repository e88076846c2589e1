"""Choosing among scored candidates: the Pareto front of several objectives, and the validation rule that
prefers the smaller expression when scores are within noise (see :mod:`sycam.synth.search` for the whole
winner rule)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from .. import stats
from ..metrics.base import Metric


@dataclass
class Candidate:
    """A scored candidate. ``synthesis_score`` (and the other ``*_score``) are on the first objective."""

    expression: str
    """canonical text of the expression"""
    size: int
    """number of nodes of the expression"""
    synthesis_score: float
    """aggregate score on the synthesis split"""
    order: int
    """position in the scoring order (ties: smaller, then earlier wins)"""
    seed: str | None = None
    """the classic method this candidate is, when it was seeded"""
    test_score: float | None = None
    """aggregate score on the test split (None: not scored there)"""
    scores: dict[str, float] = field(default_factory=dict)
    """synthesis score of every metric (by name)"""
    validation_score: float | None = None
    """aggregate score on the validation split (None: not scored there)"""
    test_scores: dict[str, float] = field(default_factory=dict)
    """test score of every objective (by name)"""
    holds: bool | None = True
    """every constraint holds on the synthesis split (None: not checked, the candidate could not enter the pool)"""



def pareto_add(front: list[Candidate], cand: Candidate, objectives: Sequence[Metric]) -> list[Candidate]:
    """The non-dominated set after adding ``cand``: unchanged when a member dominates it or has the same
    objective values (the earlier candidate represents them); otherwise ``cand`` joins and the members it
    dominates leave. ``a`` dominates ``b`` when it is no worse on every objective and better on one."""
    def vec(c: Candidate) -> list[float]:
        return [c.scores[m.name] for m in objectives]

    def dominates(a: list[float], b: list[float]) -> bool:
        no_worse = all(not m.better(y, x) for m, x, y in zip(objectives, a, b, strict=True))
        return no_worse and any(m.better(x, y) for m, x, y in zip(objectives, a, b, strict=True))

    v = vec(cand)
    if any(dominates(vec(f), v) or vec(f) == v for f in front):
        return front
    return [f for f in front if not dominates(v, vec(f))] + [cand]


def choose_within_noise(candidates: Sequence[Candidate], per_image: dict[str, list[float]],
                        metric: Metric) -> Candidate:
    """The validation rule: find the candidate best on validation (its ``validation_score``); among those whose
    paired per-image validation scores are within one standard error of it (:func:`sycam.stats.within_noise`),
    return the smallest (ties: better validation score, then earlier in ``candidates``)."""
    def score(c: Candidate) -> float:
        return metric.sort_key(math.nan if c.validation_score is None else c.validation_score)

    top = min(candidates, key=lambda c: (score(c), c.size, c.order))
    close = [c for c in candidates
             if c is top or stats.within_noise(per_image[c.expression], per_image[top.expression])]
    return min(close, key=lambda c: (c.size, score(c), c.order))
