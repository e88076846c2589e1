"""Ground-truth metrics: hand-worked values, tie rules, tolerance, empty masks."""

from __future__ import annotations

import math

import pytest
import torch
from metrics_helpers import ctx_for, make_samples, random_maps

from sycam.metrics import EnergyPointingGame, IoU, MaskAUC, MetricError, PointingGame
from sycam.metrics.localization import dilate_disk, roc_auc_rows


def top_left_mask(n: int = 1, h: int = 4, w: int = 4) -> torch.Tensor:
    m = torch.zeros(n, h, w, dtype=torch.bool)
    m[:, :2, :2] = True
    return m


def one_map(*pixels: tuple[int, int, float], h: int = 4, w: int = 4) -> torch.Tensor:
    m = torch.zeros(1, h, w)
    for y, x, v in pixels:
        m[0, y, x] = v
    return m


CTX = ctx_for(make_samples(1, masks=top_left_mask()))


def test_energy_pointing_game_hand_worked() -> None:
    # inside: 1 + 0.5 = 1.5 of a total 2.0
    maps = one_map((0, 0, 1.0), (1, 1, 0.5), (3, 3, 0.5))
    assert EnergyPointingGame().score(maps, CTX).item() == pytest.approx(0.75)


def test_energy_pointing_game_zero_and_constant_maps() -> None:
    assert EnergyPointingGame().score(torch.zeros(1, 4, 4), CTX).item() == 0.0
    # a constant map spreads its energy evenly: the mask's share of the image, 4 / 16
    assert EnergyPointingGame().score(torch.full((1, 4, 4), 0.3), CTX).item() == pytest.approx(0.25)


def test_pointing_game_hit_and_miss() -> None:
    pg = PointingGame(tolerance=0)
    assert pg.score(one_map((1, 0, 1.0), (3, 3, 0.5)), CTX).item() == 1.0
    assert pg.score(one_map((1, 0, 0.5), (3, 3, 1.0)), CTX).item() == 0.0


def test_pointing_game_tolerance_is_euclidean() -> None:
    # the maximum at (3, 3); the nearest mask pixel (1, 1) is sqrt(8) ≈ 2.83 px away
    maps = one_map((3, 3, 1.0))
    assert PointingGame(tolerance=2).score(maps, CTX).item() == 0.0
    assert PointingGame(tolerance=3).score(maps, CTX).item() == 1.0
    # (2, 0) is 1 px below the mask: a hit with any tolerance >= 1
    assert PointingGame(tolerance=1).score(one_map((2, 0, 1.0)), CTX).item() == 1.0


def test_pointing_game_ties() -> None:
    # maxima at (0, 3) (outside; raster index 3) and (1, 0) (inside; raster index 4)
    maps = one_map((0, 3, 1.0), (1, 0, 1.0))
    assert PointingGame(tolerance=0, ties="mean").score(maps, CTX).item() == 0.5
    assert PointingGame(tolerance=0, ties="any").score(maps, CTX).item() == 1.0
    assert PointingGame(tolerance=0, ties="first").score(maps, CTX).item() == 0.0
    maps = one_map((0, 0, 1.0), (3, 3, 1.0))
    assert PointingGame(tolerance=0, ties="first").score(maps, CTX).item() == 1.0


def test_pointing_game_constant_map_is_chance_level() -> None:
    const = torch.full((1, 4, 4), 0.7)
    assert PointingGame(tolerance=0).score(const, CTX).item() == pytest.approx(4 / 16)
    assert PointingGame(tolerance=0).score(torch.zeros(1, 4, 4), CTX).item() == pytest.approx(4 / 16)
    # with tolerance 1 the 2x2 mask grows by its 4-neighbours: 4 + 2 + 2 = 8 pixels
    assert PointingGame(tolerance=1).score(const, CTX).item() == pytest.approx(8 / 16)
    assert PointingGame(tolerance=0, ties="any").score(const, CTX).item() == 1.0


def test_dilate_disk_matches_brute_force() -> None:
    g = torch.Generator().manual_seed(3)
    masks = torch.rand(3, 13, 17, generator=g) > 0.93
    for r in (0, 1, 2, 3, 5, 20):
        got = dilate_disk(masks, r)
        ys, xs = torch.meshgrid(torch.arange(13), torch.arange(17), indexing="ij")
        want = torch.zeros_like(masks)
        for i in range(3):
            pts = masks[i].nonzero().float()
            if len(pts):
                d2 = (ys.reshape(-1, 1) - pts[:, 0]) ** 2 + (xs.reshape(-1, 1) - pts[:, 1]) ** 2
                want[i] = (d2 <= r * r).any(1).reshape(13, 17)
        assert torch.equal(got, want), r


