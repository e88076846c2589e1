"""The paired bootstrap CI and its verdict, checked by hand and against a NumPy re-computation."""

from __future__ import annotations

import math

import numpy as np
import pytest

from sycam.errors import SycamError
from sycam.stats import StatsError, paired_bootstrap_ci, verdict, within_noise


def test_constant_difference_gives_a_point_interval() -> None:
    # every image gains exactly 0.1: every resample's mean is 0.1, so the interval is [0.1, 0.1]
    diff, lo, hi = paired_bootstrap_ci([0.5, 0.7, 0.9], [0.4, 0.6, 0.8], higher_is_better=True, n=200)
    assert diff == pytest.approx(0.1) and lo == pytest.approx(0.1) and hi == pytest.approx(0.1)
    assert verdict(lo, hi, True) == "better"
    assert verdict(lo, hi, False) == "worse"  # a + 0.1 is worse when lower is better


def test_two_images_by_hand() -> None:
    """d = (1, -1): a resample is (1,1) → 1, (-1,-1) → -1, or mixed → 0, so the 2.5th/97.5th percentiles of
    many resample means are -1 and 1 and the mean difference is 0."""
    diff, lo, hi = paired_bootstrap_ci([1.0, 0.0], [0.0, 1.0], higher_is_better=True, n=4000, seed=3)
    assert diff == 0.0 and lo == -1.0 and hi == 1.0
    assert verdict(lo, hi, True) == "not distinguishable"


def test_matches_a_numpy_recomputation() -> None:
    a = np.array([0.61, 0.72, 0.55, 0.80, 0.66, 0.59, 0.70])
    b = np.array([0.58, 0.70, 0.57, 0.71, 0.60, 0.60, 0.65])
    diff, lo, hi = paired_bootstrap_ci(a.tolist(), b.tolist(), higher_is_better=True, n=5000, seed=11)
    d = a - b
    rng = np.random.default_rng(11)
    means = d[rng.integers(0, d.size, size=(5000, d.size))].mean(axis=1)
    assert diff == pytest.approx(d.mean())
    assert (lo, hi) == pytest.approx(tuple(np.percentile(means, [2.5, 97.5])))
    assert lo <= diff <= hi
    # same seed, same interval; another seed moves it a little
    assert paired_bootstrap_ci(a, b, True, n=5000, seed=11) == (diff, lo, hi)
    assert paired_bootstrap_ci(a, b, True, n=5000, seed=12)[1:] != (lo, hi)


def test_verdict_reads_the_interval() -> None:
    assert verdict(0.01, 0.2, True) == "better"
    assert verdict(-0.2, -0.01, True) == "worse"
    assert verdict(-0.2, -0.01, False) == "better"
    assert verdict(-0.016, 0.185, True) == "not distinguishable"  # issue 7's demo: a positive point estimate
    assert verdict(math.nan, math.nan, True) == "not distinguishable"


def test_bad_inputs() -> None:
    with pytest.raises(StatsError, match="equally long"):
        paired_bootstrap_ci([1.0, 2.0], [1.0], True)
    with pytest.raises(SycamError, match="finite"):
        paired_bootstrap_ci([1.0, math.nan], [1.0, 2.0], True)
    assert all(math.isnan(x) for x in paired_bootstrap_ci([], [], True))


def test_within_noise_is_one_standard_error() -> None:
    # d = (0.1, 0.3, -0.1): mean 0.1, sd 0.2, se 0.2/sqrt(3) = 0.115 → within noise
    assert within_noise([0.6, 0.8, 0.4], [0.5, 0.5, 0.5])
    # d = (0.1, 0.12, 0.08): mean 0.1, se 0.0115 → not within noise
    assert not within_noise([0.6, 0.62, 0.58], [0.5, 0.5, 0.5])
    assert within_noise([0.5], [0.5]) and not within_noise([0.6], [0.5])


def test_clustered_bootstrap_by_hand() -> None:
    """Groups a = (1, 1), b = (0): a resample of two groups is aa → 1, ab or ba → 2/3 (images pooled), bb → 0,
    so the percentiles of many resamples are 0 and 1; the point estimate stays the image mean 2/3."""
    diff, lo, hi = paired_bootstrap_ci([1.0, 1.0, 0.0], [0.0, 0.0, 0.0], True, n=4000, seed=1, groups=["a", "a", "b"])
    assert diff == pytest.approx(2 / 3) and lo == 0.0 and hi == 1.0


def test_clustered_toy_set_image_bootstrap_says_better_clustered_does_not() -> None:
    """Three objects: 15 images of each of two objects gain 0.2 and 0.15, 3 images of a third lose 0.5. Images
    look independent and the image bootstrap calls the gain 'better'; resampling objects (a new object may be
    like the third) does not."""
    d = [0.2] * 15 + [0.15] * 15 + [-0.5] * 3
    groups = ["cat"] * 15 + ["tripod"] * 15 + ["moped"] * 3
    b = [0.0] * len(d)
    _, lo_i, hi_i = paired_bootstrap_ci(d, b, True)
    diff, lo_c, hi_c = paired_bootstrap_ci(d, b, True, groups=groups)
    assert verdict(lo_i, hi_i, True) == "better"
    assert verdict(lo_c, hi_c, True) == "not distinguishable" and lo_c < 0 < hi_c
    assert diff == pytest.approx(sum(d) / len(d))


def test_one_group_measures_no_spread_and_singletons_are_the_image_bootstrap() -> None:
    diff, lo, hi = paired_bootstrap_ci([0.9, 0.8], [0.1, 0.2], True, groups=["x", "x"])
    assert diff == pytest.approx(0.7) and math.isnan(lo) and math.isnan(hi)
    assert verdict(lo, hi, True) == "not distinguishable"
    a, b = [0.3, 0.1, 0.5, 0.2], [0.1, 0.2, 0.1, 0.0]
    assert paired_bootstrap_ci(a, b, True, groups=["p", "q", "r", "s"]) == pytest.approx(
        paired_bootstrap_ci(a, b, True), abs=0.02)
    with pytest.raises(StatsError, match=r"^groups must label every image \(4\), got 3 labels$"):
        paired_bootstrap_ci(a, b, True, groups=["p", "q", "r"])


def test_difference_is_the_hull_of_the_group_and_image_intervals() -> None:
    """Three objects whose effects share a sign: every group resample is positive (the group bootstrap alone
    says 'better'), the image bootstrap is wide; the reported interval is the hull, so the verdict holds under
    either resampling."""
    from sycam.stats import difference

    d = [0.30, -0.20, 0.25, 0.02, 0.01, 0.03, 0.15, -0.05]  # objects a, a, a, b, b, b, c, c
    groups = ["a", "a", "a", "b", "b", "b", "c", "c"]
    zero = [0.0] * len(d)
    e = difference(d, zero, True, groups)
    _, g_lo, g_hi = paired_bootstrap_ci(d, zero, True, groups=groups)
    _, i_lo, i_hi = paired_bootstrap_ci(d, zero, True)
    assert e["ci95"] == [min(g_lo, i_lo), max(g_hi, i_hi)]
    assert e["ci95_groups"] == [g_lo, g_hi] and e["ci95_images"] == [i_lo, i_hi]
    assert verdict(g_lo, g_hi, True) == "better" and e["verdict"] == "not distinguishable"
    assert difference([0.5, 0.6], [0.1, 0.2], True, ["x", "x"])["ci95"] == [None, None]  # one group: no spread
    assert difference([float("nan")], [0.1], True)["why"].startswith("non-finite per-image scores")
