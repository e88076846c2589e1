"""Ground-truth (localization) metrics: how well a heatmap ``L`` (values in [0, 1], ``(*B, N, H, W)``)
matches the ground-truth region ``M`` of each sample (``samples.masks``, the union of its boxes or its
mask). All are ``cost="cached"``: pure tensor arithmetic on the maps.

``score`` gives NaN (undefined) for a sample whose mask is empty; :meth:`Metric.evaluate` turns that into a
:class:`MetricError` naming the images. All four metrics live in [0, 1] (higher is better) and give a
degenerate map ``worst() = 0``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from ._util import (
    MAX_SORT_ELEMENTS,
    Memo,
    check_choice,
    check_maps,
    check_number,
    empty_to_nan,
    gt_masks,
    rows_chunks,
    safe_div,
)
from .base import Metric, MetricContext
from .lowres import projected_masks, resize_for

FAMILY = "ground truth"


class EnergyPointingGame(Metric):
    r"""Energy-based pointing game (Score-CAM paper; Quantus ``RelevanceMassAccuracy``): the share of the
    map's energy that falls inside the ground truth,

    .. math:: \mathrm{EPG}(L, M) = \frac{\sum_p L_p M_p}{\sum_p L_p}.

    In [0, 1], higher is better. An all-zero map has no energy anywhere and scores 0; a constant map scores
    the ground truth's share of the image ``|M| / HW``."""

    name = "energy_pointing_game"
    summary = "share of the map's energy inside the ground truth"
    higher_is_better = True
    requires = "mask"
    cost = "cached"
    family = FAMILY
    lowres = True

    def __init__(self) -> None:
        self._projected = Memo()

    def worst(self) -> float:
        """0: no energy inside the ground truth."""
        return 0.0

    def score(self, maps: Tensor, ctx: MetricContext) -> Tensor:
        maps = check_maps(maps, ctx, self.name)
        masks = gt_masks(ctx, self.name)
        inside = (maps * masks.to(maps.dtype)).sum((-2, -1))
        total = maps.sum((-2, -1))
        return empty_to_nan(safe_div(inside, total, 0.0), masks)

    def score_lowres(self, layer_maps: Tensor, size: tuple[int, int], ctx: MetricContext) -> Tensor:
        r"""Exact from layer maps: the normalization's scale cancels, so with ``u`` the upsampled map,
        :math:`\mathrm{EPG} = (\langle m, U_h^\top M U_w\rangle - |M| \min u) / (\langle m, S\rangle - HW \min u)`."""
        masks = gt_masks(ctx, self.name)
        rz = resize_for(layer_maps, size)
        proj, area = projected_masks(self._projected, ctx, masks, rz)
        m = layer_maps.to(rz.uh.device, torch.float64)
        lo, _ = rz.extremes(m)
        inside = (m * proj).sum((-2, -1)) - lo * area
        total = (m * rz.column_sums).sum((-2, -1)) - lo * rz.pixels
        out = empty_to_nan(safe_div(inside, total, 0.0), masks.to(rz.uh.device))
        return out.to(layer_maps.device, layer_maps.dtype)


def dilate_disk(masks: Tensor, radius: int) -> Tensor:
    """Dilate bool masks ``(..., H, W)`` by a Euclidean disk: pixel ``p`` is set when some mask pixel ``q``
    has ``|p - q|_2 <= radius``. Exact; O((2r+1)·HW) through row prefix sums."""
    if radius <= 0:
        return masks
    h, w = masks.shape[-2:]
    prefix = F.pad(masks.to(torch.int32).cumsum(-1), (1, 0))  # prefix[..., k] = count of masks[..., :k]
    cols = torch.arange(w, device=masks.device)
    out = torch.zeros_like(masks)
    for dy in range(-radius, radius + 1):
        if abs(dy) >= h:
            continue
        half = math.isqrt(radius * radius - dy * dy)
        lo = (cols - half).clamp(0, w)
        hi = (cols + half + 1).clamp(0, w)
        row_hit = (prefix[..., hi] - prefix[..., lo]) > 0  # a mask pixel within ±half on the same row
        # out[y] |= row_hit[y + dy]
        if dy >= 0:
            out[..., : h - dy, :] |= row_hit[..., dy:, :]
        else:
            out[..., -dy:, :] |= row_hit[..., : h + dy, :]
    return out


