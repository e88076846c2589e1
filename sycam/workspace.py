"""The workspace: terminals of one split (and of every metric view) cached once; expressions → heatmaps →
metric scores.

A :class:`Workspace` holds the terminal caches of one set of samples: the samples themselves and each
transformed input a metric asks for (:meth:`Metric.views`). Scoring an expression is then tensor
arithmetic on cached terminals, plus model forwards only for *model*-cost metrics.
"""

from __future__ import annotations

import ctypes
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from ._progress import progress
from ._torch import module_device
from .capture import chunks, eval_mode
from .data.samples import Samples
from .expr import Node, evaluate
from .heatmap import finish_layer, layer_maps_of, native_grid, needed_terminals, render, render_all
from .metrics.base import Metric, degenerate
from .targets import Targets
from .terminals import ExtractOptions, TerminalCache

BASE = ""
"""The key of the untransformed inputs among a workspace's caches (metric views have their own names)."""

M_MMAP_THRESHOLD = -3
"""glibc's ``mallopt`` parameter number for the size above which ``malloc`` maps fresh pages (``malloc.h``)."""
M_TRIM_THRESHOLD = -1
"""glibc's ``mallopt`` parameter number for the free space at the heap's top above which ``free`` gives it back."""
_churn_reduced = False
CPU_FORWARD_ROWS = 1
"""Inputs per metric forward on the CPU (:meth:`WorkspaceContext.logits`): one, so no input is padded, and on one
thread a batch of one ran EfficientNet-Lite0 at 31 ms per image against 51 ms in batches of 16 (loaded 2-core
machine)."""


def reduce_allocation_churn(threshold: int = 1 << 30) -> bool:
    """Keep large freed blocks in the process heap instead of returning them to the system (Linux glibc only;
    elsewhere a no-op). Returns whether the setting is in effect.

    Model-cost metrics forward many batches of perturbed inputs; each batch allocates and frees activation
    tensors of tens of MB. Above glibc's default (dynamic) mmap threshold every such block is a fresh
    ``mmap``, page-faulted in and ``munmap``-ed on free, so the kernel's time exceeded the forwards' own
    (issue 8.4: 10 min 45 s system against 8 min 35 s user). ``mallopt(M_MMAP_THRESHOLD, 1 GiB)`` makes those
    blocks ordinary heap memory, and ``mallopt(M_TRIM_THRESHOLD, 1 GiB)`` keeps ``free`` from handing the heap's
    top back at once (setting the first alone fixes the second at its 128 KiB default, and the blocks are then
    trimmed and faulted in again: measured, six batched EfficientNet-Lite0 forwards of 19 images took 2.6 s of
    system time with the mmap threshold alone, 2.7 s with neither, 0.0 s with both). :meth:`Workspace.build`
    calls this for model-cost metrics (so ``sycam synthesize`` and ``sycam evaluate`` do); calling it again
    does nothing. The cost: up to ``threshold`` bytes of freed memory stay with the process.

    >>> reduce_allocation_churn() in (True, False)
    True
    """
    global _churn_reduced
    if _churn_reduced:
        return True
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (e.g. musl): leave the allocator alone
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    _churn_reduced = bool(mallopt(M_MMAP_THRESHOLD, int(threshold))) and bool(mallopt(M_TRIM_THRESHOLD, int(threshold)))
    return _churn_reduced


