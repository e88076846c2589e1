"""Batched scoring (issue 20) gives the numbers of one-by-one scoring, exactly: the channel-form maps of many
candidates (fixed-shape matrix products), both oracles' checks and fingerprints over a block, the search with
blocks of 64 against the search one candidate at a time (random and demo data), and the average-drop race
against the exact search."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch
from engine_helpers import tiny_net, tiny_samples

from sycam.expr import parse
from sycam.heatmap import CHANNEL_ROWS, channel_sum, layer_maps, layer_maps_batch
from sycam.metrics import get_metric
from sycam.metrics.base import Metric
from sycam.synth import Grammar, SynthesisConfig
from sycam.synth.learner import fingerprint, fingerprint_sample, fingerprint_samples
from sycam.synth.oracles import FINGERPRINT_LEVELS, CorrectnessOracle, triage_block
from sycam.synth.search import Search, default_batch
from sycam.terminals import ExtractOptions

LAYER = "body"


def test_channel_sum_does_not_depend_on_the_batch() -> None:
    gen = torch.Generator().manual_seed(0)
    acts = torch.rand(5, 40, 3, 4, generator=gen)
    w = torch.randn(2 * CHANNEL_ROWS + 3, 5, 40, generator=gen)
    batch = channel_sum(w, acts)
    assert batch.shape == (2 * CHANNEL_ROWS + 3, 5, 3, 4)
    want = torch.einsum("bnk,nkhw->bnhw", w.double(), acts.double())
    assert torch.allclose(batch.double(), want, atol=1e-4)
    for b in (0, 7, CHANNEL_ROWS, w.shape[0] - 1):  # any position of any block, alone, or with other rows
        assert torch.equal(channel_sum(w[b:b + 1], acts)[0], batch[b])
        assert torch.equal(channel_sum(w.flip(0), acts)[w.shape[0] - 1 - b], batch[b])
    # a shard holding some of the images gets the same maps for them
    assert torch.equal(channel_sum(w[:, 2:4], acts[2:4]), batch[:, 2:4])


def test_layer_maps_batch_equals_layer_maps_one_by_one() -> None:
    gen = torch.Generator().manual_seed(1)
    acts = torch.rand(3, 6, 4, 4, generator=gen)
    weights = [torch.randn(3, 6, 1, 1, generator=gen) for _ in range(20)]
    weights += [torch.tensor(2.0), torch.randn(3, 6, 4, 4, generator=gen), torch.randn(3, 1, 1, 1, generator=gen)]
    batch = layer_maps_batch(weights, acts)
    for i, w in enumerate(weights):
        assert torch.equal(batch[i], layer_maps(w, acts)), i
    assert layer_maps_batch([], acts).shape == (0, 3, 4, 4)


def test_fingerprints_of_a_block_equal_one_by_one() -> None:
    gen = torch.Generator().manual_seed(2)
    flat = torch.rand(9, 5000, generator=gen)
    flat[3] = 0.0
    keys = fingerprint_samples(flat, FINGERPRINT_LEVELS)
    assert keys[3] == (0, 0)
    for i in range(9):
        assert keys[i] == fingerprint_sample(flat[i], FINGERPRINT_LEVELS)
        assert keys[i] == fingerprint((flat[i],), FINGERPRINT_LEVELS) or flat.shape[1] > 4096


def test_triage_block_equals_the_oracles_one_by_one() -> None:
    gen = torch.Generator().manual_seed(3)
    acts = (torch.rand(4, 6, 3, 3, generator=gen),)
    weights = [(torch.randn(4, 6, 1, 1, generator=gen),) for _ in range(6)]
    weights.append((torch.zeros(4, 6, 1, 1),))  # blank everywhere
    weights.append((torch.full((4, 6, 1, 1), float("nan")),))  # non-finite
    nodes = [parse(f"mean(G) * {j + 1}") for j in range(len(weights))]  # channel vectors of the target layer
    block = triage_block(nodes, weights, [{"A": acts[0]}])
    oracle = CorrectnessOracle([get_metric("energy_pointing_game")], [None], (), 0)
    for j, w in enumerate(weights):
        maps = [layer_maps(w[0], acts[0])]
        torch.testing.assert_close(block.maps[0][j], maps[0], rtol=0, atol=0, equal_nan=True)
        assert oracle.reject_counts(block.finite[j], block.blank[j], block.bad[j], 4) == oracle.reject(maps)
    assert oracle.reject_counts(block.finite[6], block.blank[6], block.bad[6], 4) == "constant heatmap"
    assert oracle.reject_counts(block.finite[7], block.blank[7], block.bad[7], 4) == "non-finite heatmap"
    flat = block.flat
    assert block.keys()[:6] == [fingerprint((flat[j],), FINGERPRINT_LEVELS) for j in range(6)]


def test_default_batch() -> None:
    assert default_batch([get_metric("energy_pointing_game")], on_cpu=True) == 64
    assert default_batch([get_metric("energy_pointing_game"), get_metric("average_drop")], on_cpu=True) == 2
    assert default_batch([get_metric("average_drop")], on_cpu=False) == 32


class OneByOne(Search):
    """The unbatched path: one candidate triaged at a time (scored one per metric call with ``batch=1``)."""

    triage_size = 1


def _run(cls: type[Search], metric: Metric, config: SynthesisConfig, samples, model, layer) -> Search:
    run = cls(model, layer, samples, [metric], config, ExtractOptions(), None, None)
    run.extract()
    run.score_baselines()
    run.search()
    run.select(None)
    return run


def _same(a: Search, b: Search) -> None:
    assert [(c.expression, c.synthesis_score) for c in a.scored] == [(c.expression, c.synthesis_score)
                                                                      for c in b.scored]
    assert a.winner.expression == b.winner.expression and a.winner.synthesis_score == b.winner.synthesis_score
    assert a.counters() == b.counters()


def test_batched_search_equals_one_by_one_on_random_data() -> None:
    config = SynthesisConfig(grammar=Grammar(terminals=("A", "G"), max_size=5), max_candidates=150,
                             baselines=("gradcam", "gradcam++"), guards=False)
    metric = get_metric("energy_pointing_game")
    args = (metric, config, tiny_samples(6), tiny_net(), LAYER)
    batched = _run(Search, *args)
    assert batched.config.batch == 64
    alone = _run(OneByOne, metric, replace(config, batch=1), *args[2:])
    assert len(batched.scored) == 150
    _same(batched, alone)


def test_batched_search_equals_one_by_one_on_demo_data() -> None:
    import sycam
    from sycam.data import split

    lm = sycam.load_model("efficientnet_lite0")
    samples = sycam.load_data("demo", lm.preprocess, lm.classes)
    syn = split(samples, 0.5, seed=0)[0].subset(list(range(3)))
    config = SynthesisConfig(grammar=Grammar(terminals=("A", "G"), max_size=4), max_candidates=60,
                             baselines=("gradcam",), guards=False)
    metric = get_metric("energy_pointing_game")
    batched = _run(Search, metric, config, syn, lm.module, lm.layer)
    alone = _run(OneByOne, metric, replace(config, batch=1), syn, lm.module, lm.layer)
    _same(batched, alone)


@pytest.mark.parametrize("name", ["average_drop", "increase_in_confidence"])
def test_raced_masked_confidence_search_equals_the_exact_one(name: str) -> None:
    config = SynthesisConfig(grammar=Grammar(terminals=("A", "G"), max_size=3), max_candidates=40,
                             baselines=("gradcam",), leaderboard_size=3, batch=4, guards=False)
    samples, model = tiny_samples(8), tiny_net()
    exact = _run(Search, get_metric(name), config, samples, model, LAYER)
    raced = _run(Search, get_metric(name), replace(config, racing=True), samples, model, LAYER)
    board = [(c.expression, c.synthesis_score) for c in exact.leaderboard]
    assert [(c.expression, c.synthesis_score) for c in raced.leaderboard] == board
    assert raced.winner.expression == exact.winner.expression
    assert raced.winner.synthesis_score == exact.winner.synthesis_score
    c, e = raced.counters(), exact.counters()
    assert c["candidates_scored"] + c["raced_out"] == e["candidates_scored"] == 40
    # forwards are counted; the exact run forwards each distinct (image, map) pair once: at most candidates × images;
    # a race adds at most each block's clean pass and the pairs the baselines' scoring had forwarded (8 + 8)
    assert 0 < e["forwards"] <= 40 * 8 and c["forwards"] <= e["forwards"] + 16
    exact_scores = {x.expression: x.synthesis_score for x in exact.scored}
    assert all(exact_scores[x.expression] == x.synthesis_score for x in raced.scored)
