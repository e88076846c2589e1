"""The registry, metadata, broadcasting over candidate axes, defined values for degenerate maps, bad
inputs, custom plug-ins and the Quantus adapter."""

from __future__ import annotations

import copy
import pickle
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from metrics_helpers import PoolNet, channel_mean_explainer, ctx_for, make_samples, random_maps, three_samples

from sycam.metrics import (
    METRICS,
    CustomMetric,
    Metric,
    MetricError,
    QuantusMetric,
    StaticContext,
    get_metric,
    list_metrics,
    load_custom_metric,
)

N, H, W = 3, 8, 8

EXPECTED = {
    # name: (higher_is_better, requires, cost)
    "energy_pointing_game": (True, "mask", "cached"),
    "pointing_game": (True, "mask", "cached"),
    "iou": (True, "mask", "cached"),
    "mask_auc": (True, "mask", "cached"),
    "average_drop": (False, "none", "model"),
    "increase_in_confidence": (True, "none", "model"),
    "deletion_auc": (False, "none", "model"),
    "insertion_auc": (True, "none", "model"),
    "adcc": (True, "none", "model"),
    "sparseness": (True, "none", "cached"),
    "complexity": (False, "none", "cached"),
    "max_sensitivity": (False, "none", "cached"),
    "avg_sensitivity": (False, "none", "cached"),
    "equivariance": (True, "none", "cached"),
    "invariance": (True, "none", "cached"),
}

# Small settings so that every metric runs on 8x8 images.
SMALL = {
    "pointing_game": {"tolerance": 1},
    "deletion_auc": {"steps": 4},
    "insertion_auc": {"steps": 4, "blur_sigma": 1.0},
    "max_sensitivity": {"n": 2},
    "avg_sensitivity": {"n": 2},
    "equivariance": {"transforms": "hflip,shift=2,rot90,scale=0.75"},
    "invariance": {"transforms": "brightness,contrast,noise,blur"},
}


SAMPLES = three_samples()  # N, H, W = 3, 8, 8
MODEL = PoolNet()


def view_maps(metric: Metric, lead: tuple[int, ...], seed: int) -> dict[str, torch.Tensor]:
    return {name: random_maps(*lead, N, H, W, seed=seed + i) for i, name in enumerate(metric.views(SAMPLES))}


def context(metric: Metric, lead: tuple[int, ...] = (), seed: int = 100) -> StaticContext:
    return StaticContext(SAMPLES, model=MODEL, views=view_maps(metric, lead, seed), explainer=channel_mean_explainer)


def test_registry_lists_every_metric_with_its_metadata() -> None:
    assert set(METRICS) == set(EXPECTED)
    rows = {r["name"]: r for r in list_metrics()}
    for name, (hib, requires, cost) in EXPECTED.items():
        m = get_metric(name)
        assert (m.higher_is_better, m.requires, m.cost) == (hib, requires, cost), name
        assert m.name == name and m.family
        row = rows[name]
        assert row["direction"] == ("higher" if hib else "lower")
        assert (row["requires"], row["cost"]) == (requires, cost)
        assert row["doc"] and "\n" not in row["doc"]
        assert row["params"] == m.params()
        assert m.describe()["params"] == m.params()
        # every documented formula sits in the class docstring
        assert "math::" in (type(m).__doc__ or ""), name


def test_unknown_names_and_bad_parameters_give_one_line_errors() -> None:
    with pytest.raises(MetricError, match="unknown metric 'nope'; valid: energy_pointing_game, ") as e:
        get_metric("nope")
    assert "\n" not in str(e.value)
    with pytest.raises(MetricError, match="has no parameter 'radius'; valid: threshold"):
        get_metric("iou", radius=3)
    with pytest.raises(MetricError, match="threshold"):
        get_metric("iou", threshold="high")
    with pytest.raises(MetricError, match="must be a string"):
        get_metric(3)  # type: ignore[arg-type]
    with pytest.raises(MetricError, match="transforms must be a string"):
        get_metric("equivariance", transforms=5)
    with pytest.raises(MetricError, match="steps must be an integer"):
        get_metric("deletion_auc", steps=2.5)
    with pytest.raises(MetricError, match="n must be >= 1"):
        get_metric("max_sensitivity", n=0)
    assert get_metric("Pointing-Game").name == "pointing_game"


