"""The settings of ``sycam demo``, declared once: the CLI reads its defaults from :data:`DEMO`.

Keys are the ``dest`` names of the ``sycam synthesize`` options, so ``sycam demo`` is ``sycam synthesize`` with
these defaults (any option given on the command line still wins). Choices:

- **Reproducible**: the budget is in candidates (``max_candidates``) and there is no time limit, so the result
  is the same on any machine under any load.
- **Exact search terminals**: the grammar uses A, G and D only. Score-CAM's S is capped to the top-16 channels
  to keep the demo fast; that makes the Score-CAM baseline an approximation ("Score-CAM (top-16 channels)"),
  which never sets λ, and keeps the approximation out of the synthesized expression.
- **Guarded objective**: the energy pointing game rewards blanking most of a map (issue 7), so a winner must
  also keep Grad-CAM's mask AUC (within 1 %) and its pointing game (:data:`~sycam.synth.DEFAULT_GUARDS`).
- **Measured**: with these settings (1,500 candidates, 21 synthesis / 14 validation / 19 test images from
  two nested seeded splits) the search took 200 s on a busy 2-core CPU; the lead tunes the budget and guards.
- **Honest selection**: a validation split, apart from the synthesis split, chooses the winner among the best
  candidates; the test split is scored once at the end.
"""

from __future__ import annotations

from typing import Any

from .constraints import default_constraints

DEMO: dict[str, Any] = {
    "model": "efficientnet_lite0",
    "data": "demo",
    "metric": ["energy_pointing_game"],
    "constraint": list(default_constraints(["energy_pointing_game"])),
    "terminals": "A,G,D",
    "max_size": 5,
    "max_candidates": 1500,
    "time_limit": None,
    "test_fraction": 0.35,
    "validation_fraction": 0.25,
    "seed": 0,
    "score_top_k": 16,
    "max_degenerate": 0.0,
    "out": "sycam-demo",
}
"""``sycam demo``'s defaults, by ``sycam synthesize`` option dest"""
