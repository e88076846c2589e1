r"""Statistics of paired per-image scores: a paired bootstrap confidence interval and the verdict it supports.

Two methods scored on the same ``m`` images give paired scores ``a_i``, ``b_i``. The difference of their
means is :math:`\bar d = \frac1m \sum_i (a_i - b_i)`. The paired (percentile) bootstrap resamples the
*images*: ``n`` times, draw ``m`` image indices with replacement and take the mean of ``d`` over them; the
95 % interval is the 2.5th and 97.5th percentiles of those means (NumPy's default linear interpolation).
The verdict reads the interval, never the point estimate: *better* when the whole interval lies on the good
side of zero, *worse* when it lies on the bad side, *not distinguishable* otherwise.

**Clustered.** Images are rarely independent: the same object photo or texture appears in many composites, two
targets share one photo. With ``groups`` (one label per image; :func:`sycam.data.split.bootstrap_groups` makes
them from the data's sources) the bootstrap resamples the ``G`` *groups* with replacement and takes the mean of
``d`` over all images of the drawn groups, :math:`\sum_{g} S_g / \sum_{g} m_g` (``S_g`` the sum of ``d`` over
group ``g``, ``m_g`` its images). The interval then speaks for new groups (new objects), not new images of the
same groups. With fewer than two groups no spread between groups can be measured: the interval is NaN and the
verdict *not distinguishable*. Each image its own group is the image bootstrap.

Example::

    >>> diff, lo, hi = paired_bootstrap_ci([0.9, 0.8, 0.7], [0.6, 0.5, 0.4], higher_is_better=True)
    >>> round(diff, 3), verdict(lo, hi, higher_is_better=True)
    (0.3, 'better')
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from .errors import SycamError

VERDICTS = ("better", "not distinguishable", "worse")


class StatsError(SycamError, ValueError):
    """Paired scores that cannot be compared (different lengths, non-finite values)."""


def paired_bootstrap_ci(a: Sequence[float], b: Sequence[float], higher_is_better: bool, n: int = 10000,
                        seed: int = 0, level: float = 0.95,
                        groups: Sequence[object] | None = None) -> tuple[float, float, float]:
    """``(mean(a - b), lo, hi)``: the mean paired difference and its percentile bootstrap interval.

    Args:
        a, b: per-image scores of two methods on the same images, in the same order.
        higher_is_better: the metric's direction (the difference is always ``a - b``; the direction only
            matters to :func:`verdict`; kept here so that callers state it where the numbers are made).
        n: bootstrap resamples.
        seed: seed of ``numpy.random.default_rng``; the same inputs and seed give the same interval.
        level: coverage of the interval (0.95: the 2.5th and 97.5th percentiles).
        groups: per image, the cluster it belongs to (any hashable labels); ``None``: each image its own group.
            The clusters are resampled instead of the images (module doc).

    Returns:
        ``(nan, nan, nan)`` for no images; ``(mean, nan, nan)`` for fewer than two groups; otherwise finite
        numbers.
    """
    del higher_is_better
    x, y = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if x.shape != y.shape or x.ndim != 1:
        raise StatsError(f"paired scores must be two equally long lists, got {x.shape} and {y.shape}")
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        raise StatsError("paired scores must be finite (score degenerate maps at the metric's worst value)")
    if n < 1 or not 0.0 < level < 1.0:
        raise StatsError(f"need n ≥ 1 resamples and 0 < level < 1, got n={n}, level={level}")
    if x.size == 0:
        return (math.nan, math.nan, math.nan)
    d = x - y
    rng = np.random.default_rng(seed)
    if groups is None:
        idx = rng.integers(0, d.size, size=(n, d.size))
        means = d[idx].mean(axis=1)
    else:
        if len(groups) != d.size:
            raise StatsError(f"groups must label every image ({d.size}), got {len(groups)} labels")
        labels = list(dict.fromkeys(groups))
        if len(labels) < 2:
            return (float(d.mean()), math.nan, math.nan)
        where = {g: i for i, g in enumerate(labels)}
        code = np.array([where[g] for g in groups])
        sums, sizes = np.bincount(code, weights=d), np.bincount(code).astype(np.float64)
        pick = rng.integers(0, len(labels), size=(n, len(labels)))
        means = sums[pick].sum(axis=1) / sizes[pick].sum(axis=1)
    tail = (1.0 - level) / 2.0 * 100.0
    lo, hi = np.percentile(means, [tail, 100.0 - tail])
    return (float(d.mean()), float(lo), float(hi))


def verdict(lo: float, hi: float, higher_is_better: bool) -> str:
    """``"better"`` / ``"not distinguishable"`` / ``"worse"`` for an interval of ``a - b``.

    ``better``: the interval excludes zero on the good side (``lo > 0`` when higher is better, ``hi < 0`` when
    lower is better); ``worse``: it excludes zero on the bad side; otherwise (or NaN) not distinguishable.

    >>> verdict(0.01, 0.05, higher_is_better=True), verdict(0.01, 0.05, higher_is_better=False)
    ('better', 'worse')
    >>> verdict(-0.02, 0.03, higher_is_better=True)
    'not distinguishable'
    """
    if math.isnan(lo) or math.isnan(hi):
        return "not distinguishable"
    if lo > 0:
        return "better" if higher_is_better else "worse"
    if hi < 0:
        return "worse" if higher_is_better else "better"
    return "not distinguishable"


def within_noise(a: Sequence[float], b: Sequence[float], min_effect: float = 0.0) -> bool:
    r"""Whether two methods' paired scores differ by no more than one standard error of the mean difference, or
    by less than the smallest effect that counts: :math:`|\bar d| \le \max(s_d / \sqrt m, \delta)` (``s_d`` the
    sample standard deviation of ``d = a - b``, :math:`\delta` = ``min_effect``). With one image (no spread to
    measure) only scores closer than :math:`\delta` (or equal) are within noise.

    >>> within_noise([0.50, 0.62, 0.41], [0.52, 0.60, 0.40]), within_noise([0.9, 0.8, 0.7], [0.5, 0.4, 0.3])
    (True, False)
    """
    x, y = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    d = x - y
    if d.size == 0:
        return True
    if d.size == 1:
        return bool(abs(float(d[0])) <= min_effect)
    se = float(d.std(ddof=1)) / math.sqrt(d.size)
    return abs(float(d.mean())) <= max(se, min_effect)


def difference(a: Sequence[float], b: Sequence[float], higher_is_better: bool,
               groups: Sequence[object] | None = None) -> dict[str, object]:
    """``{"diff", "ci95": [lo, hi], "verdict"}`` of ``a - b`` (:func:`paired_bootstrap_ci`; :func:`verdict`),
    JSON-ready: non-finite numbers become ``None``. Non-finite per-image scores (a metric without a worst value
    scoring a degenerate map) give no interval, with ``"why"`` saying so.

    With ``groups`` the interval is the *hull* of the group bootstrap's and the image bootstrap's (both kept, as
    ``ci95_groups`` and ``ci95_images``): a verdict must hold whether new images or new groups are drawn. With few
    groups the group bootstrap alone understates the spread — three groups have ten distinct resamples, and when
    the groups' own effects share a sign every resample does — while images of one group are not independent; the
    hull is conservative under both views. Fewer than two groups leave no interval (no spread to measure).

    >>> difference([0.9, 0.8, 0.7], [0.6, 0.5, 0.4], True)["verdict"]
    'better'
    """
    def clean(x: float) -> float | None:
        return float(x) if math.isfinite(x) else None

    if not (np.isfinite(np.asarray(a, dtype=np.float64)).all() and np.isfinite(np.asarray(b, dtype=np.float64)).all()):
        return {"diff": None, "ci95": [None, None], "verdict": "not distinguishable",
                "why": "non-finite per-image scores (degenerate maps of a metric without a worst value)"}
    diff, lo, hi = paired_bootstrap_ci(a, b, higher_is_better)
    out: dict[str, object] = {}
    if groups is not None:
        _, g_lo, g_hi = paired_bootstrap_ci(a, b, higher_is_better, groups=groups)
        out = {"ci95_groups": [clean(g_lo), clean(g_hi)], "ci95_images": [clean(lo), clean(hi)]}
        lo, hi = (min(lo, g_lo), max(hi, g_hi)) if math.isfinite(g_lo) else (math.nan, math.nan)
    return {"diff": clean(diff), "ci95": [clean(lo), clean(hi)], "verdict": verdict(lo, hi, higher_is_better), **out}
