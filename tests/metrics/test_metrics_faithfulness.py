"""Faithfulness metrics (cost="model"): hand-worked values with a model computable on paper, batching of
model calls, memoization of the candidate-independent passes."""

from __future__ import annotations

import math
import pickle

import pytest
import torch
from metrics_helpers import PoolNet, channel_mean_explainer, ctx_for, make_samples, mean_logit_model, random_maps

from sycam.metrics import (
    ADCC,
    AverageDrop,
    DeletionAUC,
    IncreaseInConfidence,
    InsertionAUC,
    MetricError,
    StaticContext,
)
from sycam.metrics.faithfulness import harmonic3


def ones_samples(label: int = 0, h: int = 2, w: int = 2) -> object:
    return make_samples(1, h, w, images=torch.ones(1, 3, h, w), labels=[label])


class CountingModel:
    """Wraps a model and records the batch size of every call."""

    def __init__(self, model: object) -> None:
        self.model = model
        self.calls: list[int] = []

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        self.calls.append(x.shape[0])
        return self.model(x)  # type: ignore[operator]


# ---- Average Drop / Increase in Confidence ------------------------------------------------------------------


def test_average_drop_hand_worked_logit_and_prob() -> None:
    # model input all ones: y = mean = 1 (logit of class 0); x ⊙ L with L = 0.5 → o = 0.5
    ctx = ctx_for(ones_samples(), model=mean_logit_model)
    half = torch.full((1, 2, 2), 0.5)
    assert AverageDrop(output="logit").score(half, ctx).item() == pytest.approx(0.5)
    y, o = torch.sigmoid(torch.tensor(2.0)), torch.sigmoid(torch.tensor(1.0))  # softmax of (m, −m): σ(2m)
    assert AverageDrop().score(half, ctx).item() == pytest.approx(((y - o) / y).item(), rel=1e-6)
    assert AverageDrop().score(torch.ones(1, 2, 2), ctx).item() == 0.0
    # L = (1, 0, 0, 1): o = 0.5 as well
    two = torch.tensor([[[1.0, 0.0], [0.0, 1.0]]])
    assert AverageDrop(output="logit").score(two, ctx).item() == pytest.approx(0.5)


def test_increase_in_confidence_hand_worked() -> None:
    # class 1 has logit −mean: masking by 0.5 raises it from −1 to −0.5 → an increase, no drop
    ctx = ctx_for(ones_samples(label=1), model=mean_logit_model)
    half = torch.full((1, 2, 2), 0.5)
    assert IncreaseInConfidence().score(half, ctx).item() == 1.0
    assert AverageDrop(output="logit").score(half, ctx).item() == 0.0
    # equal confidence is not an increase
    assert IncreaseInConfidence().score(torch.ones(1, 2, 2), ctx).item() == 0.0


def test_pixel_space_masking() -> None:
    # pixels = 0.75 everywhere (helper normalization: mean 0.5, std 0.25 → model input 1)
    ctx = ctx_for(ones_samples(), model=mean_logit_model)
    zero = torch.zeros(1, 2, 2)
    # 'input': x ⊙ 0 = 0 → logit 0; 'pixels': black image → model input (0 − 0.5)/0.25 = −2
    assert AverageDrop(output="logit", space="input").score(zero, ctx).item() == pytest.approx(1.0)
    assert AverageDrop(output="logit", space="pixels").score(zero, ctx).item() == pytest.approx(3.0)


def test_clean_pass_is_memoized_per_context() -> None:
    counting = CountingModel(PoolNet())
    samples = make_samples(3, 6, 6)
    ctx = ctx_for(samples, model=counting)
    metric = AverageDrop()
    metric.score(random_maps(2, 3, 6, 6), ctx)
    assert sum(counting.calls) == 3 + 6  # clean once + one per (candidate, image)
    metric.score(random_maps(4, 3, 6, 6, seed=1), ctx)
    assert sum(counting.calls) == 3 + 6 + 12  # the clean pass is not repeated
    metric.score(random_maps(1, 3, 6, 6, seed=2), ctx_for(samples, model=counting))  # a new context: recomputed
    assert sum(counting.calls) == 3 + 6 + 12 + 3 + 3


