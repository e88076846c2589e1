"""User metrics: plain callables loaded by an explicit ``module:function`` (or ``path/file.py:function``)
name, and an adapter that runs a Quantus metric object.

A custom metric function has the signature::

    def my_metric(maps: torch.Tensor, ctx: sycam.metrics.MetricContext, **params) -> torch.Tensor:
        '''maps: (*B, N, H, W) heatmaps in [0, 1]; returns per-image scores (*B, N).'''

    my_metric.higher_is_better = True    # optional; default True
    my_metric.requires = "mask"          # optional; "none" (default) or "mask" (needs ctx.samples.masks)
    my_metric.cost = "cached"            # optional; "model" (default: assume it runs the model) or "cached"
    my_metric.views = lambda samples: {...}  # optional; transformed inputs read through ctx.view_maps(name)
    my_metric.worst = 0.0                # optional; the score of a degenerate map (default -inf / +inf)

It must broadcast over the leading candidate axes ``*B`` (no Python loop over images). ``ctx`` offers
``samples``, ``logits(images)``, ``explain(images)`` and ``view_maps(name)`` (see :mod:`sycam.metrics.base`).
A ``module:Name`` that names a :class:`~sycam.metrics.base.Metric` subclass is instantiated with the params.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from ..data.samples import Samples
from ._util import check_maps
from .base import Metric, MetricContext, MetricError, _one_line, _source_of


def _resolve(spec: str) -> Any:
    """Import ``module:attr`` or ``path/file.py:attr`` and return the attribute."""
    if not isinstance(spec, str) or ":" not in spec:
        raise MetricError(f"custom metric must be given as 'module:function' or 'path/file.py:function', got {spec!r}")
    target, _, attr = spec.rpartition(":")
    if not target or not attr:
        raise MetricError(f"custom metric must be given as 'module:function' or 'path/file.py:function', got {spec!r}")
    if target.endswith(".py") or "/" in target or "\\" in target:
        path = Path(target).expanduser()
        if not path.is_file():
            raise MetricError(f"custom metric file not found: {str(path)!r}")
        digest = hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:12]
        mod_name = f"sycam_custom_metric_{path.stem}_{digest}"
        module = sys.modules.get(mod_name)
        if module is None:
            file_spec = importlib.util.spec_from_file_location(mod_name, path)
            if file_spec is None or file_spec.loader is None:
                raise MetricError(f"cannot load custom metric file {str(path)!r}")
            module = importlib.util.module_from_spec(file_spec)
            try:
                file_spec.loader.exec_module(module)
            except Exception as e:  # report the user's error on one line
                raise MetricError(f"error while loading {str(path)!r}: {type(e).__name__}: {e}") from e
            sys.modules[mod_name] = module
    else:
        try:
            module = importlib.import_module(target)
        except ImportError as e:
            raise MetricError(f"cannot import custom metric module {target!r}: {e}") from e
    obj: Any = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise MetricError(f"custom metric {spec!r}: {target!r} has no attribute {attr!r}")
        obj = getattr(obj, part)
    return obj


class CustomMetric(Metric):
    """A user callable ``fn(maps, ctx, **params) -> (*B, N)`` as a :class:`Metric`. Direction, ground truth,
    cost and views come from the function's optional attributes ``higher_is_better`` (default True),
    ``requires`` (default ``"none"``), ``cost`` (default ``"model"``) and ``views``."""

    name = "custom"
    higher_is_better = True
    requires = "none"
    cost = "model"
    family = "custom"

    def __init__(self, fn: Callable[..., Tensor], name: str | None = None, **params: Any) -> None:
        if not callable(fn):
            raise MetricError(f"custom metric must be callable, got {type(fn).__name__}")
        label = name or f"{getattr(fn, '__module__', '?')}:{getattr(fn, '__qualname__', repr(fn))}"
        hib = getattr(fn, "higher_is_better", True)
        requires = getattr(fn, "requires", "none")
        cost = getattr(fn, "cost", "model")
        if not isinstance(hib, bool):
            raise MetricError(f"custom metric {label}: higher_is_better must be True or False, got {hib!r}")
        if requires not in ("none", "mask"):
            raise MetricError(f"custom metric {label}: requires must be 'none' or 'mask', got {requires!r}")
        if cost not in ("cached", "model"):
            raise MetricError(f"custom metric {label}: cost must be 'cached' or 'model', got {cost!r}")
        views = getattr(fn, "views", None)
        worst = getattr(fn, "worst", None)
        if worst is not None and (isinstance(worst, bool) or not isinstance(worst, int | float)):
            raise MetricError(f"custom metric {label}: worst must be a number, got {worst!r}")
        if views is not None and not callable(views):
            raise MetricError(f"custom metric {label}: views must be a function of the samples")
        # Instance attributes shadow the class defaults (each custom metric has its own metadata).
        self.name = label  # type: ignore[misc]
        self.higher_is_better = hib  # type: ignore[misc]
        self.requires = requires  # type: ignore[misc]
        self.cost = cost  # type: ignore[misc]
        self.family = str(getattr(fn, "family", "custom"))  # type: ignore[misc]
        self._fn = fn
        self._views = views
        self._worst = None if worst is None else float(worst)
        self._params = dict(params)

    def params(self) -> dict[str, Any]:
        """``{"function": <name>, **params}``: the function's name and the keyword arguments it is called with."""
        return {"function": self.name, **self._params}

    def views(self, samples: Samples) -> Mapping[str, Tensor]:
        """The function's ``views(samples)`` as a dict, or no views when it has no ``views`` attribute."""
        return {} if self._views is None else dict(self._views(samples))

    def worst(self) -> float:
        """The function's ``worst`` attribute if it has one, else ``-inf`` (higher is better) or ``+inf``."""
        if self._worst is not None:
            return self._worst
        return super().worst()

    def score(self, maps: Tensor, ctx: MetricContext) -> Tensor:
        """Per image ``fn(maps, ctx, **params)``, ``(*B, N)``; the direction is the function's
        ``higher_is_better``. An exception from the function, or a result of another shape, raises a one-line
        :class:`MetricError` naming the metric (and, for an exception, its file)."""
        maps = check_maps(maps, ctx, self.name)
        if self.requires == "mask" and ctx.samples.masks is None:
            raise MetricError(f"{self.name} needs ground-truth masks or boxes, but the samples have none")
        try:
            out = self._fn(maps, ctx, **self._params)
        except MetricError:
            raise
        except Exception as e:  # the user's code failed: say which metric and file, on one line
            raise MetricError(f"metric {self.name} (from {_source_of(self._fn)}) raised {_one_line(e)}") from e
        if not isinstance(out, Tensor) or tuple(out.shape) != tuple(maps.shape[:-2]):
            got = tuple(out.shape) if isinstance(out, Tensor) else type(out).__name__
            raise MetricError(
                f"custom metric {self.name} returned {got}, expected a tensor of shape {tuple(maps.shape[:-2])}"
            )
        return out