def test_iou_hand_worked() -> None:
    # {L >= 0.5} = {(0,0), (0,1), (3,3)}; mask = 4 pixels; intersection 2, union 5
    maps = one_map((0, 0, 1.0), (0, 1, 0.5), (3, 3, 0.9), (2, 2, 0.49))
    assert IoU().score(maps, CTX).item() == pytest.approx(0.4)
    assert IoU(threshold=0.95).score(maps, CTX).item() == pytest.approx(1 / 4)
    assert IoU().score(torch.zeros(1, 4, 4), CTX).item() == 0.0
    assert IoU().score(torch.full((1, 4, 4), 0.5), CTX).item() == pytest.approx(4 / 16)


def test_mask_auc_hand_worked_with_ties() -> None:
    # positives {0.9, 0.4}, negatives {0.4, 0.1}: pairs 1 + 1 + 0.5 + 1 = 3.5 of 4
    samples = make_samples(1, 2, 2, masks=torch.tensor([[[True, True], [False, False]]]))
    maps = torch.tensor([[[0.9, 0.4], [0.4, 0.1]]])
    assert MaskAUC().score(maps, ctx_for(samples)).item() == pytest.approx(0.875)
    assert MaskAUC().score(torch.zeros(1, 2, 2), ctx_for(samples)).item() == 0.5
    assert MaskAUC().score(torch.full((1, 2, 2), 0.3), ctx_for(samples)).item() == 0.5


def test_roc_auc_rows_matches_pairwise_count() -> None:
    g = torch.Generator().manual_seed(1)
    scores = (torch.rand(5, 40, generator=g) * 4).round() / 4  # many ties
    labels = torch.rand(5, 40, generator=g) > 0.6
    got = roc_auc_rows(scores, labels)
    for i in range(5):
        pos, neg = scores[i][labels[i]], scores[i][~labels[i]]
        diff = pos.view(-1, 1) - neg.view(1, -1)
        want = ((diff > 0).float() + 0.5 * (diff == 0).float()).mean()
        assert got[i].item() == pytest.approx(want.item(), abs=1e-6)


def test_empty_or_full_masks_give_nan_in_score_and_an_error_in_evaluate() -> None:
    masks = torch.zeros(3, 4, 4, dtype=torch.bool)
    masks[0, :2, :2] = True
    masks[2] = True  # full mask: AUC undefined
    ctx = ctx_for(make_samples(3, masks=masks))
    maps = random_maps(3, 4, 4)
    for metric in (EnergyPointingGame(), PointingGame(), IoU(), MaskAUC()):
        s = metric.score(maps, ctx)
        assert math.isnan(s[1].item()), metric.name
        assert math.isnan(metric.aggregate(s).item())  # plain mean: nothing is skipped silently
        undefined = rf"metric {metric.name} is undefined \(NaN\) on \d image.*indices 1 have an empty"
        with pytest.raises(MetricError, match=undefined):
            metric.evaluate(maps, ctx)
    assert math.isnan(MaskAUC().score(maps, ctx)[2].item())
    ok = ctx_for(make_samples(2, masks=masks[[0, 2]]))
    with pytest.raises(MetricError, match=r"\(image indices 1\): image indices 1 have a mask covering the whole"):
        MaskAUC().evaluate(maps[[0, 2]], ok)
    # A degenerate map on the empty-mask image is a failure first: worst value, no error.
    maps[1] = 0.0
    assert EnergyPointingGame().evaluate(maps, ctx)[1].item() == 0.0


def test_localization_needs_masks() -> None:
    ctx = ctx_for(make_samples(1))
    for metric in (EnergyPointingGame(), PointingGame(), IoU(), MaskAUC()):
        with pytest.raises(MetricError, match="needs ground-truth masks"):
            metric.score(torch.zeros(1, 4, 4), ctx)


def test_bad_parameters() -> None:
    with pytest.raises(MetricError, match="ties"):
        PointingGame(ties="random")
    with pytest.raises(MetricError, match="tolerance"):
        PointingGame(tolerance=-1)
    with pytest.raises(MetricError, match="tolerance"):
        PointingGame(tolerance=1.5)  # type: ignore[arg-type]
    with pytest.raises(MetricError, match="threshold"):
        IoU(threshold=0)
    with pytest.raises(MetricError, match="threshold"):
        IoU(threshold=1.5)


def test_hit_region_is_memoized_and_follows_in_place_changes() -> None:
    masks = top_left_mask()
    pg = PointingGame(tolerance=1)
    a = pg.hit_region(masks)
    assert pg.hit_region(masks) is a
    masks[0, 3, 3] = True  # in-place edit bumps the tensor version
    assert pg.hit_region(masks)[0, 3, 3]
