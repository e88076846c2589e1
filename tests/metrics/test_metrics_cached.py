"""Complexity, robustness and equivariance metrics (all cost="cached"): hand-worked values and views."""

from __future__ import annotations

import pytest
import torch
from metrics_helpers import ctx_for, make_samples, random_maps

from sycam.metrics import (
    AvgSensitivity,
    Complexity,
    Equivariance,
    Invariance,
    MaxSensitivity,
    MetricError,
    Sparseness,
)
from sycam.metrics.equivariance import Transform, parse_transforms

CTX22 = ctx_for(make_samples(1, 2, 2))


def m22(a: float, b: float, c: float, d: float) -> torch.Tensor:
    return torch.tensor([[[a, b], [c, d]]], dtype=torch.float32)


# ---- complexity ---------------------------------------------------------------------------------------------


def test_sparseness_hand_worked() -> None:
    # sorted [0, 0, 0, 1]: (2·4 − 5)·1 / (4·1) = 0.75
    assert Sparseness().score(m22(0, 1, 0, 0), CTX22).item() == pytest.approx(0.75)
    # sorted [0, 0, 1, 1]: ((2·3 − 5) + (2·4 − 5)) / (4·2) = 0.5
    assert Sparseness().score(m22(1, 0, 0, 1), CTX22).item() == pytest.approx(0.5)
    # sorted [0.2, 0.2, 0.2, 1.0]: (-3·0.2 - 0.2 + 0.2 + 3·1) / (4·1.6) = 2.4 / 6.4
    assert Sparseness().score(m22(0.2, 1, 0.2, 0.2), CTX22).item() == pytest.approx(0.375)


def test_sparseness_constant_and_zero_maps() -> None:
    assert Sparseness().score(torch.zeros(1, 2, 2), CTX22).item() == 0.0
    assert Sparseness().score(torch.full((1, 2, 2), 0.4), CTX22).item() == pytest.approx(0.0, abs=1e-7)


def test_complexity_hand_worked() -> None:
    assert Complexity().score(m22(1, 0, 0.5, 0.5), CTX22).item() == pytest.approx(0.5)
    assert Complexity().score(torch.zeros(1, 2, 2), CTX22).item() == 0.0
    assert not Complexity.higher_is_better and Sparseness.higher_is_better


# ---- robustness ---------------------------------------------------------------------------------------------


def sensitivity_ctx(views: list[torch.Tensor], metric: MaxSensitivity) -> object:
    return ctx_for(make_samples(1, 2, 2), views=dict(zip(metric.view_names(), views, strict=True)))


def test_sensitivity_hand_worked() -> None:
    base = m22(1, 0, 0, 0)  # ||L|| = 1
    views = [m22(1, 1, 0, 0), m22(0.5, 0, 0, 0)]  # ||ΔL|| = 1 and 0.5
    mx, avg = MaxSensitivity(n=2), AvgSensitivity(n=2)
    ctx = sensitivity_ctx(views, mx)
    assert mx.score(base, ctx).item() == pytest.approx(1.0)
    assert avg.score(base, ctx).item() == pytest.approx(0.75)
    # ||(0.6, 0.8)|| = 1 relative to ||(3, 4)/5·...||: L = (0.6, 0.8, 0, 0) has norm 1
    base = m22(0.6, 0.8, 0, 0)
    ctx = sensitivity_ctx([m22(0.6, 0.8, 0, 0), m22(0, 0.8, 0, 0)], mx)
    assert mx.score(base, ctx).item() == pytest.approx(0.6)
    assert avg.score(base, ctx).item() == pytest.approx(0.3)


def test_sensitivity_zero_maps_are_finite() -> None:
    mx = MaxSensitivity(n=2)
    ctx = sensitivity_ctx([torch.zeros(1, 2, 2)] * 2, mx)
    assert mx.score(torch.zeros(1, 2, 2), ctx).item() == 0.0
    ctx = sensitivity_ctx([torch.zeros(1, 2, 2), m22(0, 0, 0, 1)], mx)
    s = mx.score(torch.zeros(1, 2, 2), ctx)
    assert torch.isfinite(s).all() and s.item() > 1e6


