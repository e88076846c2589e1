"""Choosing among scored candidates: the Pareto front of several objectives, and the validation rule that
prefers the smaller expression when scores are within noise (see :mod:`sycam.synth.search` for the whole
winner rule)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor

from .. import stats
from ..expr import Node, acts_key, evaluate
from ..heatmap import grid_of, needed_terminals, on_grid, saliency
from ..metrics.base import Metric
from ..workspace import BASE, Workspace


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
                        metric: Metric, min_effect: float = 0.0) -> Candidate:
    """The validation rule: find the candidate best on validation (its ``validation_score``); among those whose
    paired per-image validation scores are within one standard error of it, or closer than ``min_effect``
    (:func:`sycam.stats.within_noise`), return the smallest (ties: better validation score, then earlier in
    ``candidates``)."""
    def score(c: Candidate) -> float:
        return metric.sort_key(math.nan if c.validation_score is None else c.validation_score)

    top = min(candidates, key=lambda c: (score(c), c.size, c.order))
    close = [c for c in candidates
             if c is top or stats.within_noise(per_image[c.expression], per_image[top.expression], min_effect)]
    return min(close, key=lambda c: (c.size, score(c), c.order))


def shape_maps(layer_values: Tensor) -> Tensor:
    r"""Each map of ``layer_values`` ``(B, N, h, w)`` (the raw channel sums :math:`\sum_k w_k A_k`) as
    :math:`\mathrm{relu}(s) / \max \mathrm{relu}(s)` (0 where the map is all ≤ 0): the same tensor for any two
    candidates whose maps differ by a positive factor (``cube(D)``, ``cube(D / 3)``; ``mean(G)``, ``sum(G)``),
    with no normalization epsilon to tell tiny values apart."""
    r = torch.relu(layer_values).flatten(-2)
    top = r.amax(-1, keepdim=True)
    return torch.where(top > 0, r / torch.where(top > 0, top, torch.ones_like(top)), r).reshape(layer_values.shape)


def merge_rescaled(candidates: Sequence[Candidate], shapes: Tensor,
                   rtol: float = 1e-5, atol: float = 1e-6) -> tuple[list[Candidate], dict[str, list[str]]]:
    """Merge candidates whose :func:`shape_maps` ``shapes[i]`` agree on every image (``torch.allclose`` with
    ``rtol``/``atol``: float rounding of a rescaling, nothing more), keeping the smallest of each set (ties: the
    earlier in ``candidates``). Returns the kept candidates in their order and ``kept expression → merged
    expressions``.

    >>> a, b = Candidate("sum(G)", 2, 0.5, 0), Candidate("mean(G)", 2, 0.5, 1)
    >>> kept, merged = merge_rescaled([a, b], torch.ones(2, 1, 2, 2))
    >>> [c.expression for c in kept], merged
    (['sum(G)'], {'sum(G)': ['mean(G)']})
    """
    order = sorted(range(len(candidates)), key=lambda i: (candidates[i].size, i))
    keeper: dict[int, int] = {}
    for i in order:
        for j in dict.fromkeys(keeper.values()):
            if torch.allclose(shapes[i], shapes[j], rtol=rtol, atol=atol):
                keeper[i] = j
                break
        else:
            keeper[i] = i
    merged: dict[str, list[str]] = {}
    for i in range(len(candidates)):
        if keeper[i] != i:
            merged.setdefault(candidates[keeper[i]].expression, []).append(candidates[i].expression)
    return [c for i, c in enumerate(candidates) if keeper[i] == i], merged


def shapes_on(ws: Workspace, nodes: Sequence[Node], view: str = BASE) -> Tensor:
    """:func:`shape_maps` ``(B, N, h, w)`` of ``nodes`` on a workspace's ``view`` (its terminals, its
    activations)."""
    vals = ws.values(needed_terminals(nodes), view)
    grid = grid_of(vals)
    memo: dict[Node, Tensor] = {}

    def raw(n: Node) -> Tensor:  # a heatmap-valued expression is its own map; weights meet their layer's A
        value = evaluate(n, vals, memo)
        return on_grid(value if value.dim() == 3 else saliency(value, vals[acts_key(n)]), grid)

    return torch.stack([shape_maps(raw(n)) for n in nodes])
