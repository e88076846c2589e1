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

from collections.abc import Callable, Iterable, Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .errors import SycamError
from .expr import Node, acts_key, evaluate
from .expr.ops import (  # noqa: F401 (the render rules live in expr.ops)
    CHANNEL_ROWS,
    NORM_EPS,
    cam,
    channel_sum,
    normalize,
    on_grid,
    saliency,
)
from .methods import resolve_method
from .models import LoadedModel
from .targets import TargetSpec
from .terminals import ExtractOptions, TerminalCache
from .transforms import ReshapeTransform, resolve_reshape


def layer_maps_batch(weights: Sequence[Tensor], acts: Tensor) -> Tensor:
    r"""Layer maps ``(B, N, h, w)`` of many candidates at once: :func:`layer_maps` of each of ``weights`` (each
    ``(N, K, 1|h, 1|w)`` or 0-d), with every channel-vector candidate in one :func:`channel_sum` (the same
    numbers as one by one). The batched scoring path of the search, on one machine and on a shard."""
    n, k = acts.shape[:2]
    out: list[Tensor | None] = [None] * len(weights)
    vec = [i for i, w in enumerate(weights) if w.dim() == 4 and w.shape[-2:] == (1, 1)]
    if vec:
        stacked = torch.stack([torch.broadcast_to(weights[i][..., 0, 0], (n, k)) for i in vec])
        maps = normalize(torch.relu(channel_sum(stacked, acts)))
        for j, i in enumerate(vec):
            out[i] = maps[j]
    for i, w in enumerate(weights):
        if out[i] is None:
            out[i] = layer_maps(w, acts)
    if not out:
        return acts.new_zeros(0, n, *acts.shape[-2:])
    return torch.stack(out)  # type: ignore[arg-type]


def layer_maps(weights: Tensor, acts: Tensor) -> Tensor:
    r"""Normalized layer-resolution maps :math:`\mathrm{norm}(\mathrm{relu}(\sum_k w_k A_k))`, shape
    ``(*B, N, h, w)``, for weights ``(*B, N, K, 1|h, 1|w)`` (or a 0-d constant) and activations ``(N, K, h, w)``.

    This is the first half of :func:`finish` (the expression language's ``cam``); metrics with ``lowres`` read
    these maps directly."""
    return cam(weights, acts)


def faint(maps: Tensor) -> Tensor:
    r"""Per-map flags ``(*B, N)`` for layer maps from :func:`layer_maps` ``(*B, N, h, w)`` that render faint: a
    raw range :math:`r = \max - \min` below the normalization's :math:`\varepsilon = 10^{-7}` leaves the
    normalized peak :math:`r / (r + \varepsilon) < 1/2`, so the heatmap never reaches half of the colour scale
    although it is not constant (e.g. ``mean(cube(cube(G)))``, whose raw values are ~1e-12). The search treats
    such a map as degenerate; pytorch-grad-cam's absolute ε is kept, so the classic methods render as there."""
    return maps.flatten(-2).amax(-1) < 0.5


def resize(maps: Tensor, size: tuple[int, int]) -> Tensor:
    """Bilinear resize (half-pixel centres, as ``cv2.resize``) of maps ``(*B, h, w)`` to ``(*B, *size)``."""
    lead = maps.shape[:-2]
    m = maps.reshape(-1, 1, *maps.shape[-2:])
    if tuple(m.shape[-2:]) != tuple(size):
        m = F.interpolate(m, size=size, mode="bilinear", align_corners=False)
    return m.reshape(*lead, *size)


def finish_layer(maps: Tensor, size: tuple[int, int]) -> Tensor:
    """Layer-resolution maps from :func:`layer_maps` ``(*B, N, h, w)`` → heatmaps ``(*B, N, *size)``:
    bilinear resize (half-pixel centres) then relu and normalize again (pytorch-grad-cam's aggregation)."""
    return normalize(torch.relu(resize(maps, size)))


