"""Cross-checks against independent implementations used as test oracles: Quantus (localisation,
sparseness, max/avg sensitivity), torchcam (Average Drop, Increase in Confidence, deletion/insertion) and
pytorch-grad-cam (absolute drop in confidence, L1 complexity, coherency). Where definitions differ the test
states the relation to our written formula."""

from __future__ import annotations

from contextlib import contextmanager
from functools import partial
from typing import Any

import numpy as np
import pytest
import torch
from metrics_helpers import PoolNet, channel_mean_explainer, ctx_for, make_samples, random_maps

from sycam.metrics import (
    ADCC,
    AverageDrop,
    AvgSensitivity,
    Complexity,
    DeletionAUC,
    EnergyPointingGame,
    IncreaseInConfidence,
    InsertionAUC,
    MaskAUC,
    MaxSensitivity,
    PointingGame,
    Sparseness,
    StaticContext,
)

quantus = pytest.importorskip("quantus")

N, H, W = 4, 12, 12
QUIET = {"disable_warnings": True, "display_progressbar": False}


def masks() -> torch.Tensor:
    g = torch.Generator().manual_seed(11)
    m = torch.zeros(N, H, W, dtype=torch.bool)
    for i in range(N):
        y, x = torch.randint(0, H - 4, (2,), generator=g).tolist()
        m[i, y : y + 3 + i, x : x + 4] = True
    return m


SAMPLES = make_samples(N, H, W, masks=masks(), labels=[0, 1, 2, 1], seed=12)
MODEL = PoolNet(seed=1)


def quantus_scores(metric: Any, maps: torch.Tensor, **kw: Any) -> np.ndarray:
    out = metric(
        model=MODEL,
        x_batch=SAMPLES.images.numpy(),
        y_batch=SAMPLES.labels.numpy(),
        a_batch=maps[:, None].numpy(),
        s_batch=SAMPLES.masks.numpy()[:, None].astype(np.float32),
        channel_first=True,
        batch_size=N,
        **kw,
    )
    return np.asarray(out, dtype=np.float64)


def quantized(seed: int) -> torch.Tensor:
    """Maps with many tied values (and a flat top), like upsampled CAMs."""
    return (random_maps(N, H, W, seed=seed) * 4).round() / 4


def pointing_maps(seed: int, ties: bool) -> torch.Tensor:
    """Half of the maps get a boost inside the ground truth, so that there are hits and misses."""
    maps = quantized(seed) if ties else random_maps(N, H, W, seed=seed)
    boost = SAMPLES.masks.clone()
    boost[1::2] = False
    return (maps + 0.75 * boost) / 1.75


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_pointing_game_matches_quantus(seed: int) -> None:
    ctx = ctx_for(SAMPLES)
    maps = pointing_maps(seed, ties=False)
    q = quantus_scores(quantus.PointingGame(**QUIET), maps)
    assert 0 < q.sum() < N
    np.testing.assert_array_equal(PointingGame(tolerance=0).score(maps, ctx).numpy(), q)
    # with ties Quantus counts a hit if *any* maximum is inside: our ties="any"
    maps = pointing_maps(seed, ties=True)
    q = quantus_scores(quantus.PointingGame(**QUIET), maps)
    np.testing.assert_array_equal(PointingGame(tolerance=0, ties="any").score(maps, ctx).numpy(), q)


def test_energy_pointing_game_matches_quantus_mass_accuracy_and_attribution_localisation() -> None:
    maps = random_maps(N, H, W, seed=3) ** 3
    ours = EnergyPointingGame().score(maps, ctx_for(SAMPLES)).numpy()
    rma = quantus_scores(quantus.RelevanceMassAccuracy(**QUIET), maps)
    np.testing.assert_allclose(ours, rma, rtol=1e-5)
    al = quantus_scores(quantus.AttributionLocalisation(max_size=1.0, **QUIET), maps)
    np.testing.assert_allclose(ours, al, rtol=1e-5)  # Quantus adds 1e-9 to the denominator


