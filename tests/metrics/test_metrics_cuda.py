"""Every metric gives the same scores on CUDA as on the CPU, and returns them on the maps' device (skipped
without a GPU)."""

from __future__ import annotations

import pytest
import torch
from metrics_helpers import PoolNet, channel_mean_explainer, make_samples, random_maps

from sycam.metrics import METRICS, StaticContext, get_metric

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@pytest.fixture(autouse=True)
def full_precision():
    """CPU and GPU compared in full float32: cuDNN's default TF32 convolutions (Ampere and newer) differ from
    the CPU by ~1e-3 relative, enough to move a deletion/insertion AUC by 2e-4 (seen on an H200)."""
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    yield
    torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved

SMALL = {
    "deletion_auc": {"steps": 8},
    "insertion_auc": {"steps": 8, "blur_sigma": 2.0},
    "max_sensitivity": {"n": 3},
    "avg_sensitivity": {"n": 3},
    "equivariance": {"transforms": "hflip,shift=4,rot90,scale=0.75"},
    "invariance": {"transforms": "brightness,contrast,noise,blur"},
}


@pytest.mark.parametrize("name", sorted(METRICS))
def test_cuda_matches_cpu(name: str) -> None:
    n, h, w = 3, 32, 32
    masks = torch.zeros(n, h, w, dtype=torch.bool)
    masks[:, 8:20, 4:16] = True
    samples = make_samples(n, h, w, masks=masks, labels=[0, 1, 2], seed=1)
    metric = get_metric(name, **SMALL.get(name, {}))
    maps = random_maps(2, n, h, w, seed=2)
    views = {k: random_maps(2, n, h, w, seed=3 + i) for i, k in enumerate(metric.views(samples))}
    model = PoolNet()
    cpu = metric.score(maps, StaticContext(samples, model=model, views=views, explainer=channel_mean_explainer))

    dev = torch.device("cuda")
    gpu_views = metric.views(samples.to(dev))
    for k, v in metric.views(samples).items():  # views are drawn on the CPU: identical on every device
        torch.testing.assert_close(gpu_views[k].cpu(), v, rtol=1e-5, atol=1e-5)
    ctx = StaticContext(
        samples.to(dev),
        model=PoolNet().to(dev),
        views={k: v.to(dev) for k, v in views.items()},
        explainer=channel_mean_explainer,
    )
    gpu = get_metric(name, **SMALL.get(name, {})).score(maps.to(dev), ctx)
    assert gpu.device.type == "cuda"
    torch.testing.assert_close(gpu.cpu(), cpu, rtol=1e-4, atol=1e-4, equal_nan=True)


@pytest.mark.parametrize("name", sorted(METRICS))
def test_cuda_evaluate_and_lowres_match_cpu(name: str) -> None:
    from sycam.heatmap import finish, finish_layer, normalize

    n, h, w = 3, 32, 32
    masks = torch.zeros(n, h, w, dtype=torch.bool)
    masks[:, 8:20, 4:16] = True
    samples = make_samples(n, h, w, masks=masks, labels=[0, 1, 2], seed=1)
    metric = get_metric(name, **SMALL.get(name, {}))
    g = torch.Generator().manual_seed(5)
    raw = torch.randn(2, n, 4, 4, generator=g)
    raw[0, 1] = -1.0  # degenerate: worst value on both devices
    view_raw = {k: raw + torch.randn(2, n, 4, 4, generator=g) for k in metric.views(samples)}
    layer, full = normalize(torch.relu(raw)), finish(raw, (h, w))

    class Ctx(StaticContext):
        def view_layer_maps(self, view: str) -> torch.Tensor:
            return normalize(torch.relu(view_raw[view])).to(self.samples.images.device)

    def ctx_on(dev: str) -> StaticContext:
        views = {k: finish(v, (h, w)).to(dev) for k, v in view_raw.items()}
        return Ctx(samples.to(dev), model=PoolNet().to(dev), views=views, explainer=channel_mean_explainer)

    cpu = metric.evaluate(full, ctx_on("cpu"))
    gpu_metric = get_metric(name, **SMALL.get(name, {}))
    gpu = gpu_metric.evaluate(full.cuda(), ctx_on("cuda"))
    low = gpu_metric.evaluate_lowres(layer.cuda(), (h, w), ctx_on("cuda"))
    assert gpu.device.type == low.device.type == "cuda"
    assert cpu[0, 1].item() == metric.worst()
    torch.testing.assert_close(gpu.cpu(), cpu, rtol=1e-4, atol=1e-4)
    # a metric without an exact low-resolution path renders the layer maps on the GPU; rank-based metrics
    # (deletion/insertion) may then order near-tied pixels differently from the CPU render, so that path
    # is compared with the GPU's own render
    ref = cpu if metric.lowres else gpu_metric.evaluate(finish_layer(layer.cuda(), (h, w)), ctx_on("cuda")).cpu()
    torch.testing.assert_close(low.cpu(), ref, rtol=1e-4, atol=1e-4)