class PointingGame(Metric):
    r"""Pointing game (Zhang et al. 2018, "Top-down neural attention by excitation backprop"): a hit when
    the map's maximum lies inside the ground truth, with a tolerance of ``tolerance`` pixels (a hit within
    Euclidean distance ``tolerance`` of the region counts; default 15 px as in Zhang et al.; 0 = strictly
    inside). Score per image in [0, 1], higher is better:

    .. math:: \mathrm{PG}(L, M) = \mathbb{1}\big[\operatorname{dist}(\arg\max_p L_p,\; M) \le r\big].

    Ties (several pixels share the maximum value, e.g. a flat top after upsampling, or a constant map):

    - ``ties="mean"`` (default): the fraction of the maximal pixels that hit. Order-free; a constant map
      scores the (dilated) ground truth's share of the image, i.e. chance level.
    - ``ties="any"``: a hit if any maximal pixel hits (Quantus ``PointingGame``); a constant map always hits.
    - ``ties="first"``: only the first maximal pixel in raster order counts (``torch.argmax``)."""

    name = "pointing_game"
    summary = "whether the map's maximum lies inside the ground truth (15 px tolerance)"
    higher_is_better = True
    requires = "mask"
    cost = "cached"
    family = FAMILY

    def __init__(self, tolerance: int = 15, ties: str = "mean") -> None:
        self.tolerance = check_number(self.name, "tolerance", tolerance, low=0, integer=True)
        self.ties = check_choice(self.name, "ties", ties, ("mean", "any", "first"))
        self._region = Memo()

    def hit_region(self, masks: Tensor) -> Tensor:
        """The ground truth dilated by the tolerance disk (memoized for the same masks tensor)."""
        return self._region.get(None, (masks,), self.tolerance, lambda: dilate_disk(masks, self.tolerance))

    def worst(self) -> float:
        """0: a miss."""
        return 0.0

    def score(self, maps: Tensor, ctx: MetricContext) -> Tensor:
        maps = check_maps(maps, ctx, self.name)
        masks = gt_masks(ctx, self.name)
        region = self.hit_region(masks).flatten(-2)  # (N, HW)
        flat = maps.flatten(-2)
        if self.ties == "first":
            idx = flat.argmax(-1, keepdim=True)
            hit = region.expand_as(flat).gather(-1, idx).squeeze(-1).to(maps.dtype)
        else:
            is_max = flat == flat.amax(-1, keepdim=True)
            inside = (is_max & region).sum(-1)
            if self.ties == "any":
                hit = (inside > 0).to(maps.dtype)
            else:
                hit = inside.to(maps.dtype) / is_max.sum(-1).clamp_min(1).to(maps.dtype)
        return empty_to_nan(hit, masks)


class IoU(Metric):
    r"""Intersection over union of the thresholded map and the ground truth,

    .. math:: \mathrm{IoU} = \frac{|\{L \ge t\} \cap M|}{|\{L \ge t\} \cup M|},

    with ``threshold`` ``t`` on the map values in [0, 1] (default 0.5: since sycam's maps are min-max
    normalized, this is 50 % of the map's maximum). In [0, 1], higher is better. An all-zero map selects
    nothing and scores 0."""

    name = "iou"
    summary = "IoU of the map thresholded at 0.5 with the ground truth"
    higher_is_better = True
    requires = "mask"
    cost = "cached"
    family = FAMILY

    def __init__(self, threshold: float = 0.5) -> None:
        self.threshold = float(check_number(self.name, "threshold", threshold, low=0.0, high=1.0, low_open=True))

    def worst(self) -> float:
        """0: no overlap."""
        return 0.0

    def score(self, maps: Tensor, ctx: MetricContext) -> Tensor:
        maps = check_maps(maps, ctx, self.name)
        masks = gt_masks(ctx, self.name)
        pred = maps >= self.threshold
        inter = (pred & masks).sum((-2, -1))
        union = (pred | masks).sum((-2, -1))
        return empty_to_nan(safe_div(inter.to(maps.dtype), union.to(maps.dtype), 0.0), masks)