def fuse_layers(maps: Sequence[Tensor], size: tuple[int, int]) -> Tensor:
    r"""One heatmap from the layer maps of several target layers (each ``(*B, N, h_l, w_l)`` from
    :func:`layer_maps`), pytorch-grad-cam's multi-layer rule: resize each to ``size``, average, normalize:

    .. math:: L = \mathrm{norm}\big(\tfrac{1}{|\mathcal{L}|}\textstyle\sum_{l}
              \mathrm{relu}(\mathrm{resize}(\mathrm{norm}(\mathrm{relu}(\textstyle\sum_k E^{(l)}_k))))\big)

    With one layer it is :func:`finish_layer`. Example::

        fuse_layers([layer_maps(w3, a3), layer_maps(w4, a4)], (224, 224))   # layer3 and layer4 of a ResNet
    """
    if not maps:
        raise InputError("no target layers to fuse")
    return normalize(torch.stack([torch.relu(resize(m, size)) for m in maps]).mean(0))


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
    return finish_layer(as_layer_map(node, evaluate(node, values, memo), values), size)


def as_layer_map(node: Node, value: Tensor, values: Mapping[str, Tensor],
                 grid: tuple[int, int] | None = None) -> Tensor:
    """The layer-resolution map ``(N, h, w)`` of ``node`` whose value is ``value``: a heatmap-valued expression's
    own value; channel or pixel weights go through :func:`layer_maps` with the activations of their layer (``A``
    for the target layer, ``A@LAYER`` for terminals at another layer). With ``grid`` the map is brought onto it
    (bilinear, half-pixel centres: :func:`~sycam.expr.ops.on_grid`), so maps of several layers stack."""
    out = value if value.dim() == 3 else layer_maps(value, values[acts_key(node)])
    return out if grid is None else on_grid(out, grid)


def layer_maps_of(nodes: Sequence[Node], weights: Sequence[Tensor], values: Mapping[str, Tensor],
                  grid: tuple[int, int] | None = None) -> Tensor:
    """Layer maps ``(B, N, h, w)`` of candidates ``nodes`` whose values are ``weights``: :func:`as_layer_map` of
    each (brought onto ``grid`` when given), the weights of each layer in one :func:`layer_maps_batch` (its
    channel vectors in one fixed-shape product: the same numbers as one by one). Without ``grid`` the maps must
    share one."""
    if not nodes:
        a = values["A"]
        return a.new_zeros(0, a.shape[0], *a.shape[-2:])
    out: list[Tensor | None] = [None] * len(nodes)
    by_layer: dict[str, list[int]] = {}
    for i, (node, w) in enumerate(zip(nodes, weights, strict=True)):
        if w.dim() == 3:  # a heatmap-valued expression is its own map
            out[i] = w
        else:
            by_layer.setdefault(acts_key(node), []).append(i)
    for key, idx in by_layer.items():
        for i, m in zip(idx, layer_maps_batch([weights[i] for i in idx], values[key]), strict=True):
            out[i] = m
    return torch.stack([m if grid is None else on_grid(m, grid) for m in out])  # type: ignore[arg-type]


def native_grid(node: Node, values: Mapping[str, Tensor]) -> tuple[int, int]:
    """The grid ``node``'s layer map has before any resize: its weights' layer's, or for a heatmap the finest of the
    layers it reads (where its heatmaps meet)."""
    if not kind_is_heatmap(node):
        return tuple(int(s) for s in values[acts_key(node)].shape[-2:])  # type: ignore[return-value]
    layers = {t.partition("@")[2] for t in node.terminals()}
    return grid_of({k: values[k] for k in (f"A@{la}" if la else "A" for la in layers)})


def kind_is_heatmap(node: Node) -> bool:
    """Whether ``node`` is heatmap-valued (a final-map operator or a heatmap terminal at its root)."""
    from .expr import Kind, kind_of

    return kind_of(node) == Kind.HEATMAP


