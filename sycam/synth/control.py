r"""The control scored beside the winner: Grad-CAM thresholded to the winner's sparsity.

A synthesized map can beat Grad-CAM on a localization metric only by zeroing most pixels. The control asks
whether trivial post-processing does as well: per image, with :math:`z` the fraction of the winner's heatmap
pixels that are zero and :math:`k = \mathrm{round}(z \cdot HW)`, Grad-CAM's map :math:`g` becomes

.. math:: \mathrm{norm}\big(\mathrm{relu}(g - g_{(k)})\big)

where :math:`g_{(k)}` is the k-th smallest value of :math:`g` (no threshold when :math:`k = 0`), so the control
has (ties aside) as many zero pixels as the winner. It is applied the same way to every view and re-explained
input a metric reads.
"""

from __future__ import annotations

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
