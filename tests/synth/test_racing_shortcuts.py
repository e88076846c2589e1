"""Issue 20.1: the average-drop shortcuts (masked-input scores shared per model across metric objects and
workspaces, the race's bound checked every ``ceil(N / 40)`` images) leave the winner, the leaderboard and every
reported score as the exact search has them, and drop a candidate only when its bound provably cannot beat the
bar."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
import torch
from engine_helpers import tiny_net, tiny_samples
from synth_helpers import LAYER, CornerMass, board, run_search

from sycam.expr import parse
from sycam.metrics import get_metric
from sycam.metrics.base import Metric, MetricContext
from sycam.metrics.faithfulness import AverageDrop, IncreaseInConfidence, forget_shared_forwards
from sycam.synth import SynthesisConfig
from sycam.synth.grammar import Grammar
from sycam.synth.racing import CHECK_EVERY, Race
from sycam.synth.search import Search
from sycam.workspace import Workspace


def _search(metric: Metric, config: SynthesisConfig, n: int, model: torch.nn.Module | None = None) -> Search:
    forget_shared_forwards()
    return run_search(metric, config, n, model)



def test_parts_cut_the_blocks_and_checks_follow_them() -> None:
    ws = Workspace.build(tiny_net(), LAYER, tiny_samples(100))
    race = Race.build(ws, CornerMass(), order=list(range(99, -1, -1)))
    assert race is not None
    assert math.ceil(100 * CHECK_EVERY) == 3 and all(1 <= len(p) <= 3 for p in race.parts)
    # the parts are the blocks cut in order: the same images in the same race order
    assert [i for p in race.parts for i in p] == [i for b in race.positions for i in b] == list(range(99, -1, -1))
    assert len(race.workspaces) == len(race.metrics) == len(race.parts)
    assert [len(b) for b in race.positions] == [5, 5, 5, 5, 5, 5, 10, 10, 25, 25]  # the blocks are unchanged


def test_a_hand_made_race_drops_only_what_it_can_prove() -> None:
    """Candidate 0 puts all its mass in the scored corner (about 1 per image), candidate 1 none of it (0): with
    the bar at 0.1 on 8 images, candidate 0 is dropped as soon as its sum exceeds 0.8 (each unseen image could
    still score 0), candidate 1 is scored on every image with the scores of the exact path."""
    n = 8
    ws = Workspace.build(tiny_net(), LAYER, tiny_samples(n))
    metric = CornerMass()
    race = Race.build(ws, metric)
    assert race is not None and len(race.parts) == n  # ceil(8 / 40) = 1 image per part
    h, w = 4, 4
    maps = torch.zeros(2, n, h, w)
    maps[0, :, :2, :2] = 1.0
    maps[1, :, 2:, 2:] = 1.0
    nodes = [parse("A"), parse("G")]
    got = race.run(lambda view: maps, nodes, bar=0.1)
    assert got[0] is None and got[1] is not None
    (_, seen0, out0), (_, seen1, out1) = race.log
    assert out0 and not out1 and seen1 == n and seen0 < n
    exact = ws.evaluate_layers(metric, lambda view: maps, nodes).double()
    # the drop was provable: the exact scores of the images seen already sum past bar * N (the rest could be 0),
    # and one image fewer would not have sufficed
    order = [i for p in race.parts for i in p]
    seen = exact[0, order[:seen0]]
    assert float(seen.sum()) / n > 0.1 and float(seen[:-1].sum()) / n <= 0.1 + race.margin
    assert torch.equal(got[1], exact[1].float())
    # no bar: nothing is dropped, every image is scored
    again = race.run(lambda view: maps, nodes, bar=None)
    assert all(r is not None for r in again) and torch.equal(again[0], exact[0].float())


def test_bound_after_each_part_is_the_suffix_of_best_values() -> None:
    ws = Workspace.build(tiny_net(), LAYER, tiny_samples(6))
    race = Race.build(ws, CornerMass())
    assert race is not None
    race.best = torch.tensor([0.0, 0.1, 0.2, 0.3, 0.4, 0.5], dtype=torch.float64)
    race.__post_init__()
    for k in range(len(race.parts) + 1):
        rest = [i for p in race.parts[k:] for i in p]
        assert race._best_after[k] == pytest.approx(float(race.best[rest].sum()))


def test_masked_scores_are_shared_across_metrics_and_workspaces_of_a_model() -> None:
    model, samples = tiny_net(), tiny_samples(4)
    maps = torch.rand(3, 4, 16, 16, generator=torch.Generator().manual_seed(0))
    forget_shared_forwards()
    fresh_ad = AverageDrop().score(maps, _plain_ctx(model, samples))
    fresh_ic = IncreaseInConfidence().score(maps, _plain_ctx(model, samples))
    forget_shared_forwards()
    ws = Workspace.build(model, LAYER, samples)
    ad = AverageDrop().score(maps, ws.context([]))
    after_ad = ws.forwards
    assert after_ad == 4 + 12  # clean + one per (candidate, image)
    ic = IncreaseInConfidence().score(maps, ws.context([]))
    assert ws.forwards - after_ad == 4  # its own clean pass; every masked input was forwarded by average drop
    sub = Workspace(model, LAYER, samples.subset([2, 3]), ws.options)
    part = AverageDrop().score(maps[:, 2:], sub.context([]))
    assert sub.forwards == 2  # the clean pass of its two images; the masked inputs are known by content
    assert torch.equal(ad, fresh_ad) and torch.equal(ic, fresh_ic) and torch.equal(part, ad[:, 2:])
    other = tiny_net(seed=1)  # another model: nothing is shared
    ws2 = Workspace.build(other, LAYER, samples)
    AverageDrop().score(maps, ws2.context([]))
    assert ws2.forwards == 4 + 12


def _plain_ctx(model: torch.nn.Module, samples: object) -> MetricContext:
    """A context whose memo key names no model: the per-context store (the unshared path)."""
    ws = Workspace.build(model, LAYER, samples)  # type: ignore[arg-type]
    ctx = ws.context([])
    ctx.memo_key = object.__new__(type("Key", (), {}))  # type: ignore[attr-defined]
    return ctx


@pytest.mark.parametrize("seed", [0, 1])
def test_raced_average_drop_with_its_guard_equals_the_exact_search(seed: int) -> None:
    """Default guards on (increase in confidence >= 0.9 × Grad-CAM's): the guard reads average drop's masked
    inputs; racing with checks every image on 16 images; random nets."""
    config = SynthesisConfig(grammar=Grammar(terminals=("A", "G"), max_size=4), max_candidates=40,
                             baselines=("gradcam", "gradcam++"), leaderboard_size=4, batch=2)
    exact = _search(get_metric("average_drop"), config, 16, tiny_net(seed))
    raced = _search(get_metric("average_drop"), replace(config, racing=True), 16, tiny_net(seed))
    assert raced.winner.expression == exact.winner.expression
    assert raced.winner.synthesis_score == exact.winner.synthesis_score
    assert board(raced) == board(exact)
    by_text = {x.expression: x.synthesis_score for x in exact.scored}
    assert all(by_text[x.expression] == x.synthesis_score for x in raced.scored)
    holds = {x.expression: x.holds for x in exact.scored}
    assert all(holds[x.expression] == x.holds for x in raced.scored if x.holds is not None)
    metric = get_metric("average_drop")
    for text, bar in raced.raced:
        assert bar is not None and metric.better(bar, by_text[text])
    c, e = raced.counters(), exact.counters()
    assert c["candidates_scored"] + c["raced_out"] == e["candidates_scored"]
    # the exact search forwards at most one masked input per (candidate, image) for both metrics together
    assert e["forwards"] <= (e["candidates_scored"] + 1) * 16
