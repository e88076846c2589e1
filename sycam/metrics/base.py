"""The metric interface.

A metric scores a whole batch of heatmaps at once. Heatmaps arrive as a tensor ``maps`` of shape
``(*B, N, H, W)`` with values in [0, 1]: ``N`` images (aligned with ``ctx.samples``) and optional leading
candidate axes ``*B`` (the synthesizer scores many candidate expressions in one call). ``score`` returns
per-image scores of shape ``(*B, N)``; ``aggregate`` reduces the last axis (mean by default).

Cost classes:

- ``cached``: the score is a function of the heatmaps and the ground truth, or of heatmaps of *fixed*
  transformed inputs (``views``) whose terminals the engine computes once; scoring one more candidate
  is tensor arithmetic only.
- ``model``: the score needs forward passes on inputs that depend on the candidate (``ctx.logits``)
  or re-explanations of such inputs (``ctx.explain``).

A metric that needs the heatmaps of transformed inputs declares them in :meth:`Metric.views`: given the
samples, a dict of named transformed inputs ``(N, 3, H, W)`` (deterministic: seeded noise, flips, ...).
The engine runs the model on each view once, caches the terminals, and hands the candidate's heatmaps on
view ``name`` to the metric through ``ctx.view_maps(name)``, with the same leading axes as ``maps``.
Targets stay the samples' labels.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from typing import Any, ClassVar, Literal, Protocol

import torch
from torch import Tensor

from ..data.samples import Samples
from ..errors import SycamError

GroundTruth = Literal["none", "mask"]
Cost = Literal["cached", "model"]


class MetricError(SycamError, ValueError):
    """Bad metric name, parameters or inputs."""


class MetricContext(Protocol):
    """What a metric may ask of the engine while scoring one batch of candidates."""

    @property
    def samples(self) -> Samples:
        """The N samples being scored (inputs, labels, ground truth)."""
        ...

    def view_maps(self, view: str) -> Tensor:
        """Heatmaps ``(*B, N, H, W)`` of the same candidate(s) on the view named ``view``."""
        ...

    def logits(self, images: Tensor) -> Tensor:
        """Model outputs ``(M, classes)`` for inputs ``(M, 3, H, W)``; no gradients, chunked on the device."""
        ...

    def explain(self, images: Tensor) -> Tensor:
        """Heatmaps ``(*B, N, H, W)`` of the candidate(s) recomputed on new inputs ``(*B, N, 3, H, W)``
        (sample ``i`` keeps target ``labels[i]``)."""
        ...


class Metric(ABC):
    """Base class of all metrics. Subclasses set the class attributes and implement :meth:`score`."""

    name: ClassVar[str]
    higher_is_better: ClassVar[bool]
    requires: ClassVar[GroundTruth] = "none"
    cost: ClassVar[Cost] = "cached"
    family: ClassVar[str] = ""

    def views(self, samples: Samples) -> Mapping[str, Tensor]:
        """Transformed inputs ``(N, 3, H, W)`` whose heatmaps this metric reads, by name (cached once by
        the engine). Must be deterministic for given samples."""
        return {}

    @abstractmethod
    def score(self, maps: Tensor, ctx: MetricContext) -> Tensor:
        """Per-image scores ``(*B, N)`` for heatmaps ``(*B, N, H, W)`` in [0, 1]."""

    def aggregate(self, scores: Tensor) -> Tensor:
        """Aggregate per-image scores ``(*B, N)`` to ``(*B,)``: the mean over images, ignoring NaN."""
        return torch.nanmean(scores, dim=-1)

    def params(self) -> dict[str, Any]:
        """The metric's configuration, recorded with every result (rankings depend on it)."""
        return {k: v for k, v in vars(self).items() if not k.startswith("_")}

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "higher_is_better": self.higher_is_better,
            "requires": self.requires,
            "cost": self.cost,
            "family": self.family,
            "params": self.params(),
        }

    def better(self, a: float, b: float) -> bool:
        """Whether score ``a`` is strictly better than ``b`` in this metric's direction."""
        return a > b if self.higher_is_better else a < b

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.params().items())
        return f"{type(self).__name__}({args})"


class StaticContext:
    """A :class:`MetricContext` over fixed data: precomputed view heatmaps, an optional model and an
    optional explainer. Handy for scoring heatmaps that came from elsewhere, and for tests."""

    def __init__(
        self,
        samples: Samples,
        model: Callable[[Tensor], Tensor] | None = None,
        views: Mapping[str, Tensor] | None = None,
        explainer: Callable[[Tensor], Tensor] | None = None,
        batch_size: int = 64,
    ) -> None:
        self._samples = samples
        self._model = model
        self._views = dict(views or {})
        self._explainer = explainer
        self.batch_size = batch_size

    @property
    def samples(self) -> Samples:
        return self._samples

    def view_maps(self, view: str) -> Tensor:
        try:
            return self._views[view]
        except KeyError:
            raise MetricError(f"view {view!r} was not provided (have: {sorted(self._views)})") from None

    @torch.no_grad()
    def logits(self, images: Tensor) -> Tensor:
        if self._model is None:
            raise MetricError("this metric needs a model, but none was given")
        chunks = [self._model(images[i : i + self.batch_size]) for i in range(0, images.shape[0], self.batch_size)]
        return torch.cat(chunks) if chunks else images.new_zeros((0, 0))

    def explain(self, images: Tensor) -> Tensor:
        if self._explainer is None:
            raise MetricError("this metric re-explains inputs, but no explainer was given")
        return self._explainer(images)
