"""Shared helpers of the metric implementations: input checks, safe reductions, memoization and the
chunked model calls of model-cost metrics."""

from __future__ import annotations

import math
import weakref
from collections.abc import Callable, Iterator
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from ..data.samples import Samples
from .context import MetricContext
from .errors import MetricError

#: Most images handed to one ``ctx.logits`` call by the model-cost metrics (the context chunks further).
MAX_IMAGES_PER_CALL = 256
#: Most elements a sort-based metric (mask AUC, sparseness) processes at once; bounds its memory.
MAX_SORT_ELEMENTS = 1 << 24


def check_maps(maps: Tensor, ctx: MetricContext, metric: str) -> Tensor:
    """Validate heatmaps ``(*B, N, H, W)`` against ``ctx.samples`` and return them.

    Raises :class:`MetricError` (one line) when ``maps`` is not a floating tensor of that shape."""
    if not isinstance(maps, Tensor):
        raise MetricError(f"{metric}: maps must be a torch.Tensor, got {type(maps).__name__}")
    if not maps.is_floating_point():
        raise MetricError(f"{metric}: maps must be a floating-point tensor, got {maps.dtype}")
    samples = ctx.samples
    n, (h, w) = len(samples), samples.images.shape[-2:]
    if maps.dim() < 3 or tuple(maps.shape[-3:]) != (n, h, w):
        raise MetricError(
            f"{metric}: maps must have shape (*B, {n}, {h}, {w}) (N images at input resolution), "
            f"got {tuple(maps.shape)}"
        )
    return maps


def gt_masks(ctx: MetricContext, metric: str) -> Tensor:
    """The samples' ground-truth masks ``(N, H, W)`` (bool), or a :class:`MetricError` if there are none."""
    masks = ctx.samples.masks
    if masks is None:
        raise MetricError(
            f"{metric} needs ground-truth masks or boxes, but the samples have none "
            "(use a data set with boxes/masks, or a metric with requires='none')"
        )
    return masks.bool()


def empty_to_nan(scores: Tensor, masks: Tensor) -> Tensor:
    """Set the score of samples whose ground-truth mask is empty to NaN (undefined; ``aggregate`` skips it)."""
    empty = ~masks.flatten(-2).any(-1)
    if bool(empty.any()):
        scores = scores.masked_fill(empty, float("nan"))
    return scores


def safe_div(num: Tensor, den: Tensor, zero_value: float = 0.0) -> Tensor:
    """``num / den`` where ``den != 0``, else ``zero_value`` (never NaN/inf from a zero denominator)."""
    ok = den != 0
    return torch.where(ok, num / torch.where(ok, den, torch.ones_like(den)), torch.full_like(num, zero_value))


def pearson(a: Tensor, b: Tensor, weight: Tensor | None = None, undefined: float = 0.0) -> Tensor:
    """Pearson correlation of ``a`` and ``b`` over the last axis (optionally over the pixels where the
    broadcastable 0/1 ``weight`` is 1). Where either side is constant the correlation is undefined and
    ``undefined`` is returned instead."""
    if weight is None:
        am, bm = a - a.mean(-1, keepdim=True), b - b.mean(-1, keepdim=True)
    else:
        cnt = weight.sum(-1, keepdim=True).clamp_min(1)
        am = (a - (a * weight).sum(-1, keepdim=True) / cnt) * weight
        bm = (b - (b * weight).sum(-1, keepdim=True) / cnt) * weight
    cov = (am * bm).sum(-1)
    den = ((am * am).sum(-1) * (bm * bm).sum(-1)).sqrt()
    # A constant side has (numerically) zero spread; the threshold is far below any real map's spread.
    defined = den > 1e-12
    rho = torch.where(defined, cov / torch.where(defined, den, torch.ones_like(den)), torch.full_like(cov, undefined))
    return rho.clamp(-1.0, 1.0)


def rows_chunks(rows: int, size: int) -> Iterator[tuple[int, int]]:
    """``(start, stop)`` ranges covering ``range(rows)`` in chunks of at most ``size``."""
    size = max(1, size)
    for start in range(0, rows, size):
        yield start, min(rows, start + size)


def target_scores(logits: Tensor, labels: Tensor, output: str) -> Tensor:
    """The target-class score per row: the softmax probability (``output='prob'``) or the raw logit."""
    if logits.dim() != 2 or logits.shape[0] != labels.shape[0]:
        raise MetricError(f"the model returned logits of shape {tuple(logits.shape)}, expected ({labels.shape[0]}, C)")
    if output == "prob":
        logits = logits.float().softmax(-1)
    return logits.gather(1, labels.view(-1, 1).to(logits.device)).squeeze(1).float()


