r"""The controls scored beside the winner: Grad-CAM thresholded to the winner's sparsity, and Grad-CAM with a
final-map power fitted on the synthesis split.

A synthesized map can beat Grad-CAM on a localization metric only by zeroing most pixels. The control asks
whether trivial post-processing does as well: per image, with :math:`z` the fraction of the winner's heatmap
pixels that are zero and :math:`k = \mathrm{round}(z \cdot HW)`, Grad-CAM's map :math:`g` becomes

.. math:: \mathrm{norm}\big(\mathrm{relu}(g - g_{(k)})\big)

where :math:`g_{(k)}` is the k-th smallest value of :math:`g` (no threshold when :math:`k = 0`), so the control
has (ties aside) as many zero pixels as the winner. It is applied the same way to every view and re-explained
input a metric reads.

The **power control** separates shape from contrast. Metrics such as the energy pointing game reward peaky maps,
and raising Grad-CAM's final map to a power changes its contrast but not its ranking of pixels. Per image, with
:math:`h` Grad-CAM's final map (normalized, so :math:`h \ge 0` with minimum 0), the control is

.. math:: \mathrm{norm}(h^p)

with one :math:`p` for all images, chosen on the synthesis split from :data:`POWERS` (the best aggregate score;
ties: the power closest to 1, so :math:`p = 1`, Grad-CAM itself, wins a tie) and then scored unchanged on every
split. A winner whose gain over Grad-CAM is only sharpening does not beat this control; the report says so.

Example::

    p, rows = fit_power(ws, metric)          # on the synthesis split's workspace
    scores, bad = power_control_scores(test_ws, [p], metric)
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

from ..expr import Node
from ..heatmap import normalize
from ..methods import METHODS
from ..metrics.base import Metric, degenerate
from ..workspace import BASE, Workspace


def threshold_to_sparsity(maps: Tensor, like: Tensor) -> Tensor:
    r"""``maps`` ``(*B, N, H, W)`` thresholded per image to the fraction of zero pixels of ``like`` (same shape):
    :math:`\mathrm{norm}(\mathrm{relu}(g - g_{(k)}))` for each image :math:`g` of ``maps``, with :math:`k` the
    number of zero pixels of ``like`` (see the module doc); where ``like`` has none, :math:`g` is only normalized."""
    flat = maps.flatten(-2)
    hw = flat.shape[-1]
    k = torch.round((like.flatten(-2) <= 0).to(flat.dtype).mean(-1) * hw).long().unsqueeze(-1)
    kth = flat.sort(-1).values.gather(-1, (k - 1).clamp(min=0))
    out = torch.where(k > 0, torch.relu(flat - kth), flat)
    return normalize(out.reshape(maps.shape))


def control_scores(ws: Workspace, winner: Node, metric: Metric) -> tuple[list[float], int]:
    """Per-image scores under ``metric`` on the workspace's samples, and the count of degenerate maps, of Grad-CAM
    thresholded to ``winner``'s sparsity (on every view and re-explained input alike)."""
    gradcam = METHODS["gradcam"].node
    g_ctx, w_ctx = ws.context([gradcam]), ws.context([winner])

    def view_maps(view: str) -> Tensor:
        return threshold_to_sparsity(ws.heatmaps([gradcam], view), ws.heatmaps([winner], view))

    def explain(images: Tensor) -> Tensor:
        return threshold_to_sparsity(g_ctx.explain(images), w_ctx.explain(images))

    maps = view_maps(BASE)
    scores = ws.evaluate(metric, maps, [gradcam], view_maps, explain)[0]
    return [float(x) for x in scores.tolist()], int(degenerate(maps).sum())


POWERS: tuple[float, ...] = (0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0, 8.0)
"""the powers the power control is fitted over (1: Grad-CAM unchanged)"""


def power_maps(maps: Tensor, p: float) -> Tensor:
    r""":math:`\mathrm{norm}(h^p)` for normalized maps ``h`` ``(*B, N, H, W)`` (negative values, which a normalized
    map has none of, are clamped to 0 first).

    >>> power_maps(torch.tensor([[[[0.0, 0.5], [1.0, 0.25]]]]), 2.0).flatten().tolist()
    [0.0, 0.25, 0.9999998807907104, 0.0625]
    """
    return normalize(maps.clamp(min=0.0) ** p)


def power_control_scores(ws: Workspace, powers: Sequence[float], metric: Metric) -> tuple[list[list[float]], int]:
    """Per power, the per-image scores under ``metric`` of Grad-CAM's final map raised to it
    (:func:`power_maps`, on every view and re-explained input alike), and the images whose map is degenerate
    for the first power."""
    gradcam = METHODS["gradcam"].node
    g_ctx = ws.context([gradcam])
    out: list[list[float]] = []
    bad = 0
    for k, p in enumerate(powers):
        def view_maps(view: str, p: float = p) -> Tensor:
            return power_maps(ws.heatmaps([gradcam], view), p)

        def explain(images: Tensor, p: float = p) -> Tensor:
            return power_maps(g_ctx.explain(images), p)

        maps = view_maps(BASE)
        out.append([float(x) for x in ws.evaluate(metric, maps, [gradcam], view_maps, explain)[0].tolist()])
        if k == 0:
            bad = int(degenerate(maps).sum())
    return out, bad


def pick_power(rows: Sequence[Sequence[float]], metric: Metric, powers: Sequence[float] = POWERS) -> float:
    """The power whose per-image scores ``rows[i]`` (for ``powers[i]``) aggregate best under ``metric``; ties go to
    the power closest to 1 (then the smaller)."""
    def key(i: int) -> tuple[float, float, float]:
        agg = float(metric.aggregate(torch.tensor(rows[i], dtype=torch.float64)))
        return (metric.sort_key(agg if math.isfinite(agg) else math.nan), abs(math.log(powers[i])), powers[i])

    return float(powers[min(range(len(powers)), key=key)])