def grid_of(values: Mapping[str, Tensor]) -> tuple[int, int]:
    """The finest grid ``(h, w)`` (most positions) among the activations in ``values`` (``A``, ``A@LAYER``): where
    a search over several layers scores every candidate's map."""
    shapes = [tuple(int(s) for s in v.shape[-2:]) for k, v in values.items() if k.split("@")[0] == "A"]
    return max(shapes, key=lambda hw: (hw[0] * hw[1], hw))  # type: ignore[return-value]


def render_all(
    nodes: Sequence[Node], values: Mapping[str, Tensor], size: tuple[int, int], memo: dict[Node, Tensor] | None = None
) -> Tensor:
    """Heatmaps ``(B, N, H, W)`` of several expressions over the same terminal ``values`` (shared ``memo``)."""
    memo = {} if memo is None else memo
    return torch.stack([render(n, values, size, memo) for n in nodes])


class InputError(SycamError, ValueError):
    """Images the API cannot explain: wrong type, dtype, layout or non-finite values (one-line message)."""


def _input_channels(model: nn.Module) -> int | None:
    """``in_channels`` of the model's first convolution, if it has one."""
    for mod in model.modules():
        if isinstance(mod, nn.Conv2d):
            return int(mod.in_channels)
    return None


def check_images(images: object, model: nn.Module) -> Tensor:
    """Validate the model inputs given to :class:`CAM` / :func:`explain`; return them as floats.

    Accepted: a floating ``(N, C, H, W)`` tensor with ``C`` the channels of the model's first convolution
    (3 for every zoo model), all values finite. A floating dtype other than the model's is cast to it.
    Refused with :class:`InputError`: anything not a tensor; integer and bool dtypes (``uint8`` images are
    raw pixels, not model inputs: normalize them first, e.g. ``model.preprocess.normalize(x.float() / 255)``);
    other layouts (``(H, W, C)``, ``(N, H, W, C)``, one-channel or unbatched images), named by their shape;
    empty batches; NaN or infinite values.

    Example::

        check_images(torch.zeros(2, 3, 224, 224), model)     # fine
        check_images(torch.zeros(224, 224, 3), model)        # InputError: ... got shape (224, 224, 3)
    """
    if not isinstance(images, Tensor):
        raise InputError(f"images must be a torch.Tensor of shape (N, 3, H, W), got {type(images).__name__}")
    shape = tuple(images.shape)
    if not (images.is_floating_point()):
        raise InputError(f"images have dtype {str(images.dtype).removeprefix('torch.')}: CAM takes float model "
                         "inputs (N, 3, H, W), normalized as the model expects; for uint8 pixels use "
                         "model.preprocess.normalize(images.float() / 255)")
    channels = _input_channels(model) or 3
    if images.dim() != 4 or shape[1] != channels:
        hint = ""
        if images.dim() in (3, 4) and shape[-1] == channels and (images.dim() == 3 or shape[1] != channels):
            hint = " (channels last? use images.permute(0, 3, 1, 2))" if images.dim() == 4 else \
                " (one image, channels last? use images.permute(2, 0, 1)[None])"
        elif images.dim() == 3 and shape[0] == channels:
            hint = " (one image? use images[None])"
        raise InputError(f"images must be a (N, C, H, W) tensor with C = {channels}, got shape {shape}{hint}")
    if shape[0] == 0 or shape[2] == 0 or shape[3] == 0:
        raise InputError(f"images must not be empty, got shape {shape}")
    finite = torch.isfinite(images)
    if not bool(finite.all()):
        bad = int((~finite).sum())
        raise InputError(f"images hold {bad} NaN or infinite value(s) of {images.numel()}: CAM needs finite inputs")
    param = next(model.parameters(), None)
    if param is not None and param.is_floating_point() and images.dtype != param.dtype:
        images = images.to(param.dtype)
    return images


def _run(images: Tensor, fn: Callable[[], list[Tensor]]) -> list[Tensor]:
    """Run ``fn`` (the model on ``images``); a model that cannot take them (too small, ...) is an InputError."""
    try:
        return fn()
    except RuntimeError as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise InputError(f"the model cannot run on images of shape {tuple(images.shape)}: {first}") from exc


