"""CUDA check: sycam on the GPU agrees with itself on the CPU and with pytorch-grad-cam on the GPU, and the
search runs end to end on the device. Prints one JSON line last. Usage: python benchmarks/gpu_check.py"""

from __future__ import annotations

import json
import time

import torch

from sycam.data import load_data
from sycam.heatmap import explain
from sycam.methods import METHODS
from sycam.metrics import get_metric
from sycam.models import load_model, resolve_layer
from sycam.synth import Grammar, SynthesisConfig, synthesize
from sycam.terminals import ExtractOptions


def main() -> None:
    assert torch.cuda.is_available(), "no CUDA device"
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    report: dict[str, object] = {"device": torch.cuda.get_device_name(0), "torch": torch.__version__}
    cpu = load_model("efficientnet_lite0")
    gpu = load_model("efficientnet_lite0").to("cuda")
    samples = load_data("demo", cpu.preprocess, cpu.classes)
    few = samples.subset(range(4))
    methods = list(METHODS)
    on_cpu = explain(cpu, few.images, methods, targets=few.labels, score_top_k=None)
    t0 = time.perf_counter()
    on_gpu = explain(gpu, few.images.cuda(), methods, targets=few.labels.cuda(), score_top_k=None)
    torch.cuda.synchronize()
    report["explain_all_7_gpu_s"] = round(time.perf_counter() - t0, 3)
    report["gpu_vs_cpu_maxdiff"] = {m: float((on_gpu[m].cpu() - on_cpu[m]).abs().max()) for m in methods}
    assert all(on_gpu[m].device.type == "cuda" for m in methods)
    try:
        import pytorch_grad_cam as pgc
        from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

        ref = {"gradcam": pgc.GradCAM, "gradcam++": pgc.GradCAMPlusPlus, "xgradcam": pgc.XGradCAM,
               "scorecam": pgc.ScoreCAM, "ablationcam": pgc.AblationCAM, "hirescam": pgc.HiResCAM,
               "layercam": pgc.LayerCAM}
        _, layer = resolve_layer(gpu.module, gpu.layer)
        diffs, speed = {}, {}
        for name, cls in ref.items():
            with cls(model=gpu.module, target_layers=[layer]) as cam:
                cam.batch_size = 32
                t0 = time.perf_counter()
                r = cam(input_tensor=few.images.cuda(), targets=[ClassifierOutputTarget(int(c)) for c in few.labels])
                t_ref = time.perf_counter() - t0
            t0 = time.perf_counter()
            ours = explain(gpu, few.images.cuda(), [name], targets=few.labels.cuda())[name]
            torch.cuda.synchronize()
            speed[name] = round(t_ref / (time.perf_counter() - t0), 2)
            diffs[name] = float(abs(ours.cpu().numpy() - r).max())
        report["gpu_vs_pytorch_grad_cam_maxdiff"] = diffs
        report["speedup_vs_pytorch_grad_cam_gpu"] = speed
    except ImportError:
        report["gpu_vs_pytorch_grad_cam_maxdiff"] = "pytorch-grad-cam not available"
    report["synthesis"] = {dev: _demo_search(samples, dev) for dev in ("cuda", "cpu")}
    same = report["synthesis"]["cuda"]["best"] == report["synthesis"]["cpu"]["best"]
    report["synthesis_same_winner_gpu_cpu"] = same
    print(json.dumps(report))


def _demo_search(samples, device: str) -> dict[str, object]:
    """The demo's search (sycam.synth.demo.DEMO's settings) on ``device``: winner, scores, rate."""
    from sycam.data import split_three
    from sycam.synth.demo import DEMO

    model = load_model(DEMO["model"]).to(device)
    syn, val, test = split_three(samples, DEMO["validation_fraction"], DEMO["test_fraction"], DEMO["seed"])
    grammar = Grammar(terminals=tuple(DEMO["terminals"].split(",")), max_size=DEMO["max_size"])
    config = SynthesisConfig(grammar=grammar, max_candidates=DEMO["max_candidates"],
                             constraints=tuple(DEMO.get("constraint") or ()))
    t0 = time.perf_counter()
    result = synthesize(model.module, model.layer, syn.to(device), test.to(device),
                        [get_metric(m) for m in DEMO["metric"]], config=config,
                        options=ExtractOptions(score_top_k=DEMO["score_top_k"]), validation=val.to(device))
    d = result.to_dict()
    return {"best": d["best"]["expression"], "synthesis_score": d["best"]["synthesis_score"],
            "test_score": d["best"]["test_score"], "comparison": d.get("comparison"),
            "candidates_scored": d["candidates_scored"], "timings": d["timings"],
            "wall_s": round(time.perf_counter() - t0, 2),
            "candidates_per_s": round(d["candidates_scored"] / max(d["timings"]["search"], 1e-9), 1)}


if __name__ == "__main__":
    main()
