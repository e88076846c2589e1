r"""Layer diagnostics: whether a target layer's terminals carry image-dependent spatial information.

Where the network continues with global average pooling and one linear layer (EfficientNet-Lite0 at ``bn2``,
ResNet50 at ``layer4[-1]``), the gradient of the class score is

.. math:: G_{kij} = \partial y_c / \partial A_{kij} = w_{ck} / (h\,w)

for every position: **G is spatially constant**, so Grad-CAM, XGrad-CAM and HiResCAM all equal CAM, and the
Ablation-CAM drops are :math:`D_k \propto w_{ck}\,\operatorname{mean}(A_k)`. Every expression over A, G and D
then only re-weights CAM's channels. :func:`diagnose` detects this on cached terminals;
:func:`probe_layers` lists the layers of a model with 4-d outputs and whether G varies over space there (one
forward and one backward over every probed layer at once).

Example::

    cache = TerminalCache(model.module, "bn2", images)
    d = diagnose(cache)
    d.gradient_constant, d.sentence      # True, "At bn2 the gradient G is spatially constant ..."
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from .capture import eval_mode
from .targets import Targets
from .terminals import ExtractOptions, TerminalCache

CONSTANT_TOLERANCE = 1e-5
"""G is called spatially constant where, on every image and channel, ``max - min`` over positions is at most
this fraction of the image's largest ``|G|``."""
PROPORTIONAL_COSINE = 0.9999
"""D is called proportional to w·mean(A) where its cosine with ``mean(G)·mean(A)`` is at least this on every image."""


def gradient_constant(grads: Tensor, tolerance: float = CONSTANT_TOLERANCE) -> bool:
    """Whether gradients ``(N, K, h, w)`` are constant over space on every image and channel (a 1×1 map is).

    >>> gradient_constant(torch.ones(2, 3, 4, 4)), gradient_constant(torch.arange(16.).reshape(1, 1, 4, 4))
    (True, False)
    """
    flat = grads.flatten(2)
    spread = (flat.amax(2) - flat.amin(2)).amax(1)  # (N,)
    scale = flat.abs().amax(dim=(1, 2))
    return bool((spread <= tolerance * scale).all())


def proportional(a: Tensor, b: Tensor, cosine: float = PROPORTIONAL_COSINE) -> bool:
    """Whether the rows of ``a`` and ``b`` ``(N, K)`` point the same way (cosine ≥ ``cosine``) on every image."""
    cos = torch.nn.functional.cosine_similarity(a.flatten(1).double(), b.flatten(1).double(), dim=1)
    return bool((cos >= cosine).all())


@dataclass(frozen=True)
class LayerInfo:
    """One probed layer: its module path, output shape ``(K, h, w)`` and whether G varies over space there."""

    name: str
    shape: tuple[int, int, int]
    gradient_varies: bool
    same_as: str | None = None
    """a later probed layer whose output is this very tensor (a container and its last child, a norm and its
    activation), which then stands for both"""


def candidate_layers(model: nn.Module, max_depth: int = 2) -> list[str]:
    """Module paths of ``model`` at most ``max_depth`` levels deep (``blocks.5`` is depth 2), in module order."""
    return [n for n, _ in model.named_modules() if n and n.count(".") < max_depth]


def probe_layers(model: nn.Module, image: Tensor, target: Targets | None = None,
                 names: list[str] | None = None) -> list[LayerInfo]:
    """For each module of ``names`` (default :func:`candidate_layers`) whose output is a 4-d tensor: its shape
    and whether the target score's gradient varies over space there, from one forward and one backward of
    ``image`` ``(1, 3, H, W)`` (``target``: one image's :class:`~sycam.targets.Targets`; default: the predicted
    class)."""
    modules = dict(model.named_modules())
    names = candidate_layers(model) if names is None else names
    seen: dict[str, Tensor] = {}
    handles = []

    def hook(name: str) -> Any:
        def record(_m: nn.Module, _i: object, out: object) -> None:
            if isinstance(out, Tensor) and out.dim() == 4 and out.requires_grad and name not in seen:
                seen[name] = out
        return record

    for n in names:
        handles.append(modules[n].register_forward_hook(hook(n)))
    try:
        with eval_mode(model), torch.enable_grad():
            x = image[:1].detach().requires_grad_(True)  # keeps a graph even through frozen layers
            logits = model(x)
            targets = Targets.resolve(None, 1, logits) if target is None else target
            order = [n for n in names if n in seen]
            grads = torch.autograd.grad(targets.scores(logits).sum(), [seen[n] for n in order], allow_unused=True)
    finally:
        for h in handles:
            h.remove()
    last = {id(seen[n]): n for n in order}
    out = []
    for n, g in zip(order, grads, strict=True):
        shape = tuple(int(s) for s in seen[n].shape[1:])
        varies = g is not None and not gradient_constant(g)
        same = last[id(seen[n])]
        out.append(LayerInfo(n, shape, varies, None if same == n else same))  # type: ignore[arg-type]
    return out