def test_masked_inputs_are_forwarded_once_per_image_and_map() -> None:
    counting = CountingModel(PoolNet())
    samples = make_samples(3, 6, 6)
    ctx = ctx_for(samples, model=counting)
    metric = AverageDrop()
    maps = random_maps(2, 3, 6, 6)
    maps[1, 0] = maps[0, 0]  # candidate 1 equals candidate 0 on image 0 only
    maps[1, 1] = maps[0, 2]  # the same map on another image is another masked input
    first = metric.score(maps, ctx)
    assert sum(counting.calls) == 3 + 5  # clean + 6 (candidate, image) pairs, one of them shared
    assert first[1, 0] == first[0, 0]
    again = metric.score(maps.flip(0), ctx)  # every pair scored before: no forward
    assert sum(counting.calls) == 3 + 5 and torch.equal(again, first.flip(0))
    # the same numbers as scoring each candidate alone in a fresh context
    for b in range(2):
        alone = AverageDrop().score(maps[b:b + 1], ctx_for(samples, model=PoolNet()))
        assert torch.equal(alone[0], first[b])


def test_contexts_sharing_a_memo_key_share_the_clean_pass() -> None:
    counting = CountingModel(PoolNet())
    samples = make_samples(3, 6, 6)
    owner = CountingModel(None)  # any weakly referable object standing for (model, samples)
    metric = DeletionAUC(steps=3)
    for seed in range(2):  # e.g. the engine's fresh context per candidate chunk
        ctx = ctx_for(samples, model=counting)
        ctx.memo_key = owner  # type: ignore[attr-defined]
        metric.score(random_maps(1, 3, 6, 6, seed=seed), ctx)
    assert counting.calls == [3, 3, 6, 6]  # clean + all-baseline once, then 3 images × 2 interior steps each
    ctx = ctx_for(samples, model=counting)
    ctx.memo_key = owner  # type: ignore[attr-defined]
    metric.score(random_maps(1, 3, 6, 6, seed=1) ** 3, ctx)  # same ranking as seed 1: every point is known
    assert counting.calls == [3, 3, 6, 6]


# ---- deletion / insertion ---------------------------------------------------------------------------------


def curve_samples() -> object:
    # pixel values (all channels) 4, 0 / 2, 2 in model input space; logit of class 0 = their mean
    x = torch.tensor([[4.0, 0.0], [2.0, 2.0]]).expand(1, 3, 2, 2).contiguous()
    return make_samples(1, 2, 2, images=x)


RANKING = torch.tensor([[[0.9, 0.1], [0.5, 0.3]]])  # order: (0,0)=4, (1,0)=2, (1,1)=2, (0,1)=0


def test_deletion_hand_worked() -> None:
    ctx = ctx_for(curve_samples(), model=mean_logit_model)
    metric = DeletionAUC(steps=4, output="logit")
    fractions, curve = metric.curves(RANKING, ctx)
    assert fractions.tolist() == [0, 0.25, 0.5, 0.75, 1]
    assert curve[0].tolist() == pytest.approx([2, 1, 0.5, 0, 0])
    # trapezoid: 0.25 · (1.5 + 0.75 + 0.25 + 0)
    assert metric.score(RANKING, ctx).item() == pytest.approx(0.625)
    # two steps: curve (2, 0.5, 0) → 0.5 · (1.25 + 0.25)
    assert DeletionAUC(steps=2, output="logit").score(RANKING, ctx).item() == pytest.approx(0.75)
    # the 'mean' baseline replaces pixels by the per-channel mean 2: curve (2, 1.5, 1.5, 1.5, 2)
    mean_base = DeletionAUC(steps=4, output="logit", baseline="mean")
    assert mean_base.score(RANKING, ctx).item() == pytest.approx(0.25 * (1.75 + 1.5 + 1.5 + 1.75))


def test_insertion_hand_worked() -> None:
    ctx = ctx_for(curve_samples(), model=mean_logit_model)
    metric = InsertionAUC(steps=4, output="logit", baseline="zero")
    _, curve = metric.curves(RANKING, ctx)
    assert curve[0].tolist() == pytest.approx([0, 1, 1.5, 2, 2])
    assert metric.score(RANKING, ctx).item() == pytest.approx(0.25 * (0.5 + 1.25 + 1.75 + 2))


def test_curve_ties_keep_raster_order() -> None:
    ctx = ctx_for(curve_samples(), model=mean_logit_model)
    _, curve = DeletionAUC(steps=4, output="logit").curves(torch.zeros(1, 2, 2), ctx)
    # deleted in raster order: 4, 0, 2, 2 → means 2, 1, 1, 0.5, 0
    assert curve[0].tolist() == pytest.approx([2, 1, 1, 0.5, 0])