class WorkspaceContext:
    """The :class:`~sycam.metrics.base.MetricContext` the engine hands to metrics.

    Built by :meth:`Workspace.context` for one batch of candidates; the callables it wraps render (or
    re-explain) exactly those candidates, so a metric never sees expressions, only maps and a model.
    """

    def __init__(self, samples: Samples, model: nn.Module, view_maps: Callable[[str], Tensor],
                 explain: Callable[[Tensor], Tensor], batch_size: int = 64, memo_key: object = None,
                 view_layer_maps: Callable[[str], Tensor] | None = None,
                 on_forward: Callable[[int], None] | None = None) -> None:
        self._samples = samples
        self._on_forward = on_forward
        self._view_layer_maps = view_layer_maps
        self.memo_key = memo_key
        """stands for (model, samples): metrics memoize candidate-independent work (the clean forward,
        deletion/insertion end points) per key, so a fresh context per candidate chunk recomputes nothing"""
        self._model = model
        self._view_maps = view_maps
        self._explain = explain
        self.batch_size = batch_size

    @property
    def samples(self) -> Samples:
        """The N samples being scored (on the model's device)."""
        return self._samples

    def view_maps(self, view: str) -> Tensor:
        """Finished heatmaps ``(*B, N, H, W)`` of the candidate(s) on the cached view ``view``
        (:data:`BASE` for the untransformed inputs)."""
        return self._view_maps(view)

    def view_layer_maps(self, view: str) -> Tensor:
        """Layer-resolution maps ``norm(relu(saliency))`` ``(*B, N, h, w)`` of the candidate(s) on ``view``
        (what exact low-resolution metrics read instead of :meth:`view_maps`)."""
        if self._view_layer_maps is None:
            raise KeyError("this context holds no layer-resolution maps")
        return self._view_layer_maps(view)

    @property
    def forward_rows(self) -> int:
        """Inputs per model forward: :data:`CPU_FORWARD_ROWS` on the CPU, ``batch_size`` on an accelerator."""
        return CPU_FORWARD_ROWS if self._samples.device.type == "cpu" else self.batch_size

    @torch.no_grad()
    def logits(self, images: Tensor) -> Tensor:
        """Model outputs ``(M, classes)`` for inputs ``(M, 3, H, W)``: eval mode, no gradients, on the samples'
        device, every forward of the same shape (:attr:`forward_rows` inputs, the last chunk padded with zero
        images). A network's output for one input then does not depend on the inputs forwarded beside it
        (measured: EfficientNet-Lite0's outputs differ by 5e-6 between batches of 16 and 5, and are equal bit
        for bit at any position of a batch of fixed size), so candidates scored together, one by one, raced on
        blocks of images or on shards get the same scores."""
        device = self._samples.device
        if self._on_forward is not None:
            self._on_forward(int(images.shape[0]))
        rows = self.forward_rows
        outs = []
        with eval_mode(self._model):
            for sl in chunks(images.shape[0], rows):
                x = images[sl].to(device)
                k = int(x.shape[0])
                if k < rows:
                    x = torch.cat([x, x.new_zeros(rows - k, *x.shape[1:])])
                outs.append(self._model(x)[:k])
        return torch.cat(outs)

    def explain(self, images: Tensor) -> Tensor:
        """Heatmaps ``(*B, N, H, W)`` of the candidate(s) recomputed on new inputs ``(*B, N, 3, H, W)``;
        sample ``i`` keeps its label as target (used by metrics that perturb the input, e.g. robustness)."""
        return self._explain(images)


