"""The two oracles of OGIS.

- :class:`EquivalenceOracle` — observational equivalence of candidates. ``"heatmap"`` (default): two
  candidates are one class when their normalized layer-resolution heatmaps agree within ``tolerance`` on
  every probe image and view (the final heatmaps then agree too: the resize and second normalization are
  the same function of them). The first (smallest) candidate represents the class. ``"metric"`` (the
  paper's definition): candidates whose objective values on the synthesis split all agree within
  ``tolerance`` are one class. ``"none"``: no pruning.
- :class:`CorrectnessOracle` — the paper's correctness oracle as a conjunction. A candidate is *rejected*
  before scoring when its heatmap is non-finite on any image or view, or degenerate (constant, all-zero) on
  more synthesis images than ``max_degenerate`` allows; it is *admissible* when every constraint holds on the
  synthesis split, and *correct* when, in addition, it beats λ on every objective (λ defaults to the best
  exact classic method's synthesis score, per objective).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from ..expr import Node
from ..heatmap import faint, layer_maps, layer_maps_of
from ..metrics.base import Metric, degenerate
from .constraints import Constraint
from .learner import fingerprint, fingerprint_positions, fingerprint_samples

EQUIVALENCES = ("heatmap", "metric", "none")
FINGERPRINT_LEVELS = 1e3
"""rounding of the heatmap fingerprint's block statistics (:func:`~sycam.synth.learner.fingerprint`)"""


@dataclass
class TriageBlock:
    """What both oracles need of a batch of B candidates, computed in one pass of tensor arithmetic
    (:func:`triage_block`): the layer maps on every view, the correctness oracle's per-candidate counts and the
    equivalence oracle's flat maps. Per candidate the numbers are those of one-by-one triage (the maps come from
    :func:`~sycam.heatmap.layer_maps_of`, the counts are reductions of each candidate's own maps)."""

    maps: list[Tensor]
    """per view (base first), the layer maps ``(B, N, h, w)``"""
    finite: list[bool]
    """finite on every view"""
    blank: list[int]
    """base images whose map is degenerate"""
    bad: list[int]
    """base images whose map is degenerate or faint"""
    flat: Tensor
    """``(B, views·N·h·w)``: every view's maps, flattened and concatenated (what heatmap equivalence compares)"""

    def keys(self, levels: float = FINGERPRINT_LEVELS) -> list[tuple[int, int]]:
        """Heatmap fingerprints of the flat maps (:func:`~sycam.synth.learner.fingerprint` of each row)."""
        pos = torch.tensor(list(fingerprint_positions(self.flat.shape[1])), dtype=torch.long)
        return fingerprint_samples(self.flat.index_select(1, pos.to(self.flat.device)), levels)


def triage_block(nodes: Sequence[Node], weights: Sequence[Sequence[Tensor]],
                 per_view: Sequence[Mapping[str, Tensor]], grid: tuple[int, int] | None = None) -> TriageBlock:
    """:class:`TriageBlock` of candidates ``nodes`` whose values on each view are ``weights[b][view]``, over the
    terminal values ``per_view`` of each view (base first), their maps on ``grid`` (a search over several layers
    scores on the finest; :func:`~sycam.heatmap.layer_maps_of`). The same code triages a block on one machine and
    on a shard (which holds some of the images: its counts add up, its flat maps are its part)."""
    b = len(weights)
    if not b:
        return TriageBlock([], [], [], [], torch.zeros(0, 0))
    maps = [layer_maps_of(nodes, [w[v] for w in weights], pv, grid) for v, pv in enumerate(per_view)]
    finite = torch.ones(b, dtype=torch.bool)
    for m in maps:
        finite &= torch.isfinite(m.reshape(b, -1)).all(1).cpu()
    blank = degenerate(maps[0])
    bad = blank | faint(maps[0])
    flat = torch.cat([m.reshape(b, -1) for m in maps], 1)
    return TriageBlock(maps, finite.tolist(), blank.sum(-1).tolist(), bad.sum(-1).tolist(), flat)


