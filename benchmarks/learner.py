"""Benchmark: the learner alone (enumeration, admission, exact pruning) against an earlier learner, on the
same cached terminals of the demo, in one process.

Two measurements, each for the current learner and for ``sycam/synth/learner.py`` at ``--baseline-rev``
(read with ``git show``; default: the round's starting commit, whose bank merged values within a relative
1e-5 and held every map value):

- **time per candidate**: enumerate until ``--candidates`` candidates (expressions of a kind the grammar's
  form admits) have been yielded; interleaved rounds (baseline, current, baseline, ...), medians, and the
  ratio is the median of per-round ratios;
- **entries per GiB**: enumerate the ``--max-size`` space to exhaustion (or until the bank is full) under
  the default 2 GiB cap; entries held divided by the bytes held (held values + the map cache in use).

Usage: ``python benchmarks/learner.py [--n 28] [--candidates 2000] [--repeats 3] [--max-size 5]``.
The last line of the output is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
import types
import warnings
from pathlib import Path
from typing import Any

import torch

from sycam.data import load_data, split
from sycam.models import load_model
from sycam.synth import Grammar
from sycam.synth import learner as current
from sycam.workspace import Workspace

warnings.filterwarnings("ignore")
BASELINE_REV = "5aada64"


def baseline_module(rev: str) -> types.ModuleType:
    """The learner module as it was at git revision ``rev``."""
    root = Path(__file__).resolve().parents[1]
    text = subprocess.run(["git", "show", f"{rev}:sycam/synth/learner.py"], cwd=root, check=True,
                          capture_output=True, text=True).stdout
    text = text.replace("from ..expr", "from sycam.expr").replace("from .grammar", "from sycam.synth.grammar")
    module = types.ModuleType(f"learner_{rev}")
    sys.modules[module.__name__] = module  # dataclasses look their module up
    exec(compile(text, f"learner@{rev}", "exec"), module.__dict__)
    return module


def enumerate_until(cls: Any, grammar: Grammar, leaves: dict, limit: int | None, cap: int) -> dict[str, Any]:
    learner = cls(grammar, leaves, max_bank_bytes=cap)
    t0 = time.perf_counter()
    n_cand = n_entries = 0
    for entry in learner.entries():
        n_entries += 1
        if grammar.form_allows(entry.kind):
            n_cand += 1
            if limit is not None and n_cand >= limit:
                break
    seconds = time.perf_counter() - t0
    st = learner.stats
    held = st.bank_bytes + getattr(st, "cache_bytes", 0)
    return {"seconds": seconds, "candidates": n_cand, "entries": n_entries, "bank_size": st.bank_size,
            "held_bytes": held, "bank_full": st.bank_full, "pruned": st.subexpr_pruned,
            "entries_per_gib": st.bank_size / max(held / 2**30, 1e-12)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=28, help="demo synthesis images (default 28: all)")
    ap.add_argument("--terminals", default="A,G,D")
    ap.add_argument("--candidates", type=int, default=2000, help="candidates per timed enumeration (default 2000)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--max-size", type=int, default=5, help="size limit of the exhaustive memory run (default 5)")
    ap.add_argument("--baseline-rev", default=BASELINE_REV)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    if args.threads > 0:
        torch.set_num_threads(args.threads)

    loaded = load_model("efficientnet_lite0")
    samples = load_data("demo", loaded.preprocess, loaded.classes)
    synthesis, _ = split(samples, 0.5, 0)
    synthesis = synthesis.subset(list(range(min(args.n, len(synthesis)))))
    terminals = tuple(t for t in args.terminals.split(",") if t)
    values = Workspace.build(loaded.module, loaded.layer, synthesis).values(terminals)
    leaves = {t: (values[t],) for t in terminals}
    old = baseline_module(args.baseline_rev).Learner
    new = current.Learner
    print(f"efficientnet_lite0 bn2, {len(synthesis)} demo images, terminals {' '.join(terminals)}, "
          f"threads={torch.get_num_threads()}, baseline learner @ {args.baseline_rev}", flush=True)

    grammar = Grammar(terminals=terminals)
    times: dict[str, list[float]] = {"baseline": [], "current": []}
    for r in range(args.repeats):
        for name, cls in (("baseline", old), ("current", new)):
            out = enumerate_until(cls, grammar, leaves, args.candidates, 2 << 30)
            times[name].append(out["seconds"] / out["candidates"])
            print(f"round {r + 1} {name:<8}: {out['candidates']} candidates ({out['entries']} entries) in "
                  f"{out['seconds']:.2f} s = {1e3 * times[name][-1]:.2f} ms/candidate", flush=True)
    ratios = [b / c for b, c in zip(times["baseline"], times["current"], strict=True)]

    small = Grammar(terminals=terminals, max_size=args.max_size)
    memory = {}
    for name, cls in (("baseline", old), ("current", new)):
        out = enumerate_until(cls, small, leaves, None, 2 << 30)
        memory[name] = out
        print(f"size <= {args.max_size}, 2 GiB cap, {name:<8}: {out['candidates']} candidates, bank holds "
              f"{out['bank_size']} entries in {out['held_bytes'] / 2**20:.0f} MiB = {out['entries_per_gib']:.0f} "
              f"entries/GiB, bank full: {out['bank_full']}, {out['seconds']:.1f} s", flush=True)
    gain = memory["current"]["entries_per_gib"] / memory["baseline"]["entries_per_gib"]
    speed = statistics.median(ratios)
    print(f"learner time per candidate: {speed:.2f}x faster (per round: {', '.join(f'{x:.2f}' for x in ratios)})")
    print(f"bank entries per GiB: {gain:.1f}x (target >= 20x: {'met' if gain >= 20 else 'NOT met'})")
    print(json.dumps({"benchmark": "learner", "n_images": len(synthesis), "baseline_rev": args.baseline_rev,
                      "ms_per_candidate": {k: round(1e3 * statistics.median(v), 3) for k, v in times.items()},
                      "speedup": round(speed, 2), "per_round": [round(x, 2) for x in ratios],
                      "memory": {k: {kk: (round(vv, 1) if isinstance(vv, float) else vv) for kk, vv in v.items()}
                                 for k, v in memory.items()},
                      "entries_per_gib_gain": round(gain, 1)}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