def test_noise_views_are_seeded_bounded_and_named_by_their_parameters() -> None:
    samples = make_samples(2, 8, 8, seed=1)
    a = MaxSensitivity(n=3, radius=0.05, seed=7).views(samples)
    b = AvgSensitivity(n=5, radius=0.05, seed=7).views(samples)
    assert (
        list(a) == list(b)[:3] == ["uniform(r=0.05,seed=7)#0", "uniform(r=0.05,seed=7)#1", "uniform(r=0.05,seed=7)#2"]
    )
    for name, view in a.items():
        assert torch.equal(view, b[name])  # the same name means the same input
        px = (view * 0.25 + 0.5).clamp(0, 1)  # back to RGB (the helper's mean/std)
        delta = px - samples.pixels
        assert delta.abs().max() <= 0.05 + 1e-6 and delta.abs().max() > 0.03
    c = MaxSensitivity(n=1, radius=0.05, seed=8).views(samples)
    assert not torch.equal(next(iter(c.values())), a["uniform(r=0.05,seed=7)#0"])


def test_sensitivity_missing_or_misshapen_view() -> None:
    mx = MaxSensitivity(n=1)
    with pytest.raises(MetricError, match="was not provided"):
        mx.score(torch.zeros(1, 2, 2), ctx_for(make_samples(1, 2, 2)))
    ctx = ctx_for(make_samples(1, 2, 2), views={mx.view_names()[0]: torch.zeros(2, 1, 2, 2)})
    with pytest.raises(MetricError, match="have shape"):
        mx.score(torch.zeros(1, 2, 2), ctx)


# ---- equivariance / invariance ------------------------------------------------------------------------------


def test_equivariance_hflip_hand_worked() -> None:
    eq = Equivariance(transforms="hflip")
    base = m22(1, 0, 0, 0)
    good = {"transform:hflip": m22(0, 1, 0, 0)}  # L(Tx) = T(L(x))
    bad = {"transform:hflip": m22(1, 0, 0, 0)}  # the map did not move
    assert eq.score(base, ctx_for(make_samples(1, 2, 2), views=good)).item() == pytest.approx(1.0)
    # Pearson of (0,1,0,0) and (1,0,0,0): cov −0.25 / var 0.75 = −1/3
    assert eq.score(base, ctx_for(make_samples(1, 2, 2), views=bad)).item() == pytest.approx(-1 / 3)
    mae = Equivariance(transforms="hflip", similarity="mae")
    assert mae.score(base, ctx_for(make_samples(1, 2, 2), views=bad)).item() == pytest.approx(0.5)


def test_equivariance_shift_ignores_the_vacated_band() -> None:
    eq = Equivariance(transforms=["shift=1"])
    base = torch.zeros(1, 4, 4)
    base[0, 1, 1] = 1.0
    view = torch.zeros(1, 4, 4)
    view[0, 2, 2] = 1.0  # moved by (1, 1)
    view[0, 0, :] = 0.9  # garbage in the band the shift vacated (row 0, column 0): not compared
    view[0, :, 0] = 0.9
    ctx = ctx_for(make_samples(1, 4, 4), views={"transform:shift=1": view})
    assert eq.score(base, ctx).item() == pytest.approx(1.0)
    mae = Equivariance(transforms=["shift=1"], similarity="mae")
    assert mae.score(base, ctx).item() == pytest.approx(1.0)


def test_geometric_transforms_of_inputs() -> None:
    x = torch.arange(16.0).view(1, 1, 4, 4)
    assert torch.equal(Transform("hflip", None).apply(x)[0, 0, 0], torch.tensor([3.0, 2, 1, 0]))
    assert torch.equal(Transform("rot90", None).apply(x), torch.rot90(x, 1, (-2, -1)))
    shifted = Transform("shift", 1).apply(x)
    assert shifted[0, 0, 1, 1] == x[0, 0, 0, 0] and shifted[0, 0, 0].abs().sum() == 0
    # scale 0.5 on 8x8: output pixel 2 samples input coordinate 0.5 (half-pixel centres) → mean of pixels 0, 1
    z = torch.rand(1, 1, 8, 8)
    half = Transform("scale", 0.5)
    out = half.apply(z)
    assert out[0, 0, 2, 2].item() == pytest.approx(z[0, 0, :2, :2].mean().item(), abs=1e-6)
    valid = half.valid(8, 8, torch.device("cpu"))
    assert valid.sum() == 16 and valid[2:6, 2:6].all()
    assert Transform("scale", 1.25).valid(8, 8, torch.device("cpu")).all()


