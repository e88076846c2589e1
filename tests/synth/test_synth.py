"""Synthesis: grammar, learner, oracles and the search provably finding what the metric rewards."""

from __future__ import annotations

import itertools
import json
from dataclasses import replace

import pytest
import torch
from engine_helpers import tiny_net, tiny_samples

from sycam.expr import parse
from sycam.heatmap import explain
from sycam.methods import METHODS
from sycam.metrics import get_metric
from sycam.metrics.base import Metric, MetricContext
from sycam.synth import Grammar, GrammarError, Learner, SynthesisConfig, SynthesisError, synthesize
from sycam.workspace import Workspace

LAYER = "body"


class AgreeWith(Metric):
    """Rewards agreement with one classic method's heatmaps: −mean |L − L_method| (higher is better)."""

    name = "agree"
    higher_is_better = True

    def __init__(self, model: torch.nn.Module, method: str) -> None:
        self.method = method
        self._model = model
        self._cache: dict[int, torch.Tensor] = {}

    def params(self) -> dict:
        return {"method": self.method}

    def score(self, maps: torch.Tensor, ctx: MetricContext) -> torch.Tensor:
        key = id(ctx.samples.images)
        if key not in self._cache:
            s = ctx.samples
            self._cache[key] = explain(self._model, s.images, [self.method], s.labels, LAYER)[self.method]
        return -(maps - self._cache[key]).abs().mean((-2, -1))


# -- grammar ------------------------------------------------------------------------------------------


def test_grammar_file_roundtrip(tmp_path) -> None:
    g = Grammar(terminals=("A", "G"), constants=(1.0, 0.5), operators=("+", "*", "mean"), forms=("channel", "pixel"),
                max_size=6)
    path = tmp_path / "g.txt"
    path.write_text("# my grammar\n" + str(g))
    assert Grammar.load(path) == g
    assert Grammar.parse("max_size: 3  # small\nterminals: A, G") == Grammar(terminals=("A", "G"), max_size=3)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("terminals: A X", "unknown terminal"),
        ("operators: + pow", "unknown operator"),
        ("form: spatial", "form must be"),
        ("max_size 3", "expected 'key: values'"),
        ("colour: red", "unknown key 'colour'"),
        ("constants: 1 two", "could not convert"),
        ("max_size: 0", "max_size must be"),
    ],
)
def test_grammar_errors(text: str, message: str) -> None:
    with pytest.raises(GrammarError, match=message):
        Grammar.parse(text, source="g.txt")


def test_classic_methods_admitted_by_the_grammar() -> None:
    both = Grammar(forms=("channel", "pixel"), max_size=7)
    admitted = {name for name, m in METHODS.items() if both.admits(m.node)}
    # Grad-CAM++ needs pytorch-grad-cam's ε constant and 19 nodes
    assert admitted == {"gradcam", "xgradcam", "scorecam", "ablationcam", "hirescam", "layercam"}
    assert not Grammar().admits(METHODS["hirescam"].node)  # pixel form is an option
    assert Grammar(constants=(2.0, 1e-6), max_size=19).admits(METHODS["gradcam++"].node)


def _leaves(values: dict[str, torch.Tensor], names) -> dict[str, tuple[torch.Tensor, ...]]:
    return {t: (values[t],) for t in names}


def test_learner_reaches_every_admitted_classic_method() -> None:
    net, samples = tiny_net(), tiny_samples(4)
    ws = Workspace.build(net, LAYER, samples)
    vals = ws.values(["A", "G", "S", "D"])
    g = Grammar(forms=("channel", "pixel"), max_size=2)
    found = {str(e.node) for e in Learner(g, _leaves(vals, g.terminals)).entries()}
    for name in ("gradcam", "scorecam", "ablationcam", "hirescam", "layercam"):
        assert METHODS[name].expression in found, name
    small = Grammar(terminals=("A", "G"), operators=("*", "/", "sum"), constants=(), max_size=7)
    found = {str(e.node) for e in Learner(small, _leaves(vals, small.terminals)).entries()}
    assert "sum(A * G) / sum(A)" in found  # XGrad-CAM; commutative operands come in terminal order


