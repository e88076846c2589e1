"""Benchmark: candidates scored per second by the synthesizer for a cached metric, against (i) scoring the
same candidates the pytorch-grad-cam way and (ii) the bare tensor work of one candidate.

Setup (defaults): the real EfficientNet-Lite0 (``weights="imagenet"``, layer ``bn2``), the ``demo`` data
set's synthesis split (``split(samples, 0.5, seed=0)``, 28 images at 224 px; ``--n`` keeps the first n),
metric ``energy_pointing_game``, grammar terminals ``A G D`` (no S, so extraction stays short; the classic
baselines are restricted to those the terminals express, otherwise the search would extract S for
Score-CAM), a budget of ``--candidates`` scored candidates.

- **search**: ``sycam.synth.synthesize`` with that budget; its rate is ``counters["candidates_scored"] /
  timings["search"]`` (enumeration, equivalence pruning, rendering and metric; terminal extraction is a
  one-time cost, printed separately and also folded into a second "incl. extraction" rate). The scored
  candidates are read from the search's checkpoint (every scored expression with its score).
- **(i) pytorch-grad-cam**: per candidate, a fresh ``BaseCAM`` subclass whose ``get_cam_weights`` computes
  the candidate's channel weights from grad-cam's activations and gradients (``sycam.expr.evaluate`` over
  ``{"A": activations, "G": grads}``), called on all N images (forward + backward every time, as
  pytorch-grad-cam does), then the same metric on its maps. Only candidates over ``A``/``G`` qualify (a
  ``D`` candidate would also need Ablation-CAM's K forwards per image, so these are the cheap ones);
  ``--ref-candidates`` of them, spread over the scored list, are timed and the per-candidate median is
  extrapolated. Each grad-cam map must equal sycam's within 1e-4 and its metric score the search's.
- **(ii) bare tensor work**: given cached ``A`` and each candidate's weights α ``(N, K)`` (computed
  beforehand, not timed), one candidate at a time: ``Σ_k α_k A_k``, ``sycam.heatmap.finish`` (relu,
  normalize, bilinear resize to the input size, normalize) and the metric — over every scored candidate.

- **(iii) bare work at layer resolution**: the same, but ``normalize(relu(Σ_k α_k A_k))`` at the layer's h×w
  and the metric's exact low-resolution path ``metric.evaluate_lowres`` where the metric has one
  (``metric.lowres``); without it the row covers the maps only and says so.

- **(iv) the scored candidates' own arithmetic**: every distinct sub-expression of the scored candidates
  evaluated once (memoized over all of them) from the cached terminals, as channel weights; **(v)** that plus
  the cheapest exact scoring (channel products in blocks of 64, ``normalize(relu)`` at h×w, the metric's
  low-resolution path). Any exact search that scores these candidates does at least this work, so (v) over
  (i) is the **ceiling** of ``speedup_vs_gradcam`` (``ceiling_vs_gradcam`` in the JSON).

- **unbatched path** (first round): the same search one candidate at a time (``Search.triage_size = 1``, one
  candidate per metric call); its scored candidates, their scores and the winner must equal the batched search's.

Ratios: ``speedup_vs_gradcam`` = search rate / grad-cam rate (target ≥ 5000, issue 20); ``search_cost_vs_bare`` =
the search's per-candidate time / the bare per-candidate time (target ≤ 2), and the same against (iii).
Rounds are interleaved (search, bare, grad-cam, search, ...); each rate is the median over ``--repeats``
rounds and each ratio the median of the per-round ratios (paired: a load change hits both sides alike).

Usage: ``python benchmarks/synthesis.py [--n 28] [--candidates 1000] [--repeats 3] [--ref-candidates 6] [--batch 16]``.
The last line of the output is one JSON object with both ratios and the raw rates.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from sycam.data import load_data, split
from sycam.data.samples import Samples
from sycam.expr import Kind, Node, evaluate, kind_of, parse
from sycam.heatmap import finish, normalize, saliency
from sycam.methods import METHODS
from sycam.metrics import StaticContext, get_metric
from sycam.metrics.base import Metric
from sycam.models import load_model, resolve_layer
from sycam.synth import Grammar, SynthesisConfig, synthesize
from sycam.synth.search import Search
from sycam.terminals import ExtractOptions
from sycam.workspace import Workspace

warnings.filterwarnings("ignore")

TARGET_GRADCAM = 5000.0
TARGET_BARE = 2.0


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def run_search(model: torch.nn.Module, layer: str, samples: Samples, metric: Metric, terminals: tuple[str, ...],
               budget: int, batch: int | None, options: ExtractOptions,
               unbatched: bool = False) -> tuple[dict[str, float], Any]:
    """One synthesis run; returns ``({expression: score} in scoring order, result)``. ``unbatched``: one candidate
    triaged and scored at a time (``Search.triage_size = 1``, ``batch=1``), the path the batched one must equal."""
    baselines = tuple(b for b, m in METHODS.items() if m.node.terminals() <= set(terminals))
    saved = Search.triage_size
    with tempfile.TemporaryDirectory() as tmp:
        checkpoint = Path(tmp) / "checkpoint.json"
        config = SynthesisConfig(grammar=Grammar(terminals=terminals), max_candidates=budget,
                                 batch=1 if unbatched else batch,
                                 baselines=baselines, checkpoint=checkpoint, checkpoint_every=1e9,
                                 guards=False)  # the objective alone, as the competitor and the bare work score
        try:
            Search.triage_size = 1 if unbatched else saved
            result = synthesize(model, layer, samples, None, metric, config=config, options=options)
        finally:
            Search.triage_size = saved
        scored = json.loads(checkpoint.read_text())["scored"]
    first = (v[0] if isinstance(v, list) else v for v in scored.values())  # the objective's column
    return {k: (math.nan if v is None else float(v)) for k, v in zip(scored, first, strict=True)}, result


def weights_nk(w: Tensor, n: int, k: int) -> Tensor:
    """Channel weights as ``(N, K)`` (a constant weights every channel alike)."""
    return torch.broadcast_to(w.reshape(w.shape[:2]) if w.dim() >= 2 else w, (n, k))


FLOOR_BLOCK = 64
"""candidates per channel product in the floor rows (iv)/(v)"""


def own_arithmetic(nodes: list[Node], values: dict[str, Tensor], n: int, k: int) -> list[Tensor]:
    """The scored candidates' own arithmetic: every distinct sub-expression of ``nodes`` evaluated once (memoized
    over all of them) from the cached terminals, as channel weights ``(N, K)``. Any exact search that scores these
    candidates computes at least their values; no enumeration, no oracle, no metric."""
    memo: dict[Node, Tensor] = {}
    return [weights_nk(evaluate(nd, values, memo), n, k) for nd in nodes]


def score_batched(alphas: list[Tensor], acts: Tensor, metric: Metric, size: tuple[int, int], ctx: Any) -> None:
    """Score channel weights in blocks of :data:`FLOOR_BLOCK`: one channel product per block and image,
    ``normalize(relu(·))`` at h×w and the metric's exact low-resolution path (the cheapest exact scoring)."""
    for a in range(0, len(alphas), FLOOR_BLOCK):
        w = torch.stack(alphas[a:a + FLOOR_BLOCK])
        lmaps = normalize(torch.relu(saliency(w[:, :, :, None, None], acts)))
        metric.aggregate(metric.evaluate_lowres(lmaps, size, ctx))  # type: ignore[attr-defined]