def test_params_round_trip_through_get_metric() -> None:
    for name in METRICS:
        m = get_metric(name, **SMALL.get(name, {}))
        again = get_metric(name, **m.params())
        assert again.params() == m.params(), name
        assert repr(again).startswith(type(m).__name__ + "(")


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_leading_candidate_axes_broadcast(name: str) -> None:
    metric = get_metric(name, **SMALL.get(name, {}))
    lead = (2, 3)
    maps = random_maps(*lead, N, H, W, seed=7)
    maps[0, 1] = 0.0  # a degenerate candidate in the batch changes nothing for the others
    ctx = context(metric, lead)
    stacked = metric.score(maps, ctx)
    assert stacked.shape == (*lead, N)
    for i in range(lead[0]):
        for j in range(lead[1]):
            views = {k: v[i, j] for k, v in ctx._views.items()}
            single = StaticContext(SAMPLES, model=MODEL, views=views, explainer=channel_mean_explainer)
            one = metric.score(maps[i, j], single)
            assert one.shape == (N,)
            torch.testing.assert_close(stacked[i, j], one, rtol=1e-5, atol=1e-6, equal_nan=True)
    assert metric.aggregate(stacked).shape == lead


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_constant_and_zero_maps_never_give_nan(name: str) -> None:
    metric = get_metric(name, **SMALL.get(name, {}))
    for value in (0.0, 0.5, 1.0):
        maps = torch.full((N, H, W), value)
        ctx = StaticContext(
            SAMPLES,
            model=MODEL,
            views=dict.fromkeys(metric.views(SAMPLES), maps),
            explainer=lambda im, v=value: torch.full(im.shape[:-3] + im.shape[-2:], v),
        )
        s = metric.score(maps, ctx)
        assert torch.isfinite(s).all(), (name, value, s)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_wrong_shapes_are_rejected(name: str) -> None:
    metric = get_metric(name, **SMALL.get(name, {}))
    ctx = context(metric)
    for bad in (torch.rand(N, H, W + 1), torch.rand(N + 1, H, W), torch.rand(H, W)):
        with pytest.raises(MetricError, match=r"maps must have shape \(\*B, 3, 8, 8\)"):
            metric.score(bad, ctx)
    with pytest.raises(MetricError, match="floating-point"):
        metric.score(torch.ones(N, H, W, dtype=torch.long), ctx)
    with pytest.raises(MetricError, match=r"torch\.Tensor"):
        metric.score([[0.0]], ctx)  # type: ignore[arg-type]


def test_mask_metrics_without_masks() -> None:
    samples = make_samples(N, H, W)
    for name, (_, requires, _) in EXPECTED.items():
        if requires == "mask":
            with pytest.raises(MetricError, match="needs ground-truth masks or boxes"):
                get_metric(name).score(torch.rand(N, H, W), StaticContext(samples))


def test_views_are_deterministic() -> None:
    for name in METRICS:
        metric = get_metric(name, **SMALL.get(name, {}))
        a, b = metric.views(SAMPLES), metric.views(SAMPLES)
        assert list(a) == list(b)
        for k in a:
            assert a[k].shape == SAMPLES.images.shape and torch.equal(a[k], b[k]), (name, k)
        assert bool(a) == (name in ("max_sensitivity", "avg_sensitivity", "equivariance", "invariance"))


def test_metrics_copy_and_pickle_without_their_memo() -> None:
    metric = get_metric("average_drop")
    ctx = context(metric)
    before = metric.score(random_maps(N, H, W), ctx)
    for clone in (copy.deepcopy(metric), pickle.loads(pickle.dumps(metric))):
        assert clone.params() == metric.params()
        torch.testing.assert_close(clone.score(random_maps(N, H, W), ctx), before)


# ---- custom metrics -----------------------------------------------------------------------------------------


PLUGIN = textwrap.dedent(
    '''
    import torch

    def peak(maps, ctx, scale=1.0):
        """The map's maximum (a toy metric)."""
        return maps.amax((-2, -1)) * scale

    peak.higher_is_better = False
    peak.requires = "mask"
    peak.cost = "cached"

    def wrong_shape(maps, ctx):
        return maps.mean()

    not_callable = 3

    def with_views(maps, ctx):
        return (ctx.view_maps("flipped") - maps).abs().mean((-2, -1))

    with_views.views = lambda samples: {"flipped": samples.images.flip(-1)}
    '''
)


@pytest.fixture
def plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "my_metrics.py"
    path.write_text(PLUGIN)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield path
    sys.modules.pop("my_metrics", None)


def test_custom_metric_from_a_file_and_from_a_module(plugin: Path) -> None:
    for spec in (f"{plugin}:peak", "my_metrics:peak"):
        m = load_custom_metric(spec, scale=2.0)
        assert isinstance(m, CustomMetric)
        assert (m.name, m.higher_is_better, m.requires, m.cost) == (spec, False, "mask", "cached")
        assert m.params() == {"function": spec, "scale": 2.0}
        maps = random_maps(2, N, H, W)
        torch.testing.assert_close(m.score(maps, ctx_for(SAMPLES)), maps.amax((-2, -1)) * 2)
        assert get_metric(spec, scale=2.0).name == spec