def test_equivariance_views_and_size_checks() -> None:
    samples = make_samples(2, 8, 8)
    views = Equivariance(transforms="hflip,rot90,shift=2,scale=0.8").views(samples)
    assert list(views) == ["transform:hflip", "transform:rot90", "transform:shift=2", "transform:scale=0.8"]
    assert torch.equal(views["transform:hflip"], samples.images.flip(-1))
    with pytest.raises(MetricError, match="smaller than the image"):
        Equivariance(transforms="shift=8").views(samples)
    with pytest.raises(MetricError, match="square"):
        Equivariance(transforms="rot90").views(make_samples(1, 4, 6))


def test_default_transforms_and_parsing_errors() -> None:
    assert Equivariance().transforms == ("hflip", "shift=16")
    assert Invariance().transforms == ("brightness=0.1", "blur=1")
    assert "seed" not in Equivariance().params() and Invariance().params()["seed"] == 0
    for bad, msg in [
        ("twirl", "unknown transform"),
        ("hflip=2", "takes no value"),
        ("shift=x", "needs a number"),
        ("shift=1.5", "whole number"),
        ("scale=1", "bad value"),
        ("", "empty"),
    ]:
        with pytest.raises(MetricError, match=msg):
            parse_transforms(bad, {"hflip": None, "shift": 16, "scale": 0.8}, "equivariance")
    with pytest.raises(MetricError, match="unknown transform"):
        Invariance(transforms="hflip")
    with pytest.raises(MetricError, match="similarity"):
        Equivariance(similarity="ssim")


def test_invariance_hand_worked_and_photometric_views() -> None:
    inv = Invariance(transforms="brightness=0.1,noise=0.05", seed=3)
    samples = make_samples(1, 2, 2)
    views = inv.views(samples)
    assert list(views) == ["transform:brightness=0.1", "transform:noise=0.05,seed=3"]
    bright = views["transform:brightness=0.1"] * 0.25 + 0.5
    assert torch.allclose(bright, (samples.pixels + 0.1).clamp(0, 1), atol=1e-6)
    assert torch.equal(inv.views(samples)["transform:noise=0.05,seed=3"], views["transform:noise=0.05,seed=3"])
    base = m22(1, 0, 0, 0)
    ctx = ctx_for(
        samples, views={"transform:brightness=0.1": m22(1, 0, 0, 0), "transform:noise=0.05,seed=3": m22(0, 1, 0, 0)}
    )
    # mean of similarity 1 (unchanged) and −1/3 (moved)
    assert inv.score(base, ctx).item() == pytest.approx((1 - 1 / 3) / 2)
    contrast = Invariance(transforms="contrast=0.5").views(samples)["transform:contrast=0.5"] * 0.25 + 0.5
    px = samples.pixels
    assert torch.allclose(contrast, px.mean() + 0.5 * (px - px.mean()), atol=1e-6)


def test_equivariance_constant_maps_are_defined() -> None:
    eq = Equivariance(transforms="hflip")
    zeros = torch.zeros(1, 2, 2)
    ctx = ctx_for(make_samples(1, 2, 2), views={"transform:hflip": zeros})
    assert eq.score(zeros, ctx).item() == 0.0  # Pearson undefined → 0
    assert Equivariance(transforms="hflip", similarity="mae").score(zeros, ctx).item() == 1.0


def test_cached_metrics_do_not_touch_the_model() -> None:
    samples = make_samples(2, 8, 8)
    maps = random_maps(2, 8, 8)
    for metric in (Sparseness(), Complexity()):
        metric.score(maps, ctx_for(samples))  # StaticContext without a model: would raise if used
    assert {MaxSensitivity.cost, Equivariance.cost, Invariance.cost, Sparseness.cost} == {"cached"}
