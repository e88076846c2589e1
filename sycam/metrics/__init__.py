"""Evaluation metrics for heatmaps, and their registry.

>>> from sycam.metrics import get_metric, list_metrics
>>> m = get_metric("pointing_game", tolerance=0)
>>> m.higher_is_better, m.requires, m.cost
(True, 'mask', 'cached')
>>> m.better(1.0, 0.5), m.worst()
(True, 0.0)

Engine code scores with ``metric.evaluate(maps, ctx)`` (degenerate maps get ``metric.worst()``; no NaN is
dropped silently), or ``metric.evaluate_lowres(layer_maps, size, ctx)`` from layer-resolution maps, exact
for the metrics with ``lowres``; it ranks scores with ``metric.better`` / ``metric.sort_key`` only.

``get_metric(name, **params)`` also accepts ``"quantus:<MetricClass>"`` (a :class:`QuantusMetric`) and an
explicit ``"module:function"`` / ``"path/file.py:function"`` plug-in (see :mod:`sycam.metrics.custom`).
Formulas, defaults and differences from other libraries are in ``docs/metrics.md`` and in each class's
docstring.
"""

from __future__ import annotations

import inspect
from typing import Any

from .base import Metric, degenerate
from .complexity import Complexity, Sparseness
from .context import MetricContext, StaticContext
from .custom import CustomMetric, QuantusMetric, load_custom_metric
from .equivariance import Equivariance, Invariance
from .errors import MetricError
from .faithfulness import ADCC, AverageDrop, DeletionAUC, IncreaseInConfidence, InsertionAUC
from .localization import EnergyPointingGame, IoU, MaskAUC, PointingGame
from .robustness import AvgSensitivity, MaxSensitivity

__all__ = [
    "ADCC",
    "METRICS",
    "AverageDrop",
    "AvgSensitivity",
    "Complexity",
    "CustomMetric",
    "DeletionAUC",
    "EnergyPointingGame",
    "Equivariance",
    "IncreaseInConfidence",
    "InsertionAUC",
    "Invariance",
    "IoU",
    "MaskAUC",
    "MaxSensitivity",
    "Metric",
    "MetricContext",
    "MetricError",
    "PointingGame",
    "QuantusMetric",
    "Sparseness",
    "StaticContext",
    "degenerate",
    "get_metric",
    "list_metrics",
    "load_custom_metric",
]

METRICS: dict[str, type[Metric]] = {
    cls.name: cls
    for cls in (
        EnergyPointingGame,
        PointingGame,
        IoU,
        MaskAUC,
        AverageDrop,
        IncreaseInConfidence,
        DeletionAUC,
        InsertionAUC,
        ADCC,
        Sparseness,
        Complexity,
        MaxSensitivity,
        AvgSensitivity,
        Equivariance,
        Invariance,
    )
}
"""The built-in metric classes by :attr:`~Metric.name` (:func:`list_metrics` lists them in this order)."""


def _param_names(cls: type) -> list[str]:
    sig = inspect.signature(cls.__init__)
    return [
        p for p in sig.parameters if p != "self" and sig.parameters[p].kind is inspect.Parameter.POSITIONAL_OR_KEYWORD
    ]


def get_metric(name: str, **params: Any) -> Metric:
    """The metric called ``name`` configured with ``params``.

    ``name`` is a built-in name (see :data:`METRICS` / :func:`list_metrics`), ``"quantus:<Class>"``, or an
    explicit ``"module:function"`` / ``"path/file.py:function"`` plug-in. Raises :class:`MetricError` with a
    one-line message for an unknown name or a bad parameter."""
    if not isinstance(name, str):
        raise MetricError(f"metric name must be a string, got {type(name).__name__}")
    key = name.strip()
    if key.lower().startswith("quantus:"):
        return QuantusMetric(key.split(":", 1)[1], **params)
    if ":" in key:
        return load_custom_metric(key, **params)
    cls = METRICS.get(key) or METRICS.get(key.lower().replace("-", "_"))
    if cls is None:
        raise MetricError(
            f"unknown metric {name!r}; valid: {', '.join(METRICS)} (or quantus:<Class>, or module:function)"
        )
    valid = _param_names(cls)
    unknown = [p for p in params if p not in valid]
    if unknown:
        raise MetricError(
            f"metric {cls.name!r} has no parameter {unknown[0]!r}; valid: {', '.join(valid) if valid else '(none)'}"
        )
    try:
        return cls(**params)
    except MetricError:
        raise
    except (TypeError, ValueError) as e:  # a value of the wrong kind that no check caught by name
        raise MetricError(f"metric {cls.name!r}: bad parameter value ({e})") from None


def list_metrics() -> list[dict[str, Any]]:
    """One row per built-in metric: ``name``, ``direction`` (``"higher"``/``"lower"`` is better), ``requires``,
    ``cost``, ``family``, ``params`` (the defaults), ``doc`` (one line) and ``reference`` (the paper, with a link)."""
    rows = []
    for name, cls in METRICS.items():
        summary = getattr(cls, "summary", "") or " ".join((inspect.getdoc(cls) or "").split("\n\n", 1)[0].split())
        rows.append(
            {
                "name": name,
                "direction": "higher" if cls.higher_is_better else "lower",
                "requires": cls.requires,
                "cost": cls.cost,
                "family": cls.family,
                "params": cls().params(),
                "doc": summary,
                "reference": cls.reference,
            }
        )
    return rows
