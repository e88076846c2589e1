"""Robustness metrics: how much a heatmap changes under small input noise (Yeh et al. 2019, "On the
(in)fidelity and sensitivity of explanations"). ``cost="cached"``: the noisy inputs are fixed *views* whose
terminals the engine computes once, so scoring a candidate is tensor arithmetic on its maps of the views."""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch
from torch import Tensor

from ..data.samples import Samples
from ._util import check_maps, check_number
from .base import Metric, MetricContext, MetricError
from .lowres import affine, resize_for

FAMILY = "robustness"
"""The :attr:`~sycam.metrics.base.Metric.family` of the metrics of this module."""
EPS = 1e-8
"""Floor of the root mean square of ``L(x)`` in the denominator. Since ``|L(x+δ) - L(x)| <= 1`` per pixel,
a sensitivity never exceeds ``1 / EPS``, the worst value."""


def uniform_noise_views(samples: Samples, n: int, radius: float, seed: int) -> dict[str, Tensor]:
    r"""``n`` noisy copies of the inputs: ``normalize(clip(pixels + δ_j, 0, 1))`` with ``δ_j`` uniform in the
    L∞ ball of radius ``radius`` in RGB [0, 1] units. View ``j`` is drawn on the CPU from a generator seeded
    with ``(seed, j)`` (identical on every device, and the same for any ``n > j``); views are named
    ``uniform(r=<radius>,seed=<seed>)#<j>`` so that equal names mean equal inputs."""
    pixels = samples.pixels
    out: dict[str, Tensor] = {}
    for j in range(n):
        g = torch.Generator().manual_seed(int(seed) * 1_000_003 + j)
        delta = (torch.rand(pixels.shape, generator=g, dtype=torch.float32) * 2 - 1) * radius
        noisy = (pixels + delta.to(pixels.device, pixels.dtype)).clamp(0, 1)
        out[f"uniform(r={radius:g},seed={seed})#{j}"] = samples.normalize(noisy)
    return out


class _Sensitivity(Metric):
    higher_is_better = False
    reference = (
        "Yeh et al., On the (In)fidelity and Sensitivity of Explanations, NeurIPS 2019 — "
        "https://arxiv.org/abs/1901.09392"
    )
    cost = "cached"
    family = FAMILY
    lowres = True
    """Exact at layer resolution when the context offers ``view_layer_maps(name)`` (the candidates' layer
    maps on a view, ``(*B, N, h, w)``); otherwise it renders the full maps."""

    def __init__(self, n: int = 8, radius: float = 0.05, seed: int = 0) -> None:
        self.n = check_number(self.name, "n", n, low=1, integer=True)
        self.radius = float(check_number(self.name, "radius", radius, low=0.0, low_open=True))
        self.seed = check_number(self.name, "seed", seed, integer=True)

    def view_names(self) -> list[str]:
        """The names of the ``n`` noise views, as :func:`uniform_noise_views` names them."""
        return [f"uniform(r={self.radius:g},seed={self.seed})#{j}" for j in range(self.n)]

    def views(self, samples: Samples) -> Mapping[str, Tensor]:
        """The ``n`` seeded uniform-noise copies of the inputs (:func:`uniform_noise_views`)."""
        return uniform_noise_views(samples, self.n, self.radius, self.seed)

    def worst(self) -> float:
        """``1 / EPS`` = 1e8, the largest value the formula can give for maps in [0, 1]."""
        return 1.0 / EPS

    def sensitivities(self, maps: Tensor, ctx: MetricContext) -> Tensor:
        r"""``(n, *B, N)``: :math:`\|L(x+δ_j) - L(x)\|_F / \max(\|L(x)\|_F, \epsilon\sqrt{HW})` per view ``j``
        (0 when both maps are equal), capped at ``1 / EPS``; a view map with a non-finite value gives the cap."""
        maps = check_maps(maps, ctx, self.name)
        floor = EPS * math.sqrt(maps.shape[-2] * maps.shape[-1])
        ref = maps.flatten(-2).norm(dim=-1)
        out = []
        for name in self.view_names():
            other = ctx.view_maps(name)
            if not isinstance(other, Tensor) or other.shape != maps.shape:
                got = tuple(other.shape) if isinstance(other, Tensor) else type(other).__name__
                raise MetricError(f"{self.name}: maps of view {name!r} have shape {got}, expected {tuple(maps.shape)}")
            diff = (other.to(maps.device, maps.dtype) - maps).flatten(-2).norm(dim=-1)
            rel = (diff / ref.clamp_min(floor)).nan_to_num(nan=1 / EPS).clamp_max(1 / EPS)
            out.append(torch.where(diff == 0, torch.zeros_like(diff), rel))
        return torch.stack(out)

    def sensitivities_lowres(self, layer_maps: Tensor, size: tuple[int, int], ctx: MetricContext) -> Tensor:
        r""":meth:`sensitivities` from layer maps, exactly. With ``L = s u + t`` (the normalization as an affine
        map of the upsampled ``u = U_h m U_w^\top``), ``L' - L = U_h X U_w^\top + c`` for
        ``X = s' m' - s m`` and ``c = t' - t``, so
        :math:`\|L' - L\|^2 = \langle X, G_h X G_w\rangle + 2c\langle X, S\rangle + c^2 HW` with the Gram
        matrices ``G`` and ``S`` the projected all-ones mask; ``\|L\|^2`` likewise."""
        view_layer_maps = getattr(ctx, "view_layer_maps", None)
        if view_layer_maps is None:
            from .lowres import full_maps

            return self.sensitivities(full_maps(layer_maps, size), ctx)
        rz = resize_for(layer_maps, size)
        dev, p = rz.uh.device, rz.pixels
        m = layer_maps.to(dev, torch.float64)
        a = affine(m, rz)
        s_ = rz.column_sums

        def norm2(x: Tensor, c: Tensor) -> Tensor:
            return (rz.quadratic(x, x) + 2 * c * (x * s_).sum((-2, -1)) + c * c * p).clamp_min(0.0)

        sm = a.scale[..., None, None] * m
        ref = norm2(sm, a.shift).sqrt()
        floor = EPS * math.sqrt(p)
        out = []
        for name in self.view_names():
            other = view_layer_maps(name)
            if not isinstance(other, Tensor) or other.shape != layer_maps.shape:
                got = tuple(other.shape) if isinstance(other, Tensor) else type(other).__name__
                raise MetricError(
                    f"{self.name}: layer maps of view {name!r} have shape {got}, expected {tuple(layer_maps.shape)}"
                )
            o = other.to(dev, torch.float64)
            broken = ~torch.isfinite(o).flatten(-2).all(-1)
            o = o.nan_to_num(0.0, 0.0, 0.0)
            b = affine(o, rz)
            diff = norm2(b.scale[..., None, None] * o - sm, b.shift - a.shift).sqrt()
            rel = (diff / ref.clamp_min(floor)).clamp_max(1 / EPS).masked_fill(broken, 1 / EPS)
            out.append(rel)
        return torch.stack(out).to(layer_maps.device, layer_maps.dtype)


