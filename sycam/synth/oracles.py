"""The two oracles of OGIS.

- :class:`EquivalenceOracle` — observational equivalence of candidates. ``"heatmap"`` (default): two
  candidates are one class when their normalized layer-resolution heatmaps agree within ``tolerance`` on
  every probe image and view (the final heatmaps then agree too: the resize and second normalization are
  the same function of them). The first (smallest) candidate represents the class. ``"metric"`` (the
  paper's definition): candidates whose metric value on the synthesis split agrees within ``tolerance``
  are one class. ``"none"``: no pruning. NaN/Inf and constant maps are rejected with a counted reason.
- :class:`CorrectnessOracle` — a candidate is *correct* when its synthesis score beats λ in the metric's
  direction; λ defaults to the best classic method's score on the synthesis split.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor

from ..heatmap import normalize, saliency
from .learner import fingerprint

EQUIVALENCES = ("heatmap", "metric", "none")


@dataclass
class EquivalenceOracle:
    """Decides whether a candidate is new, equivalent to an earlier one, or invalid."""

    mode: str = "heatmap"
    tolerance: float = 1e-4
    classes: dict[tuple[int, int], list[tuple[str, Tensor]]] = field(default_factory=dict)
    score_classes: list[tuple[float, str]] = field(default_factory=list)
    pruned: int = 0
    rejected: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.mode not in EQUIVALENCES:
            raise ValueError(f"equivalence must be one of {', '.join(EQUIVALENCES)}, got {self.mode!r}")

    def _reject(self, reason: str) -> None:
        self.rejected[reason] = self.rejected.get(reason, 0) + 1

    @staticmethod
    def layer_maps(weights: tuple[Tensor, ...], acts: tuple[Tensor, ...]) -> Tensor:
        """Normalized relu'd layer-resolution maps of a candidate on every input set, concatenated."""
        return torch.cat([normalize(torch.relu(saliency(w, a))).flatten() for w, a in zip(weights, acts,
                                                                                             strict=True)])

    def check(self, label: str, weights: tuple[Tensor, ...], acts: tuple[Tensor, ...]) -> str | None:
        """``None`` if the candidate is new (and record it); else the reason it is not scored:
        ``"equivalent"``, or a rejection reason."""
        maps = self.layer_maps(weights, acts)
        if not bool(torch.isfinite(maps).all()):
            self._reject("non-finite heatmap")
            return "non-finite heatmap"
        n_base = acts[0].shape[0] * acts[0].shape[-2] * acts[0].shape[-1]
        if float(maps[:n_base].max()) == 0.0:
            self._reject("constant heatmap")
            return "constant heatmap"
        if self.mode != "heatmap":
            return None
        key = fingerprint((maps,), 1e3)
        for _rep, other in self.classes.get(key, []):
            if float((maps - other).abs().max()) <= self.tolerance:
                self.pruned += 1
                return "equivalent"
        self.classes.setdefault(key, []).append((label, maps))
        return None

    def check_score(self, label: str, score: float) -> bool:
        """Metric-value equivalence: True (and counted) if ``score`` matches an earlier class."""
        if self.mode != "metric":
            return False
        for other, _label in self.score_classes:
            if abs(other - score) <= self.tolerance:
                self.pruned += 1
                return True
        self.score_classes.append((score, label))
        return False


@dataclass
class CorrectnessOracle:
    """Accepts a candidate whose score beats λ in the metric's direction."""

    higher_is_better: bool
    threshold: float | None

    def accepts(self, score: float) -> bool:
        if self.threshold is None or score != score:  # no λ, or NaN
            return False
        return score > self.threshold if self.higher_is_better else score < self.threshold

    def better(self, a: float, b: float | None) -> bool:
        """Whether score ``a`` beats ``b`` (``None`` and NaN lose to everything)."""
        if a != a:
            return False
        if b is None or b != b:
            return True
        return a > b if self.higher_is_better else a < b
