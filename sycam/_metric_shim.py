"""Temporary bridge to the round's Metric API (``better``, ``sort_key``, ``worst``, ``evaluate``, ``degenerate``).

The engine calls these functions; each delegates to the metric's own method when ``sycam.metrics.base``
provides it (the contract of this round) and otherwise applies the same rule here. Delete this module, and
call the methods directly, once the metrics branch is merged.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from .metrics import base as _base
from .metrics.base import Metric, MetricContext, MetricError


def degenerate(maps: Tensor) -> Tensor:
    """Per-image flags ``(*B, N)`` for maps ``(*B, N, H, W)``: constant (all-zero included) or non-finite."""
    own = getattr(_base, "degenerate", None)
    if own is not None:
        return own(maps)
    flat = maps.flatten(-2)
    finite = torch.isfinite(flat).all(-1)
    safe = torch.where(torch.isfinite(flat), flat, torch.zeros_like(flat))
    constant = safe.amax(-1) == safe.amin(-1)
    return ~finite | constant


def better(metric: Metric, a: float, b: float | None) -> bool:
    """Whether score ``a`` is strictly better than ``b`` (NaN never better; ``b`` None or NaN → True)."""
    if _has(metric, "sort_key"):
        return bool(metric.better(a, b))  # type: ignore[arg-type]
    if a != a:
        return False
    if b is None or b != b:
        return True
    return a > b if metric.higher_is_better else a < b


def sort_key(metric: Metric, score: float) -> float:
    """Ascending key, best first, NaN last."""
    if _has(metric, "sort_key"):
        return float(metric.sort_key(score))  # type: ignore[attr-defined]
    if score != score:
        return math.inf
    return -score if metric.higher_is_better else score


def worst(metric: Metric) -> float:
    """The per-image value of a degenerate map."""
    if _has(metric, "worst"):
        return float(metric.worst())  # type: ignore[attr-defined]
    return 0.0 if metric.higher_is_better else 1.0


def evaluate(metric: Metric, maps: Tensor, ctx: MetricContext) -> Tensor:
    """Per-image scores ``(*B, N)``: ``metric.score`` with degenerate images set to :func:`worst`."""
    if _has(metric, "evaluate"):
        return metric.evaluate(maps, ctx)  # type: ignore[attr-defined]
    bad = degenerate(maps)
    scores = metric.score(maps, ctx)
    if bool(torch.isnan(scores[~bad]).any()):
        raise MetricError(f"metric {metric.name} returned NaN on a non-degenerate heatmap")
    return torch.where(bad, torch.full_like(scores, worst(metric)), scores)


def _has(metric: Metric, name: str) -> bool:
    return any(name in vars(k) for k in type(metric).__mro__ if k is not object)