def make_gradcam_class(node: Node) -> type:
    """A pytorch-grad-cam ``BaseCAM`` whose channel weights are the candidate expression's."""
    from pytorch_grad_cam.base_cam import BaseCAM

    class CandidateCAM(BaseCAM):
        def __init__(self, model: torch.nn.Module, target_layers: list[torch.nn.Module]) -> None:
            super().__init__(model, target_layers, uses_gradients=True)

        def get_cam_weights(self, input_tensor: Tensor, target_layer: torch.nn.Module, targets: list[Any],
                            activations: np.ndarray, grads: np.ndarray) -> np.ndarray:
            values = {"A": torch.from_numpy(activations), "G": torch.from_numpy(grads)}
            w = evaluate(node, values)
            return weights_nk(w, *activations.shape[:2]).numpy()

    return CandidateCAM


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="efficientnet_lite0")
    ap.add_argument("--weights", default="imagenet", help="'imagenet' (default), 'none' (random) or a file")
    ap.add_argument("--data", default="demo")
    ap.add_argument("--n", type=int, default=None, help="keep the first n synthesis images (default: all)")
    ap.add_argument("--metric", default="energy_pointing_game")
    ap.add_argument("--terminals", default="A,G,D", help="grammar terminals (default A,G,D)")
    ap.add_argument("--candidates", type=int, default=1000, help="search budget: candidates scored (default 1000)")
    ap.add_argument("--batch", type=int, default=None,
                    help="candidates per metric call in the search (default: the search's own, 2 on the CPU)")
    ap.add_argument("--ref-candidates", type=int, default=6,
                    help="candidates timed the pytorch-grad-cam way per round (default 6)")
    ap.add_argument("--repeats", type=int, default=3, help="interleaved rounds; each rate is their median (default 3)")
    ap.add_argument("--threads", type=int, default=1,
                    help="torch CPU threads (default 1: stable under background load; 0 = torch's default)")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--seed", type=int, default=0, help="split seed")
    args = ap.parse_args(argv)

    if args.threads > 0:
        torch.set_num_threads(args.threads)
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    device = torch.device(args.device)
    terminals = tuple(t.strip() for t in args.terminals.replace(" ", ",").split(",") if t.strip())
    loaded = load_model(args.model, weights=None if args.weights.lower() == "none" else args.weights)
    model = loaded.module.to(device).eval()
    layer_name, layer = resolve_layer(model, loaded.layer)
    samples = load_data(args.data, loaded.preprocess, loaded.classes)
    synthesis, _ = split(samples, 0.5, args.seed)
    if args.n is not None:
        synthesis = synthesis.subset(list(range(min(args.n, len(synthesis)))))
    synthesis = synthesis.to(device)
    metric = get_metric(args.metric)
    options = ExtractOptions()
    n = len(synthesis)
    size = (int(synthesis.images.shape[-2]), int(synthesis.images.shape[-1]))
    print(f"model={args.model}(weights={args.weights})  layer={layer_name}  data={args.data} synthesis split: "
          f"{n} images {size[0]}x{size[1]}  metric={metric.name}  terminals={' '.join(terminals)}  "
          f"budget={args.candidates}  device={device}  threads={torch.get_num_threads()}", flush=True)

    # the workspace of the bare timing and of the reference checks (the same terminals the search extracts)
    t0 = time.perf_counter()
    ws = Workspace.build(model, layer_name, synthesis, [metric], options)
    values = ws.values(terminals)
    extraction_s = time.perf_counter() - t0
    acts = values["A"]
    k = int(acts.shape[1])
    ctx = StaticContext(synthesis, model)

    search_rates, search_incl, bare_rates, ref_rates, low_rates = [], [], [], [], []
    own_rates: list[float] = []
    floor_rates: list[float] = []
    nodes: list[Node] = []
    # exact low-resolution scoring (metrics helper): Metric.lowres + Metric.evaluate_lowres(layer_maps, size, ctx)
    lowres = bool(getattr(metric, "lowres", False)) and hasattr(metric, "evaluate_lowres")
    scored: dict[str, float] = {}
    result: Any = None
    ref_exprs: list[str] = []
    same_as_unbatched = False
    unbatched_rate = math.nan
    alphas: list[Tensor] = []
    checks: dict[str, float] = {"map": 0.0, "score": 0.0, "bare_score": 0.0}
    for r in range(args.repeats):
        # --- the search
        scored_r, result = run_search(model, layer_name, synthesis, metric, terminals, args.candidates, args.batch,
                                      options)
        n_scored = int(result.counters["candidates_scored"])
        search_rates.append(n_scored / result.timings["search"])
        search_incl.append(n_scored / (result.timings["search"] + result.timings["terminals"]))
        if r == 0:
            scored = scored_r
            t_un = time.perf_counter()
            scored_un, result_un = run_search(model, layer_name, synthesis, metric, terminals, args.candidates,
                                              args.batch, options, unbatched=True)
            unbatched_rate = int(result_un.counters["candidates_scored"]) / result_un.timings["search"]
            same_as_unbatched = (list(scored_un.items()) == list(scored.items())
                                 and result_un.best.expression == result.best.expression
                                 and result_un.best.synthesis_score == result.best.synthesis_score)
            print(f"unbatched path (one candidate at a time): {len(scored_un)} candidates in "
                  f"{result_un.timings['search']:.2f} s ({time.perf_counter() - t_un:.1f} s with extraction); "
                  f"same candidates, scores and winner as the batched search: {same_as_unbatched}", flush=True)
            nodes = [parse(e) for e in scored]
            with torch.no_grad():
                alphas = [weights_nk(evaluate(nd, values), n, k) for nd in nodes]
            eligible = [e for e, nd in zip(scored, nodes, strict=True)
                        if nd.terminals() <= {"A", "G"} and kind_of(nd) != Kind.MAP and nd.terminals()]
            step = max(1, len(eligible) // max(1, args.ref_candidates))
            ref_exprs = eligible[::step][: args.ref_candidates]
        print(f"round {r + 1}: search {n_scored} candidates in {result.timings['search']:.2f} s "
              f"(terminals {result.timings['terminals']:.2f} s)", flush=True)

        # --- (ii) the bare tensor work, one candidate at a time
        bare_scores = []
        sync(device)
        t0 = time.perf_counter()
        with torch.no_grad():
            for alpha in alphas:
                maps = finish(saliency(alpha[:, :, None, None], acts), size)
                bare_scores.append(metric.aggregate(metric.score(maps[None], ctx)))
        sync(device)
        bare_rates.append(len(alphas) / (time.perf_counter() - t0))
        if r == 0:
            got = torch.cat(bare_scores).cpu()
            want = torch.tensor(list(scored.values()))
            both = torch.isfinite(got) & torch.isfinite(want)
            checks["bare_score"] = float((got[both] - want[both]).abs().max()) if bool(both.any()) else 0.0

        # --- (iii) the bare work at layer resolution: Σ α_k A_k at h×w and normalize(relu(·)); plus the
        # metric's exact low-resolution path where it has one (else the metric is left out of this row)
        sync(device)
        t0 = time.perf_counter()
        with torch.no_grad():
            for alpha in alphas:
                lmaps = normalize(torch.relu(saliency(alpha[:, :, None, None], acts)))
                if lowres:
                    metric.aggregate(metric.evaluate_lowres(lmaps[None], size, ctx))  # type: ignore[attr-defined]
        sync(device)
        low_rates.append(len(alphas) / (time.perf_counter() - t0))

        # --- (iv) the floor: the scored candidates' own arithmetic (each sub-expression once), and (v) that plus
        # batched scoring at layer resolution: no exact search scoring these candidates can do less work
        sync(device)
        t0 = time.perf_counter()
        with torch.no_grad():
            own = own_arithmetic(nodes, values, n, k)
        sync(device)
        own_s = time.perf_counter() - t0
        own_rates.append(len(own) / own_s)
        if lowres:
            sync(device)
            t0 = time.perf_counter()
            with torch.no_grad():
                score_batched(own, acts, metric, size, ctx)
            sync(device)
            floor_rates.append(len(own) / (own_s + time.perf_counter() - t0))

        # --- (i) the pytorch-grad-cam way: forward + backward for every candidate
        targets = [ClassifierOutputTarget(int(c)) for c in synthesis.labels]
        per_candidate = []
        for expr in ref_exprs:
            node = parse(expr)
            sync(device)
            t0 = time.perf_counter()
            with make_gradcam_class(node)(model=model, target_layers=[layer]) as cam:
                ref_maps = torch.from_numpy(cam(input_tensor=synthesis.images, targets=targets)).to(device)
            ref_score = float(metric.aggregate(metric.score(ref_maps[None], ctx))[0])
            sync(device)
            per_candidate.append(time.perf_counter() - t0)
            if r == 0:
                ours = ws.heatmaps([node])[0]
                checks["map"] = max(checks["map"], float((ours - ref_maps).abs().max()))
                checks["score"] = max(checks["score"], abs(ref_score - scored[expr]))
        ref_rates.append(1.0 / statistics.median(per_candidate))
        print(f"round {r + 1}: bare {len(alphas)} candidates at {bare_rates[-1]:.1f}/s, grad-cam way "
              f"{len(ref_exprs)} candidates at {ref_rates[-1]:.3f}/s", flush=True)

    search_rate = statistics.median(search_rates)
    incl_rate = statistics.median(search_incl)
    bare_rate = statistics.median(bare_rates)
    ref_rate = statistics.median(ref_rates)
    # ratios are paired per round (the rounds are interleaved, so a load change hits both sides of a ratio)
    speedups = [s / g for s, g in zip(search_rates, ref_rates, strict=True)]
    vs_lows = [b / s for b, s in zip(low_rates, search_rates, strict=True)]
    vs_bares = [b / s for b, s in zip(bare_rates, search_rates, strict=True)]
    speedup = statistics.median(speedups)
    vs_bare = statistics.median(vs_bares)
    rows = [
        ("sycam search", search_rate, "candidates_scored / timings['search']"),
        ("sycam search incl. extraction", incl_rate, "terminal extraction amortized over the budget"),
        ("(i) pytorch-grad-cam way", ref_rate, f"BaseCAM per candidate, median of {len(ref_exprs)}, extrapolated"),
        ("(ii) bare tensor work", bare_rate, "Σ α_k A_k + finish + metric, one at a time"),
        ("(iii) bare work, layer resolution", statistics.median(low_rates),
         "Σ α_k A_k + normalize(relu) at h×w" + (" + metric.evaluate_lowres" if lowres
                                                 else " (no metric: it has no exact low-resolution path here)")),
        ("(iv) own arithmetic (floor)", statistics.median(own_rates),
         "each sub-expression of the scored candidates once: their channel weights, nothing else"),
    ]
    if floor_rates:
        rows.append(("(v) (iv) + batched scoring", statistics.median(floor_rates),
                     f"(iv) + Σ α_k A_k in blocks of {FLOOR_BLOCK}, normalize(relu) at h×w, metric.evaluate_lowres"))
    # the most any exact search scoring these candidates could reach against the grad-cam way (paired per round)
    ceilings = [f / g for f, g in zip(floor_rates or own_rates, ref_rates, strict=True)]
    ceiling = statistics.median(ceilings)
    print()
    header = f"{'what':<32}{'cand/s':>12}{'ms/cand':>11}  note"
    print(header)
    print("-" * (len(header) + 40))
    for name, rate, note in rows:
        print(f"{name:<32}{rate:>12.3f}{1e3 / rate:>11.2f}  {note}")
    print("-" * (len(header) + 40))
    print(f"(i)  search vs pytorch-grad-cam way: {speedup:,.1f}x faster per candidate (target >= {TARGET_GRADCAM:g}x)"
          f"; per round: {', '.join(f'{x:,.1f}' for x in speedups)}")
    print(f"(ii) search per-candidate cost / bare tensor work: {vs_bare:.2f}x (target <= {TARGET_BARE:g}x)"
          f"; per round: {', '.join(f'{x:.2f}' for x in vs_bares)}")
    print(f"(iii) search per-candidate cost / bare layer-resolution work: {statistics.median(vs_lows):.2f}x"
          f" (metric {'included, low-resolution path' if lowres else 'NOT included: no exact low-resolution path'})")
    print(f"(iv/v) ceiling of any exact search scoring these candidates: {ceiling:,.1f}x the pytorch-grad-cam way "
          f"({'(v): their arithmetic and batched low-resolution scoring' if floor_rates else '(iv): their arithmetic'}"
          f"); the search reaches {speedup / ceiling:.0%} of it; per round: {', '.join(f'{x:,.1f}' for x in ceilings)}")
    print(f"checks: max |grad-cam map - sycam map| = {checks['map']:.1e}, max |score diff| = {checks['score']:.1e}; "
          f"bare vs search score max diff = {checks['bare_score']:.1e}")
    print(f"reference candidates (i): {ref_exprs}")
    assert result is not None
    print(f"batched search vs unbatched path: {search_rate / unbatched_rate:.2f}x the rate; same candidates, scores "
          f"and winner: {same_as_unbatched}")
    agree = (checks["map"] <= 1e-4 and checks["score"] <= 1e-4 and checks["bare_score"] <= 1e-4
             and same_as_unbatched)
    if not agree:
        print("MISMATCH: the compared computations do not agree within 1e-4")
    met = {f"gradcam_ge_{TARGET_GRADCAM:g}x": speedup >= TARGET_GRADCAM,
           f"bare_le_{TARGET_BARE:g}x": vs_bare <= TARGET_BARE}
    print("targets: " + ", ".join(f"{k}={'met' if v else 'NOT met'}" for k, v in met.items()))
    out = {
        "benchmark": "synthesis",
        "model": args.model,
        "weights": args.weights,
        "layer": layer_name,
        "metric": metric.name,
        "n_images": n,
        "size": size[0],
        "terminals": list(terminals),
        "device": str(device),
        "threads": torch.get_num_threads(),
        "repeats": args.repeats,
        "candidates_scored": int(result.counters["candidates_scored"]),
        "candidates_enumerated": int(result.counters["candidates_enumerated"]),
        "search_s": round(result.timings["search"], 3),
        "extraction_s": round(result.timings["terminals"], 3),
        "workspace_extraction_s": round(extraction_s, 3),
        "rates": {"search": round(search_rate, 3), "search_incl_extraction": round(incl_rate, 3),
                  "gradcam": round(ref_rate, 5), "bare": round(bare_rate, 3),
                  "bare_layer_resolution": round(statistics.median(low_rates), 3),
                  "own_arithmetic": round(statistics.median(own_rates), 3),
                  "own_arithmetic_and_batched_scoring": round(statistics.median(floor_rates), 3) if floor_rates
                  else None},
        "ceiling_vs_gradcam": round(ceiling, 1),
        "search_share_of_ceiling": round(speedup / ceiling, 3),
        "lowres_metric": lowres,
        "search_cost_vs_bare_layer_resolution": round(statistics.median(vs_lows), 3),
        "speedup_vs_gradcam": round(speedup, 1),
        "unbatched_rate": round(unbatched_rate, 3),
        "same_as_unbatched": same_as_unbatched,
        "winner": result.best.expression,
        "winner_score": result.best.synthesis_score,
        "search_cost_vs_bare": round(vs_bare, 3),
        "per_round": {"speedup_vs_gradcam": [round(x, 1) for x in speedups],
                      "search_cost_vs_bare": [round(x, 3) for x in vs_bares]},
        "ref_candidates": ref_exprs,
        "checks": {k: float(f"{v:.3g}") for k, v in checks.items()},
        "targets_met": met,
    }
    print(json.dumps(out))
    return 0 if agree else 1


if __name__ == "__main__":
    raise SystemExit(main())
