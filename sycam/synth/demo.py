"""The settings of ``sycam demo``, declared once: ``sycam demo`` is ``sycam synthesize`` with these defaults.

Keys are the CLI's option destinations (``--max-size`` → ``max_size``); any other option keeps its
``synthesize`` default, and every option can still be given on the command line.
"""

from __future__ import annotations

from typing import Any

#: CLI option dest → the demo's default (EfficientNet-Lite0 with its shipped ImageNet weights, the embedded
#: demo data, the energy pointing game, a size-5 search space run to exhaustion within 45 s).
DEMO: dict[str, Any] = {
    "model": "efficientnet_lite0",
    "data": "demo",
    "metric": ["energy_pointing_game"],
    "test_fraction": 0.5,
    "max_size": 5,
    "max_candidates": 20000,
    "time_limit": 45.0,
    "score_top_k": 16,
    "out": "sycam-demo",
}
