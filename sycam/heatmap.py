r"""Heatmaps: from an expression over cached terminals to normalized maps at input resolution (spec §2).

.. math::
    L = \mathrm{norm}\big(\mathrm{resize}(\mathrm{norm}(\mathrm{relu}(\textstyle\sum_k E_k)))\big),\qquad
    \mathrm{norm}(m) = \frac{m - \min m}{\max m - \min m + 10^{-7}}

with :math:`E_k = \alpha_k A_k` when the expression α is a channel vector (or a constant) and
:math:`E_k = \alpha_k \odot A_k` when it is a map. ``resize`` is bilinear with half-pixel centres
(``align_corners=False``), which is what pytorch-grad-cam's ``cv2.resize`` does; the second ``norm`` is
pytorch-grad-cam's layer aggregation. A constant map normalizes to zeros, never NaN.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .expr import Node, evaluate, kind_of
from .methods import resolve_method
from .models import LoadedModel
from .targets import TargetSpec
from .terminals import ExtractOptions, TerminalCache

NORM_EPS = 1e-7


def normalize(maps: Tensor) -> Tensor:
    """Min-max normalize each map over its last two axes: ``(m - min) / (max - min + 1e-7)``."""
    flat = maps.flatten(-2)
    lo = flat.amin(-1, keepdim=True).unsqueeze(-1)
    hi = flat.amax(-1, keepdim=True).unsqueeze(-1)
    return (maps - lo) / (hi - lo + NORM_EPS)


def saliency(weights: Tensor, acts: Tensor) -> Tensor:
    r"""Raw layer-resolution saliency :math:`\sum_k w_k A_k` for weights ``(*B, N, K, 1|h, 1|w)`` or a
    0-d constant, and activations ``(N, K, h, w)``; returns ``(*B, N, h, w)``."""
    if weights.dim() == 0:
        return weights * acts.sum(1)
    if weights.shape[-2:] == (1, 1):
        return torch.einsum("...nk,nkhw->...nhw", weights[..., 0, 0], acts)
    return (weights * acts).sum(-3)


def layer_maps(weights: Tensor, acts: Tensor) -> Tensor:
    r"""Normalized layer-resolution maps :math:`\mathrm{norm}(\mathrm{relu}(\sum_k w_k A_k))`, shape
    ``(*B, N, h, w)``, for weights ``(*B, N, K, 1|h, 1|w)`` (or a 0-d constant) and activations ``(N, K, h, w)``.

    This is the first half of :func:`finish`; metrics with ``lowres`` read these maps directly."""
    return normalize(torch.relu(saliency(weights, acts)))


def finish_layer(maps: Tensor, size: tuple[int, int]) -> Tensor:
    """Layer-resolution maps from :func:`layer_maps` ``(*B, N, h, w)`` → heatmaps ``(*B, N, *size)``:
    bilinear resize (half-pixel centres) then relu and normalize again (pytorch-grad-cam's aggregation)."""
    lead = maps.shape[:-2]
    m = maps.reshape(-1, 1, *maps.shape[-2:])
    if tuple(m.shape[-2:]) != tuple(size):
        m = F.interpolate(m, size=size, mode="bilinear", align_corners=False)
    return normalize(torch.relu(m)).reshape(*lead, *size)


def finish(raw: Tensor, size: tuple[int, int]) -> Tensor:
    """relu → normalize → bilinear resize to ``size`` → normalize, for raw maps ``(*B, N, h, w)``:
    ``finish_layer(normalize(relu(raw)), size)``."""
    return finish_layer(normalize(torch.relu(raw)), size)


def render(
    node: Node, values: Mapping[str, Tensor], size: tuple[int, int], memo: dict[Node, Tensor] | None = None
) -> Tensor:
    """Heatmaps ``(N, H, W)`` of expression ``node`` over terminal ``values`` (vectors as ``(N,K,1,1)``): the
    one render path, ``finish_layer(layer_maps(evaluate(node), A), size)``.

    Example::

        values = cache.values(["A", "G"])
        maps = render(parse("mean(G)"), values, (224, 224))      # Grad-CAM, (N, 224, 224)
    """
    return finish_layer(layer_maps(evaluate(node, values, memo), values["A"]), size)


def render_all(
    nodes: Sequence[Node], values: Mapping[str, Tensor], size: tuple[int, int], memo: dict[Node, Tensor] | None = None
) -> Tensor:
    """Heatmaps ``(B, N, H, W)`` of several expressions over the same terminal ``values`` (shared ``memo``)."""
    memo = {} if memo is None else memo
    return torch.stack([render(n, values, size, memo) for n in nodes])


class CAM:
    """A CAM method given as an expression (or a built-in name), pytorch-grad-cam style.

    Example::

        model = sycam.load_model("efficientnet_lite0")
        cam = sycam.CAM(model, method="gradcam")           # default target layer of the model
        maps = cam(images, targets=[285, 967])             # (N, H, W) tensor in [0, 1]
        cam2 = sycam.CAM(model.module, "bn2", "mean(G) * relu(S)")

    Args:
        model: an ``nn.Module`` classifier or a :class:`~sycam.models.LoadedModel`.
        target_layer: module or path (``"layer4[-1]"``); defaults to the loaded model's layer.
        method: a name from :data:`sycam.methods.METHODS` or an expression text / tree.
        score_top_k: cap of the Score-CAM terminal to the top-k channels (only if the expression uses S).
        batch_size: images per forward/backward, masked inputs per forward for S.
    """

    def __init__(
        self,
        model: nn.Module | LoadedModel,
        target_layer: str | nn.Module | None = None,
        method: str | Node = "gradcam",
        *,
        score_top_k: int | None = None,
        batch_size: int = 32,
    ) -> None:
        if isinstance(model, LoadedModel):
            target_layer = model.layer if target_layer is None else target_layer
            model = model.module
        if target_layer is None:
            raise ValueError("target_layer is required for a plain nn.Module")
        self.model = model
        self.target_layer = target_layer
        self.name, self.expression = resolve_method(method)
        self.kind = kind_of(self.expression)  # every kind renders; a constant weights all channels equally
        self.options = ExtractOptions(batch_size=batch_size, score_top_k=score_top_k)

    def __call__(self, images: Tensor, targets: TargetSpec = None) -> Tensor:
        cache = TerminalCache(self.model, self.target_layer, images, targets, self.options)
        return explain_cache(cache, [self.expression])[0]

    def __repr__(self) -> str:
        return f"CAM(expression={str(self.expression)!r}, layer={self.target_layer!r})"


def explain_cache(cache: TerminalCache, expressions: Sequence[Node]) -> list[Tensor]:
    """Heatmaps of several expressions on one terminal cache (terminals computed once, shared)."""
    needed: set[str] = {"A"}
    for e in expressions:
        needed |= e.terminals()
    values = cache.values(sorted(needed))
    size = tuple(cache.images.shape[-2:])
    memo: dict[Node, Tensor] = {}
    return [render(e, values, size, memo) for e in expressions]  # type: ignore[arg-type]


def explain(
    model: nn.Module | LoadedModel,
    images: Tensor,
    methods: Iterable[str | Node],
    targets: TargetSpec = None,
    target_layer: str | nn.Module | None = None,
    score_top_k: int | None = None,
    batch_size: int = 32,
) -> dict[str, Tensor]:
    """Heatmaps ``{label: (N, H, W)}`` for several methods/expressions, sharing one terminal cache."""
    if isinstance(model, LoadedModel):
        target_layer = model.layer if target_layer is None else target_layer
        model = model.module
    if target_layer is None:
        raise ValueError("target_layer is required for a plain nn.Module")
    resolved = [resolve_method(m) for m in methods]
    cache = TerminalCache(model, target_layer, images, targets, ExtractOptions(batch_size, score_top_k))
    maps = explain_cache(cache, [node for _, node in resolved])
    return {label: m for (label, _), m in zip(resolved, maps, strict=True)}