def test_learner_skips_commutative_duplicates_and_prunes_equal_values() -> None:
    net, samples = tiny_net(), tiny_samples(4)
    vals = Workspace.build(net, LAYER, samples).values(["A", "G"])
    g = Grammar(terminals=("A", "G"), operators=("+", "*", "neg", "mean"), constants=(2.0,), max_size=3,
                forms=("channel", "pixel"))
    learner = Learner(g, _leaves(vals, g.terminals))
    found = [str(e.node) for e in learner.entries()]
    assert "A + G" in found and "G + A" not in found
    assert "A * G" in found and "G * A" not in found
    assert len(found) == len(set(found))
    # neg(neg(A)) has A's value: pruned at size 3 (A came first)
    assert "neg(neg(A))" not in found and learner.stats.subexpr_pruned > 0
    assert all(parse(t).size <= 3 for t in found)


# -- the search ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["gradcam", "xgradcam"])
def test_search_finds_the_rewarded_method(method: str) -> None:
    """(a) A metric that rewards one classic method's heatmaps: the search finds them (not seeded)."""
    net, samples = tiny_net(), tiny_samples(8)
    syn, test = samples.subset(range(6)), samples.subset([6, 7])
    grammar = Grammar(terminals=("A", "G"), operators=("+", "*", "/", "relu", "mean", "sum"), constants=(2.0,),
                      max_size=7)
    config = SynthesisConfig(grammar=grammar, max_candidates=20000, seed_baselines=False, baselines=("gradcam",))
    result = synthesize(net, LAYER, syn, test, AgreeWith(net, method), config=config)
    best = parse(result.best.expression)
    assert best.size <= METHODS[method].node.size
    ours = explain(net, samples.images, [best], samples.labels, LAYER)[str(best)]
    ref = explain(net, samples.images, [method], samples.labels, LAYER)[method]
    assert float((ours - ref).abs().max()) <= 1e-4  # on both splits
    assert result.best.synthesis_score == pytest.approx(0.0, abs=1e-5)


def test_equivalence_pruning_never_discards_a_distinct_candidate() -> None:
    """(c) Search with and without pruning on a tiny grammar: every candidate scored without pruning has
    an identical heatmap among the candidates kept with pruning, and the best score is the same."""
    net, samples = tiny_net(), tiny_samples(6)
    grammar = Grammar(terminals=("A", "G"), operators=("+", "*", "relu", "sq", "mean", "max"), constants=(2.0,),
                      max_size=5)
    metric = get_metric("energy_pointing_game")
    runs = {}
    for mode in ("none", "heatmap"):
        config = SynthesisConfig(grammar=grammar, max_candidates=None, equivalence=mode, guards=False,
                                 leaderboard_size=100000,
                                 baselines=("gradcam",))
        runs[mode] = synthesize(net, LAYER, samples, None, metric, config=config)
    full, pruned = runs["none"], runs["heatmap"]
    assert pruned.counters["equivalent_pruned"] > 0 and full.counters["equivalent_pruned"] == 0
    assert (len(full.leaderboard) + full.counters["merged_rescaled"]
            == len(pruned.leaderboard) + pruned.counters["merged_rescaled"] + pruned.counters["equivalent_pruned"])
    kept = {c.expression for c in pruned.leaderboard}
    ws = Workspace.build(net, LAYER, samples)
    kept_maps = ws.heatmaps([parse(e) for e in sorted(kept)]).flatten(1)
    all_maps = ws.heatmaps([parse(c.expression) for c in full.leaderboard]).flatten(1)
    nearest = torch.cdist(all_maps, kept_maps, p=float("inf"))
    # (rescalings merged on both boards may keep different members of one set: each is near one of the other's)
    assert float(nearest.min(dim=1).values.max()) <= 1e-4 and float(nearest.min(dim=0).values.max()) <= 1e-4
    assert pruned.best.synthesis_score == pytest.approx(full.best.synthesis_score, abs=1e-6)