def roc_auc_rows(scores: Tensor, labels: Tensor) -> Tensor:
    """ROC AUC of ``scores (R, P)`` against bool ``labels (R, P)`` per row, ties counted one half (the
    Mann–Whitney statistic; equals scikit-learn's ``roc_auc_score``). Computed exactly with integer rank
    sums: ``AUC = (sum of the positives' mid-ranks - n+(n+ + 1)/2) / (n+ n-)``. NaN when a row has no
    positive or no negative."""
    r, p = scores.shape
    s, order = scores.sort(-1)
    pos = labels.gather(-1, order)
    idx = torch.arange(p, device=scores.device).expand(r, p)
    new = torch.ones_like(pos)
    new[:, 1:] = s[:, 1:] != s[:, :-1]
    first = torch.where(new, idx, torch.zeros_like(idx)).cummax(-1).values  # start of each tie group
    last_of = torch.ones_like(pos)
    last_of[:, :-1] = new[:, 1:]
    last = torch.where(last_of, idx, torch.full_like(idx, p)).flip(-1).cummin(-1).values.flip(-1)
    twice_rank = first + last + 2  # 2 × (1-based mid-rank)
    rank_sum2 = (twice_rank * pos).sum(-1)
    n_pos = pos.sum(-1)
    n_neg = p - n_pos
    num = (rank_sum2 - n_pos * (n_pos + 1)).double()
    den = (2 * n_pos * n_neg).double()
    auc = torch.where(den > 0, num / den.clamp_min(1), torch.full_like(num, float("nan")))
    return auc.to(scores.dtype)


class MaskAUC(Metric):
    r"""Area under the ROC curve of the map values as a detector of ground-truth pixels (Fawcett 2006;
    Quantus ``AUC``): the probability that a random pixel inside ``M`` has a higher map value than a random
    pixel outside, ties counting one half,

    .. math:: \mathrm{AUC} = \frac{1}{|M|\,|\bar M|} \sum_{p \in M} \sum_{q \notin M}
              \Big(\mathbb{1}[L_p > L_q] + \tfrac12 \mathbb{1}[L_p = L_q]\Big),

    which equals scikit-learn's ``roc_auc_score`` (trapezoids over the distinct thresholds; Quantus uses
    ``roc_curve`` + ``auc``). In [0, 1], higher is better, 0.5 is chance; a constant map scores exactly 0.5.
    NaN when the mask is empty or covers the whole image."""

    name = "mask_auc"
    summary = "ROC AUC of the map values as a detector of ground-truth pixels"
    higher_is_better = True
    requires = "mask"
    cost = "cached"
    family = FAMILY

    def worst(self) -> float:
        """0: every ground-truth pixel ranked below every other pixel (a constant map's 0.5 is chance, not
        the worst; a degenerate map must not beat a real map that is worse than chance)."""
        return 0.0

    def score(self, maps: Tensor, ctx: MetricContext) -> Tensor:
        maps = check_maps(maps, ctx, self.name)
        masks = gt_masks(ctx, self.name)
        lead = maps.shape[:-2]
        flat = maps.reshape(-1, maps.shape[-2] * maps.shape[-1])
        labels = masks.flatten(-2).expand(*lead, -1).reshape(flat.shape)
        rows = max(1, MAX_SORT_ELEMENTS // max(1, flat.shape[1]))
        out = torch.cat([roc_auc_rows(flat[a:b], labels[a:b]) for a, b in rows_chunks(flat.shape[0], rows)])
        return out.reshape(lead)
