"""Exact low-resolution scoring: the resize as matrices, the extremes on the subgrid, and every metric with
``lowres`` equal to the full-resolution path (``heatmap.finish`` then ``evaluate``) within 1e-5."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from metrics_helpers import make_samples

from sycam.data.samples import Samples
from sycam.heatmap import finish, normalize
from sycam.metrics import METRICS, StaticContext, get_metric
from sycam.metrics.lowres import extreme_rows, full_maps, resize_for, resize_matrix

SIZES = [((7, 7), (224, 224)), ((14, 14), (224, 224)), ((5, 9), (37, 61)), ((3, 4), (3, 4)), ((7, 7), (8, 8))]
LOWRES = {"energy_pointing_game", "pointing_game", "complexity", "max_sensitivity", "avg_sensitivity", "invariance"}


class LayerContext(StaticContext):
    """A StaticContext that also hands out the candidates' layer maps on each view."""

    def __init__(self, samples: Samples, views: dict[str, torch.Tensor], layer_views: dict[str, torch.Tensor]) -> None:
        super().__init__(samples, views=views)
        self._layer_views = layer_views

    def view_layer_maps(self, view: str) -> torch.Tensor:
        return self._layer_views[view]


def raw_maps(*shape: int, seed: int) -> torch.Tensor:
    """Raw saliency with negative parts (so relu makes flat zero regions), a constant and an all-negative map."""
    g = torch.Generator().manual_seed(seed)
    raw = torch.randn(*shape, generator=g) + 0.3
    flat = raw.reshape(-1, *shape[-2:])
    flat[0] = 0.7  # constant: degenerate
    if flat.shape[0] > 2:
        flat[2] = -flat[2].abs()  # all-negative: zero after relu, degenerate
    if flat.shape[0] > 4:
        flat[4, 0, 0] = 50.0  # one peak
    return raw


