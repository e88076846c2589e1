"""Benchmark: the demo's search sharded over Ray workers, 1 worker against 2 (one thread each).

Setup: ``sycam demo``'s settings (:data:`sycam.synth.demo.DEMO`: EfficientNet-Lite0 with its real ImageNet
weights, the demo data split into 18 synthesis / 16 validation / 18 test images, energy pointing game with the
default guards, grammar A, G, D up to size 4, the whole space), with the extraction batch set to 9 images so
that two workers get one batch each and every run (local, 1 worker, 2 workers) extracts the same batches. Each
run is a whole ``synthesize`` call (extraction, baselines, search, validation, test). Before the clock: the Ray
instance (``ray.init(num_cpus=W)``) and the worker processes (``RayExecutor(...)`` starts them; ``ready()`` waits
until each has imported torch and sycam, printed apart as "workers started in"); on the clock: handing them the
model, extraction on the workers, and everything after.

Printed:

- per run: wall seconds and seconds per phase; whether results.json equals the local run's (every key but
  timings and ``settings.executor``);
- **speed-up** = wall(1 worker) / wall(2 workers) (target ≥ 1.7), **efficiency** = speed-up / 2, and the same
  per phase;
- **bytes per candidate**: the pickled arguments and replies of the search's calls (bank, triage, distances,
  keys, score) over the candidates enumerated, and the one-off bytes (images and views sent per split);
- **bytes per candidate against the number of images**: the search alone (grammar A, G up to size 3, 150
  candidates, energy pointing game, no guards) on the demo's images tiled to ``--sizes`` images, on two
  in-process shards (the same messages, pickled the same way, without Ray's startup). The heatmap fingerprint
  samples 4096 layer pixels: below 4096 / (h·w) images (84 at 7×7) it reads them all, so the bytes grow with
  the images until then and stay flat beyond.

Usage: ``python benchmarks/scaleout.py [--workers 1,2] [--sizes 96,192] [--max-candidates N]``. The last line
of the output is one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from typing import Any

import torch

from sycam.data import load_data, split_three
from sycam.data.samples import Samples
from sycam.metrics import get_metric
from sycam.models import load_model
from sycam.synth import Grammar, SynthesisConfig, synthesize
from sycam.synth.demo import DEMO
from sycam.synth.executors import InProcessExecutor
from sycam.terminals import ExtractOptions

SEARCH_CALLS = ("bank", "triage", "distances", "keys", "score")
PHASES = ("terminals", "baselines", "search", "validation", "test")


def demo_config(max_candidates: int | None) -> SynthesisConfig:
    grammar = Grammar(terminals=tuple(DEMO["terminals"].split(",")), max_size=DEMO["max_size"])
    return SynthesisConfig(grammar=grammar, max_candidates=max_candidates or DEMO["max_candidates"],
                           constraints=tuple(DEMO.get("constraint") or ()),  # none: the default guards
                           max_degenerate_fraction=DEMO["max_degenerate"])


def comparable(d: dict[str, Any]) -> dict[str, Any]:
    d = dict(d)
    for k in ("timings", "seconds"):
        d.pop(k, None)
    d["settings"] = {k: v for k, v in d["settings"].items() if k != "executor"}
    return d


def traffic(ex: Any, calls: tuple[str, ...] | None) -> int:
    return sum(t[1] + t[2] for m, t in ex.traffic.items() if calls is None or m in calls)


def run_once(model: Any, splits: tuple[Samples, Samples, Samples], config: SynthesisConfig,
             options: ExtractOptions, workers: int | None) -> dict[str, Any]:
    """One whole synthesize call: locally (``workers`` None) or on a fresh Ray instance with that many workers."""
    syn, val, test = splits
    metrics = [get_metric(m) for m in DEMO["metric"]]
    ex = None
    if workers is not None:
        import ray

        from sycam.synth.ray_executor import RayExecutor

        ray.init(address="local", num_cpus=workers, include_dashboard=False, log_to_driver=False)
        ex = RayExecutor(workers=workers, threads=1)
        startup = ex.ready()  # worker processes up (torch and sycam imported): before the clock, reported apart
        ex.measure = True
    try:
        t0 = time.perf_counter()
        result = synthesize(model.module, model.layer, syn, test, metrics, config=config, options=options,
                            validation=val, executor=ex)
        wall = time.perf_counter() - t0
        out = {"wall": wall, "timings": dict(result.timings), "results": result.to_dict(),
               "enumerated": result.counters["candidates_enumerated"], "scored": result.counters["candidates_scored"]}
        if ex is not None:
            out["startup"] = startup
            out["bytes_search"] = traffic(ex, SEARCH_CALLS)
            out["bytes_total"] = traffic(ex, None)
            out["restarts"] = ex.restarts
        return out
    finally:
        if ex is not None:
            ex.close()
            import ray

            ray.shutdown()


def tiled(samples: Samples, n: int) -> Samples:
    """``samples`` repeated to ``n`` images (ids made unique): more images of the same kind, for byte counts."""
    idx = [i % len(samples) for i in range(n)]
    out = samples.subset(idx)
    return replace(out, ids=tuple(f"{out.ids[k]}~{k}" for k in range(n)))


def bytes_against_images(model: Any, samples: Samples, sizes: list[int]) -> list[dict[str, Any]]:
    config = SynthesisConfig(grammar=Grammar(terminals=("A", "G"), max_size=3), max_candidates=150,
                             baselines=("gradcam", "gradcam++", "xgradcam", "hirescam", "layercam"))  # no S, D
    rows = []
    for n in sizes:
        data = tiled(samples, n)
        with InProcessExecutor(workers=2) as ex:
            ex.measure = True
            result = synthesize(model.module, model.layer, data, None, get_metric("energy_pointing_game"),
                                config=config, options=ExtractOptions(batch_size=(n + 1) // 2), executor=ex)
            moved = traffic(ex, SEARCH_CALLS)
        enumerated = result.counters["candidates_enumerated"]
        rows.append({"images": n, "enumerated": enumerated, "bytes_search": moved,
                     "bytes_per_candidate": moved / enumerated})
        print(f"  {n:4d} images: {enumerated} candidates enumerated, {moved / enumerated:,.0f} bytes per candidate")
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--workers", default="1,2", help="worker counts to run (comma-separated)")
    p.add_argument("--sizes", default="24,48,96,120", help="image counts for the bytes-per-candidate check")
    p.add_argument("--max-candidates", type=int, default=None, help="budget (default: the demo's)")
    p.add_argument("--batch", type=int, default=9, help="extraction batch (shards are whole batches; 9: two shards)")
    p.add_argument("--skip-local", action="store_true", help="do not run the local reference")
    p.add_argument("--bytes-only", action="store_true", help="only the bytes-per-candidate check")
    args = p.parse_args()
    torch.set_num_threads(1)
    loaded = load_model(DEMO["model"])
    samples = load_data(DEMO["data"], loaded.preprocess, loaded.classes)
    splits = split_three(samples, DEMO["validation_fraction"], DEMO["test_fraction"], DEMO["seed"])
    options = ExtractOptions(batch_size=args.batch, score_top_k=DEMO["score_top_k"])
    config = demo_config(args.max_candidates)
    print(f"demo: {len(splits[0])} synthesis, {len(splits[1])} validation, {len(splits[2])} test images; "
          f"extraction batch {options.batch_size}; one thread per process; {torch.get_num_threads()} driver thread")

    runs: dict[str, dict[str, Any]] = {}
    if args.bytes_only:
        args.skip_local, args.workers = True, ""
    if not args.skip_local:
        runs["local"] = run_once(loaded, splits, config, options, None)
    for w in [int(x) for x in args.workers.split(",") if x]:
        runs[f"ray{w}"] = run_once(loaded, splits, config, options, w)
    ref_name = "local" if "local" in runs else next(iter(runs), "")
    ref = runs[ref_name]["results"] if ref_name else None
    summary: dict[str, Any] = {"runs": {}}
    for name, r in runs.items():
        same = comparable(r["results"]) == comparable(ref)
        phases = " ".join(f"{k} {r['timings'].get(k, 0):.1f}" for k in PHASES)
        line = f"{name:6s} wall {r['wall']:6.1f} s ({phases}); winner {r['results']['best']['expression']}; " \
               f"same result as {ref_name}: {'yes' if same else 'NO'}"
        row = {"wall": r["wall"], "timings": r["timings"], "same_as_local": same,
               "enumerated": r["enumerated"], "scored": r["scored"]}
        if "bytes_search" in r:
            row.update(bytes_per_candidate=r["bytes_search"] / r["enumerated"], bytes_total=r["bytes_total"],
                       restarts=r["restarts"], startup=r["startup"])
            line += (f"; {row['bytes_per_candidate']:,.0f} bytes per candidate, {r['bytes_total'] / 1e6:.1f} MB "
                     f"in all; workers started in {r['startup']:.1f} s before the clock")
        print(line)
        summary["runs"][name] = row
    one = runs.get("ray1")
    for name, r in runs.items():
        if one is None or not name.startswith("ray") or name == "ray1":
            continue
        w = int(name[3:])
        speedup = one["wall"] / r["wall"]
        phases = {k: one["timings"][k] / r["timings"][k] for k in PHASES if r["timings"].get(k)}
        summary.setdefault("speedup", {})[w] = {"speedup": speedup, "efficiency": speedup / w, "phases": phases}
        target = " (target ≥ 1.7)" if w == 2 else ""
        print(f"speed-up 1 → {w} workers: {speedup:.2f}×{target}, efficiency {speedup / w:.0%}; per phase: "
              + ", ".join(f"{k} {v:.2f}×" for k, v in phases.items()))
    print("bytes per candidate against the number of images (search only, 2 in-process shards):")
    summary["bytes_vs_images"] = bytes_against_images(loaded, samples, [int(x) for x in args.sizes.split(",")])
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
