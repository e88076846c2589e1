"""The one ordering rule (better, sort_key), degenerate maps and each metric's worst value, and
``Metric.evaluate``: degenerate images scored worst, no NaN dropped silently, user errors named."""

from __future__ import annotations

import dataclasses
import math
import textwrap
from pathlib import Path

import pytest
import torch
from metrics_helpers import PoolNet, channel_mean_explainer, make_samples, random_maps, three_samples

from sycam.metrics import METRICS, Metric, MetricError, StaticContext, get_metric, load_custom_metric
from sycam.metrics.base import degenerate

N, H, W = 3, 8, 8
NAN, INF = float("nan"), float("inf")

# Hand-derived worst values (docs/metrics.md, "Degenerate maps"): the end of each metric's range in its bad
# direction, for the default parameters.
WORST = {
    "energy_pointing_game": 0.0,
    "pointing_game": 0.0,
    "iou": 0.0,
    "mask_auc": 0.0,
    "average_drop": 1.0,
    "increase_in_confidence": 0.0,
    "deletion_auc": 1.0,
    "insertion_auc": 0.0,
    "adcc": 0.0,
    "sparseness": 0.0,
    "complexity": 1.0,
    "max_sensitivity": 1e8,
    "avg_sensitivity": 1e8,
    "equivariance": -1.0,
    "invariance": -1.0,
}

SMALL = {
    "pointing_game": {"tolerance": 1},
    "deletion_auc": {"steps": 4},
    "insertion_auc": {"steps": 4, "blur_sigma": 1.0},
    "max_sensitivity": {"n": 2},
    "avg_sensitivity": {"n": 2},
    "equivariance": {"transforms": "hflip,shift=2"},
    "invariance": {"transforms": "brightness,blur"},
}


SAMPLES = three_samples()  # N, H, W = 3, 8, 8
MODEL = PoolNet()


def context(metric: Metric, lead: tuple[int, ...] = (), seed: int = 100) -> StaticContext:
    views = {k: random_maps(*lead, N, H, W, seed=seed + i) for i, k in enumerate(metric.views(SAMPLES))}
    return StaticContext(SAMPLES, model=MODEL, views=views, explainer=channel_mean_explainer)


# ---- ordering ------------------------------------------------------------------------------------------------


def test_better_is_strict_directional_and_nan_never_wins() -> None:
    hi, lo = get_metric("energy_pointing_game"), get_metric("deletion_auc")
    assert hi.better(0.6, 0.5) and not hi.better(0.5, 0.6) and not hi.better(0.5, 0.5)
    assert lo.better(0.1, 0.2) and not lo.better(0.2, 0.1) and not lo.better(0.2, 0.2)
    for m in (hi, lo):
        assert not m.better(NAN, 0.5) and not m.better(NAN, NAN) and not m.better(NAN, None)
        assert m.better(0.5, NAN) and m.better(0.5, None) and m.better(m.worst(), None)
        assert m.better(torch.tensor(0.3), None)  # tensors and numpy scalars are fine
    assert hi.better(-INF, NAN) and not hi.better(-INF, -INF)


def test_sort_key_sorts_best_first_and_nan_last() -> None:
    hi, lo = get_metric("energy_pointing_game"), get_metric("deletion_auc")
    scores = [0.3, NAN, 0.9, 0.1, NAN, 0.5]
    assert sorted(scores, key=hi.sort_key)[:4] == [0.9, 0.5, 0.3, 0.1]
    assert sorted(scores, key=lo.sort_key)[:4] == [0.1, 0.3, 0.5, 0.9]
    for m in (hi, lo):
        assert all(math.isnan(x) for x in sorted(scores, key=m.sort_key)[4:])
        for a in scores:
            for b in scores:
                if m.better(a, b):
                    assert m.sort_key(a) < m.sort_key(b)
                if not math.isnan(a) and not math.isnan(b) and m.sort_key(a) < m.sort_key(b):
                    assert m.better(a, b)


# ---- degenerate maps -----------------------------------------------------------------------------------------


def test_degenerate_flags_constant_zero_and_non_finite_maps_at_any_resolution() -> None:
    maps = random_maps(2, 4, 5, 7)
    maps[0, 0] = 0.0
    maps[0, 1] = 0.37
    maps[1, 2, 3, 3] = NAN
    maps[1, 3, 0, 6] = INF
    assert degenerate(maps).tolist() == [[True, True, False, False], [False, False, True, True]]
    tiny = torch.zeros(3, 7, 7)
    tiny[1, 2, 2] = 1e-30  # not constant, however small
    assert degenerate(tiny).tolist() == [True, False, True]
    assert degenerate(torch.ones(1, 1, 1)).tolist() == [True]  # a single pixel is constant
    with pytest.raises(MetricError):
        degenerate(torch.zeros(4))