@dataclass
class Workspace:
    """Terminal caches for one split: the samples and every metric view, all on the model's device."""

    model: nn.Module
    layer: str | nn.Module
    samples: Samples
    options: ExtractOptions
    caches: dict[str, TerminalCache] = field(default_factory=dict)
    forwards: int = 0
    """model forwards (one per input image) the metrics have run through this workspace's contexts"""

    @classmethod
    def build(cls, model: nn.Module, layer: str | nn.Module, samples: Samples, metrics: Iterable[Metric] = (),
              options: ExtractOptions | None = None, views: Mapping[str, Tensor] | None = None) -> Workspace:
        """Move ``samples`` to the model's device and extract the terminals of the samples and of every view
        that ``metrics`` declare (:meth:`Metric.views`), targeting each sample's label. With a model-cost
        metric among ``metrics`` this calls :func:`reduce_allocation_churn` (once per process). ``views``
        gives the views' inputs instead (a shard of a larger split gets its rows of the views drawn for the
        whole split: :func:`metric_views`).

        Example::

            ws = Workspace.build(net, "layer4", samples, [get_metric("deletion_auc")])
            scores = ws.score([parse("mean(G)"), parse("relu(G)")], get_metric("deletion_auc"))  # (2, N)
        """
        options = options or ExtractOptions()
        metrics = list(metrics)
        if any(m.cost == "model" for m in metrics):
            reduce_allocation_churn()  # forwards of perturbed inputs: keep their large blocks in the heap
        device = module_device(model, samples.device)
        samples = samples.to(device)
        targets = Targets(classes=samples.labels)
        ws = cls(model, layer, samples, options)
        ws.caches[BASE] = TerminalCache(model, layer, samples.images, targets, options)
        for name, images in (metric_views(samples, metrics) if views is None else views).items():
            ws.caches[name] = TerminalCache(model, layer, images.to(device), targets, options)
        return ws

    @property
    def size(self) -> tuple[int, int]:
        """``(H, W)`` of the input images, the resolution heatmaps are rendered at."""
        return (int(self.samples.images.shape[-2]), int(self.samples.images.shape[-1]))

    def values(self, names: Iterable[str], view: str = BASE) -> dict[str, Tensor]:
        """Terminal values on ``view`` for expression evaluation (vectors as ``(N, K, 1, 1)``)."""
        return self.caches[view].values(sorted(set(names) | {"A"}))

    def heatmaps(self, exprs: Sequence[Node], view: str = BASE, memo: dict[Node, Tensor] | None = None) -> Tensor:
        """Heatmaps ``(B, N, H, W)`` of ``exprs`` on ``view``."""
        return render_all(exprs, self.values(needed_terminals(exprs), view), self.size, memo)

    def degenerate_counts(self, exprs: Sequence[Node], view: str = BASE) -> list[int]:
        """Per expression, the images on ``view`` whose heatmap is degenerate
        (:func:`~sycam.metrics.base.degenerate`)."""
        return [int(x) for x in degenerate(self.heatmaps(exprs, view)).sum(-1).tolist()]

    def layer_heatmaps(self, exprs: Sequence[Node], view: str = BASE) -> Tensor:
        """Layer-resolution maps ``(B, N, h, w)`` of ``exprs`` on ``view`` (:func:`~sycam.heatmap.layer_maps`)."""
        vals = self.values(needed_terminals(exprs), view)
        memo: dict[Node, Tensor] = {}
        return layer_maps_of(exprs, [evaluate(e, vals, memo) for e in exprs], vals)

    def evaluate_layers(self, metric: Metric, layers: Callable[[str], Tensor], exprs: Sequence[Node]) -> Tensor:
        """Per-image scores ``(B, N)`` of candidates ``exprs`` whose layer-resolution maps on each view are
        ``layers(view)``: exact metrics (``Metric.lowres``) score them at layer resolution, the others score
        the finished heatmaps. Every score of a synthesis (baselines, candidates, held-out) takes this path."""
        low: dict[str, Tensor] = {}
        full: dict[str, Tensor] = {}

        def layer_view(view: str) -> Tensor:
            if view not in low:
                low[view] = layers(view)
            return low[view]

        def full_view(view: str) -> Tensor:
            if view not in full:
                full[view] = finish_layer(layer_view(view), self.size)
            return full[view]

        ctx = self.context(exprs, full_view, view_layer_maps=layer_view)
        if metric.lowres:
            return metric.evaluate_lowres(layer_view(BASE), self.size, ctx)
        return metric.evaluate(full_view(BASE), ctx)

    def context(self, exprs: Sequence[Node], view_maps: Callable[[str], Tensor] | None = None,
                explain: Callable[[Tensor], Tensor] | None = None,
                view_layer_maps: Callable[[str], Tensor] | None = None) -> WorkspaceContext:
        """A metric context for candidates ``exprs`` (leading axis B). ``view_maps`` replaces rendering the
        expressions on a view, for callers that already hold the candidates' values there (the search);
        ``explain`` replaces re-explaining new inputs with the expressions (post-processed controls)."""

        def render_view(view: str) -> Tensor:
            if view not in self.caches:
                raise KeyError(f"view {view!r} was not cached; the metric must declare it in views()")
            return self.heatmaps(exprs, view)

        def explain_fn(images: Tensor) -> Tensor:
            out = []
            for expr, batch in zip(exprs, images.reshape(len(exprs), *images.shape[-4:]), strict=True):
                cache = TerminalCache(self.model, self.layer, batch, Targets(classes=self.samples.labels),
                                      self.options)
                vals = cache.values(sorted(needed_terminals([expr])))
                out.append(render(expr, vals, self.size))
            return torch.stack(out).reshape(*images.shape[:-3], *self.size)

        def layer_view(view: str) -> Tensor:
            if view not in self.caches:
                raise KeyError(f"view {view!r} was not cached; the metric must declare it in views()")
            return self.layer_heatmaps(exprs, view)

        return WorkspaceContext(self.samples, self.model, view_maps or render_view, explain or explain_fn,
                             self.options.batch_size, memo_key=self, view_layer_maps=view_layer_maps or layer_view,
                             on_forward=self._count_forwards)

    def _count_forwards(self, n: int) -> None:
        self.forwards += n

    def evaluate(self, metric: Metric, maps: Tensor, exprs: Sequence[Node],
                 view_maps: Callable[[str], Tensor] | None = None,
                 explain: Callable[[Tensor], Tensor] | None = None) -> Tensor:
        """Per-image scores ``(B, N)`` of heatmaps ``maps`` ``(B, N, H, W)`` of candidates ``exprs``: the one
        scoring path (``Metric.evaluate``: a degenerate map gets the metric's worst value)."""
        return metric.evaluate(maps, self.context(exprs, view_maps, explain))

    def score(self, exprs: Sequence[Node], metric: Metric, chunk: int = 8, desc: str | None = None) -> Tensor:
        """Per-image scores ``(B, N)`` of ``exprs`` under ``metric``, candidates in chunks of ``chunk``
        (with a progress bar labelled ``desc`` when given and progress is on)."""
        groups = self.grid_groups(exprs)
        if len(groups) > 1:  # maps of different grids never share a batch: each scores as it would alone
            scores = torch.zeros(len(exprs), len(self.samples))
            for idx in groups:
                part = self.score([exprs[i] for i in idx], metric, chunk, desc)
                scores = scores.to(part.dtype)
                scores[idx] = part
            return scores
        out = []
        with progress(len(exprs), desc, "expr") if desc else nullcontext() as bar:
            for sl in chunks(len(exprs), chunk):
                batch = list(exprs[sl])
                out.append(self.evaluate_layers(metric, lambda v, b=batch: self.layer_heatmaps(b, v), batch))
                if bar is not None:
                    bar.update(len(batch))
        return torch.cat(out) if out else torch.zeros(0, len(self.samples))

    def grid_groups(self, exprs: Sequence[Node]) -> list[list[int]]:
        """Indices of ``exprs`` grouped by the grid of their layer maps (:func:`~sycam.heatmap.native_grid`), in
        order of first appearance; one group when every map shares the target layer's grid."""
        if not any("@" in t for e in exprs for t in e.terminals()):
            return [list(range(len(exprs)))]
        vals = self.values(needed_terminals(exprs))
        groups: dict[tuple[int, int], list[int]] = {}
        for i, e in enumerate(exprs):
            groups.setdefault(native_grid(e, vals), []).append(i)
        return list(groups.values())