def load_custom_metric(spec: str, **params: Any) -> Metric:
    """Load a user metric by an explicit ``module:function`` or ``path/file.py:function`` name (see the
    module docstring for the signature). ``params`` are passed to the function on every call (or to the
    constructor, when the name is a :class:`Metric` subclass)."""
    obj = _resolve(spec)
    if isinstance(obj, type) and issubclass(obj, Metric):
        try:
            return obj(**params)
        except TypeError as e:
            raise MetricError(f"custom metric {spec!r}: bad parameters: {e}") from None
    if isinstance(obj, Metric):
        if params:
            raise MetricError(f"custom metric {spec!r} is a Metric instance and takes no parameters")
        return obj
    if not callable(obj):
        raise MetricError(f"custom metric {spec!r} is not callable")
    return CustomMetric(obj, name=spec, **params)


# ---- Quantus ------------------------------------------------------------------------------------------------


def _import_quantus() -> Any:
    try:
        import quantus
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise MetricError("Quantus metrics need the optional dependency 'quantus' (pip install quantus)") from e
    return quantus


class ContextModel(nn.Module):
    """A parameter-free ``nn.Module`` whose forward is ``ctx.logits`` (no gradients), for libraries that
    want a torch model."""

    def __init__(self, ctx: MetricContext) -> None:
        super().__init__()
        self._ctx = ctx
        self.eval()

    def forward(self, x: Tensor) -> Tensor:
        """``ctx.logits(x)`` ``(M, classes)``, with ``x`` ``(M, 3, H, W)`` moved to the samples' device and dtype."""
        images = self._ctx.samples.images
        return self._ctx.logits(x.to(images.device, images.dtype))


