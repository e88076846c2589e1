"""Shared builders of the synthesis tests: a cheap model-cost stand-in metric, and a search run step by step
on the tiny model of :mod:`engine_helpers`."""

from __future__ import annotations

from typing import ClassVar

import torch
from engine_helpers import tiny_net, tiny_samples
from torch import Tensor

from sycam.metrics.base import Metric, MetricContext
from sycam.synth import SynthesisConfig
from sycam.synth.search import Search
from sycam.terminals import ExtractOptions

LAYER = "body"


class CornerMass(Metric):
    """A cheap stand-in for a model-cost metric with a known range: the map's mean over the top-left
    quadrant (lower is better), so that candidates differ a lot from image to image; no forwards."""

    name = "corner_mass"
    higher_is_better = False
    cost: ClassVar = "model"
    score_range = (0.0, 1.0)

    def score(self, maps: Tensor, ctx: MetricContext) -> Tensor:
        h, w = maps.shape[-2:]
        return maps[..., : h // 2, : w // 2].mean((-2, -1))

    def worst(self) -> float:
        return 1.0


def run_search(metric: Metric, config: SynthesisConfig, n: int = 6, model: torch.nn.Module | None = None) -> Search:
    """A search over ``n`` tiny samples, run to the winner's choice (no validation split, no held-out test)."""
    run = Search(model or tiny_net(), LAYER, tiny_samples(n), [metric], config, ExtractOptions(), None, None)
    run.extract()
    run.score_baselines()
    run.search()
    run.select(None)
    return run


def board(run: Search) -> list[tuple[str, float]]:
    """The leaderboard as (expression, synthesis score) rows, best first."""
    return [(c.expression, c.synthesis_score) for c in run.leaderboard]