def _check_maps(maps: Tensor, label: str) -> Tensor:
    """Heatmaps are in [0, 1]; a non-finite value (the model overflowed) is an error, never returned."""
    if not bool(torch.isfinite(maps).all()):
        raise InputError(f"the heatmap of {label} is not finite: the model's activations or gradients "
                         "overflow on these images")
    return maps


def unwrap_model(model: nn.Module | LoadedModel, target_layer: str | nn.Module | None) -> tuple[nn.Module,
                                                                                              str | nn.Module]:
    """The plain module and target layer of ``model``: a :class:`~sycam.models.LoadedModel` brings its default
    layer (``target_layer`` overrides it); a plain ``nn.Module`` needs ``target_layer`` (else :class:`InputError`)."""
    if isinstance(model, LoadedModel):
        return model.module, model.layer if target_layer is None else target_layer
    if target_layer is None:
        raise InputError("target_layer is required for a plain nn.Module (e.g. 'layer4[-1]')")
    return model, target_layer


class CAM:
    """A CAM method given as an expression (or a built-in name), pytorch-grad-cam style.

    Example::

        model = sycam.load_model("efficientnet_lite0")
        cam = sycam.CAM(model, method="gradcam")           # default target layer of the model
        maps = cam(images, targets=[285, 967])             # (N, H, W) tensor in [0, 1]
        cam2 = sycam.CAM(model.module, "bn2", "mean(G) * relu(S)")

    Inputs are checked by :func:`check_images`: ``images`` is a float ``(N, 3, H, W)`` tensor of finite
    model inputs (normalized as the model expects); ``uint8`` images are refused with a message saying how
    to convert them, other layouts are refused naming their shape. The maps are always finite and in
    [0, 1]; where a map is constant (e.g. an input so small that the target layer is 1×1, such as 8×8
    images on a ResNet) it is all zeros.

    Vision transformers: ``reshape_transform`` turns the layer's output into ``(N, K, h, w)`` for every terminal
    (pytorch-grad-cam's convention; ``"vit"`` / ``"swin"`` presets, :mod:`sycam.transforms`); a loaded timm
    ViT / DeiT / Swin brings its own. Several target layers (``layers=[...]``) are fused by
    :func:`fuse_layers` (per-layer normalized maps, resized, averaged, normalized: pytorch-grad-cam's rule).

    Args:
        model: an ``nn.Module`` classifier or a :class:`~sycam.models.LoadedModel`.
        target_layer: module or path (``"layer4[-1]"``); defaults to the loaded model's layer.
        method: a name from :data:`sycam.methods.METHODS` or an expression text / tree.
        score_top_k: cap of the Score-CAM terminal to the top-k channels (only if the expression uses S).
        batch_size: images per forward/backward, masked inputs per forward for S.
        reshape_transform: layer output → ``(N, K, h, w)``: a callable, ``"vit"`` or ``"swin"``.
        layers: several target layers instead of ``target_layer``, fused by :func:`fuse_layers`.
    """

    def __init__(
        self,
        model: nn.Module | LoadedModel,
        target_layer: str | nn.Module | None = None,
        method: str | Node = "gradcam",
        *,
        score_top_k: int | None = None,
        batch_size: int = 32,
        reshape_transform: str | ReshapeTransform | None = None,
        layers: Sequence[str | nn.Module] | None = None,
    ) -> None:
        if layers is not None and target_layer is not None:
            raise InputError("give target_layer or layers=[...], not both")
        if layers is not None and (isinstance(layers, str | nn.Module) or not list(layers)):
            raise InputError("layers must be a non-empty list of target layers, e.g. ['layer3', 'layer4']")
        several = None if layers is None else list(layers)
        self.model, self.target_layer = unwrap_model(model, target_layer if several is None else several[0])
        self.layers = [self.target_layer] if several is None else several
        self.name, self.expression = resolve_method(method)
        reshape = model_reshape(model, reshape_transform)
        self.options = ExtractOptions(batch_size=batch_size, score_top_k=score_top_k, reshape=reshape)

    def __call__(self, images: Tensor, targets: TargetSpec = None) -> Tensor:
        images = check_images(images, self.model)
        return _check_maps(explain_layers(self.model, self.layers, images, [self.expression], targets,
                                          self.options)[0], self.name)

    def __repr__(self) -> str:
        layer = self.target_layer if len(self.layers) == 1 else self.layers
        return f"CAM(expression={str(self.expression)!r}, layer={layer!r})"


