"""Model-cost objectives at speed (issue 8.4): exact equivalence keys, racing, the allocator setting. Every
shortcut must leave the winner, the leaderboard and every reported score as the exact run has them."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
import torch
from engine_helpers import tiny_net, tiny_samples
from synth_helpers import LAYER, CornerMass, board, run_search
from torch import Tensor

from sycam.metrics import get_metric
from sycam.metrics.faithfulness import DeletionAUC
from sycam.synth import SynthesisConfig, SynthesisError
from sycam.synth.grammar import Grammar
from sycam.synth.racing import Race, best_per_image, blocks, hardest_first, score_range
from sycam.workspace import Workspace, reduce_allocation_churn

GRAMMAR = Grammar(terminals=("A", "G"), max_size=4, forms=("channel", "pixel"))


def _identity(c: dict[str, Any]) -> None:
    parts = ("candidates_scored", "raced_out", "equivalent_pruned", "rejected_total", "subexpressions_pruned",
             "form_skipped", "duplicates_of_seeds", "unscored")
    assert c["candidates_enumerated"] == sum(c[k] for k in parts)
    assert 0 <= c["scored_by_key"] <= c["candidates_scored"]


class Unshared(DeletionAUC):
    """deletion_auc without its shortcuts: no equivalence key, no perturbed forwards shared."""

    def equivalence_key(self, maps: Tensor) -> None:
        return None

    def _perturbed_cache(self, ctx: Any) -> dict[bytes, float]:
        return {}





def test_equivalence_keys_share_scores_exactly() -> None:
    config = SynthesisConfig(grammar=GRAMMAR, max_candidates=40, baselines=("gradcam",), batch=4)
    exact = run_search(Unshared(steps=8), config)
    fast = run_search(DeletionAUC(steps=8), config)
    assert fast.winner.expression == exact.winner.expression
    assert [e for e, _ in board(fast)] == [e for e, _ in board(exact)]
    for (_, a), (_, b) in zip(board(fast), board(exact), strict=True):
        assert a == pytest.approx(b, abs=1e-6)
    c = fast.counters()
    assert c["scored_by_key"] > 0 and exact.counters()["scored_by_key"] == 0
    assert c["candidates_scored"] == exact.counters()["candidates_scored"] == 40
    _identity(c)
    # every candidate scored by key has the score of an earlier candidate with the same step bins
    texts = {x.expression: x.synthesis_score for x in exact.scored}
    assert all(texts[x.expression] == pytest.approx(x.synthesis_score, abs=1e-6) for x in fast.scored)


def test_racing_keeps_winner_and_scores_and_drops_only_hopeless_candidates() -> None:
    base = SynthesisConfig(grammar=GRAMMAR, max_candidates=60, baselines=("gradcam",), batch=4, leaderboard_size=3)
    exact = run_search(CornerMass(), base, n=8)
    raced = run_search(CornerMass(), replace(base, racing=True), n=8)
    assert raced.winner.expression == exact.winner.expression
    assert raced.winner.synthesis_score == exact.winner.synthesis_score
    assert board(raced) == board(exact)
    c = raced.counters()
    assert c["raced_out"] > 0 and c["raced_out"] == len(raced.raced)
    assert c["candidates_scored"] + c["raced_out"] == exact.counters()["candidates_scored"] == 60
    _identity(c)
    assert any(n.startswith("racing: candidates scored on 1, 1, 1, 1, 2, 2 images") for n in raced.notes)
    # scored exactly, each raced-out candidate is worse than the bar it was dropped at: it could not have entered
    metric = CornerMass()
    exact_scores = {x.expression: x.synthesis_score for x in exact.scored}
    for text, bar in raced.raced:
        assert bar is not None and metric.better(bar, exact_scores[text])
    # survivors' scores are those of the exact run
    assert all(exact_scores[x.expression] == x.synthesis_score for x in raced.scored)


def test_racing_off_with_unknown_range_or_several_objectives() -> None:
    config = SynthesisConfig(grammar=GRAMMAR, max_candidates=10, baselines=("gradcam",), racing=True)
    run = run_search(get_metric("energy_pointing_game"), config)
    assert run.race is None and any("racing requested but off" in n for n in run.notes)
    assert run.counters()["raced_out"] == 0


def test_race_bound_and_blocks() -> None:
    assert sorted(p for b in blocks(12) for p in b) == list(range(12))
    # blocks end at ceil(12 * f) for f in FRACTIONS: 1, 2, 3, 4, 5, 6, 9, 12
    assert [len(b) for b in blocks(12)] == [1, 1, 1, 1, 1, 1, 3, 3] and blocks(12) == blocks(12)
    assert blocks(4, order=[2, 0, 3, 1]) == [[2], [0], [3], [1]]
    with pytest.raises(ValueError, match="permutation"):
        blocks(3, order=[0, 0, 1])
    assert score_range(get_metric("insertion_auc")) == (0.0, 1.0)
    assert score_range(get_metric("average_drop")) == (0.0, 1.0)
    assert score_range(get_metric("average_drop", output="logit")) is None
    assert score_range(get_metric("increase_in_confidence")) == (0.0, 1.0)
    # hardest images first: average drop is lower-is-better, so the largest mean drop comes first
    assert hardest_first(get_metric("average_drop"), [[0.1, 0.9, 0.5, 0.5], [0.3, 0.7, 0.5, 0.5]]) == [1, 2, 3, 0]
    assert hardest_first(get_metric("increase_in_confidence"), [[1.0, 0.0, 1.0]]) == [1, 0, 2]
    assert score_range(get_metric("energy_pointing_game")) is None
    ws = Workspace.build(tiny_net(), LAYER, tiny_samples(4))
    race = Race.build(ws, CornerMass())
    assert race is not None and race.best.tolist() == [0.0] * 4
    assert race.optimistic_mean(1.0, 2) == pytest.approx(0.25)  # two images unseen, each could score 0
    assert race.cannot_beat(0.3, 0.2) and not race.cannot_beat(0.2, 0.2) and not race.cannot_beat(0.1, 0.2)


def test_racing_setting_is_checked_and_recorded() -> None:
    assert SynthesisConfig(racing=True).as_dict()["racing"] is True
    with pytest.raises(SynthesisError, match="racing"):
        SynthesisConfig(racing="yes").check()  # type: ignore[arg-type]


def test_reduce_allocation_churn_is_idempotent() -> None:
    first = reduce_allocation_churn()
    assert reduce_allocation_churn() == first
    assert isinstance(torch.zeros(1 << 20).sum().item(), float)  # the allocator still works


@pytest.mark.parametrize("name", ["deletion_auc", "insertion_auc"])
def test_best_per_image_bounds_every_map(name: str) -> None:
    metric = get_metric(name, steps=5)
    ws = Workspace.build(tiny_net(), LAYER, tiny_samples(4), [metric])
    best = best_per_image(metric, ws)
    assert best is not None and best.shape == (4,)
    maps = torch.rand(16, 4, 16, 16, generator=torch.Generator().manual_seed(0))
    scores = metric.evaluate(maps, ws.context([])).double()
    if metric.higher_is_better:
        assert bool((scores <= best + 1e-6).all()) and bool((best < 1).all())
    else:
        assert bool((scores >= best - 1e-6).all()) and bool((best > 0).all())


def test_racing_deletion_matches_the_exact_run() -> None:
    base = SynthesisConfig(grammar=GRAMMAR, max_candidates=40, baselines=("gradcam",), batch=4, leaderboard_size=3)
    exact = run_search(DeletionAUC(steps=6), base, n=8)
    raced = run_search(DeletionAUC(steps=6), replace(base, racing=True), n=8)
    assert raced.winner.expression == exact.winner.expression
    assert [e for e, _ in board(raced)] == [e for e, _ in board(exact)]
    for (_, a), (_, b) in zip(board(raced), board(exact), strict=True):
        assert a == pytest.approx(b, abs=1e-6)
    exact_scores = {x.expression: x.synthesis_score for x in exact.scored}
    for text, bar in raced.raced:
        assert bar is not None and DeletionAUC().better(bar, exact_scores[text])
    _identity(raced.counters())
