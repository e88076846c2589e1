"""Benchmark: each classic CAM method in sycam against pytorch-grad-cam, same model, layer, images and
targets, in one process.

Per method, sycam runs a fresh ``sycam.heatmap.CAM(model, layer, method)(images, targets)`` (no cache is
shared between methods or runs: the fair per-method comparison) and pytorch-grad-cam runs a fresh
``GradCAM/...(model, target_layers=[layer])(input_tensor=images, targets=[ClassifierOutputTarget(c)])``.
Constructing the explainer is inside the timed call on both sides. Separately, "all seven sharing one
terminal cache" is one fresh :class:`~sycam.terminals.TerminalCache` rendering the seven expressions
(``sycam.heatmap.explain_cache``, what ``sycam.heatmap.explain`` runs), against the sum of
pytorch-grad-cam's seven per-method medians.

Fairness settings:

- the targets are fixed class indices (the predicted class of each image, computed once) given to both
  sides, so neither spends a forward pass to find them;
- pytorch-grad-cam's ``ScoreCAM.batch_size`` is set to sycam's ``batch_size`` (``--chunk``: masked
  inputs per forward for the Score-CAM terminal S), and ``AblationCAM(batch_size=...)`` to sycam's
  ``ExtractOptions.ablation_batch`` (``--ablation-batch``: ablated copies per forward for D);
- runs are interleaved (sycam, grad-cam, sycam, grad-cam, ...) and the median of ``--repeats`` (the
  gradient methods, which also get one untimed warm-up call each) or ``--slow-repeats`` (Score-CAM,
  Ablation-CAM and the shared run: tens of seconds each) is reported, so a background load affects both
  sides alike; ``--threads 1`` by default, since a busy second core makes multi-threaded CPU timings erratic;
- every map pytorch-grad-cam returns is compared with sycam's: the benchmark fails (exit 1) if any
  method differs by more than ``--tol`` (default 1e-4), so it never compares different work.

Score-CAM and Ablation-CAM are K forwards per image in pytorch-grad-cam (K = 2048 channels for ResNet50's
``layer4[-1]``), hence the small default input (64 px) and batch (2). Use ``--methods`` with a larger
``--size``/``--batch`` for the gradient methods alone, e.g.
``--methods gradcam,gradcam++,xgradcam,hirescam,layercam --size 224 --batch 8``.

Usage: ``python benchmarks/methods.py [--model resnet50] [--size 64] [--batch 2] [--repeats 3]``. The table
gives the median seconds per call and ratio = the median over rounds of grad-cam time / sycam time in that
round (> 1: sycam is faster). Targets: Score-CAM ≥ 1.5×, Ablation-CAM ≥ 100×, every other method ≥ 2×.
The last line of the output is one JSON object with the ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from typing import Any

os.environ.setdefault("TQDM_DISABLE", "1")  # pytorch-grad-cam's Score/Ablation-CAM print tqdm bars

import numpy as np
import torch

from sycam.heatmap import CAM, explain_cache
from sycam.methods import METHODS
from sycam.models import load_model, resolve_layer
from sycam.terminals import ExtractOptions, TerminalCache

warnings.filterwarnings("ignore")

SLOW = ("scorecam", "ablationcam")  #: K forwards per image in pytorch-grad-cam: no untimed warm-up
TARGET_ABLATION = 100.0
TARGET_SCORE = 1.5
TARGET_OTHERS = 2.0  #: every other method


def reference_classes() -> dict[str, Any]:
    import pytorch_grad_cam as pgc

    return {
        "gradcam": pgc.GradCAM,
        "gradcam++": pgc.GradCAMPlusPlus,
        "xgradcam": pgc.XGradCAM,
        "scorecam": pgc.ScoreCAM,
        "ablationcam": pgc.AblationCAM,
        "hirescam": pgc.HiResCAM,
        "layercam": pgc.LayerCAM,
    }


def timed(fn: Callable[[], Any], device: torch.device) -> tuple[float, Any]:
    if device.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    out = fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - t0, out


def as_numpy(maps: Any) -> np.ndarray:
    return maps.detach().cpu().numpy() if isinstance(maps, torch.Tensor) else np.asarray(maps)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="resnet50", help="sycam model name (default resnet50)")
    ap.add_argument("--weights", default="none", help="'none' (seeded random weights, default), 'imagenet' or a file")
    ap.add_argument("--layer", default=None, help="target layer path (default: the model's default layer)")
    ap.add_argument("--size", type=int, default=64, help="input side in pixels (default 64)")
    ap.add_argument("--batch", type=int, default=2, help="images per call (default 2)")
    ap.add_argument("--repeats", type=int, default=3,
                    help="timed runs per gradient method and side (median; default 3)")
    ap.add_argument("--slow-repeats", type=int, default=1,
                    help="timed runs of Score-CAM, Ablation-CAM and the shared-cache run (median; default 1: "
                         "each run is tens of seconds of K forwards per image, long enough to average out noise)")
    ap.add_argument("--chunk", type=int, default=32,
                    help="sycam batch_size = grad-cam ScoreCAM.batch_size: masked inputs per forward (default 32)")
    ap.add_argument("--ablation-batch", type=int, default=256,
                    help="sycam ablation_batch = grad-cam AblationCAM batch_size: ablated copies per forward "
                         "(default 256, sycam's default)")
    ap.add_argument("--methods", default=",".join(METHODS), help="comma-separated subset (default: all seven)")
    ap.add_argument("--no-shared", action="store_true", help="skip the all-methods-sharing-one-cache timing")
    ap.add_argument("--threads", type=int, default=1,
                    help="torch CPU threads (default 1: stable under background load; 0 = torch's default)")
    ap.add_argument("--tol", type=float, default=1e-4, help="max |sycam - grad-cam| allowed per map value")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)

    if args.threads > 0:
        torch.set_num_threads(args.threads)
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        ap.error(f"unknown method(s) {unknown}; known: {', '.join(METHODS)}")
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    refs = reference_classes()
    device = torch.device(args.device)
    weights = None if args.weights.lower() == "none" else args.weights
    loaded = load_model(args.model, weights=weights, seed=args.seed)
    model = loaded.module.to(device).eval()
    layer_path = args.layer or loaded.layer
    layer_name, layer = resolve_layer(model, layer_path)
    gen = torch.Generator().manual_seed(args.seed + 1)
    images = torch.randn(args.batch, 3, args.size, args.size, generator=gen).to(device)
    with torch.no_grad():
        classes = model(images).argmax(-1).cpu()
    with torch.no_grad():
        k = int(TerminalCache(model, layer, images[:1], classes[:1]).get(["A"])["A"].shape[1])
    targets_list = [int(c) for c in classes]

    def run_sycam(method: str) -> Callable[[], Any]:
        def fn() -> Any:
            cam = CAM(model, layer, method, batch_size=args.chunk)
            cam.options.ablation_batch = args.ablation_batch
            return cam(images, targets_list)

        return fn

    def run_ref(method: str) -> Callable[[], Any]:
        def fn() -> Any:
            kwargs = {"batch_size": args.ablation_batch} if method == "ablationcam" else {}
            with refs[method](model=model, target_layers=[layer], **kwargs) as cam:
                if method == "scorecam":
                    cam.batch_size = args.chunk
                return cam(input_tensor=images, targets=[ClassifierOutputTarget(c) for c in targets_list])

        return fn

    options = ExtractOptions(batch_size=args.chunk, ablation_batch=args.ablation_batch)
    shared_nodes = [METHODS[m].node for m in methods]

    def run_shared() -> Any:
        cache = TerminalCache(model, layer, images, targets_list, options)
        return explain_cache(cache, shared_nodes), cache.timings

    print(f"model={args.model}(weights={args.weights})  layer={layer_name}  K={k}  device={device}  "
          f"threads={torch.get_num_threads()}  images={args.batch}x3x{args.size}x{args.size}  "
          f"repeats={args.repeats} (slow: {args.slow_repeats})  targets={targets_list}")
    print(f"chunks: sycam batch_size={args.chunk} = grad-cam ScoreCAM.batch_size; sycam ablation_batch="
          f"{args.ablation_batch} = grad-cam AblationCAM(batch_size={args.ablation_batch})")
    sys.stdout.flush()

    times: dict[str, dict[str, list[float]]] = {m: {"sycam": [], "gradcam": []} for m in methods}
    shared_times: list[float] = []
    diffs: dict[str, float] = {}
    ref_max: dict[str, float] = {}
    ref_maps: dict[str, np.ndarray] = {}
    for m in methods:  # untimed warm-up of the cheap methods (lazy imports, allocator, oneDNN primitives)
        if m not in SLOW:
            run_sycam(m)()
            run_ref(m)()
    slow_shared = any(m in SLOW for m in methods)
    stages: list[dict[str, float]] = []
    for r in range(max(args.repeats, args.slow_repeats)):
        for m in methods:
            if r >= (args.slow_repeats if m in SLOW else args.repeats):
                continue
            t_ours, ours = timed(run_sycam(m), device)
            t_ref, ref = timed(run_ref(m), device)
            times[m]["sycam"].append(t_ours)
            times[m]["gradcam"].append(t_ref)
            if r == 0:
                a, b = as_numpy(ours), as_numpy(ref)
                diffs[m] = float(np.abs(a - b).max()) if a.shape == b.shape else float("inf")
                ref_max[m] = float(b.max())
                ref_maps[m] = b
        if not args.no_shared and r < (args.slow_repeats if slow_shared else args.repeats):
            t_shared, (shared, cache_timings) = timed(run_shared, device)
            shared_times.append(t_shared)
            stages.append(cache_timings)
            if r == 0:  # the shared cache's maps must match pytorch-grad-cam's too
                for m, got in zip(methods, shared, strict=True):
                    diffs[m] = max(diffs[m], float(np.abs(as_numpy(got) - ref_maps[m]).max()))
        print(f"  round {r + 1}/{max(args.repeats, args.slow_repeats)} done", flush=True)

    med = {m: {side: statistics.median(v) for side, v in t.items()} for m, t in times.items()}
    # each ratio is the median of the per-round ratios: the two sides of a round ran back to back, so a
    # load change on the machine hits both (medians of each side taken apart would not be paired)
    ratios = {m: statistics.median(g / o for g, o in zip(t["gradcam"], t["sycam"], strict=True))
              for m, t in times.items()}

    header = f"{'method':<13}{'sycam s':>10}{'grad-cam s':>12}{'ratio':>8}{'max |diff|':>12}"
    print()
    print(header)
    print("-" * len(header))
    for m in methods:
        print(f"{m:<13}{med[m]['sycam']:>10.3f}{med[m]['gradcam']:>12.3f}{ratios[m]:>8.2f}{diffs[m]:>12.1e}")
    result: dict[str, Any] = {
        "benchmark": "methods",
        "model": args.model,
        "weights": args.weights,
        "layer": layer_name,
        "channels": k,
        "images": args.batch,
        "size": args.size,
        "device": str(device),
        "threads": torch.get_num_threads(),
        "repeats": args.repeats,
        "slow_repeats": args.slow_repeats,
        "chunk": args.chunk,
        "ablation_batch": args.ablation_batch,
        "ratios": {m: round(v, 3) for m, v in ratios.items()},
        "ratios_per_round": {m: [round(g / o, 3) for g, o in zip(t["gradcam"], t["sycam"], strict=True)]
                             for m, t in times.items()},
        "sycam_s": {m: round(med[m]["sycam"], 4) for m in methods},
        "gradcam_s": {m: round(med[m]["gradcam"], 4) for m in methods},
        "max_abs_diff": {m: float(f"{d:.3g}") for m, d in diffs.items()},
        "runs_s": {m: {side: [round(x, 4) for x in v] for side, v in t.items()} for m, t in times.items()},
    }
    if shared_times:
        shared_s = statistics.median(shared_times)
        ref_sum = sum(med[m]["gradcam"] for m in methods)
        ours_sum = sum(med[m]["sycam"] for m in methods)
        print("-" * len(header))
        print(f"{'all, shared':<13}{shared_s:>10.3f}{ref_sum:>12.3f}{ref_sum / shared_s:>8.2f}"
              f"   (sycam one cache vs sum of grad-cam's {len(methods)}; sycam's own sum: {ours_sum:.3f} s)")
        stage = {k: statistics.median(st.get(k, 0.0) for st in stages) for k in stages[0]}
        print("shared cache, sycam terminal stages (s): "
              + "  ".join(f"{k}={v:.3f}" for k, v in stage.items()))
        result["all_shared"] = round(ref_sum / shared_s, 3)
        result["all_shared_s"] = {"sycam": round(shared_s, 4), "gradcam_sum": round(ref_sum, 4),
                                  "sycam_sum_separate": round(ours_sum, 4),
                                  "stages": {k: round(v, 4) for k, v in stage.items()}}
    met: dict[str, bool] = {"none_slower": all(v >= 1.0 for v in ratios.values())}
    others = [m for m in ratios if m not in SLOW]
    if others:
        met[f"others_ge_{TARGET_OTHERS:g}x"] = all(ratios[m] >= TARGET_OTHERS for m in others)
    if "ablationcam" in ratios:
        met[f"ablationcam_ge_{TARGET_ABLATION:g}x"] = ratios["ablationcam"] >= TARGET_ABLATION
    if "scorecam" in ratios:
        met[f"scorecam_ge_{TARGET_SCORE:g}x"] = ratios["scorecam"] >= TARGET_SCORE
    result["targets_met"] = met
    agree = all(d <= args.tol for d in diffs.values()) and all(v > 0.99 for v in ref_max.values())
    result["maps_agree"] = agree
    print()
    print("targets: " + ", ".join(f"{k}={'met' if v else 'NOT met'}" for k, v in met.items()))
    if not agree:
        bad = {m: diffs[m] for m in methods if diffs[m] > args.tol or ref_max[m] <= 0.99}
        print(f"MAPS DISAGREE (tol {args.tol:g}) or the reference map is degenerate: {bad}")
    print(json.dumps(result))
    return 0 if agree else 1


if __name__ == "__main__":
    raise SystemExit(main())