@pytest.mark.parametrize("maps", [random_maps(N, H, W, seed=4), quantized(5)], ids=["continuous", "ties"])
def test_mask_auc_matches_quantus_and_sklearn(maps: torch.Tensor) -> None:
    from sklearn.metrics import roc_auc_score

    ours = MaskAUC().score(maps, ctx_for(SAMPLES)).numpy()
    np.testing.assert_allclose(ours, quantus_scores(quantus.AUC(**QUIET), maps), atol=1e-6)
    for i in range(N):
        want = roc_auc_score(SAMPLES.masks[i].flatten().numpy(), maps[i].flatten().numpy())
        assert ours[i] == pytest.approx(want, abs=1e-6)


@pytest.mark.parametrize("maps", [random_maps(N, H, W, seed=6) ** 2, quantized(7)], ids=["continuous", "ties"])
def test_sparseness_matches_quantus(maps: torch.Tensor) -> None:
    ours = Sparseness().score(maps, ctx_for(SAMPLES)).numpy()
    np.testing.assert_allclose(ours, quantus_scores(quantus.Sparseness(**QUIET), maps), atol=1e-5)


def test_sensitivity_matches_quantus_on_the_same_perturbations() -> None:
    """Quantus draws its own noise; we hand it our views through ``perturb_func`` and let both use the same
    explainer, so the two compute ``max_j / mean_j ||L(x+δ_j) − L(x)|| / ||L(x)||`` on identical inputs."""
    n = 4
    for ours_cls, q_cls in ((MaxSensitivity, quantus.MaxSensitivity), (AvgSensitivity, quantus.AvgSensitivity)):
        metric = ours_cls(n=n, radius=0.05, seed=2)
        views = metric.views(SAMPLES)
        maps = channel_mean_explainer(SAMPLES.images)
        ctx = StaticContext(SAMPLES, views={k: channel_mean_explainer(v) for k, v in views.items()})
        ours = metric.score(maps, ctx).numpy()
        pending = iter(views.values())

        def perturb(arr: np.ndarray, indices: np.ndarray, _views: Any = pending, **_: Any) -> np.ndarray:
            return next(_views).numpy().reshape(arr.shape)

        def explain(model: Any, inputs: np.ndarray, targets: np.ndarray, **_: Any) -> np.ndarray:
            return channel_mean_explainer(torch.as_tensor(inputs)).numpy()[:, None]

        q = q_cls(nr_samples=n, perturb_func=perturb, normalise=False, abs=False, **QUIET)
        got = quantus_scores(q, maps, explain_func=explain, softmax=False)
        np.testing.assert_allclose(ours, got, rtol=1e-5, atol=1e-6)


# ---- torchcam -----------------------------------------------------------------------------------------------


class FixedCams:
    """A torchcam CAM-extractor stand-in that returns precomputed maps at input resolution."""

    def __init__(self, model: torch.nn.Module, cams: torch.Tensor) -> None:
        self.model = model
        self.cams = cams

    def __call__(self, class_idx: Any = None, scores: Any = None, normalized: bool = True, **_: Any) -> list:
        return [self.cams]

    def fuse_cams(self, cams: list, target_shape: Any = None) -> torch.Tensor:
        return cams[0]

    @contextmanager
    def _hooks_off(self) -> Any:
        yield


def test_average_drop_and_increase_match_torchcam() -> None:
    from torchcam.metrics import ClassificationMetric

    maps = random_maps(N, H, W, seed=8)
    maps[1] = 1.0  # an unmasked input: no drop, no increase
    ctx = ctx_for(SAMPLES, model=MODEL)
    drop = AverageDrop().score(maps, ctx)
    inc = IncreaseInConfidence().score(maps, ctx)
    for i in range(N):  # per image: torchcam aggregates, so feed it one image at a time
        tc = ClassificationMetric(FixedCams(MODEL, maps[i : i + 1]), partial(torch.softmax, dim=-1))
        tc.update(SAMPLES.images[i : i + 1], class_idx=[int(SAMPLES.labels[i])])
        summary = tc.summary()
        assert drop[i].item() == pytest.approx(summary["avg_drop"], abs=1e-5)  # torchcam adds 1e-7 to y
        assert inc[i].item() == summary["conf_increase"]
    assert drop[1].item() == pytest.approx(0.0, abs=1e-6) and inc[1].item() == 0.0