def test_custom_metric_defaults_views_and_errors(plugin: Path) -> None:
    m = load_custom_metric("my_metrics:wrong_shape")
    assert (m.higher_is_better, m.requires, m.cost, m.family) == (True, "none", "model", "custom")
    with pytest.raises(MetricError, match=r"returned \(\), expected a tensor of shape \(3,\)"):
        m.score(random_maps(N, H, W), ctx_for(SAMPLES))
    v = load_custom_metric("my_metrics:with_views")
    assert list(v.views(SAMPLES)) == ["flipped"]
    with pytest.raises(MetricError, match="not callable"):
        load_custom_metric("my_metrics:not_callable")
    with pytest.raises(MetricError, match="has no attribute 'missing'"):
        load_custom_metric("my_metrics:missing")
    with pytest.raises(MetricError, match="cannot import custom metric module 'no_such_module_xyz'"):
        load_custom_metric("no_such_module_xyz:f")
    with pytest.raises(MetricError, match="file not found"):
        load_custom_metric(str(plugin.with_name("absent.py")) + ":peak")
    with pytest.raises(MetricError, match="module:function"):
        load_custom_metric("peak")
    with pytest.raises(MetricError, match="needs ground-truth masks"):
        load_custom_metric("my_metrics:peak").score(random_maps(N, H, W), ctx_for(make_samples(N, H, W)))


def test_custom_metric_can_name_a_metric_class() -> None:
    m = load_custom_metric("sycam.metrics.localization:IoU", threshold=0.25)
    assert m.name == "iou" and m.params() == {"threshold": 0.25}


def test_custom_metric_function_attributes_are_validated() -> None:
    def f(maps: torch.Tensor, ctx: object) -> torch.Tensor:
        return maps.mean((-2, -1))

    f.cost = "cheap"  # type: ignore[attr-defined]
    with pytest.raises(MetricError, match="cost must be"):
        CustomMetric(f)


# ---- Quantus adapter ----------------------------------------------------------------------------------------


def test_quantus_adapter_localisation_matches_our_metrics() -> None:
    pytest.importorskip("quantus")
    q = get_metric("quantus:PointingGame")
    assert isinstance(q, QuantusMetric)
    assert (q.name, q.higher_is_better, q.requires, q.cost) == ("quantus:PointingGame", True, "mask", "model")
    maps = random_maps(2, N, H, W, seed=9)  # continuous values: a unique maximum per map
    ctx = ctx_for(SAMPLES, model=MODEL)
    ours = get_metric("pointing_game", tolerance=0).score(maps, ctx)
    torch.testing.assert_close(q.score(maps, ctx), ours)
    rma = QuantusMetric("RelevanceMassAccuracy")
    torch.testing.assert_close(rma.score(maps, ctx), get_metric("energy_pointing_game").score(maps, ctx))
    assert q.params()["metric"] == "PointingGame"


def test_quantus_adapter_direction_model_and_explain() -> None:
    quantus = pytest.importorskip("quantus")
    comp = QuantusMetric(quantus.Complexity(disable_warnings=True))
    assert comp.higher_is_better is False and comp.requires == "none"
    # a robustness metric re-explains perturbed inputs through ctx.explain and runs the model via ctx.logits
    sens = QuantusMetric("AvgSensitivity", nr_samples=2, lower_bound=0.1)
    ctx = ctx_for(SAMPLES, model=MODEL, explainer=channel_mean_explainer)
    s = sens.score(random_maps(2, N, H, W), ctx)
    assert s.shape == (2, N) and torch.isfinite(s).all()
    # a faithfulness metric uses the model through the adapter module
    mono = QuantusMetric("Monotonicity", features_in_step=16, perturb_baseline="black")
    assert mono.higher_is_better is True
    assert mono.score(random_maps(N, H, W), ctx).shape == (N,)
    curve = QuantusMetric("PixelFlipping", features_in_step=16, perturb_baseline="black")
    with pytest.raises(MetricError, match="non-scalar score per sample"):
        curve.score(random_maps(N, H, W), ctx)
    with pytest.raises(MetricError, match="quantus has no metric 'Nope'"):
        get_metric("quantus:Nope")
    with pytest.raises(MetricError, match="bad parameters"):
        get_metric("quantus:PointingGame", nonsense=1)
    with pytest.raises(MetricError, match="needs ground-truth masks"):
        get_metric("quantus:PointingGame").score(random_maps(N, H, W), ctx_for(make_samples(N, H, W)))