def test_metric_value_equivalence_option() -> None:
    net, samples = tiny_net(), tiny_samples(6)
    grammar = Grammar(terminals=("A", "G"), operators=("+", "*", "mean"), constants=(), max_size=4)
    config = SynthesisConfig(grammar=grammar, max_candidates=None, equivalence="metric", leaderboard_size=1000,
                             baselines=("gradcam",))
    result = synthesize(net, LAYER, samples, None, get_metric("energy_pointing_game"), config=config)
    scores = sorted(c.synthesis_score for c in result.leaderboard)
    assert all(b - a > 1e-4 for a, b in itertools.pairwise(scores))


def test_lambda_direction_stop_and_results_schema() -> None:
    net, samples = tiny_net(), tiny_samples(8)
    syn, test = samples.subset(range(5)), samples.subset(range(5, 8))
    grammar = Grammar(terminals=("A", "G"), max_size=4)
    complexity = get_metric("complexity")  # lower is better
    config = SynthesisConfig(grammar=grammar, max_candidates=500, stop_at_lambda=True, batch=4, guards=False)
    result = synthesize(net, LAYER, syn, test, complexity, config=config)
    d = json.loads(json.dumps(result.to_dict()))
    assert d["metric"]["higher_is_better"] is False
    assert d["lambda_source"] == "best_baseline"
    best_base = min(b["synthesis_score"] for b in d["baselines"].values())
    assert d["lambda"] == pytest.approx(best_base)
    assert d["stopped_because"] == "beat λ" and d["accepted"] is True
    assert d["best"]["synthesis_score"] < best_base
    assert d["best"]["test_score"] is not None and d["best"]["latex"]
    for key in ("candidates_enumerated", "candidates_scored", "equivalent_pruned", "seconds", "settings",
                "versions", "leaderboard", "history"):
        assert key in d
    hist = [s for _, s in d["history"]]
    assert all(b <= a for a, b in itertools.pairwise(hist))  # best-so-far never gets worse
    user = synthesize(net, LAYER, syn, test, complexity, config=replace(config, lambda_=-1.0, stop_at_lambda=False,
                                                                         max_candidates=30))
    assert user.to_dict()["lambda_source"] == "user" and user.to_dict()["accepted"] is False


def test_budget_interrupt_and_resume(tmp_path) -> None:
    net, samples = tiny_net(), tiny_samples(6)
    grammar = Grammar(terminals=("A", "G"), max_size=4)
    metric = get_metric("energy_pointing_game")
    fresh = synthesize(net, LAYER, samples, None, metric, config=SynthesisConfig(grammar=grammar, max_candidates=60,
                                                                                  batch=8))
    assert fresh.counters["candidates_scored"] >= 60 and fresh.stopped_because == "max candidates"

    ckpt = tmp_path / "checkpoint.json"
    calls = []

    def interrupt(n: int, best: float | None) -> None:
        calls.append(n)
        if n >= 24:
            raise KeyboardInterrupt

    first = synthesize(net, LAYER, samples, None, metric,
                       config=SynthesisConfig(grammar=grammar, max_candidates=60, batch=8, checkpoint=ckpt),
                       on_progress=interrupt)
    assert first.stopped_because == "interrupted" and first.best is not None
    assert len(json.loads(ckpt.read_text())["scored"]) >= 24
    resumed = synthesize(net, LAYER, samples, None, metric,
                         config=SynthesisConfig(grammar=grammar, max_candidates=60, batch=8, checkpoint=ckpt,
                                                resume=True))
    assert resumed.best.expression == fresh.best.expression
    assert [c.expression for c in resumed.leaderboard] == [c.expression for c in fresh.leaderboard]
    other = SynthesisConfig(grammar=replace(grammar, max_size=3), checkpoint=ckpt, resume=True)
    with pytest.raises(SynthesisError, match="other settings"):
        synthesize(net, LAYER, samples, None, metric, config=other)


