"""Equivariance and invariance metrics: does the heatmap move with the image under geometric transforms
(``L(Tx) ≈ T(L(x))``) and stay put under photometric ones (``L(Tx) ≈ L(x)``)? ``cost="cached"``: every
transformed input is a fixed *view* whose terminals the engine computes once.

Transforms are written ``name`` or ``name=value``:

=============  ==============================================================  =========
name           effect (on the model input; RGB values clipped to [0, 1])       default
=============  ==============================================================  =========
``hflip``      mirror left-right                                               —
``vflip``      mirror top-bottom                                               —
``rot90``      rotate by 90° (``torch.rot90(k=1)`` on H, W; square inputs)     —
``rot180``     rotate by 180°                                                  —
``rot270``     rotate by 270° (square inputs)                                  —
``shift=s``    translate ``s`` px right and ``s`` px down; the vacated band    16
               is filled with model input 0 (the data set's mean colour)
``scale=f``    zoom by ``f`` about the centre (bilinear; ``f < 1`` shrinks     0.8
               and pads with model input 0)
``brightness`` add ``δ`` to RGB                                                0.1
``contrast``   ``m + c·(x − m)`` with ``m`` the image's mean grey value        0.75
``noise=σ``    add Gaussian noise of std ``σ`` in RGB (seeded)                 0.03
``blur=σ``     Gaussian blur of std ``σ`` px (kernel ``2⌈3σ⌉+1``, reflect)     1.0
=============  ==============================================================  =========

Similarity ``sim(a, b)`` over the pixels valid in both maps (for ``shift`` and ``scale``, those of the
output that come from inside the input; all pixels otherwise):

- ``"pearson"`` (default): the Pearson correlation in [-1, 1]; 0 when either map is constant on the valid
  pixels (a flat map carries no location, so it cannot be rewarded as perfectly equivariant);
- ``"mae"``: ``1 - mean |a - b|`` in [0, 1] (maps are in [0, 1]); two equal constant maps score 1.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from ..data.samples import Samples
from ._util import check_choice, check_maps, check_number, gaussian_blur, pearson
from .base import Metric, MetricContext, MetricError, degenerate
from .lowres import full_maps, resize_for

GEOMETRIC = {"hflip": None, "vflip": None, "rot90": None, "rot180": None, "rot270": None, "shift": 16, "scale": 0.8}
"""The geometric transforms :class:`Equivariance` accepts, with their default values (None: takes no value)."""
PHOTOMETRIC = {"brightness": 0.1, "contrast": 0.75, "noise": 0.03, "blur": 1.0}
"""The photometric transforms :class:`Invariance` accepts, with their default values."""
SIMILARITIES = ("pearson", "mae")
"""The values of the ``similarity`` option (see the module docstring)."""


@dataclass(frozen=True)
class Transform:
    """One parsed transform ``name[=value]`` (see the module docstring)."""

    name: str
    value: float | None
    seed: int = 0

    @property
    def key(self) -> str:
        """Canonical text, e.g. ``"shift=16"``; also the view name suffix."""
        if self.value is None:
            return self.name
        return f"{self.name}={self.value:g}"

    @property
    def view_name(self) -> str:
        """The name of this transform's view: ``"transform:<key>"``, plus ``",seed=<seed>"`` for ``noise``."""
        extra = f",seed={self.seed}" if self.name == "noise" else ""
        return f"transform:{self.key}{extra}"

    def check_size(self, h: int, w: int, metric: str) -> None:
        """Raise :class:`MetricError` if the transform cannot apply to ``h × w`` inputs: ``rot90`` and ``rot270``
        need square inputs, and a ``shift`` must be smaller than the image."""
        if self.name in ("rot90", "rot270") and h != w:
            raise MetricError(f"{metric}: {self.name} needs square inputs, got {h}x{w}")
        if self.name == "shift" and not (self.value is not None and self.value < min(h, w)):
            raise MetricError(f"{metric}: shift={self.value:g} must be smaller than the image ({h}x{w})")

    # ---- geometric: applied identically to inputs and to maps -------------------------------------------
    def apply(self, z: Tensor) -> Tensor:
        """The geometric transform of ``(..., H, W)`` (fill 0 where the output has no source)."""
        if self.name == "hflip":
            return z.flip(-1)
        if self.name == "vflip":
            return z.flip(-2)
        if self.name.startswith("rot"):
            return torch.rot90(z, int(self.name[3:]) // 90, dims=(-2, -1))
        h, w = z.shape[-2:]
        if self.name == "shift":
            s = int(self.value or 0)
            out = torch.zeros_like(z)
            out[..., s:, s:] = z[..., : h - s, : w - s]
            return out
        flat = z.reshape(-1, 1, h, w)
        grid = self._grid(flat.shape[0], h, w, z.device, z.dtype)
        out = F.grid_sample(flat, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
        return out.reshape(z.shape)

    def _grid(self, m: int, h: int, w: int, device: torch.device, dtype: torch.dtype) -> Tensor:
        f = float(self.value or 1.0)
        theta = torch.tensor([[1 / f, 0.0, 0.0], [0.0, 1 / f, 0.0]], device=device, dtype=dtype)
        return F.affine_grid(theta.expand(m, 2, 3), [m, 1, h, w], align_corners=False)

    def valid(self, h: int, w: int, device: torch.device) -> Tensor:
        """``(H, W)`` bool: output pixels that come from inside the input (all, for flips and rotations)."""
        if self.name == "shift":
            s = int(self.value or 0)
            v = torch.zeros(h, w, dtype=torch.bool, device=device)
            v[s:, s:] = True
            return v
        if self.name == "scale":
            ones = torch.ones(1, 1, h, w, device=device)
            cover = F.grid_sample(ones, self._grid(1, h, w, device, ones.dtype), align_corners=False)
            return cover[0, 0] >= 1 - 1e-5
        return torch.ones(h, w, dtype=torch.bool, device=device)

    # ---- inputs -------------------------------------------------------------------------------------------
    def image(self, samples: Samples) -> Tensor:
        """The transformed model inputs ``(N, 3, H, W)``."""
        if self.name in GEOMETRIC:
            return self.apply(samples.images)
        px = samples.pixels
        v = float(self.value or 0.0)
        if self.name == "brightness":
            out = px + v
        elif self.name == "contrast":
            m = px.mean((-3, -2, -1), keepdim=True)
            out = m + v * (px - m)
        elif self.name == "noise":
            g = torch.Generator().manual_seed(int(self.seed))
            out = px + v * torch.randn(px.shape, generator=g, dtype=torch.float32).to(px.device, px.dtype)
        else:  # blur
            out = gaussian_blur(px, v)
        return samples.normalize(out.clamp(0, 1))


def parse_transforms(
    spec: str | Sequence[str], allowed: Mapping[str, float | None], metric: str, seed: int = 0
) -> tuple[Transform, ...]:
    """Parse ``"hflip,shift=8"`` or ``["hflip", "shift=8"]`` into transforms (``MetricError`` if invalid)."""
    if isinstance(spec, str):
        items = [t.strip() for t in spec.split(",")]
    elif isinstance(spec, Sequence) and all(isinstance(t, str) for t in spec):
        items = [t.strip() for t in spec]
    else:
        raise MetricError(f"{metric}: transforms must be a string like 'hflip,shift=8' or a list of such names")
    items = [t for t in items if t]
    if not items:
        raise MetricError(f"{metric}: transforms is empty (choose from {', '.join(allowed)})")
    out: list[Transform] = []
    for item in items:
        name, _, text = item.partition("=")
        name = name.strip()
        if name not in allowed:
            raise MetricError(f"{metric}: unknown transform {name!r} (choose from {', '.join(allowed)})")
        default = allowed[name]
        if default is None:
            if text:
                raise MetricError(f"{metric}: transform {name!r} takes no value, got {item!r}")
            out.append(Transform(name, None, seed))
            continue
        try:
            value = float(text) if text else float(default)
        except ValueError:
            raise MetricError(f"{metric}: transform {item!r} needs a number after '='") from None
        if not math.isfinite(value) or (value <= 0 and name != "brightness") or (name == "scale" and value == 1):
            raise MetricError(f"{metric}: bad value in transform {item!r}")
        if name == "shift" and value != int(value):
            raise MetricError(f"{metric}: shift must be a whole number of pixels, got {item!r}")
        out.append(Transform(name, value, seed))
    return tuple(out)


def similarity(a: Tensor, b: Tensor, valid: Tensor, kind: str) -> Tensor:
    """``sim(a, b)`` of maps ``(..., H, W)`` over the ``valid`` ``(H, W)`` pixels, as ``(...)``; NaN where
    either map has a non-finite value on a valid pixel."""
    w = valid.flatten().to(a.dtype)
    af, bf = a.flatten(-2), b.flatten(-2)
    broken = ~(torch.isfinite(af) & torch.isfinite(bf) | ~valid.flatten()).all(-1)
    af, bf = af.nan_to_num(0.0, 0.0, 0.0), bf.nan_to_num(0.0, 0.0, 0.0)
    if kind == "pearson":
        sim = pearson(af, bf, weight=None if bool(valid.all()) else w, undefined=0.0)
    else:
        sim = 1 - ((af - bf).abs() * w).sum(-1) / w.sum().clamp_min(1)
    return sim.masked_fill(broken, float("nan"))


class _TransformMetric(Metric):
    higher_is_better = True
    cost = "cached"
    family = "equivariance"
    _allowed: dict[str, float | None]
    _default: tuple[str, ...]

    def __init__(
        self, transforms: str | Sequence[str] | None = None, similarity: str = "pearson", seed: int = 0
    ) -> None:
        self._seed = check_number(self.name, "seed", seed, integer=True)
        spec = self._default if transforms is None else transforms
        self._transforms = parse_transforms(spec, self._allowed, self.name, self._seed)
        self.transforms = tuple(t.key for t in self._transforms)
        self.similarity = check_choice(self.name, "similarity", similarity, SIMILARITIES)

    def views(self, samples: Samples) -> Mapping[str, Tensor]:
        """The transformed inputs ``(N, 3, H, W)``, one view per chosen transform, by :attr:`Transform.view_name`."""
        h, w = samples.images.shape[-2:]
        for t in self._transforms:
            t.check_size(h, w, self.name)
        return {t.view_name: t.image(samples) for t in self._transforms}

    def _view(self, ctx: MetricContext, t: Transform, like: Tensor) -> Tensor:
        other = ctx.view_maps(t.view_name)
        if not isinstance(other, Tensor) or other.shape != like.shape:
            got = tuple(other.shape) if isinstance(other, Tensor) else type(other).__name__
            raise MetricError(
                f"{self.name}: maps of view {t.view_name!r} have shape {got}, expected {tuple(like.shape)}"
            )
        return other.to(like.device, like.dtype)

    def per_transform(self, maps: Tensor, ctx: MetricContext) -> dict[str, Tensor]:
        """The similarity ``(*B, N)`` for each transform, by its canonical key."""
        raise NotImplementedError

    def worst(self) -> float:
        """The least similarity: -1 for ``pearson`` (anti-correlated maps), 0 for ``mae``."""
        return -1.0 if self.similarity == "pearson" else 0.0

    def score(self, maps: Tensor, ctx: MetricContext) -> Tensor:
        """Per image the mean over the chosen transforms of their similarity (:meth:`per_transform`),
        ``(*B, N)``; higher is better. A NaN similarity counts as :meth:`worst`."""
        # A map of a view with a non-finite value (e.g. a division by zero on that input only) is a failure
        # there: that transform's similarity is the worst, never NaN.
        sims = torch.stack(list(self.per_transform(maps, ctx).values()))
        return sims.nan_to_num(nan=self.worst()).mean(0)


class Equivariance(_TransformMetric):
    r"""Equivariance under geometric transforms ``T``: the mean over the chosen transforms of

    .. math:: \mathrm{sim}\big(L(Tx),\; T(L(x))\big)

    over the pixels valid in both (see the module docstring for transforms and similarities). Higher is
    better. Defaults: ``transforms=("hflip", "shift=16")`` (mirror symmetry, which ImageNet training
    augments for, and translation, which convolutions should respect; 2 views), ``similarity="pearson"``.
    None of pytorch-grad-cam, torchcam or Quantus has this metric.

    Reference: Guo et al., Visual Attention Consistency under Image Transforms, CVPR 2019,
    https://doi.org/10.1109/CVPR.2019.00082
    """

    reference = (
        "Guo et al., Visual Attention Consistency under Image Transforms, CVPR 2019 — "
        "https://doi.org/10.1109/CVPR.2019.00082"
    )

    name = "equivariance"
    summary = "similarity of L(Tx) and T(L(x)) under flips, shifts, rotations and scaling"
    _allowed = GEOMETRIC
    _default = ("hflip", "shift")

    def __init__(self, transforms: str | Sequence[str] | None = None, similarity: str = "pearson") -> None:
        super().__init__(transforms, similarity)

    def per_transform(self, maps: Tensor, ctx: MetricContext) -> dict[str, Tensor]:
        r"""Per transform ``T`` (by its key): :math:`\mathrm{sim}(L(Tx), T(L(x)))` ``(*B, N)`` over the pixels
        valid in both."""
        maps = check_maps(maps, ctx, self.name)
        h, w = maps.shape[-2:]
        out = {}
        for t in self._transforms:
            t.check_size(h, w, self.name)
            out[t.key] = similarity(
                self._view(ctx, t, maps), t.apply(maps), t.valid(h, w, maps.device), self.similarity
            )
        return out


class Invariance(_TransformMetric):
    r"""Invariance under photometric transforms ``T`` (which move nothing): the mean over the chosen
    transforms of

    .. math:: \mathrm{sim}\big(L(Tx),\; L(x)\big)

    over all pixels. Higher is better. Defaults: ``transforms=("brightness=0.1", "blur=1")``,
    ``similarity="pearson"``, ``seed=0`` (for ``noise``). Not in pytorch-grad-cam, torchcam or Quantus
    (Quantus's robustness metrics measure the same idea with noise, as a sensitivity).

    Reference: Kindermans et al., The (Un)reliability of Saliency Methods, 2017,
    https://arxiv.org/abs/1711.00867
    """

    reference = (
        "Kindermans et al., The (Un)reliability of Saliency Methods, 2017 — "
        "https://arxiv.org/abs/1711.00867"
    )

    name = "invariance"
    summary = "similarity of L(Tx) and L(x) under brightness, contrast, noise and blur"
    _allowed = PHOTOMETRIC
    _default = ("brightness", "blur")
    lowres = True
    """Exact at layer resolution for ``similarity="pearson"`` when the context offers ``view_layer_maps(name)``;
    otherwise :meth:`score_lowres` renders the full maps."""

    def __init__(
        self, transforms: str | Sequence[str] | None = None, similarity: str = "pearson", seed: int = 0
    ) -> None:
        super().__init__(transforms, similarity, seed)
        self.seed = self._seed

    def per_transform(self, maps: Tensor, ctx: MetricContext) -> dict[str, Tensor]:
        r"""Per transform ``T`` (by its key): :math:`\mathrm{sim}(L(Tx), L(x))` ``(*B, N)`` over all pixels."""
        maps = check_maps(maps, ctx, self.name)
        valid = torch.ones(maps.shape[-2:], dtype=torch.bool, device=maps.device)
        return {t.key: similarity(self._view(ctx, t, maps), maps, valid, self.similarity) for t in self._transforms}

    def score_lowres(self, layer_maps: Tensor, size: tuple[int, int], ctx: MetricContext) -> Tensor:
        r"""Exact from layer maps for ``pearson``: the normalization is a positive affine map of the upsampled
        ``u``, which leaves the correlation unchanged, and with ``μ`` the means and ``q(x, y) = \langle x, G_h
        y G_w\rangle`` (Gram matrices of the resize), ``ρ = (q(m', m) - HW μ' μ) / \sqrt{(q(m, m) - HW μ^2)
        (q(m', m') - HW μ'^2)}``. A degenerate view map scores 0 (undefined correlation, as at full
        resolution), a non-finite one the worst value."""
        view_layer_maps = getattr(ctx, "view_layer_maps", None)
        if view_layer_maps is None or self.similarity != "pearson":
            return self.score(full_maps(layer_maps, size), ctx)
        rz = resize_for(layer_maps, size)
        dev, p = rz.uh.device, rz.pixels
        m = layer_maps.to(dev, torch.float64)
        mu = (m * rz.column_sums).sum((-2, -1)) / p
        var = rz.quadratic(m, m) - p * mu * mu
        sims = []
        for t in self._transforms:
            other = view_layer_maps(t.view_name)
            if not isinstance(other, Tensor) or other.shape != layer_maps.shape:
                got = tuple(other.shape) if isinstance(other, Tensor) else type(other).__name__
                raise MetricError(
                    f"{self.name}: layer maps of view {t.view_name!r} have shape {got}, "
                    f"expected {tuple(layer_maps.shape)}"
                )
            flat = degenerate(other)
            o = other.to(dev, torch.float64)
            broken = ~torch.isfinite(o).flatten(-2).all(-1)
            o = o.nan_to_num(0.0, 0.0, 0.0)
            mu_o = (o * rz.column_sums).sum((-2, -1)) / p
            var_o = rz.quadratic(o, o) - p * mu_o * mu_o
            cov = rz.quadratic(m, o) - p * mu * mu_o
            rho = (cov / (var * var_o).clamp_min(1e-300).sqrt()).clamp(-1.0, 1.0)
            rho = rho.masked_fill(flat.to(dev), 0.0).masked_fill(broken, float("nan"))
            sims.append(rho)
        out = torch.stack(sims).nan_to_num(nan=self.worst()).mean(0)
        return out.to(layer_maps.device, layer_maps.dtype)
