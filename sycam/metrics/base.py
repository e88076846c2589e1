"""The metric interface.

A metric scores a whole batch of heatmaps at once. Heatmaps arrive as a tensor ``maps`` of shape
``(*B, N, H, W)`` with values in [0, 1]: ``N`` images (aligned with ``ctx.samples``) and optional leading
candidate axes ``*B`` (the synthesizer scores many candidate expressions in one call). ``score`` returns
per-image scores of shape ``(*B, N)``; ``aggregate`` reduces the last axis (the plain mean).

Engine code calls :meth:`Metric.evaluate`, never ``score``: a *degenerate* map (constant, all-zero or with a
non-finite value, see :func:`degenerate`) is a failed explanation and gets the metric's :meth:`Metric.worst`
value for that image, and a NaN from ``score`` on any other map raises :class:`MetricError` naming the metric.
So no NaN reaches an aggregate. :meth:`Metric.better` and :meth:`Metric.sort_key` are the one ordering rule.

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

import inspect
import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from typing import Any, ClassVar, Literal, SupportsFloat

import torch
from torch import Tensor

from ..data.samples import Samples
from ..exactsum import exact_means
from .context import MetricContext, StaticContext
from .errors import MetricError
from .lowres import check_lowres, full_maps

__all__ = [
    "Cost",
    "GroundTruth",
    "Metric",
    "MetricContext",
    "MetricError",
    "StaticContext",
    "degenerate",
    "score_better",
    "score_sort_key",
]

GroundTruth = Literal["none", "mask"]
Cost = Literal["cached", "model"]


def degenerate(maps: Tensor) -> Tensor:
    """Which maps are degenerate: ``(*B, N)`` bool for maps ``(*B, N, H, W)`` (any resolution).

    A map is degenerate when it is constant over its pixels (all-zero included) or has a NaN or infinite
    value anywhere. Such a map carries no location, so every metric scores it :meth:`Metric.worst`.

    >>> m = torch.rand(2, 3, 4, 4); m[0, 1] = 0.0; m[1, 2, 0, 0] = float("nan")
    >>> degenerate(m).tolist()
    [[False, True, False], [False, False, True]]
    """
    if maps.dim() < 2:
        raise MetricError(f"degenerate: maps must have shape (*B, N, H, W), got {tuple(maps.shape)}")
    flat = maps.flatten(-2)
    if flat.shape[-1] == 0:
        return torch.ones(flat.shape[:-1], dtype=torch.bool, device=maps.device)
    finite = torch.isfinite(flat).all(-1)
    constant = flat.amax(-1) == flat.amin(-1)
    return ~finite | constant


def score_better(a: SupportsFloat, b: SupportsFloat | None, higher_is_better: bool) -> bool:
    """The one ordering rule for scores of a metric with direction ``higher_is_better`` (see
    :meth:`Metric.better`, which calls it; code that holds only a results file's direction calls it too)."""
    fa = float(a)
    if math.isnan(fa):
        return False
    if b is None:
        return True
    fb = float(b)
    if math.isnan(fb):
        return True
    return fa > fb if higher_is_better else fa < fb


def score_sort_key(score: SupportsFloat, higher_is_better: bool) -> float:
    """Ascending key, best first, NaN last: ``-score`` when higher is better, ``score`` otherwise, ``+inf``
    for NaN (see :meth:`Metric.sort_key`, which calls it)."""
    f = float(score)
    if math.isnan(f):
        return math.inf
    return -f if higher_is_better else f


class Metric(ABC):
    """Base class of all metrics. Subclasses set the class attributes and implement :meth:`score`."""

    name: ClassVar[str]
    """The registry name, e.g. ``"deletion_auc"`` (results and the command line refer to the metric by it)."""
    higher_is_better: ClassVar[bool]
    """The direction: True when a larger score is better. :meth:`better` and :meth:`sort_key` read it."""
    requires: ClassVar[GroundTruth] = "none"
    """``"mask"`` when the score needs ground-truth regions (``ctx.samples.masks``), else ``"none"``."""
    cost: ClassVar[Cost] = "cached"
    """``"cached"`` (tensor arithmetic on maps of fixed inputs) or ``"model"`` (forward passes that depend on
    the candidate); see the module docstring."""
    family: ClassVar[str] = ""
    """The group the metric is listed under (``"ground truth"``, ``"faithfulness"``, ``"robustness"``, ...)."""
    reference: ClassVar[str] = ""
    """The paper that defines the metric, ``"Authors, Title, Venue Year — URL"`` (an arXiv or DOI link); ``sycam
    list metrics --long``, results.json and the report show it. Empty for user-defined metrics."""
    lowres: ClassVar[bool] = False
    """Whether :meth:`evaluate_lowres` computes the score exactly from layer-resolution maps (cheaper than
    rendering full maps); False: it renders the full maps and calls :meth:`evaluate`."""

    def views(self, samples: Samples) -> Mapping[str, Tensor]:
        """Transformed inputs ``(N, 3, H, W)`` whose heatmaps this metric reads, by name (cached once by
        the engine). Must be deterministic for given samples."""
        return {}

    @abstractmethod
    def score(self, maps: Tensor, ctx: MetricContext) -> Tensor:
        """Per-image scores ``(*B, N)`` for heatmaps ``(*B, N, H, W)`` in [0, 1]."""

    def worst(self) -> float:
        """The value a degenerate map gets per image: the end of the metric's range in its bad direction
        (see the table in ``docs/metrics.md``). The default, for a metric of unknown range, is ``-inf`` when
        higher is better and ``+inf`` when lower is better."""
        return -math.inf if self.higher_is_better else math.inf

    def evaluate(self, maps: Tensor, ctx: MetricContext) -> Tensor:
        """Per-image scores ``(*B, N)`` as the engine uses them: :meth:`score`, with each degenerate map
        (:func:`degenerate`) scored :meth:`worst` instead.

        Degenerate maps are handed to ``score`` as zeros (so no NaN reaches a model or a sort) and their
        score is then replaced; if every map is degenerate ``score`` is not called. A NaN from ``score`` on
        a non-degenerate map raises :class:`MetricError` naming the metric and the images (e.g. an empty
        ground-truth mask, where a localization metric is undefined); so does any exception from a metric
        defined outside sycam.

        >>> from sycam.data.samples import Samples
        >>> from sycam.metrics import get_metric
        >>> ctx = StaticContext(Samples(images=torch.zeros(2, 3, 4, 4), labels=torch.zeros(2, dtype=torch.long)))
        >>> maps = torch.zeros(2, 4, 4); maps[0, 0, 0] = 1.0
        >>> m = get_metric("complexity")
        >>> m.score(maps, ctx).tolist(), m.evaluate(maps, ctx).tolist()  # the blank map: best score, worst value
        ([0.0625, 0.0], [0.0625, 1.0])
        """
        if not isinstance(maps, Tensor):
            raise MetricError(f"{self.name}: maps must be a torch.Tensor, got {type(maps).__name__}")
        return self._evaluate_with(maps, ctx, lambda clean: self._checked_score(clean, ctx))

    def evaluate_lowres(self, layer_maps: Tensor, size: tuple[int, int], ctx: MetricContext) -> Tensor:
        """Per-image scores ``(*B, N)`` from layer-resolution maps ``(*B, N, h, w)``, equal (within 1e-5) to
        ``evaluate`` of their full-resolution heatmaps at ``size`` (the samples' input size).

        ``layer_maps`` are ``norm(relu(raw saliency))`` at the layer's resolution, i.e. the heatmaps *before*
        the bilinear resize and the second normalization of ``sycam.heatmap.finish``. Metrics with
        :attr:`lowres` compute the score from them exactly (:mod:`sycam.metrics.lowres`); the others, and any
        ``size`` smaller than the layer maps, render the full maps and call :meth:`evaluate`. A layer map is
        degenerate exactly when its full map is (upsampling is injective), so the worst values agree."""
        size = (int(size[0]), int(size[1]))
        samples = getattr(ctx, "samples", None)
        images = getattr(samples, "images", None)
        check_lowres(layer_maps, size, size if images is None else tuple(images.shape[-2:]), self.name)
        h, w = layer_maps.shape[-2:]
        if not self.lowres or size[0] < h or size[1] < w:
            return self.evaluate(full_maps(layer_maps, size), ctx)
        return self._evaluate_with(layer_maps, ctx, lambda clean: self.score_lowres(clean, size, ctx))

    def score_lowres(self, layer_maps: Tensor, size: tuple[int, int], ctx: MetricContext) -> Tensor:
        """``score`` of the full maps of non-degenerate ``layer_maps``, computed at layer resolution (only for
        metrics with :attr:`lowres`; see :meth:`evaluate_lowres`)."""
        raise NotImplementedError(f"{self.name} has no exact low-resolution path")

    def _evaluate_with(self, maps: Tensor, ctx: MetricContext, score: Callable[[Tensor], Tensor]) -> Tensor:
        bad = degenerate(maps)
        worst = torch.full(bad.shape, self.worst(), dtype=maps.dtype, device=maps.device)
        if bool(bad.all()):
            return worst
        clean = maps.masked_fill(bad[..., None, None], 0.0) if bool(bad.any()) else maps
        scores = score(clean)
        if not isinstance(scores, Tensor) or tuple(scores.shape) != tuple(bad.shape):
            got = tuple(scores.shape) if isinstance(scores, Tensor) else type(scores).__name__
            raise MetricError(f"metric {self.name} returned {got}, expected scores of shape {tuple(bad.shape)}")
        scores = scores.to(maps.device, maps.dtype)
        undefined = torch.isnan(scores) & ~bad
        if bool(undefined.any()):
            images = sorted({int(i) for i in undefined.nonzero()[:, -1].tolist()})
            raise MetricError(
                f"metric {self.name} is undefined (NaN) on {len(images)} image(s) whose map is not degenerate "
                f"({_describe_images(ctx, images)}){self._nan_hint(ctx, images)}"
            )
        return torch.where(bad, worst, scores)

    def _checked_score(self, maps: Tensor, ctx: MetricContext) -> Tensor:
        """``score``; an exception from a metric defined outside sycam becomes a one-line MetricError."""
        if type(self).__module__.split(".")[0] == "sycam":
            return self.score(maps, ctx)
        try:
            return self.score(maps, ctx)
        except MetricError:
            raise
        except Exception as e:  # a user's metric: name it and its file, keep the message on one line
            raise MetricError(f"metric {self.name} (from {_source_of(type(self))}) raised {_one_line(e)}") from e

    def _nan_hint(self, ctx: MetricContext, images: list[int]) -> str:
        if self.requires != "mask":
            return ""
        masks = getattr(getattr(ctx, "samples", None), "masks", None)
        if masks is None:
            return ""
        counts = masks.flatten(-2).sum(-1)
        empty = [i for i in images if int(counts[i]) == 0]
        full = [i for i in images if int(counts[i]) == masks.shape[-1] * masks.shape[-2]]
        parts = []
        if empty:
            parts.append(f"{_describe_images(ctx, empty)} have an empty ground-truth mask")
        if full:
            parts.append(f"{_describe_images(ctx, full)} have a mask covering the whole image")
        return f": {'; '.join(parts)}; drop those samples" if parts else ""

    def equivalence_key(self, maps: Tensor) -> Tensor | None:
        """What the score depends on, for exact pruning: ``None`` (the default: nothing coarser than the maps),
        or a tensor ``key`` ``(*B, ...)`` for maps ``(*B, N, H, W)`` such that candidates ``b`` and ``b'``
        with ``torch.equal(key[b], key[b'])`` have equal :meth:`evaluate` scores on every image. A search
        can skip a candidate whose key equals that of one already scored (e.g. hash
        ``key[b].cpu().numpy().tobytes()``).

        Deletion and insertion AUC return the step at which each pixel is perturbed: candidates that rank
        the pixels into the same ``steps`` bins (any monotone transform of a map, for one) score the same."""
        return None

    def aggregate(self, scores: Tensor) -> Tensor:
        """Aggregate per-image scores ``(*B, N)`` to ``(*B,)`` (float64): the plain mean over images, from
        their exact sum (:func:`sycam.exactsum.exact_means`), so it is the same however the images are ordered
        or split across workers. Nothing is skipped: a NaN (which :meth:`evaluate` never returns) stays NaN."""
        return exact_means(scores)

    def better(self, a: SupportsFloat, b: SupportsFloat | None) -> bool:
        """Whether score ``a`` is strictly better than ``b`` in this metric's direction. A NaN is never
        better than anything and anything but NaN is better than NaN; ``b=None`` (no score yet) means
        ``a`` is better unless it is NaN. The one ordering rule: compare scores through this (or
        :meth:`sort_key`), never with ``<``/``>`` directly.

        >>> from sycam.metrics import get_metric
        >>> m = get_metric("deletion_auc")
        >>> m.better(0.1, 0.2), m.better(0.2, 0.2), m.better(float("nan"), 0.2), m.better(0.2, None)
        (True, False, False, True)
        """
        return score_better(a, b, self.higher_is_better)

    def sort_key(self, score: SupportsFloat) -> float:
        """A key that sorts scores best first in ascending order, NaN last: ``-score`` when higher is
        better, ``score`` when lower is better, ``+inf`` for NaN. ``sorted(xs, key=m.sort_key)[0]`` is the
        best; ``better(a, b)`` implies ``sort_key(a) < sort_key(b)``."""
        return score_sort_key(score, self.higher_is_better)

    def params(self) -> dict[str, Any]:
        """The metric's configuration, recorded with every result (rankings depend on it)."""
        return {k: v for k, v in vars(self).items() if not k.startswith("_")}

    def describe(self) -> dict[str, Any]:
        """The metric as results record it: ``name``, ``higher_is_better``, ``requires``, ``cost``,
        ``family``, ``params`` (:meth:`params`) and ``reference`` (:attr:`reference`)."""
        return {
            "name": self.name,
            "higher_is_better": self.higher_is_better,
            "requires": self.requires,
            "cost": self.cost,
            "family": self.family,
            "params": self.params(),
            "reference": self.reference,
        }

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.params().items())
        return f"{type(self).__name__}({args})"


def _one_line(e: BaseException) -> str:
    text = " ".join(str(e).split())
    return f"{type(e).__name__}: {text}" if text else type(e).__name__


def _source_of(obj: Any) -> str:
    """The file that defines ``obj`` (a function or class), or its module name."""
    try:
        path = inspect.getsourcefile(obj) or inspect.getfile(obj)
    except (TypeError, OSError):
        path = None
    return str(path) if path else str(getattr(obj, "__module__", "?"))


def _describe_images(ctx: Any, images: list[int]) -> str:
    ids = getattr(getattr(ctx, "samples", None), "ids", ()) or ()
    shown = [ids[i] if i < len(ids) else str(i) for i in images[:5]]
    more = f" and {len(images) - 5} more" if len(images) > 5 else ""
    return ("images " if ids else "image indices ") + ", ".join(shown) + more