def chunked_target_scores(
    ctx: MetricContext,
    jobs: int,
    build: Callable[[int, int], tuple[Tensor, Tensor]],
    output: str,
    chunk: int = MAX_IMAGES_PER_CALL,
) -> Tensor:
    """Target scores of ``jobs`` model inputs built lazily in chunks: ``build(start, stop)`` returns the
    inputs ``(stop - start, 3, H, W)`` and their labels; returns ``(jobs,)``."""
    out: list[Tensor] = []
    for start, stop in rows_chunks(jobs, chunk):
        images, labels = build(start, stop)
        out.append(target_scores(ctx.logits(images), labels, output))
    if not out:
        return torch.zeros(0)
    return torch.cat(out)


def check_choice(metric: str, param: str, value: Any, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise MetricError(f"{metric}: {param} must be one of {', '.join(map(repr, choices))}, got {value!r}")
    return value


def check_number(
    metric: str,
    param: str,
    value: Any,
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    integer: bool = False,
) -> Any:
    """Validate a numeric parameter (bounds inclusive unless ``low_open``)."""
    kind = "an integer" if integer else "a number"
    ok_type = isinstance(value, int) if integer else isinstance(value, int | float)
    if isinstance(value, bool) or not ok_type or (not integer and not math.isfinite(value)):
        raise MetricError(f"{metric}: {param} must be {kind}, got {value!r}")
    if low is not None and (value < low or (low_open and value == low)):
        raise MetricError(f"{metric}: {param} must be {'>' if low_open else '>='} {low}, got {value!r}")
    if high is not None and value > high:
        raise MetricError(f"{metric}: {param} must be <= {high}, got {value!r}")
    return value


def gaussian_blur(images: Tensor, sigma: float, size: int | None = None) -> Tensor:
    """Separable Gaussian blur of ``(M, C, H, W)`` with reflect padding (kernel ``size`` defaults to
    ``2*ceil(3*sigma)+1``, clipped to the image)."""
    if sigma <= 0:
        return images
    if size is None:
        size = 2 * math.ceil(3 * sigma) + 1
    h, w = images.shape[-2:]
    radius = min(size // 2, h - 1, w - 1)
    if radius <= 0:
        return images
    x = torch.arange(-radius, radius + 1, device=images.device, dtype=images.dtype)
    k = torch.exp(-0.5 * (x / sigma) ** 2)
    k = k / k.sum()
    c = images.shape[1]
    out = F.pad(images, (radius, radius, 0, 0), mode="reflect")
    out = F.conv2d(out, k.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    out = F.pad(out, (0, 0, radius, radius), mode="reflect")
    return F.conv2d(out, k.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)


def _tensor_key(t: Tensor) -> tuple[Any, ...]:
    return (t.data_ptr(), tuple(t.shape), t.dtype, t.device, t._version)


class Memo:
    """A one-entry memo for values derived from a context (held weakly) and some tensors (held strongly, so
    that their memory cannot be reused by a different tensor while the entry lives). In-place changes of the
    tensors invalidate the entry (``Tensor._version``).

    A context is identified by itself, or by its optional attribute ``memo_key``: an engine that hands out a
    fresh context per candidate chunk can set ``memo_key`` to an object that stands for one model and one set
    of samples (e.g. its workspace), so that candidate-independent passes are computed once for all chunks."""

    def __init__(self) -> None:
        self._ctx: weakref.ref[Any] | None = None
        self._tensors: tuple[Tensor, ...] = ()
        self._keys: tuple[Any, ...] = ()
        self._extra: Any = None
        self._value: Any = None

    def get(self, ctx: Any, tensors: tuple[Tensor, ...], extra: Any, compute: Callable[[], Any]) -> Any:
        if ctx is not None:
            ctx = getattr(ctx, "memo_key", None) or ctx
        if (
            self._tensors
            and len(tensors) == len(self._tensors)
            and all(a is b for a, b in zip(tensors, self._tensors, strict=True))
            and tuple(_tensor_key(t) for t in tensors) == self._keys
            and self._extra == extra
            and (ctx is None if self._ctx is None else self._ctx() is ctx)
        ):
            return self._value
        value = compute()
        try:
            ref = None if ctx is None else weakref.ref(ctx)
        except TypeError:  # a context that cannot be referenced weakly is not memoized
            return value
        self._ctx, self._tensors, self._extra, self._value = ref, tensors, extra, value
        self._keys = tuple(_tensor_key(t) for t in tensors)
        return value

    def __reduce__(self) -> tuple[type[Memo], tuple[()]]:
        # Copies and pickles (e.g. to a worker) start empty: the memoized context does not travel.
        return (Memo, ())


def sample_index(batch_shape: tuple[int, ...], n: int, device: torch.device) -> Tensor:
    """For maps flattened to rows ``(prod(*B) * N, H, W)``: the sample index of each row."""
    reps = math.prod(batch_shape)
    return torch.arange(n, device=device).repeat(reps)


def view_input_shape(samples: Samples) -> tuple[int, int]:
    return int(samples.images.shape[-2]), int(samples.images.shape[-1])