def box_masks(n: int, size: tuple[int, int], seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    h, w = size
    masks = torch.zeros(n, h, w, dtype=torch.bool)
    for i in range(n):
        y0, x0 = (
            int(torch.randint(0, max(1, h - 2), (1,), generator=g)),
            int(torch.randint(0, max(1, w - 2), (1,), generator=g)),
        )
        y1 = y0 + 1 + int(torch.randint(0, h - y0, (1,), generator=g))
        x1 = x0 + 1 + int(torch.randint(0, w - x0, (1,), generator=g))
        masks[i, y0:y1, x0:x1] = True
        if bool(masks[i].all()):
            masks[i, 0, 0] = False
    return masks


def test_resize_matrix_is_torchs_bilinear_resize() -> None:
    g = torch.Generator().manual_seed(0)
    for (h, w), (hh, ww) in [*SIZES, ((9, 9), (4, 5))]:
        m = torch.rand(3, h, w, generator=g, dtype=torch.float64)
        want = F.interpolate(m[:, None], size=(hh, ww), mode="bilinear", align_corners=False)[:, 0]
        got = resize_matrix(h, hh) @ m @ resize_matrix(w, ww).T
        torch.testing.assert_close(got, want, rtol=0, atol=1e-12)


@pytest.mark.parametrize(("small", "size"), [*SIZES, ((9, 9), (4, 5)), ((1, 6), (10, 30))])
def test_extremes_of_the_upsampled_map_lie_on_the_subgrid(small: tuple[int, int], size: tuple[int, int]) -> None:
    g = torch.Generator().manual_seed(1)
    m = torch.rand(20, *small, generator=g, dtype=torch.float64)
    m[0] = 0.0
    m[1] = torch.relu(m[1] - 0.8)  # mostly flat
    m[2, small[0] // 2, small[1] // 2] = 5.0  # an interior peak: the max is not at any output pixel centre
    rz = resize_for(m, size)
    up = F.interpolate(m[:, None], size=size, mode="bilinear", align_corners=False)[:, 0].flatten(-2)
    lo, hi = rz.extremes(m)
    torch.testing.assert_close(lo, up.amin(-1), rtol=0, atol=1e-12)
    torch.testing.assert_close(hi, up.amax(-1), rtol=0, atol=1e-12)
    assert len(rz.rows) <= 2 * small[0] + 2 and len(rz.cols) <= 2 * small[1] + 2


def test_upsampling_is_injective_so_degenerate_layer_maps_are_exactly_the_degenerate_full_maps() -> None:
    # U has full column rank (and rows summing to 1): U_h m U_w^T is constant only if m is.
    for h in range(1, 24):
        for big in (h, h + 1, 2 * h + 1, 3 * h, 224):
            if big >= h:
                assert torch.linalg.svdvals(resize_matrix(h, big)).min() > 1e-3, (h, big)


def test_subgrid_of_7_to_224_by_hand() -> None:
    # Output row i samples input position y_i = (i + 0.5) * 7/224 - 0.5, clamped at 0. Rows 0..47 read input
    # rows 0 and 1 (rows 0..15 clamped to y = 0, the smallest weight on row 1; row 47 at y = 0.984, the
    # largest); rows 48..79 read rows 1 and 2 (y = 1.016 .. 1.984); ...; rows 208..223 read row 6 alone.
    rows = extreme_rows(resize_matrix(7, 224)).tolist()
    assert rows == [0, 47, 48, 79, 80, 111, 112, 143, 144, 175, 176, 207, 208]


@pytest.mark.parametrize(("small", "size"), SIZES)
@pytest.mark.parametrize("name", sorted(LOWRES))
def test_lowres_equals_full_resolution_on_random_maps(name: str, small: tuple[int, int], size: tuple[int, int]) -> None:
    metric = get_metric(name, **({"n": 2} if "sensitivity" in name else {}))
    assert metric.lowres
    n, lead = 6, (3,)
    samples = make_samples(n, *size, masks=box_masks(n, size, seed=2), seed=3)
    raw = raw_maps(*lead, n, *small, seed=4)
    layer = normalize(torch.relu(raw))
    full = finish(raw, size)
    names = list(metric.views(samples))
    view_raw = {v: raw + 0.4 * raw_maps(*lead, n, *small, seed=10 + i) for i, v in enumerate(names)}
    if names:  # a view map with a NaN and one that is constant
        view_raw[names[0]][0, 1, 0, 0] = float("nan")
        view_raw[names[-1]][1, 3] = 2.0
    ctx = LayerContext(
        samples,
        views={v: finish(r, size) for v, r in view_raw.items()},
        layer_views={v: normalize(torch.relu(r)) for v, r in view_raw.items()},
    )
    want = metric.evaluate(full, ctx)
    got = metric.evaluate_lowres(layer, size, ctx)
    assert got.shape == want.shape == (*lead, n)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
    assert (got[0, 0] == metric.worst()) and (got[0, 2] == metric.worst())  # constant and all-negative raw maps


def test_lowres_on_demo_boxes() -> None:
    from sycam.data import demo_scenes

    scenes = demo_scenes(224)[:6]
    masks = torch.zeros(len(scenes), 224, 224, dtype=torch.bool)
    for i, sc in enumerate(scenes):
        x1, y1, x2, y2 = sc.objects[0][2]
        masks[i, y1:y2, x1:x2] = True
    images = torch.stack([torch.from_numpy(sc.image.copy()).permute(2, 0, 1).float() / 255 for sc in scenes])
    samples = Samples(images=images, labels=torch.zeros(len(scenes), dtype=torch.long), masks=masks)
    # Demo-like raw maps: 7x7 and 14x14, smooth blobs near each box plus noise.
    for small in ((7, 7), (14, 14)):
        g = torch.Generator().manual_seed(5)
        box_small = F.interpolate(masks[:, None].float(), size=small, mode="area")[:, 0]
        raw = (box_small + 0.5 * torch.randn(4, len(scenes), *small, generator=g)) - 0.2
        for name in ("energy_pointing_game", "complexity"):
            metric = get_metric(name)
            ctx = StaticContext(samples)
            want = metric.evaluate(finish(raw, (224, 224)), ctx)
            got = metric.evaluate_lowres(normalize(torch.relu(raw)), (224, 224), ctx)
            torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", sorted(set(METRICS) - LOWRES))
def test_metrics_without_lowres_fall_back_to_full_maps(name: str) -> None:
    metric = get_metric(name)
    assert not metric.lowres
    samples = make_samples(2, 32, 32, masks=box_masks(2, (32, 32), seed=1), seed=1)
    raw = raw_maps(2, 4, 4, seed=3)[:, :2]
    layer = normalize(torch.relu(raw))
    if metric.cost == "model" or metric.views(samples):
        return  # needs a model or views; the fallback is the same call either way
    ctx = StaticContext(samples)
    want = metric.evaluate(finish(raw, (32, 32)), ctx)
    torch.testing.assert_close(metric.evaluate_lowres(layer, (32, 32), ctx), want)


def test_full_maps_is_the_second_half_of_finish() -> None:
    raw = raw_maps(2, 5, 7, 7, seed=8)
    torch.testing.assert_close(full_maps(normalize(torch.relu(raw)), (50, 60)), finish(raw, (50, 60)), rtol=0, atol=0)


def test_invariance_with_mae_or_without_layer_views_renders_full_maps() -> None:
    samples = make_samples(3, 32, 32, seed=1)
    raw = raw_maps(3, 4, 4, seed=2)
    for similarity in ("pearson", "mae"):
        metric = get_metric("invariance", similarity=similarity, transforms="brightness,noise")
        view_raw = {v: raw + 0.3 * raw_maps(3, 4, 4, seed=20 + i) for i, v in enumerate(metric.views(samples))}
        views = {v: finish(r, (32, 32)) for v, r in view_raw.items()}
        want = metric.evaluate(finish(raw, (32, 32)), StaticContext(samples, views=views))
        layer = normalize(torch.relu(raw))
        got = metric.evaluate_lowres(layer, (32, 32), StaticContext(samples, views=views))
        torch.testing.assert_close(got, want)
        layer_views = {v: normalize(torch.relu(r)) for v, r in view_raw.items()}
        got = metric.evaluate_lowres(layer, (32, 32), LayerContext(samples, views, layer_views))
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


def test_sensitivity_without_layer_views_renders_full_maps() -> None:
    metric = get_metric("avg_sensitivity", n=2)
    samples = make_samples(3, 32, 32, seed=1)
    raw = raw_maps(3, 4, 4, seed=2)
    views = {
        v: finish(raw + 0.3 * raw_maps(3, 4, 4, seed=20 + i), (32, 32)) for i, v in enumerate(metric.views(samples))
    }
    ctx = StaticContext(samples, views=views)
    want = metric.evaluate(finish(raw, (32, 32)), ctx)
    torch.testing.assert_close(metric.evaluate_lowres(normalize(torch.relu(raw)), (32, 32), ctx), want)


def test_projected_masks_are_memoized_per_context() -> None:
    metric = get_metric("energy_pointing_game")
    samples = make_samples(2, 56, 56, masks=box_masks(2, (56, 56), seed=1), seed=1)
    ctx = StaticContext(samples)
    layer = normalize(torch.relu(raw_maps(2, 7, 7, seed=1)))
    metric.evaluate_lowres(layer, (56, 56), ctx)
    first = metric._projected._value
    metric.evaluate_lowres(layer * 0.5 + 0.1, (56, 56), ctx)
    assert metric._projected._value is first


def peaky_raw(*shape: int, seed: int) -> torch.Tensor:
    """Raw maps whose maxima fall everywhere: borders, corners, interior, ties between two cells."""
    raw = raw_maps(*shape, seed=seed)
    flat = raw.reshape(-1, *shape[-2:])
    h, w = shape[-2:]
    spots = [(0, 0), (h - 1, w - 1), (0, w - 1), (h - 1, 0), (h // 2, w // 2), (0, w // 2), (h // 2, w - 1)]
    for k in range(5, flat.shape[0]):
        y, x = spots[k % len(spots)]
        flat[k, y, x] = 10.0 + k
        if k % 4 == 0:  # an exact tie between two cells: a near-tie, rendered at full resolution
            flat[k, (y + 2) % h, (x + 3) % w] = 10.0 + k
    return raw


@pytest.mark.parametrize("ties", ["mean", "any", "first"])
@pytest.mark.parametrize(
    ("small", "size", "tolerance"),
    [
        ((7, 7), (224, 224), 15),
        ((14, 14), (224, 224), 0),
        ((5, 9), (37, 61), 3),
        ((7, 7), (21, 21), 1),
        ((3, 4), (3, 4), 0),
        ((7, 7), (8, 8), 1),
    ],
)
def test_pointing_game_lowres_equals_full_resolution(
    ties: str, small: tuple[int, int], size: tuple[int, int], tolerance: int
) -> None:
    n, lead = 6, (4,)
    samples = make_samples(n, *size, masks=box_masks(n, size, seed=2), seed=3)
    raw = peaky_raw(*lead, n, *small, seed=4)
    metric = get_metric("pointing_game", tolerance=tolerance, ties=ties)
    ctx = StaticContext(samples)
    want = metric.evaluate(finish(raw, size), ctx)
    got = metric.evaluate_lowres(normalize(torch.relu(raw)), size, ctx)
    torch.testing.assert_close(got, want, rtol=0, atol=1e-6)
    assert metric._fallbacks < 0.5 * raw[..., 0, 0].numel()  # most images need no full-resolution map