def test_worst_values_per_metric_by_hand() -> None:
    assert set(WORST) == set(METRICS)
    for name, value in WORST.items():
        assert get_metric(name).worst() == value, name
    # Settings that change the range change the worst value.
    assert get_metric("average_drop", output="logit").worst() == INF
    assert get_metric("deletion_auc", output="logit").worst() == INF
    assert get_metric("insertion_auc", output="logit").worst() == -INF
    assert get_metric("equivariance", similarity="mae").worst() == 0.0
    assert get_metric("invariance", similarity="mae").worst() == 0.0


@pytest.mark.parametrize("name", sorted(WORST))
def test_a_degenerate_map_gets_the_worst_value_and_cannot_beat_a_real_map(name: str) -> None:
    metric = get_metric(name, **SMALL.get(name, {}))
    ctx = context(metric, lead=(4,))
    maps = random_maps(4, N, H, W, seed=3)
    maps[1, 0] = 0.0  # all-zero
    maps[2, 1] = 0.5  # constant
    maps[3, 2, 4, 4] = NAN  # non-finite
    got = metric.evaluate(maps, ctx)
    assert got.shape == (4, N) and not torch.isnan(got).any()
    bad = degenerate(maps)
    assert bad.sum() == 3
    assert (got[bad] == metric.worst()).all()
    for s in got[~bad].tolist():  # no real map scores worse than the worst value
        assert not metric.better(metric.worst(), s), (name, s)
    # The non-degenerate images are scored exactly as score() does.
    plain = metric.score(maps.nan_to_num(0.0), ctx)
    torch.testing.assert_close(got[~bad], plain[~bad])


def test_zero_map_no_longer_wins_sensitivity_complexity_or_sparseness() -> None:
    # The demo's failure: an all-zero map got the best avg_sensitivity and complexity.
    maps = random_maps(2, N, H, W, seed=5)
    maps[1] = 0.0
    for name in ("avg_sensitivity", "max_sensitivity", "complexity", "sparseness", "mask_auc"):
        metric = get_metric(name, **SMALL.get(name, {}))
        views = dict.fromkeys(metric.views(SAMPLES), torch.zeros(2, N, H, W))
        ctx = StaticContext(SAMPLES, views=views)
        agg = metric.aggregate(metric.evaluate(maps, ctx))
        assert metric.better(agg[0], agg[1]), name


def test_sensitivity_is_bounded_by_its_worst_value() -> None:
    metric = get_metric("avg_sensitivity", n=2)
    maps = torch.zeros(1, N, H, W)
    maps[0, :, 0, 0] = 1e-12  # a real but vanishing map: the floor caps the ratio
    views = dict.fromkeys(metric.views(SAMPLES), torch.ones(1, N, H, W))
    s = metric.evaluate(maps, StaticContext(SAMPLES, views=views))
    assert (s <= metric.worst()).all() and (s > 1e7).all()
    nan_view = torch.ones(1, N, H, W)
    nan_view[0, 0, 0, 0] = NAN  # a view map with a NaN is the worst, not NaN
    views = dict.fromkeys(metric.views(SAMPLES), nan_view)
    s = metric.evaluate(random_maps(1, N, H, W), StaticContext(SAMPLES, views=views))
    assert s[0, 0].item() == metric.worst() and not torch.isnan(s).any()


def test_equivariance_view_map_with_nan_counts_as_worst_similarity() -> None:
    metric = get_metric("invariance", transforms="brightness")
    view = random_maps(N, H, W, seed=1)
    view[2, 0, 0] = NAN
    s = metric.evaluate(random_maps(N, H, W), StaticContext(SAMPLES, views=dict.fromkeys(metric.views(SAMPLES), view)))
    assert s[2].item() == -1.0 and not torch.isnan(s).any()


# ---- evaluate and aggregate ----------------------------------------------------------------------------------


def test_aggregate_is_the_plain_mean_and_nothing_is_dropped() -> None:
    m = get_metric("energy_pointing_game")
    assert m.aggregate(torch.tensor([[0.2, 0.4, 0.9]])).tolist() == pytest.approx([0.5])
    assert math.isnan(m.aggregate(torch.tensor([0.2, NAN])).item())
    maps = random_maps(N, H, W)
    maps[0] = INF  # formerly NaN and left out of the mean
    scores = m.evaluate(maps, context(m))
    assert scores[0].item() == 0.0
    assert m.aggregate(scores).item() == pytest.approx(scores[1:].sum().item() / 3)