def model_reshape(model: nn.Module | LoadedModel, reshape: str | ReshapeTransform | None) -> ReshapeTransform | None:
    """The reshape transform to use: ``reshape`` (a preset name is fitted to the module), else a loaded model's."""
    module = model.module if isinstance(model, LoadedModel) else model
    if reshape is None and isinstance(model, LoadedModel):
        return model.reshape_transform
    return resolve_reshape(reshape, module)


def explain_layers(model: nn.Module, layers: Sequence[str | nn.Module], images: Tensor, expressions: Sequence[Node],
                   targets: TargetSpec, options: ExtractOptions) -> list[Tensor]:
    """Heatmaps of ``expressions`` on checked ``images``: one terminal cache per target layer; one layer renders
    as :func:`render`, several are fused by :func:`fuse_layers`."""
    if len(layers) == 1:
        cache = TerminalCache(model, layers[0], images, targets, options)
        return _run(images, lambda: explain_cache(cache, expressions))
    size = tuple(images.shape[-2:])
    per_layer: list[list[Tensor]] = []
    for layer in layers:
        cache = TerminalCache(model, layer, images, targets, options)
        per_layer.append(_run(images, lambda c=cache: explain_cache(c, expressions, finished=False)))  # type: ignore[misc]
    return [fuse_layers([maps[i] for maps in per_layer], size) for i in range(len(expressions))]  # type: ignore[arg-type]


def explain_cache(cache: TerminalCache, expressions: Sequence[Node], finished: bool = True) -> list[Tensor]:
    """Heatmaps of several expressions on one terminal cache (terminals computed once, shared); with
    ``finished=False`` the layer-resolution maps of :func:`layer_maps` instead."""
    values = cache.values(sorted(needed_terminals(expressions)))
    size = tuple(cache.images.shape[-2:])
    memo: dict[Node, Tensor] = {}
    if not finished:
        return [as_layer_map(e, evaluate(e, values, memo), values) for e in expressions]
    return [render(e, values, size, memo) for e in expressions]  # type: ignore[arg-type]


def needed_terminals(expressions: Iterable[Node]) -> set[str]:
    """The terminals that rendering ``expressions`` reads: their own and the activations of each one's layer."""
    needed: set[str] = {"A"}
    for e in expressions:
        needed |= e.terminals() | {acts_key(e)}
    return needed


def explain(
    model: nn.Module | LoadedModel,
    images: Tensor,
    methods: Iterable[str | Node],
    targets: TargetSpec = None,
    target_layer: str | nn.Module | None = None,
    score_top_k: int | None = None,
    batch_size: int = 32,
    reshape_transform: str | ReshapeTransform | None = None,
    layers: Sequence[str | nn.Module] | None = None,
) -> dict[str, Tensor]:
    """Heatmaps ``{label: (N, H, W)}`` for several methods/expressions, sharing one terminal cache (per layer).

    ``images`` are checked as for :class:`CAM` (:func:`check_images`); every map is finite and in [0, 1];
    ``reshape_transform`` and ``layers`` are as for :class:`CAM`.
    """
    setup = CAM(model, target_layer, "gradcam", score_top_k=score_top_k, batch_size=batch_size,
                reshape_transform=reshape_transform, layers=layers)  # the model, layers and options, checked
    resolved = [resolve_method(m) for m in methods]
    images = check_images(images, setup.model)
    maps = explain_layers(setup.model, setup.layers, images, [node for _, node in resolved], targets, setup.options)
    return {label: _check_maps(m, label) for (label, _), m in zip(resolved, maps, strict=True)}