def metric_views(samples: Samples, metrics: Iterable[Metric]) -> dict[str, Tensor]:
    """The transformed inputs ``(N, 3, H, W)`` every metric of ``metrics`` declares (:meth:`Metric.views`), by
    view name (the first declaration of a name wins)."""
    out: dict[str, Tensor] = {}
    for metric in metrics:
        for name, images in metric.views(samples).items():
            out.setdefault(name, images)
    return out


class Evaluation(dict[str, dict[str, float]]):
    """``{method: {metric: aggregate score}}`` (a plain dict, as before) with the evidence behind it.

    Attributes:
        per_image: ``{metric: {method: [score per image]}}`` in ``ids`` order (degenerate maps scored at the
            metric's worst value, as in the aggregate, which is their plain mean).
        degenerate: ``{method: count}`` of images whose heatmap is constant, all-zero or non-finite.
        ids: the sample ids (``[]`` when the samples have none).
    """

    def __init__(self, aggregate: Mapping[str, dict[str, float]], per_image: dict[str, dict[str, list[float]]],
                 degenerate: dict[str, int], ids: list[str], metrics: Mapping[str, Metric] | None = None) -> None:
        super().__init__(aggregate)
        self.per_image = per_image
        self.degenerate = degenerate
        self.ids = ids
        self.metrics = {name: {"higher_is_better": m.higher_is_better} for name, m in (metrics or {}).items()}
        """``{metric: {"higher_is_better": bool}}`` (what the table needs to mark the best value)."""

    def _repr_html_(self) -> str:
        """The evaluation table inline in a notebook (rendered by :func:`sycam.notebook.evaluation_html`)."""
        from .notebook import evaluation_html  # the rendering lives above; this only hands the scores over

        return evaluation_html(self)


def evaluate_methods(model: nn.Module, layer: str | nn.Module, samples: Samples, methods: Mapping[str, Node],
                     metrics: Mapping[str, Metric], options: ExtractOptions | None = None,
                     progress: Callable[[str], None] | None = None) -> Evaluation:
    """Scores of every method under every metric on ``samples``.

    Returns an :class:`Evaluation`: ``{method: {metric: aggregate}}`` plus ``.per_image``, ``.degenerate``
    and ``.ids``.

    Example::

        ev = evaluate_methods(net, "layer4", samples, {"gradcam": parse("mean(G)")},
                              {"iou": get_metric("iou")})
        ev["gradcam"]["iou"], ev.per_image["iou"]["gradcam"], ev.degenerate["gradcam"]
    """
    ws = Workspace.build(model, layer, samples, metrics.values(), options)
    labels = list(methods)
    exprs = [methods[k] for k in labels]
    results: dict[str, dict[str, float]] = {k: {} for k in labels}
    per_image: dict[str, dict[str, list[float]]] = {}
    for mname, metric in metrics.items():
        if progress:
            progress(mname)
        scores = ws.score(exprs, metric, desc=f"evaluate {mname}")
        per_image[mname] = {label: [float(x) for x in row] for label, row in zip(labels, scores.tolist(), strict=True)}
        for label, value in zip(labels, metric.aggregate(scores).tolist(), strict=True):
            results[label][mname] = float(value)
    blank = {label: ws.degenerate_counts([e])[0] for label, e in zip(labels, exprs, strict=True)}
    return Evaluation(results, per_image, blank, list(samples.ids), metrics)