def test_deterministic() -> None:
    net, samples = tiny_net(), tiny_samples(6)
    config = SynthesisConfig(grammar=Grammar(terminals=("A", "G", "D"), max_size=4), max_candidates=80)
    a = synthesize(net, LAYER, samples, None, get_metric("iou"), config=config).to_dict()
    b = synthesize(net, LAYER, samples, None, get_metric("iou"), config=config).to_dict()
    assert a["leaderboard"] == b["leaderboard"] and a["best"] == b["best"]


def test_view_metrics_use_cached_terminals() -> None:
    net, samples = tiny_net(), tiny_samples(6)
    metric = get_metric("max_sensitivity", n=2)
    config = SynthesisConfig(grammar=Grammar(terminals=("A", "G"), max_size=3), max_candidates=40)
    result = synthesize(net, LAYER, samples, None, metric, config=config)
    # the winner's score recomputed from scratch, through fresh terminal caches
    ws = Workspace.build(net, LAYER, samples, [metric])
    again = metric.aggregate(ws.score([parse(result.best.expression)], metric))[0]
    assert float(again) == pytest.approx(result.best.synthesis_score, rel=1e-5, abs=1e-6)


def test_bad_settings() -> None:
    net, samples = tiny_net(), tiny_samples(4)
    no_gt = replace(samples, masks=None, boxes=None)
    with pytest.raises(SynthesisError, match="needs ground truth"):
        synthesize(net, LAYER, no_gt, None, get_metric("iou"))
    with pytest.raises(SynthesisError, match="unknown baseline"):
        synthesize(net, LAYER, samples, None, get_metric("iou"),
                   config=SynthesisConfig(baselines=("gradcam", "fullgrad")))


def test_model_metric_scores_do_not_depend_on_chunking() -> None:
    """Model-cost metrics memoize candidate-independent passes per workspace; chunking must not matter."""
    net, samples = tiny_net(), tiny_samples(6)
    metric = get_metric("deletion_auc", steps=5)
    ws = Workspace.build(net, LAYER, samples, [metric])
    nodes = [METHODS[k].node for k in ("gradcam", "xgradcam", "layercam", "ablationcam")]
    one, four = ws.score(nodes, metric, chunk=1), ws.score(nodes, metric, chunk=4)
    torch.testing.assert_close(one, four, atol=1e-6, rtol=0)
    assert ws.context(nodes[:1]).memo_key is ws


def test_demo_winner_beats_every_classic_method_on_the_synthesis_split() -> None:
    """(b) The real EfficientNet-Lite0 on (part of) the demo set with the energy pointing game."""
    from sycam.data import load_data, split
    from sycam.models import load_model
    from sycam.terminals import ExtractOptions

    model = load_model("efficientnet_lite0")
    samples = load_data("demo", model.preprocess, model.classes)
    synthesis, test = split(samples.subset(range(0, len(samples), 3)), 0.5, seed=0)
    config = SynthesisConfig(grammar=Grammar(terminals=("A", "G", "S", "D"), max_size=4), max_candidates=400)
    result = synthesize(model.module, model.layer, synthesis, test, get_metric("energy_pointing_game"), config=config,
                        options=ExtractOptions(score_top_k=4))
    assert set(result.baselines) == set(METHODS)
    best_baseline = max(b["synthesis_score"] for b in result.baselines.values())
    # At this layer G is spatially constant, so XGrad-CAM's map is Grad-CAM's up to float32 rounding: the
    # equivalence oracle (tolerance 1e-4) keeps the seed mean(G), and with one torch thread XGrad-CAM's rounding
    # lands 5e-9 higher. "Beats" holds to float noise, 1e-6.
    assert result.best.synthesis_score >= best_baseline - 1e-6
    assert result.best.test_score is not None