@dataclass
class EquivalenceOracle:
    """Decides whether a (valid) candidate is equivalent to an earlier one."""

    mode: str = "heatmap"
    tolerance: float = 1e-4
    classes: dict[tuple[int, int], list[tuple[str, Any]]] = field(default_factory=dict)
    score_classes: list[tuple[tuple[float, ...], str]] = field(default_factory=list)
    pruned: int = 0

    def __post_init__(self) -> None:
        if self.mode not in EQUIVALENCES:
            raise ValueError(f"equivalence must be one of {', '.join(EQUIVALENCES)}, got {self.mode!r}")

    @staticmethod
    def layer_maps(weights: Sequence[Tensor], acts: Sequence[Tensor]) -> list[Tensor]:
        """Normalized relu'd layer-resolution maps of a candidate on every input set (base first)."""
        return [layer_maps(w, a) for w, a in zip(weights, acts, strict=True)]

    def check(self, label: str, maps: Sequence[Tensor]) -> bool:
        """Heatmap equivalence: True (and counted) when ``maps`` (from :meth:`layer_maps`) match an earlier
        class within ``tolerance``; otherwise the candidate founds a new class (recorded) and False."""
        if self.mode != "heatmap":
            return False
        flat = torch.cat([m.flatten() for m in maps])
        return self.match(label, fingerprint((flat,), FINGERPRINT_LEVELS), flat,
                          lambda other: float((flat - other).abs().max()))

    def match(self, label: str, key: tuple[int, int], ref: Any, distance: Callable[[Any], float]) -> bool:
        """The heatmap rule on any representation: True (and counted) when ``distance`` (the largest absolute
        difference of the maps) to a class of bucket ``key`` is within ``tolerance``; otherwise the candidate
        founds a class, remembered as ``ref``. One machine passes the flat maps; a sharded search passes an id
        and a distance that is the largest of the shards' distances."""
        for _rep, other in self.classes.get(key, []):
            if distance(other) <= self.tolerance:
                self.pruned += 1
                return True
        self.classes.setdefault(key, []).append((label, ref))
        return False

    def check_score(self, label: str, scores: Sequence[float]) -> bool:
        """Metric-value equivalence: True (and counted) if every objective value matches an earlier class."""
        if self.mode != "metric":
            return False
        key = tuple(float(s) for s in scores)
        for other, _label in self.score_classes:
            if all(abs(a - b) <= self.tolerance for a, b in zip(other, key, strict=True)):
                self.pruned += 1
                return True
        self.score_classes.append((key, label))
        return False


@dataclass
class CorrectnessOracle:
    """Rejects invalid heatmaps, checks constraints, and accepts candidates that beat λ on every objective.

    Args:
        objectives: the metrics being optimized (the first is the primary one).
        lambdas: λ per objective (``None``: no λ, nothing beats it).
        constraints: ``(constraint, bound)`` pairs (bounds resolved from the baselines).
        max_degenerate: synthesis images on which a candidate's heatmap may be degenerate.
    """

    objectives: Sequence[Metric]
    lambdas: Sequence[float | None]
    constraints: Sequence[tuple[Constraint, float]] = ()
    max_degenerate: int = 0

    def reject(self, maps: Sequence[Tensor]) -> str | None:
        """The reason to reject a candidate from its layer maps per input set (base first), or None.

        ``"non-finite heatmap"`` on any set, ``"constant heatmap"`` when degenerate on every synthesis image,
        ``"degenerate heatmap"`` when degenerate or faint (:func:`~sycam.heatmap.faint`: rendered below half the
        colour scale) on more than ``max_degenerate`` of them."""
        finite = all(bool(torch.isfinite(m).all()) for m in maps)
        blank = degenerate(maps[0])
        return self.reject_counts(finite, int(blank.sum()), int((blank | faint(maps[0])).sum()), blank.numel())

    def reject_counts(self, finite: bool, blank: int, bad: int, n: int) -> str | None:
        """:meth:`reject` from counts over the ``n`` synthesis images (which add up over image shards):
        ``blank`` degenerate maps, ``bad`` degenerate or faint ones; ``finite`` on every set."""
        if not finite:
            return "non-finite heatmap"
        if blank == n:
            return "constant heatmap"
        if bad > self.max_degenerate:
            return "degenerate heatmap"
        return None

    def holds(self, scores: Mapping[str, float]) -> bool:
        """Every constraint holds for these synthesis scores (by metric name)."""
        return all(c.holds(scores[c.metric], bound) for c, bound in self.constraints)

    def beats(self, scores: Mapping[str, float]) -> bool:
        """Strictly better than λ on every objective (False where an objective has no λ)."""
        return all(t is not None and m.better(scores[m.name], t)
                   for m, t in zip(self.objectives, self.lambdas, strict=True))

    def correct(self, scores: Mapping[str, float]) -> bool:
        """Admissible (constraints hold) and beats λ on every objective."""
        return self.holds(scores) and self.beats(scores)