def test_evaluate_by_hand_on_complexity() -> None:
    m = get_metric("complexity")
    maps = torch.zeros(2, N, H, W)
    maps[0, :, :4, :] = 1.0  # half the pixels at 1: complexity 0.5
    maps[1, 1, 0, 0] = 1.0  # one pixel: 1/64; the other two maps are all-zero: worst = 1
    got = m.evaluate(maps, context(m)).tolist()
    assert got == [[0.5, 0.5, 0.5], [1.0, 1 / 64, 1.0]]
    assert m.score(maps, context(m))[1].tolist() == [0.0, 1 / 64, 0.0]  # score alone rewards the blank map


def test_all_degenerate_does_not_call_score() -> None:
    class Boom(Metric):
        name = "boom"
        higher_is_better = True

        def score(self, maps: torch.Tensor, ctx: object) -> torch.Tensor:
            raise AssertionError("score must not run")

        def worst(self) -> float:
            return -3.0

    assert Boom().evaluate(torch.zeros(2, N, H, W), None).tolist() == [[-3.0] * N] * 2  # type: ignore[arg-type]


def test_nan_from_a_non_degenerate_map_is_an_error_naming_the_metric() -> None:
    class Holey(Metric):
        name = "holey"
        higher_is_better = True

        def score(self, maps: torch.Tensor, ctx: object) -> torch.Tensor:
            out = maps.mean((-2, -1))
            out[..., 1] = NAN
            return out

    samples = dataclasses.replace(make_samples(N, H, W, seed=1), ids=("a#1", "b#2", "c#3"))
    with pytest.raises(MetricError, match=r"metric holey is undefined \(NaN\) on 1 image\(s\).*\(images b#2\)"):
        Holey().evaluate(random_maps(N, H, W), StaticContext(samples))
    maps = random_maps(N, H, W)
    maps[1] = 0.0  # degenerate there: worst value, no error
    assert Holey().evaluate(maps, StaticContext(samples))[1].item() == -INF


def test_a_custom_metric_that_raises_is_named_with_its_file(tmp_path: Path) -> None:
    path = tmp_path / "user_metrics.py"
    path.write_text(
        textwrap.dedent(
            """
            def broken(maps, ctx):
                return maps.sum(-1, -2, -3)

            def undefined(maps, ctx):
                return maps.mean((-2, -1)) * float("nan")

            def bounded(maps, ctx):
                return maps.mean((-2, -1))
            bounded.worst = 0.0
            bounded.cost = "cached"
            """
        )
    )
    maps = random_maps(N, H, W)
    ctx = StaticContext(SAMPLES)
    m = load_custom_metric(f"{path}:broken")
    with pytest.raises(MetricError) as e:
        m.evaluate(maps, ctx)
    msg = str(e.value)
    assert msg.startswith(f"metric {path}:broken (from {path}) raised TypeError: ") and "\n" not in msg
    with pytest.raises(MetricError, match="undefined"):
        load_custom_metric(f"{path}:undefined").evaluate(maps, ctx)
    b = load_custom_metric(f"{path}:bounded")
    maps[0] = 0.0
    assert b.worst() == 0.0 and b.evaluate(maps, ctx)[0].item() == 0.0
    assert load_custom_metric(f"{path}:undefined").worst() == -INF
    with pytest.raises(MetricError, match="worst must be a number"):

        def f(maps: torch.Tensor, ctx: object) -> torch.Tensor:
            return maps

        f.worst = "low"  # type: ignore[attr-defined]
        from sycam.metrics import CustomMetric

        CustomMetric(f)


def test_a_metric_class_from_outside_sycam_that_raises_is_named(tmp_path: Path) -> None:
    path = tmp_path / "user_classes.py"
    path.write_text(
        textwrap.dedent(
            """
            from sycam.metrics import Metric

            class Fragile(Metric):
                name = "fragile"
                higher_is_better = False

                def score(self, maps, ctx):
                    raise KeyError("no such thing")
            """
        )
    )
    m = load_custom_metric(f"{path}:Fragile")
    with pytest.raises(MetricError, match=rf"^metric fragile \(from {path}\) raised KeyError: 'no such thing'$"):
        m.evaluate(random_maps(N, H, W), StaticContext(SAMPLES))
    assert m.worst() == INF