def test_baselines() -> None:
    samples = make_samples(2, 8, 8, seed=2)
    assert DeletionAUC(baseline="zero").baseline_images(samples).abs().sum() == 0
    black = DeletionAUC(baseline="black").baseline_images(samples)
    assert torch.allclose(black, torch.full_like(black, -2.0))  # (0 − 0.5) / 0.25
    mean = DeletionAUC(baseline="mean").baseline_images(samples)
    assert torch.allclose(mean[:, :, 3, 5], samples.images.mean((-2, -1)))
    blur = InsertionAUC().baseline_images(samples)
    assert blur.shape == samples.images.shape
    assert blur.std() < samples.images.std() * 0.6
    assert torch.allclose(blur.mean((-2, -1)), samples.images.mean((-2, -1)), atol=0.2)


def test_curves_batch_candidates_images_and_steps_into_chunked_calls() -> None:
    counting = CountingModel(PoolNet())
    samples = make_samples(3, 8, 8)
    ctx = StaticContext(samples, model=counting, batch_size=1000)
    metric = DeletionAUC(steps=5)
    maps = random_maps(2, 3, 8, 8)
    metric.score(maps, ctx)
    # clean (3) + all-baseline end (3) memoized; then 2 candidates × 3 images × 4 interior steps in one call
    assert counting.calls == [3, 3, 24]
    metric.score(maps, ctx)
    assert counting.calls == [3, 3, 24]  # the same maps again: every perturbed input was already scored
    metric.score(random_maps(2, 3, 8, 8, seed=9), ctx)
    assert counting.calls == [3, 3, 24, 24]


def test_deletion_insertion_directions_with_a_faithful_map() -> None:
    # a model that only looks at the top-left quadrant; the map that ranks that quadrant first is faithful
    def quadrant_model(x: torch.Tensor) -> torch.Tensor:
        m = x[:, :, :4, :4].mean((1, 2, 3))
        return torch.stack([m, -m], 1)

    samples = make_samples(1, 8, 8, images=torch.full((1, 3, 8, 8), 2.0))
    ctx = ctx_for(samples, model=quadrant_model)
    good = torch.zeros(1, 8, 8)
    good[0, :4, :4] = 1
    bad = 1 - good
    assert DeletionAUC(steps=8).score(good, ctx) < DeletionAUC(steps=8).score(bad, ctx)
    insertion = InsertionAUC(steps=8, baseline="zero")
    assert insertion.score(good, ctx) > insertion.score(bad, ctx)


def test_curve_parameter_checks() -> None:
    with pytest.raises(MetricError, match="steps"):
        DeletionAUC(steps=0)
    with pytest.raises(MetricError, match="baseline"):
        InsertionAUC(baseline="noise")
    with pytest.raises(MetricError, match="output"):
        DeletionAUC(output="probability")
    ctx = ctx_for(curve_samples(), model=mean_logit_model)
    with pytest.raises(MetricError, match="exceeds the number of pixels"):
        DeletionAUC(steps=5).score(RANKING, ctx)
    with pytest.raises(MetricError, match="needs a model"):
        DeletionAUC(steps=2).score(RANKING, ctx_for(curve_samples()))


# ---- ADCC ---------------------------------------------------------------------------------------------------


def test_harmonic3() -> None:
    assert harmonic3(torch.tensor(1.0), torch.tensor(0.5), torch.tensor(0.5)).item() == pytest.approx(0.6)
    assert harmonic3(torch.tensor(0.0), torch.tensor(0.5), torch.tensor(0.5)).item() == 0.0


def test_adcc_hand_worked() -> None:
    # all-ones input; the explainer returns the normalized channel mean, so CAM(x ⊙ L) = L → ρ = 1, Coh = 1
    # L = (1, 0, 0, 1): Com = 0.5; logit y = 1, o = 0.5 → AD = 0.5; ADCC = 3 / (1 + 2 + 2) = 0.6
    ctx = ctx_for(ones_samples(), model=mean_logit_model, explainer=channel_mean_explainer)
    maps = torch.tensor([[[1.0, 0.0], [0.0, 1.0]]])
    parts = ADCC(output="logit").components(maps, ctx)
    assert parts["coherency"].item() == pytest.approx(1.0)
    assert parts["complexity"].item() == pytest.approx(0.5)
    assert parts["average_drop"].item() == pytest.approx(0.5)
    assert parts["adcc"].item() == pytest.approx(0.6)


