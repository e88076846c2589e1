"""What a metric receives while scoring: the engine's side of the interface (:class:`MetricContext`), and a
context over fixed data (:class:`StaticContext`) for heatmaps that came from elsewhere and for tests."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Protocol

import torch
from torch import Tensor

from ..data.samples import Samples
from .errors import MetricError


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
        """The samples given to the constructor."""
        return self._samples

    def view_maps(self, view: str) -> Tensor:
        """The precomputed heatmaps ``(*B, N, H, W)`` of view ``view``; :class:`MetricError` if none were given."""
        try:
            return self._views[view]
        except KeyError:
            raise MetricError(f"view {view!r} was not provided (have: {sorted(self._views)})") from None

    @torch.no_grad()
    def logits(self, images: Tensor) -> Tensor:
        """``model(images)`` ``(M, classes)`` in chunks of ``batch_size``, without gradients;
        :class:`MetricError` if no model was given."""
        if self._model is None:
            raise MetricError("this metric needs a model, but none was given")
        chunks = [self._model(images[i : i + self.batch_size]) for i in range(0, images.shape[0], self.batch_size)]
        return torch.cat(chunks) if chunks else images.new_zeros((0, 0))

    def explain(self, images: Tensor) -> Tensor:
        """``explainer(images)``: heatmaps ``(*B, N, H, W)`` of inputs ``(*B, N, 3, H, W)``; :class:`MetricError`
        if no explainer was given."""
        if self._explainer is None:
            raise MetricError("this metric re-explains inputs, but no explainer was given")
        return self._explainer(images)