def _plain(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    return getattr(value, "__name__", None) or repr(value)


class QuantusMetric(Metric):
    """Run a Quantus metric object as a sycam metric (Quantus is an optional dependency, imported lazily).

    ``QuantusMetric("PointingGame", **kwargs)`` builds ``quantus.PointingGame(**kwargs)`` (warnings and
    progress bars off); ``QuantusMetric(obj)`` wraps an existing object. The direction is Quantus's
    ``score_direction``; localisation metrics require masks. Each call hands Quantus, per candidate (a Python
    loop over the leading axes: Quantus is numpy and unbatched over candidates), the maps as ``a_batch``
    ``(N, 1, H, W)``, the masks as ``s_batch``, the inputs and labels, the model as a torch module over
    ``ctx.logits`` and an ``explain_func`` over ``ctx.explain`` (for metrics that re-explain; it explains all
    candidates on each call, so such metrics cost B× more per candidate). Always ``cost="model"``.

    Reference: Hedström et al., Quantus, JMLR 2023, https://arxiv.org/abs/2202.06861 (and the wrapped metric's
    own paper, which Quantus documents)."""

    reference = "Hedström et al., Quantus, JMLR 2023 — https://arxiv.org/abs/2202.06861"

    name = "quantus"
    higher_is_better = True
    requires = "none"
    cost = "model"
    family = "quantus"

    def __init__(self, metric: Any, softmax: bool | None = None, **kwargs: Any) -> None:
        quantus = _import_quantus()
        if isinstance(metric, str):
            cls = getattr(quantus, metric, None)
            if not (isinstance(cls, type) and hasattr(cls, "score_direction")):
                raise MetricError(f"quantus has no metric {metric!r}")
            options = {"disable_warnings": True, "display_progressbar": False, **kwargs}
            try:
                metric = cls(**options)
            except (TypeError, ValueError) as e:
                first = " ".join(str(e).split()).split(". ")[0]
                raise MetricError(f"quantus:{cls.__name__}: bad parameters: {first}") from None
        elif kwargs:
            raise MetricError("QuantusMetric: keyword arguments are only accepted with a metric name")
        direction = getattr(getattr(metric, "score_direction", None), "value", None)
        if direction not in ("higher", "lower"):
            raise MetricError(f"QuantusMetric: {type(metric).__name__} has no usable score_direction")
        category = getattr(getattr(metric, "evaluation_category", None), "value", "") or ""
        self._metric = metric
        self._softmax = softmax
        self.name = f"quantus:{type(metric).__name__}"  # type: ignore[misc]
        self.higher_is_better = direction == "higher"  # type: ignore[misc]
        self.requires = "mask" if category.lower() == "localisation" else "none"  # type: ignore[misc]
        self.family = f"quantus {category.lower()}".strip()  # type: ignore[misc]

    @property
    def quantus_metric(self) -> Any:
        """The wrapped Quantus metric object."""
        return self._metric

    def params(self) -> dict[str, Any]:
        """The Quantus class name, ``softmax`` and the object's own ``get_params`` (private keys dropped,
        values made JSON-friendly)."""
        raw = getattr(self._metric, "get_params", {}) or {}
        keep = {k: _plain(v) for k, v in raw.items() if not k.startswith("_")}
        return {"metric": type(self._metric).__name__, "softmax": self._softmax, **keep}

    def _scalar(self, value: Any) -> float:
        try:
            return float(value)
        except (TypeError, ValueError):
            raise MetricError(
                f"{self.name} returned a non-scalar score per sample (e.g. a curve); configure it to return one "
                "number per sample (e.g. PixelFlipping(return_auc_per_sample=True))"
            ) from None

    def score(self, maps: Tensor, ctx: MetricContext) -> Tensor:
        """Per image the Quantus metric's own score, ``(*B, N)``, from one Quantus call per candidate; the
        direction is Quantus's ``score_direction``. A score that is not one number per sample (a curve)
        raises :class:`MetricError`."""
        maps = check_maps(maps, ctx, self.name)
        s = ctx.samples
        if self.requires == "mask" and s.masks is None:
            raise MetricError(f"{self.name} needs ground-truth masks or boxes, but the samples have none")
        n, (h, w) = len(s), maps.shape[-2:]
        lead = tuple(maps.shape[:-3])
        rows = maps.reshape(-1, n, h, w)
        x = s.images.detach().float().cpu().numpy()
        y = s.labels.detach().cpu().numpy()
        s_batch = None if s.masks is None else s.masks.detach().cpu().numpy().astype("float32")[:, None]
        model = ContextModel(ctx)
        out = []
        for b in range(rows.shape[0]):

            def explain(model: Any, inputs: Any, targets: Any, _b: int = b, **_: Any) -> Any:
                images = torch.as_tensor(inputs, device=s.images.device, dtype=s.images.dtype)
                if images.shape != s.images.shape:
                    raise MetricError(f"{self.name}: can only re-explain the {n} samples as one batch")
                again = ctx.explain(images.expand(*lead, *images.shape)).reshape(-1, n, h, w)[_b]
                return again.detach().float().cpu().numpy()[:, None]

            scores = self._metric(
                model=model,
                x_batch=x,
                y_batch=y,
                a_batch=rows[b].detach().float().cpu().numpy()[:, None],
                s_batch=s_batch,
                channel_first=True,
                explain_func=explain,
                explain_func_kwargs={},
                model_predict_kwargs={},
                softmax=self._softmax,
                device=str(s.images.device),
                batch_size=n,
            )
            out.append(torch.as_tensor([self._scalar(v) for v in scores], dtype=maps.dtype))
        return torch.stack(out).reshape(*lead, n).to(maps.device)
