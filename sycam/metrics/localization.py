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
from .lowres import full_maps, projected_masks, resize_for

FAMILY = "ground truth"
"""The :attr:`~sycam.metrics.base.Metric.family` of the metrics of this module."""


class EnergyPointingGame(Metric):
    r"""Energy-based pointing game (Score-CAM paper; Quantus ``RelevanceMassAccuracy``): the share of the
    map's energy that falls inside the ground truth,

    .. math:: \mathrm{EPG}(L, M) = \frac{\sum_p L_p M_p}{\sum_p L_p}.

    In [0, 1], higher is better. An all-zero map has no energy anywhere and scores 0; a constant map scores
    the ground truth's share of the image ``|M| / HW``.

    Reference: Wang et al., Score-CAM, CVPR Workshops 2020,
    https://arxiv.org/abs/1910.01279
    """

    reference = (
        "Wang et al., Score-CAM, CVPR Workshops 2020 — "
        "https://arxiv.org/abs/1910.01279"
    )

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
        r"""Per image :math:`\sum_p L_p M_p / \sum_p L_p` (0 for an all-zero map), ``(*B, N)`` in [0, 1]; higher
        is better. NaN where the mask is empty."""
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
    - ``ties="first"``: only the first maximal pixel in raster order counts (``torch.argmax``).

    Reference: Zhang et al., Top-down Neural Attention by Excitation Backprop, ECCV 2016,
    https://arxiv.org/abs/1608.00507
    """

    reference = (
        "Zhang et al., Top-down Neural Attention by Excitation Backprop, ECCV 2016 — "
        "https://arxiv.org/abs/1608.00507"
    )

    name = "pointing_game"
    summary = "whether the map's maximum lies inside the ground truth (15 px tolerance)"
    higher_is_better = True
    requires = "mask"
    cost = "cached"
    family = FAMILY
    lowres = True

    def __init__(self, tolerance: int = 15, ties: str = "mean") -> None:
        self.tolerance = check_number(self.name, "tolerance", tolerance, low=0, integer=True)
        self.ties = check_choice(self.name, "ties", ties, ("mean", "any", "first"))
        self._region = Memo()
        self._sums = Memo()
        self._fallbacks = 0  # images the low-resolution path rendered at full resolution (near-ties)

    def hit_region(self, masks: Tensor) -> Tensor:
        """The ground truth dilated by the tolerance disk (memoized for the same masks tensor)."""
        return self._region.get(None, (masks,), self.tolerance, lambda: dilate_disk(masks, self.tolerance))

    def worst(self) -> float:
        """0: a miss."""
        return 0.0

    def score(self, maps: Tensor, ctx: MetricContext) -> Tensor:
        """Per image the hit value of the map's maximal pixels against the ground truth dilated by
        ``tolerance`` (:meth:`hit_region`), counted by the ``ties`` rule, ``(*B, N)`` in [0, 1]; higher is
        better. NaN where the mask is empty."""
        maps = check_maps(maps, ctx, self.name)
        masks = gt_masks(ctx, self.name)
        region = self.hit_region(masks).flatten(-2)  # (N, HW)
        return empty_to_nan(self._hits(maps.flatten(-2), region), masks)

    def _hits(self, flat: Tensor, region: Tensor) -> Tensor:
        """Per-row hit value of maps ``(..., P)`` against hit regions broadcastable to them."""
        if self.ties == "first":
            idx = flat.argmax(-1, keepdim=True)
            return region.expand_as(flat).gather(-1, idx).squeeze(-1).to(flat.dtype)
        is_max = flat == flat.amax(-1, keepdim=True)
        inside = (is_max & region).sum(-1)
        if self.ties == "any":
            return (inside > 0).to(flat.dtype)
        return inside.to(flat.dtype) / is_max.sum(-1).clamp_min(1).to(flat.dtype)

    def score_lowres(self, layer_maps: Tensor, size: tuple[int, int], ctx: MetricContext) -> Tensor:
        """Exact from layer maps where the maximum is clear. The maximum of the upsampled map lies on the
        subgrid (:mod:`~sycam.metrics.lowres`), and every other pixel is at most the larger of the second
        subgrid value and the two pixels next to the maximum inside its cell. When the maximum exceeds that
        bound by more than ``1e-5`` of the map's range plus ``1e-6`` of its maximum (far above float32
        rounding), the full map's maximal pixels are exactly the maximum's block of identical rows and
        columns, and the hit is counted on the ground truth there. Other images (near-ties, or a maximum on
        the bottom/right clamped border whose float32 values may differ in the last bit, unless that block
        lies wholly inside or outside the hit region) are rendered at full resolution."""
        masks = gt_masks(ctx, self.name)
        rz = resize_for(layer_maps, size)
        structure = rz.clones
        if structure is None:
            return self.score(full_maps(layer_maps, size), ctx)
        cr, cc = structure
        dev = rz.uh.device
        region = self.hit_region(masks).to(dev)  # (N, H, W)
        lead, n = layer_maps.shape[:-3], layer_maps.shape[-3]
        m = layer_maps.to(dev, torch.float64).reshape(-1, *layer_maps.shape[-2:])  # (R, h, w)
        rows = m.shape[0]
        img = torch.arange(n, device=dev).repeat(rows // n)
        sub = rz.uh[rz.rows] @ m @ rz.uw[rz.cols].T  # (R, r, c)
        nc = sub.shape[-1]
        top2 = sub.flatten(-2).topk(min(2, sub[0].numel()), dim=-1)
        vmax, at = top2.values[:, 0], top2.indices[:, 0]
        second = top2.values[:, 1] if top2.values.shape[1] > 1 else torch.full_like(vmax, -math.inf)
        jr, jc = at // nc, at % nc
        ar, ac = cr.adjacent[jr], cc.adjacent[jc]  # neighbours of the maximum inside its cell (-1: none)
        r_out, c_out = rz.rows[jr], rz.cols[jc]
        wr = rz.uh[ar.clamp_min(0)]
        wc = rz.uw[ac.clamp_min(0)]
        next_row = torch.einsum("rh,rhw,rw->r", wr, m, rz.uw[c_out]).masked_fill(ar < 0, -math.inf)
        next_col = torch.einsum("rh,rhw,rw->r", rz.uh[r_out], m, wc).masked_fill(ac < 0, -math.inf)
        bound = torch.maximum(second, torch.maximum(next_row, next_col))
        vmin = sub.flatten(-2).amin(-1)
        kr, kc = cr.cls[jr], cc.cls[jc]
        clear = vmax - bound > 1e-5 * (vmax - vmin) + 1e-6 * vmax
        exact = cr.exact[kr] & cc.exact[kc]
        r0, r1, c0, c1 = cr.start[kr], cr.stop[kr], cc.start[kc], cc.stop[kc]
        zero = (m == 0).flatten(-2).all(-1)  # an all-zero map upsamples to exact zeros: every pixel is maximal
        if bool(zero.any()):
            clear, exact = clear | zero, exact | zero
            r0, c0 = r0.masked_fill(zero, 0), c0.masked_fill(zero, 0)
            r1, c1 = r1.masked_fill(zero, rz.size[0]), c1.masked_fill(zero, rz.size[1])
        integral = self._integral(region)  # (N, H + 1, W + 1)
        inside = integral[img, r1, c1] - integral[img, r0, c1] - integral[img, r1, c0] + integral[img, r0, c0]
        area = (r1 - r0) * (c1 - c0)
        # A block whose float32 values may differ in the last bit: which of its pixels tie for the maximum is
        # unknown, but if the block lies wholly inside or wholly outside the hit region, every rule agrees.
        clear = clear & (exact | (inside == 0) | (inside == area))
        if self.ties == "first":
            hit = region[img, r0, c0].to(torch.float64)
        elif self.ties == "any":
            hit = (inside > 0).to(torch.float64)
        else:
            hit = inside.to(torch.float64) / area.to(torch.float64)
        unclear = (~clear).nonzero()[:, 0]
        if len(unclear):
            full = full_maps(layer_maps.reshape(rows, *layer_maps.shape[-2:])[unclear.to(layer_maps.device)], size)
            got = self._hits(full.to(dev).flatten(-2), region.flatten(-2)[img[unclear]])
            hit = hit.index_put((unclear,), got.to(torch.float64))
        self._fallbacks += len(unclear)
        out = empty_to_nan(hit.reshape(*lead, n), masks.to(dev))
        return out.to(layer_maps.device, layer_maps.dtype)

    def _integral(self, region: Tensor) -> Tensor:
        """Summed-area tables ``(N, H + 1, W + 1)`` of the hit regions (memoized with them)."""
        return self._sums.get(
            None, (region,), None, lambda: F.pad(region.to(torch.int64).cumsum(-1).cumsum(-2), (1, 0, 1, 0))
        )


class IoU(Metric):
    r"""Intersection over union of the thresholded map and the ground truth,

    .. math:: \mathrm{IoU} = \frac{|\{L \ge t\} \cap M|}{|\{L \ge t\} \cup M|},

    with ``threshold`` ``t`` on the map values in [0, 1] (default 0.5: since sycam's maps are min-max
    normalized, this is 50 % of the map's maximum). In [0, 1], higher is better. An all-zero map selects
    nothing and scores 0.

    Reference: Zhou et al., Learning Deep Features for Discriminative Localization (CAM), CVPR 2016,
    https://arxiv.org/abs/1512.04150
    """

    reference = (
        "Zhou et al., Learning Deep Features for Discriminative Localization (CAM), CVPR 2016 — "
        "https://arxiv.org/abs/1512.04150"
    )

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
        r"""Per image :math:`|\{L \ge t\} \cap M| / |\{L \ge t\} \cup M|`, ``(*B, N)`` in [0, 1]; higher is better.
        NaN where the mask is empty."""
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
    NaN when the mask is empty or covers the whole image.

    Reference: Fawcett, An introduction to ROC analysis, Pattern Recognition Letters 2006,
    https://doi.org/10.1016/j.patrec.2005.10.010
    """

    reference = (
        "Fawcett, An introduction to ROC analysis, Pattern Recognition Letters 2006 — "
        "https://doi.org/10.1016/j.patrec.2005.10.010"
    )

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
        """Per image the ROC AUC of the map values against the mask (:func:`roc_auc_rows`), ``(*B, N)`` in
        [0, 1]; higher is better, 0.5 is chance. NaN where the mask is empty or covers the whole image."""
        maps = check_maps(maps, ctx, self.name)
        masks = gt_masks(ctx, self.name)
        lead = maps.shape[:-2]
        flat = maps.reshape(-1, maps.shape[-2] * maps.shape[-1])
        labels = masks.flatten(-2).expand(*lead, -1).reshape(flat.shape)
        rows = max(1, MAX_SORT_ELEMENTS // max(1, flat.shape[1]))
        out = torch.cat([roc_auc_rows(flat[a:b], labels[a:b]) for a, b in rows_chunks(flat.shape[0], rows)])
        return out.reshape(lead)