@pytest.mark.parametrize("steps", [8, 16])
def test_deletion_insertion_match_torchcam(steps: int) -> None:
    from torchcam.metrics import DeletionInsertionMetric

    maps = quantized(9)  # ties: both rank them in raster order (stable sort)
    ctx = ctx_for(SAMPLES, model=MODEL)
    deletion = DeletionAUC(steps=steps).score(maps, ctx)
    insertion = InsertionAUC(steps=steps, baseline="zero").score(maps, ctx)
    blur = InsertionAUC(steps=steps, blur_sigma=1.5)
    insertion_blur = blur.score(maps, ctx)
    for i in range(N):
        x, label = SAMPLES.images[i : i + 1], [int(SAMPLES.labels[i])]
        tc = DeletionInsertionMetric(FixedCams(MODEL, maps[i : i + 1]), partial(torch.softmax, dim=-1), steps=steps)
        tc.update(x, class_idx=label)
        assert deletion[i].item() == pytest.approx(tc.summary()["deletion_auc"], abs=1e-5)
        assert insertion[i].item() == pytest.approx(tc.summary()["insertion_auc"], abs=1e-5)
        base = blur.baseline_images(SAMPLES)[i : i + 1]
        tc = DeletionInsertionMetric(
            FixedCams(MODEL, maps[i : i + 1]), partial(torch.softmax, dim=-1), steps=steps, baseline=base
        )
        tc.update(x, class_idx=label)
        assert insertion_blur[i].item() == pytest.approx(tc.summary()["insertion_auc"], abs=1e-5)


# ---- pytorch-grad-cam ---------------------------------------------------------------------------------------


def test_relation_to_grad_cam_absolute_drop_complexity_and_coherency() -> None:
    pytest.importorskip("pytorch_grad_cam")
    from pytorch_grad_cam.metrics.arcc import Coherency
    from pytorch_grad_cam.metrics.arcc import Complexity as GCComplexity
    from pytorch_grad_cam.metrics.cam_mult_image import DropInConfidence
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputSoftmaxTarget

    maps = random_maps(N, H, W, seed=10)
    ctx = ctx_for(SAMPLES, model=MODEL, explainer=channel_mean_explainer)
    targets = [ClassifierOutputSoftmaxTarget(int(c)) for c in SAMPLES.labels]
    # pytorch-grad-cam's DropInConfidence is the absolute drop max(0, y − o) = our relative drop × y
    absolute = DropInConfidence()(SAMPLES.images, maps.numpy(), targets, MODEL)
    y = torch.softmax(MODEL(SAMPLES.images), -1).gather(1, SAMPLES.labels.view(-1, 1)).squeeze(1).detach()
    np.testing.assert_allclose((AverageDrop().score(maps, ctx) * y).numpy(), np.ravel(absolute), atol=1e-6)
    # L1 complexity: identical definition
    np.testing.assert_allclose(Complexity().score(maps, ctx).numpy(), GCComplexity()(maps.numpy()), rtol=1e-6)

    # coherency: (Pearson(CAM(x ⊙ L), L) + 1) / 2 with the same re-explainer
    def base_method(input_tensor: torch.Tensor, targets: Any) -> np.ndarray:
        return channel_mean_explainer(input_tensor).numpy()

    gc = Coherency()(SAMPLES.images, maps.numpy(), targets, MODEL, base_method)
    np.testing.assert_allclose(ADCC().components(maps, ctx)["coherency"].numpy(), gc, atol=1e-5)