@dataclass
class Diagnosis:
    """What the terminals of one target layer can express (``results.json``'s ``diagnostics``)."""

    layer: str
    gradient_constant: bool
    """G is spatially constant on every image"""
    ablation_proportional: bool | None = None
    """D ∝ mean(G)·mean(A) on every image (None: D was not computed)"""
    varying_layers: list[str] = field(default_factory=list)
    """the probed layers where G does vary over space (deepest first)"""

    @property
    def degenerate(self) -> bool:
        """Whether the layer's gradient terminals carry no spatial information."""
        return self.gradient_constant

    @property
    def sentence(self) -> str | None:
        """One plain sentence for the console, the results and the report (None when G varies)."""
        if not self.gradient_constant:
            return None
        d = (" and the Ablation-CAM drops D are proportional to the class weights times mean(A)"
             if self.ablation_proportional else "")
        where = (f"; G varies at {', '.join(self.varying_layers[:4])} (search there with --layers or the terminals "
                 f"A@LAYER, G@LAYER)" if self.varying_layers else "")
        return (f"At {self.layer} the gradient G is spatially constant on every image (the network pools right "
                f"after this layer){d}, so Grad-CAM, XGrad-CAM and HiResCAM equal CAM and expressions over A, G "
                f"and D only re-weight CAM's channels{where}.")

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready fields plus the sentence."""
        return {"layer": self.layer, "gradient_constant": self.gradient_constant,
                "ablation_proportional": self.ablation_proportional, "varying_layers": list(self.varying_layers),
                "sentence": self.sentence}


DIAGNOSIS_IMAGES = 4
"""images :func:`diagnose_layer` looks at (the property it detects is structural: a few images show it)"""


def diagnose_layer(model: nn.Module, layer: str | nn.Module, images: Tensor, targets: Targets | None = None,
                   n: int = DIAGNOSIS_IMAGES, options: ExtractOptions | None = None) -> Diagnosis:
    """The :class:`Diagnosis` of ``layer`` on the first ``n`` of ``images`` (one forward and backward; where G is
    constant also the Ablation-CAM drops, then cheap: only the pooling head runs, and one probe of every layer).
    ``options``: the extraction's (its ``reshape`` for a transformer's layer)."""
    k = min(n, int(images.shape[0]))
    cache = TerminalCache(model, layer, images[:k], None if targets is None else targets.subset(range(k)), options)
    if gradient_constant(cache.get(["G"])["G"]):
        cache.get(["D"])
    return diagnose(cache)


def diagnose(cache: TerminalCache, probe: bool = True) -> Diagnosis:
    """The :class:`Diagnosis` of ``cache``'s target layer from its cached A and G (and D when it was computed);
    with ``probe`` and a constant G, the layers where G varies come from :func:`probe_layers` on the first image."""
    values = cache.get(["A", "G"])
    constant = gradient_constant(values["G"])
    d = cache._values.get("D")
    prop = None
    if d is not None:
        g, a = values["G"].mean(dim=(2, 3)), values["A"].mean(dim=(2, 3))
        prop = proportional(d, g * a)
    varying: list[str] = []
    if constant and probe:
        infos = probe_layers(cache.model, cache.images[:1], cache.targets.subset([0]))
        varying = [i.name for i in reversed(infos)
                   if i.gradient_varies and i.same_as is None and i.shape[1] * i.shape[2] > 1]
    return Diagnosis(cache.layer_name, constant, prop, varying)
