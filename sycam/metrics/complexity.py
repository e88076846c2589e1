"""Complexity metrics: how concentrated a heatmap is. ``cost="cached"`` (tensor arithmetic on the maps)."""

from __future__ import annotations

import torch
from torch import Tensor

from ._util import MAX_SORT_ELEMENTS, check_maps, rows_chunks, safe_div
from .base import Metric, MetricContext
from .lowres import affine, resize_for

FAMILY = "complexity"
"""The :attr:`~sycam.metrics.base.Metric.family` of the metrics of this module."""


class Sparseness(Metric):
    r"""Sparseness as the Gini index of the map values (Chalasani et al. 2020; Quantus ``Sparseness``):
    with the ``n = HW`` values sorted ascending, :math:`a_{(1)} \le \dots \le a_{(n)}`,

    .. math:: G(L) = \frac{\sum_{i=1}^{n} (2i - n - 1)\, a_{(i)}}{n \sum_i a_{(i)}}.

    In [0, 1 - 1/n]; higher is sparser (better). A constant (or all-zero) map scores 0. Quantus adds 1e-7 to
    every value before the same formula (which also makes an all-zero map score 0); the difference on
    non-trivial maps is below 1e-6.

    Reference: Chalasani et al., Concise Explanations of Neural Networks using Adversarial Training, ICML 2020,
    https://arxiv.org/abs/1810.06583
    """

    reference = (
        "Chalasani et al., Concise Explanations of Neural Networks using Adversarial Training, ICML 2020 — "
        "https://arxiv.org/abs/1810.06583"
    )

    name = "sparseness"
    summary = "Gini index of the map values"
    higher_is_better = True
    cost = "cached"
    family = FAMILY

    def worst(self) -> float:
        """0: the Gini index of a flat map, the least sparse."""
        return 0.0

    def score(self, maps: Tensor, ctx: MetricContext) -> Tensor:
        r"""Per image the Gini index :math:`G(L)` of the ``HW`` map values (formula above), ``(*B, N)`` in
        [0, 1 - 1/HW]; higher is better. Rows are sorted in chunks of bounded size."""
        maps = check_maps(maps, ctx, self.name)
        lead = maps.shape[:-2]
        flat = maps.reshape(-1, maps.shape[-2] * maps.shape[-1]).abs()
        n = flat.shape[1]
        # Weights (2i - n - 1) / n in (-1, 1): keeps the float32 dot product well conditioned.
        weights = (2 * torch.arange(1, n + 1, device=maps.device, dtype=maps.dtype) - n - 1) / n
        rows = max(1, MAX_SORT_ELEMENTS // n)
        out = []
        for a, b in rows_chunks(flat.shape[0], rows):
            s = flat[a:b].sort(-1).values
            out.append(safe_div(s @ weights, s.sum(-1), 0.0))
        return torch.cat(out).reshape(lead)


class Complexity(Metric):
    r"""L1 complexity (Poppi et al. 2021, ADCC's complexity): the mean absolute map value,

    .. math:: C(L) = \frac{1}{HW} \sum_p |L_p| \in [0, 1].

    Lower is better (a smaller, more focused map). Not Quantus's ``Complexity``, which is the entropy of the
    normalized attributions. Same as pytorch-grad-cam's ``Complexity``.

    Reference: Poppi et al., Revisiting the Evaluation of Class Activation Mapping, CVPR Workshops 2021,
    https://arxiv.org/abs/2104.10252
    """

    reference = (
        "Poppi et al., Revisiting the Evaluation of Class Activation Mapping, CVPR Workshops 2021 — "
        "https://arxiv.org/abs/2104.10252"
    )

    name = "complexity"
    summary = "mean absolute map value (L1 complexity)"
    higher_is_better = False
    cost = "cached"
    family = FAMILY
    lowres = True

    def worst(self) -> float:
        """1: the map is 1 everywhere (an all-zero map scores 0 here, the best value, so it must not count)."""
        return 1.0

    def score(self, maps: Tensor, ctx: MetricContext) -> Tensor:
        r"""Per image :math:`C(L) = \frac{1}{HW}\sum_p |L_p|`, ``(*B, N)`` in [0, 1]; lower is better."""
        maps = check_maps(maps, ctx, self.name)
        return maps.abs().mean((-2, -1))

    def score_lowres(self, layer_maps: Tensor, size: tuple[int, int], ctx: MetricContext) -> Tensor:
        """Exact from layer maps: ``(mean u - min u) / (max u - min u + 1e-7)`` with ``u`` the upsampled map."""
        rz = resize_for(layer_maps, size)
        a = affine(layer_maps.to(rz.uh.device, torch.float64), rz)
        return (a.scale * a.mean_u + a.shift).to(layer_maps.device, layer_maps.dtype)
