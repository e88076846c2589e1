"""The error of the metrics: bad names, parameters or inputs (one line, naming the metric)."""

from __future__ import annotations

from ..errors import SycamError


class MetricError(SycamError, ValueError):
    """Bad metric name, parameters or inputs."""
