"""The settings of ``sycam demo``, declared once: the CLI reads its defaults from :data:`DEMO`.

Keys are the ``dest`` names of the ``sycam synthesize`` options, so ``sycam demo`` is ``sycam synthesize`` with
these defaults (any option given on the command line still wins). Choices:

- **Reproducible**: the budget is in candidates (``max_candidates``) and there is no time limit, so the result
  is the same on any machine under any load (checked: the same winner and scores with a CPU-burning process
  beside it, docs/synthesis.md "The demo").
- **Complete**: grammar A, G, D up to size 4 holds 362 candidates after pruning on the demo; the budget of 2,000
  covers all of them, so the search stops because the space is exhausted, never at an arbitrary point of the
  enumeration, and no bank cap is reached. Size 5 does not fit a demo: 1,500 candidates (a prefix of size 5
  in enumeration order) took 3.3 min and gave a winner that over-fitted more (test 0.568 vs Grad-CAM's 0.679).
- **Exact search terminals**: the grammar uses A, G and D only. Score-CAM's S is capped to the top-16 channels
  to keep the demo fast; that makes the Score-CAM baseline an approximation ("Score-CAM (top-16 channels)"),
  which never sets λ, and keeps the approximation out of the synthesized expression.
- **Guarded objective**: the energy pointing game rewards blanking most of a map (issue 7), so a winner must
  also keep Grad-CAM's mask AUC (within 1 %), its pointing game and its IoU (within 1 %; this one rejects maps
  that render near-blank, which the scale-invariant metrics cannot see): the objective's default guards
  (:data:`~sycam.synth.DEFAULT_GUARDS`), which every search applies when no constraint is given, so the demo
  sets no ``constraint`` of its own.
- **Honest selection**: the three source-disjoint worlds of the demo data give one world to each split
  (synthesis: espresso and shuttle; validation: moped; test: cat and tripod, with seed 0); the validation split
  chooses the winner among the best candidates, the test split is scored once at the end.
- **Measured** (docs/synthesis.md "The demo"; ``benchmarks/demo_experiments.py demo``): 1.5 to 7 min on a 2-core
  CPU shared with other jobs. The winner, ``cube(cube(sum(G)))``, does *not* beat Grad-CAM on held-out images
  (test −0.027 [−0.058, +0.004]) and is worse on held-out IoU; on the real photos it is not distinguishable on the
  energy pointing game and worse on IoU. The demo shows the method and its checks, not a win.
"""

from __future__ import annotations

from typing import Any

DEMO: dict[str, Any] = {
    "model": "efficientnet_lite0",
    "data": "demo",
    "metric": ["energy_pointing_game"],
    "terminals": "A,G,D",
    "max_size": 4,
    "max_candidates": 2000,
    "time_limit": None,
    "test_fraction": 0.35,
    "validation_fraction": 0.25,
    "seed": 0,
    "score_top_k": 16,
    "max_degenerate": 0.0,
    "out": "sycam-demo",
}
"""``sycam demo``'s defaults, by ``sycam synthesize`` option dest"""