def test_adcc_coherency_is_rescaled_pearson() -> None:
    g = torch.Generator().manual_seed(5)
    samples = make_samples(2, 5, 5, seed=5)
    maps = torch.rand(2, 5, 5, generator=g)
    other = torch.rand(2, 5, 5, generator=g)
    ctx = ctx_for(samples, model=PoolNet(), explainer=lambda images: other.expand(*images.shape[:-3], 5, 5))
    coh = ADCC().components(maps, ctx)["coherency"]
    for i in range(2):
        rho = torch.corrcoef(torch.stack([maps[i].flatten(), other[i].flatten()]))[0, 1]
        assert coh[i].item() == pytest.approx(((rho + 1) / 2).item(), abs=1e-6)


def test_adcc_inverse_explanation_and_constant_maps_score_zero() -> None:
    ctx = ctx_for(ones_samples(), model=mean_logit_model, explainer=lambda im: 1 - channel_mean_explainer(im))
    maps = torch.tensor([[[1.0, 0.0], [0.0, 0.5]]])
    assert ADCC().score(maps, ctx).item() == 0.0  # ρ = −1 → coherency 0
    ctx = ctx_for(ones_samples(), model=mean_logit_model, explainer=channel_mean_explainer)
    for const in (torch.zeros(1, 2, 2), torch.full((1, 2, 2), 0.5)):
        s = ADCC().score(const, ctx)
        assert s.item() == 0.0 and not math.isnan(s.item())


def test_adcc_checks_the_explainer_output() -> None:
    ctx = ctx_for(ones_samples(), model=mean_logit_model, explainer=lambda im: torch.zeros(3, 3))
    with pytest.raises(MetricError, match=r"ctx\.explain returned"):
        ADCC().score(torch.ones(1, 2, 2), ctx)
    with pytest.raises(MetricError, match="no explainer"):
        ADCC().score(torch.ones(1, 2, 2), ctx_for(ones_samples(), model=mean_logit_model))


# ---- exact sharing of perturbed forwards and the equivalence key -------------------------------------------


@pytest.mark.parametrize("cls", [DeletionAUC, InsertionAUC])
def test_shared_perturbed_forwards_give_the_same_scores_with_fewer_forwards(cls: type) -> None:
    samples = make_samples(3, 8, 8, labels=[0, 1, 2], seed=2)
    base = random_maps(3, 8, 8, seed=3)
    maps = torch.stack([base, base.sqrt(), random_maps(3, 8, 8, seed=4), base * 0.5, base]).contiguous()
    maps[2, 1] = base[1]  # one image shared with another candidate
    counting = CountingModel(PoolNet())
    metric = cls(steps=4, blur_sigma=1.0)
    got = metric.score(maps, ctx_for(samples, model=counting))
    # Interior points: candidates 0, 1, 3, 4 and image 1 of candidate 2 share their sets: 3 + 2 images x 3 steps.
    assert sum(counting.calls) == 3 + 3 + (3 + 2) * 3
    for b in range(maps.shape[0]):  # each candidate alone, with a fresh metric: the same scores
        alone = cls(steps=4, blur_sigma=1.0).score(maps[b], ctx_for(samples, model=PoolNet()))
        torch.testing.assert_close(got[b], alone, rtol=1e-6, atol=1e-6)  # batch composition: float rounding


def test_equivalence_key_is_the_step_bin_per_pixel() -> None:
    metric = DeletionAUC(steps=4)
    m = torch.tensor([[[0.9, 0.1], [0.5, 0.5]]])  # ranks: 0.9 -> 0, 0.5 (raster first) -> 1, 0.5 -> 2, 0.1 -> 3
    # counts c_k = k * 4 / 4 = k: rank r is perturbed at step r + 1
    assert metric.equivalence_key(m).tolist() == [[1, 4, 2, 3]]
    maps = torch.stack([m, m**2, 1 - m, torch.zeros_like(m)])
    key = metric.equivalence_key(maps)
    assert torch.equal(key[0], key[1]) and not torch.equal(key[0], key[2])
    assert key[3].tolist() == [[0, 0, 0, 0]]  # degenerate: scored worst, never equal to a real map's key
    assert AverageDrop().equivalence_key(maps) is None
    samples = make_samples(1, 2, 2, seed=1)
    ctx = ctx_for(samples, model=PoolNet())
    s = metric.evaluate(maps, ctx)
    assert s[0].item() == s[1].item() and s[3].item() == 1.0


def test_curve_metrics_pickle_without_their_scratch_buffer() -> None:
    metric = DeletionAUC(steps=2)
    metric.score(random_maps(1, 2, 4, 4), ctx_for(make_samples(2, 4, 4), model=PoolNet()))
    assert metric._buf is not None
    again = pickle.loads(pickle.dumps(metric))
    assert again._buf is None and again.params() == metric.params()