class MaxSensitivity(_Sensitivity):
    r"""Max-sensitivity (Yeh et al. 2019; Quantus ``MaxSensitivity``): the largest relative change of the
    map over ``n`` seeded uniform-noise views,

    .. math:: \mathrm{SENS}_{\max} = \max_{j \le n} \frac{\|L(x + δ_j) - L(x)\|_F}{\|L(x)\|_F},
              \quad δ_j \sim U[-r, r]^{3HW} \text{ (RGB units, clipped to [0, 1])}.

    Lower is better. Defaults: ``n=8`` views, ``radius=0.05`` (≈ 13/255; Quantus's default, 0.2 in
    ImageNet-normalized units, is ≈ 0.045), ``seed=0``. Quantus draws 200 fresh samples per call in the
    model-input space, does not clip, and re-explains each; here the views are fixed and their terminals
    cached. The denominator is floored at ``1e-8·sqrt(HW)`` (a root mean square of 1e-8), so the score is at
    most ``1e8``, the worst value that :meth:`~sycam.metrics.base.Metric.evaluate` gives a degenerate map.

    Reference: Yeh et al., On the (In)fidelity and Sensitivity of Explanations, NeurIPS 2019,
    https://arxiv.org/abs/1901.09392
    """

    name = "max_sensitivity"
    summary = "largest relative change of the map under small uniform input noise"

    def score(self, maps: Tensor, ctx: MetricContext) -> Tensor:
        r"""Per image :math:`\max_j \|L(x+δ_j) - L(x)\|_F / \max(\|L(x)\|_F, 10^{-8}\sqrt{HW})` over the
        ``n`` views, ``(*B, N)`` in [0, 1e8]; lower is better."""
        return self.sensitivities(maps, ctx).amax(0)

    def score_lowres(self, layer_maps: Tensor, size: tuple[int, int], ctx: MetricContext) -> Tensor:
        """:meth:`score` from layer maps, exactly (the maximum of :meth:`sensitivities_lowres`)."""
        return self.sensitivities_lowres(layer_maps, size, ctx).amax(0)


class AvgSensitivity(_Sensitivity):
    r"""Average sensitivity (Yeh et al. 2019; Quantus ``AvgSensitivity``): the mean relative change of the
    map over the ``n`` views,

    .. math:: \mathrm{SENS}_{\mathrm{avg}} = \frac{1}{n} \sum_{j=1}^{n} \frac{\|L(x + δ_j) - L(x)\|_F}{\|L(x)\|_F}

    (see :class:`MaxSensitivity` for the views and defaults). Lower is better.

    Reference: Yeh et al., On the (In)fidelity and Sensitivity of Explanations, NeurIPS 2019,
    https://arxiv.org/abs/1901.09392
    """

    name = "avg_sensitivity"
    summary = "mean relative change of the map under small uniform input noise"

    def score(self, maps: Tensor, ctx: MetricContext) -> Tensor:
        r"""Per image :math:`\frac{1}{n}\sum_j \|L(x+δ_j) - L(x)\|_F / \max(\|L(x)\|_F, 10^{-8}\sqrt{HW})`,
        ``(*B, N)`` in [0, 1e8]; lower is better."""
        return self.sensitivities(maps, ctx).mean(0)

    def score_lowres(self, layer_maps: Tensor, size: tuple[int, int], ctx: MetricContext) -> Tensor:
        """:meth:`score` from layer maps, exactly (the mean of :meth:`sensitivities_lowres`)."""
        return self.sensitivities_lowres(layer_maps, size, ctx).mean(0)
