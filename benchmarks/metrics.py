"""Benchmark: the cost of scoring one more candidate with each sycam metric, against the same metric in
Quantus / torchcam / pytorch-grad-cam run in the same process on the same data.

For each metric we time ``metric.score(maps, ctx)`` for one candidate ``(N, H, W)`` after a warm-up call
(so memoized, candidate-independent work such as the clean forward pass or the dilated ground truth is not
counted: that is the marginal cost inside a search), median of ``--repeat`` runs. The reference gets the
same maps, data and model; where it must re-explain (Quantus's sensitivities, grad-cam's coherency) it uses
pytorch-grad-cam's Grad-CAM, and our ADCC re-explains with the same Grad-CAM through ``ctx.explain``. Our
cached robustness/equivariance metrics read precomputed view maps (the engine computes a view's terminals
once for all candidates; that one-time cost is printed separately).

Usage: ``python benchmarks/metrics.py [--n 16] [--size 224] [--repeat 5] [--device cpu]``. The last line of
the output is one JSON object: ``speedup`` (reference time / our time, per metric) and, for the cached
metrics, ``cost_vs_forward`` (our time for one candidate / the time of one model forward on the N images,
i.e. the cost per image in units of one forward per image) and ``cost_vs_forward_batched_<B>`` (the same per
candidate when ``--batch`` candidates are scored in one call, as the synthesizer does).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
import warnings
from collections.abc import Callable
from contextlib import contextmanager
from functools import partial
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
import torchvision

from sycam.data.samples import Samples
from sycam.metrics import StaticContext, get_metric

warnings.filterwarnings("ignore")


def _once(fn: Callable[[], Any], device: torch.device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - t0


def median_times(fns: list[Callable[[], Any] | None], repeat: int, device: torch.device) -> list[float | None]:
    """Median wall time of each function; the runs are interleaved (a, b, a, b, ...) so that a background
    load affects both sides alike. One untimed warm-up call each (fills memos, allocator, lazy imports)."""
    live = [f for f in fns if f is not None]
    for f in live:
        f()
    times: list[list[float]] = [[] for _ in live]
    for _ in range(repeat):
        for i, f in enumerate(live):
            times[i].append(_once(f, device))
    it = iter(statistics.median(t) for t in times)
    return [None if f is None else next(it) for f in fns]


def median_time(fn: Callable[[], Any], repeat: int, device: torch.device) -> float:
    return median_times([fn], repeat, device)[0] or 0.0


def cam_like(n: int, size: int, seed: int, device: torch.device) -> torch.Tensor:
    """Smooth CAM-like maps: a 7x7 random grid, bilinearly upsampled and min-max normalized."""
    g = torch.Generator().manual_seed(seed)
    low = torch.rand(n, 1, 7, 7, generator=g) ** 3
    m = F.interpolate(low, size=(size, size), mode="bilinear", align_corners=False)[:, 0]
    lo, hi = m.amin((-2, -1), keepdim=True), m.amax((-2, -1), keepdim=True)
    return ((m - lo) / (hi - lo)).to(device)


class FixedCams:
    """A torchcam CAM-extractor stand-in returning precomputed maps (so torchcam times only its metric)."""

    def __init__(self, model: torch.nn.Module, cams: torch.Tensor) -> None:
        self.model, self.cams = model, cams

    def __call__(self, class_idx: Any = None, scores: Any = None, normalized: bool = True, **_: Any) -> list:
        return [self.cams]

    def fuse_cams(self, cams: list, target_shape: Any = None) -> torch.Tensor:
        return cams[0]

    @contextmanager
    def _hooks_off(self) -> Any:
        yield


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=16, help="images per candidate")
    ap.add_argument("--size", type=int, default=224, help="input side in pixels")
    ap.add_argument("--repeat", type=int, default=5, help="timed runs per cached metric (median)")
    ap.add_argument("--model-repeat", type=int, default=3, help="timed runs per model-cost metric (median)")
    ap.add_argument("--batch", type=int, default=8, help="candidates per call for the batched cached timings")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = ap.parse_args()

    import quantus
    from pytorch_grad_cam import GradCAM
    from pytorch_grad_cam.metrics.arcc import Coherency
    from pytorch_grad_cam.metrics.arcc import Complexity as GCComplexity
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
    from torchcam.metrics import ClassificationMetric, DeletionInsertionMetric

    torch.manual_seed(0)
    device = torch.device(args.device)
    n, size = args.n, args.size
    model = torchvision.models.resnet18(weights=None).eval().to(device)
    g = torch.Generator().manual_seed(0)
    pixels = torch.rand(n, 3, size, size, generator=g)
    masks = torch.zeros(n, size, size, dtype=torch.bool)
    for i in range(n):
        y, x = torch.randint(0, size // 2, (2,), generator=g).tolist()
        masks[i, y : y + size // 3, x : x + size // 3] = True
    mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
    images = ((pixels - torch.tensor(mean).view(3, 1, 1)) / torch.tensor(std).view(3, 1, 1)).to(device)
    with torch.no_grad():
        labels = model(images).argmax(-1)
    samples = Samples(images=images, labels=labels, masks=masks.to(device), mean=mean, std=std)
    maps = cam_like(n, size, 1, device)
    targets = [ClassifierOutputTarget(int(c)) for c in labels]
    gradcam = GradCAM(model=model, target_layers=[model.layer4[-1]])

    def gradcam_np(x: torch.Tensor) -> np.ndarray:
        return gradcam(input_tensor=x, targets=[ClassifierOutputTarget(int(c)) for c in labels[: x.shape[0]]])

    def explainer(x: torch.Tensor) -> torch.Tensor:  # ctx.explain: (*B, N, 3, H, W) → (*B, N, H, W)
        flat = x.reshape(-1, *x.shape[-3:])
        out = [torch.from_numpy(gradcam_np(flat[i : i + n])) for i in range(0, flat.shape[0], n)]
        return torch.cat(out).reshape(*x.shape[:-3], *x.shape[-2:]).to(x.device)

    # views: every cached metric's view maps are precomputed (random CAM-like maps stand in for the terminals)
    all_metrics = {name: get_metric(name) for name in (
        "energy_pointing_game", "pointing_game", "iou", "mask_auc", "sparseness", "complexity",
        "max_sensitivity", "avg_sensitivity", "equivariance", "invariance",
        "average_drop", "increase_in_confidence", "deletion_auc", "insertion_auc", "adcc",
    )}  # fmt: skip
    view_names = sorted({v for m in all_metrics.values() for v in m.views(samples)})
    views = {v: cam_like(n, size, 10 + i, device) for i, v in enumerate(view_names)}
    ctx = StaticContext(samples, model=model, views=views, explainer=explainer, batch_size=64)

    x_np, y_np = images.cpu().numpy(), labels.cpu().numpy()
    a_np, s_np = maps.cpu().numpy()[:, None], masks.numpy()[:, None].astype(np.float32)
    quiet = {"disable_warnings": True, "display_progressbar": False}

    def q_call(metric: Any, **kw: Any) -> Callable[[], Any]:
        return lambda: metric(
            model=model, x_batch=x_np, y_batch=y_np, a_batch=a_np, s_batch=s_np, channel_first=True,
            batch_size=n, device=str(device), **kw,
        )  # fmt: skip

    def q_explain(model: Any, inputs: np.ndarray, targets: Any, **_: Any) -> np.ndarray:
        return gradcam_np(torch.as_tensor(inputs, device=device))[:, None]

    def torchcam_drop() -> None:
        tc = ClassificationMetric(FixedCams(model, maps), partial(torch.softmax, dim=-1))
        tc.update(images, class_idx=[int(c) for c in labels])

    def torchcam_curves() -> None:
        tc = DeletionInsertionMetric(FixedCams(model, maps), partial(torch.softmax, dim=-1), steps=20, batch_size=64)
        tc.update(images, class_idx=[int(c) for c in labels])

    def gradcam_adcc_parts() -> None:
        torchcam_drop()
        Coherency()(images, maps.cpu().numpy(), targets, model, gradcam)
        GCComplexity()(maps.cpu().numpy())

    radius_in_input = 0.05 / 0.226  # our pixel-space radius in normalized units, for Quantus
    references: dict[str, tuple[str, Callable[[], Any] | None]] = {
        "energy_pointing_game": ("quantus.RelevanceMassAccuracy", q_call(quantus.RelevanceMassAccuracy(**quiet))),
        "pointing_game": ("quantus.PointingGame", q_call(quantus.PointingGame(**quiet))),
        "iou": ("(none)", None),
        "mask_auc": ("quantus.AUC", q_call(quantus.AUC(**quiet))),
        "sparseness": ("quantus.Sparseness", q_call(quantus.Sparseness(**quiet))),
        "complexity": ("grad-cam arcc.Complexity", lambda: GCComplexity()(maps.cpu().numpy())),
        "max_sensitivity": (
            "quantus.MaxSensitivity(8, Grad-CAM)",
            q_call(quantus.MaxSensitivity(nr_samples=8, lower_bound=radius_in_input, **quiet), explain_func=q_explain),
        ),
        "avg_sensitivity": (
            "quantus.AvgSensitivity(8, Grad-CAM)",
            q_call(quantus.AvgSensitivity(nr_samples=8, lower_bound=radius_in_input, **quiet), explain_func=q_explain),
        ),
        "equivariance": ("(none)", None),
        "invariance": ("(none)", None),
        "average_drop": ("torchcam ClassificationMetric", torchcam_drop),
        "increase_in_confidence": ("torchcam ClassificationMetric", torchcam_drop),
        "deletion_auc": ("torchcam DeletionInsertion (both)", None),
        "insertion_auc": ("torchcam DeletionInsertion (both)", None),
        "adcc": ("torchcam AD + grad-cam Coh/Com", gradcam_adcc_parts),
    }

    forward = median_time(lambda: ctx.logits(images), args.repeat, device)
    explain_time = median_time(lambda: explainer(images), max(1, args.model_repeat), device)
    print(f"device={device}  N={n}  size={size}  model=resnet18(weights=None)")
    print(
        f"one forward of the N images: {forward * 1e3:.1f} ms; "
        f"one Grad-CAM of the N images: {explain_time * 1e3:.1f} ms"
    )
    print()
    header = (
        f"{'metric':<24}{'cost':<8}{'ours ms':>11}{'reference':>38}{'ref ms':>11}{'speedup':>9}{'/forward':>10}"
        f"{f'ms/cand@B={args.batch}':>16}"
    )
    print(header)
    print("-" * len(header))

    speedup: dict[str, float] = {}
    vs_forward: dict[str, float] = {}
    batched: dict[str, float] = {}
    batch_maps = torch.stack([cam_like(n, size, 100 + b, device) for b in range(args.batch)])
    batch_ctx = StaticContext(samples, views={k: v.expand(args.batch, *v.shape) for k, v in views.items()})
    ours_times: dict[str, float] = {}
    for name, metric in all_metrics.items():
        repeat = args.repeat if metric.cost == "cached" else args.model_repeat
        label, ref_fn = references[name]
        ours, ref = median_times([lambda m=metric: m.score(maps, ctx), ref_fn], repeat, device)
        assert ours is not None
        ours_times[name] = ours
        if ref is not None:
            speedup[name] = ref / ours
        fwd = ""
        if metric.cost == "cached":
            vs_forward[name] = ours / forward
            # inside a search candidates come B at a time: the per-candidate cost of one batched call
            per = median_time(lambda m=metric: m.score(batch_maps, batch_ctx), args.repeat, device) / args.batch
            batched[name] = per
            fwd = f"{ours / forward:>10.4f}{per * 1e3:>16.3f}"
        ref_txt = f"{ref * 1e3:>11.1f}" if ref is not None else f"{'—':>11}"
        sp_txt = f"{ref / ours:>8.1f}x" if ref is not None else f"{'—':>9}"
        print(f"{name:<24}{metric.cost:<8}{ours * 1e3:>11.2f}{label:>38}{ref_txt}{sp_txt}{fwd}")

    deletion, insertion = all_metrics["deletion_auc"], all_metrics["insertion_auc"]
    ours_both, both = median_times(
        [lambda: (deletion.score(maps, ctx), insertion.score(maps, ctx)), torchcam_curves], args.model_repeat, device
    )
    assert ours_both is not None and both is not None
    speedup["deletion_auc+insertion_auc"] = both / ours_both
    print(
        f"{'deletion+insertion':<24}{'model':<8}{ours_both * 1e3:>11.2f}{'torchcam DeletionInsertionMetric':>38}"
        f"{both * 1e3:>11.1f}{both / ours_both:>8.1f}x"
    )
    n_views = len(view_names)
    print()
    lo, hi = min(vs_forward.values()), max(vs_forward.values())
    blo, bhi = min(batched.values()) / forward, max(batched.values()) / forward
    print(
        f"cached metrics cost {lo:.4f}–{hi:.4f} of one forward of the N images for one candidate, "
        f"{blo:.4f}–{bhi:.4f} per candidate when scored {args.batch} at a time; their views ({n_views} in all "
        f"here) cost the engine one terminal extraction each, once for all candidates "
        f"(≈ {explain_time * 1e3:.0f} ms per view with Grad-CAM terminals)."
    )
    print(
        json.dumps(
            {
                "device": str(device),
                "n": n,
                "size": size,
                "speedup": {k: round(v, 3) for k, v in speedup.items()},
                "cost_vs_forward": {k: round(v, 5) for k, v in vs_forward.items()},
                f"cost_vs_forward_batched_{args.batch}": {k: round(v / forward, 5) for k, v in batched.items()},
            }
        )
    )


if __name__ == "__main__":
    main()
