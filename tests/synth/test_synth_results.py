"""Synthesis results that hold up (issue 7): constraints, Pareto fronts, degenerate maps, exact budgets, counters
that add up, validated checkpoints, fair baselines, validation selection, per-image evidence and the schema."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
import torch
from engine_helpers import tiny_net, tiny_samples

from sycam.data.split import bootstrap_groups
from sycam.expr import parse
from sycam.heatmap import finish, finish_layer, layer_maps, saliency
from sycam.metrics import get_metric
from sycam.metrics.base import Metric, MetricContext, degenerate
from sycam.results import CONTROL, POWER_CONTROL, SYNTHESIZED, SynthesisResults
from sycam.stats import VERDICTS, paired_bootstrap_ci, verdict
from sycam.synth import Grammar, SynthesisConfig, SynthesisError, default_constraints, parse_constraint, synthesize
from sycam.synth import checkpoint as ckpt
from sycam.synth.control import threshold_to_sparsity
from sycam.synth.oracles import CorrectnessOracle
from sycam.synth.search import Search
from sycam.synth.selection import Candidate, choose_within_noise, pareto_add
from sycam.terminals import ExtractOptions
from sycam.workspace import Workspace, evaluate_methods

LAYER = "body"
SMALL = Grammar(terminals=("A", "G"), max_size=4)


def _identity(c: dict) -> None:
    parts = ("candidates_scored", "equivalent_pruned", "rejected_total", "subexpressions_pruned", "form_skipped",
             "duplicates_of_seeds", "unscored", "raced_out")
    assert c["candidates_enumerated"] == sum(c[k] for k in parts), {k: c[k] for k in ("candidates_enumerated", *parts)}
    assert c["rejected_total"] == sum(c["rejected"].values())


# -- constraints ----------------------------------------------------------------------------------------


def test_constraint_parsing() -> None:
    c = parse_constraint("energy_pointing_game >= 1.02 * best")
    assert (c.metric, c.op, c.rhs, c.scale) == ("energy_pointing_game", ">=", "best", 1.02)
    c = parse_constraint("mask_auc>=Grad-CAM")
    assert (c.metric, c.rhs, c.scale) == ("mask_auc", "gradcam", 1.0)
    c = parse_constraint(" deletion_auc <= 0.2 ")
    assert (c.rhs, c.scale, c.text) == (None, 0.2, "deletion_auc <= 0.2")
    assert c.holds(0.2, 0.2) and not c.holds(0.3, 0.2) and not c.holds(float("nan"), 0.2)
    assert parse_constraint("iou > 2e-1").scale == 0.2
    # the bound: a number, a baseline, the best exact baseline (in the metric's direction)
    values = {"gradcam": 0.5, "scorecam": 0.9, "xgradcam": 0.7}
    higher = lambda a, b: b is None or a > b  # noqa: E731
    assert parse_constraint("m >= 1.1 * best").bound(values, ["gradcam", "xgradcam"], higher) == pytest.approx(0.77)
    assert parse_constraint("m >= gradcam").bound(values, values, higher) == 0.5
    with pytest.raises(SynthesisError, match="approximation"):
        parse_constraint("m >= scorecam").bound(values, ["gradcam"], higher)
    with pytest.raises(SynthesisError, match="not among the baselines"):
        parse_constraint("m >= layercam").bound(values, values, higher)
    assert default_constraints(["energy_pointing_game", "iou"]) == ("mask_auc >= 0.99 * gradcam",
                                                                      "pointing_game >= gradcam",
                                                                      "iou >= 0.99 * gradcam")


@pytest.mark.parametrize(("text", "message"), [
    ("", "empty constraint"),
    ("mask_auc", "expected 'METRIC OP RHS'"),
    ("mask_auc => 0.5", "expected 'METRIC OP RHS'"),
    ("mask_auc >= fullgrad", "neither 'best' nor a baseline"),
    ("mask_auc >= 2 *", "right side"),
    ("mask_auc >= best * best", "right side"),
])
def test_bad_constraint_text(text: str, message: str) -> None:
    with pytest.raises(SynthesisError, match=message) as info:
        parse_constraint(text)
    assert "\n" not in str(info.value)


def test_bad_constraints_fail_before_any_work() -> None:
    net, samples = tiny_net(), tiny_samples(4)
    metric = get_metric("energy_pointing_game")
    with pytest.raises(SynthesisError, match="expected 'METRIC OP RHS'"):
        synthesize(net, LAYER, samples, None, metric, config=SynthesisConfig(grammar=SMALL, constraints=("iou",)))
    with pytest.raises(SynthesisError, match="constraint 'no_such_metric >= 1'"):
        synthesize(net, LAYER, samples, None, metric,
                   config=SynthesisConfig(grammar=SMALL, constraints=("no_such_metric >= 1",)))
    with pytest.raises(SynthesisError, match="approximation"):
        synthesize(net, LAYER, samples, None, metric,
                   config=SynthesisConfig(grammar=SMALL, constraints=("iou >= scorecam",)),
                   options=ExtractOptions(score_top_k=2))


def test_constraints_are_enforced_and_reported() -> None:
    net, samples = tiny_net(), tiny_samples(8)
    metric = get_metric("energy_pointing_game")
    config = SynthesisConfig(grammar=SMALL, max_candidates=60, leaderboard_size=1000,
                             constraints=("mask_auc >= 0.98 * gradcam", "iou >= 0.05"))
    result = synthesize(net, LAYER, samples, None, metric, config=config)
    bound = 0.98 * result.baselines["gradcam"]["scores"]["mask_auc"]
    ws = Workspace.build(net, LAYER, samples)
    nodes = [parse(c.expression) for c in result.leaderboard]
    mask_auc = get_metric("mask_auc").aggregate(ws.score(nodes, get_metric("mask_auc")))
    iou = get_metric("iou").aggregate(ws.score(nodes, get_metric("iou")))
    assert bool((mask_auc >= bound - 1e-6).all()) and bool((iou >= 0.05 - 1e-6).all())  # cached like the objective
    d = result.to_dict()
    assert result.counters["constraint_failed"] > 0
    c = result.counters
    assert c["merged_rescaled"] > 0  # sum(neg(G)) is mean(neg(G)) times h·w
    assert (c["constraint_failed"] + c["merged_rescaled"] + len(result.leaderboard) == c["candidates_scored"]
            and c["constraint_unchecked"] == 0)
    # guards are checked only for candidates that could enter the leaderboard; the top is the same
    k = (len(result.leaderboard) + c["merged_rescaled"]) // 2  # the board before rescalings were merged
    assert k >= 1
    short = synthesize(net, LAYER, samples, None, metric, config=replace(config, leaderboard_size=k))
    assert short.leaderboard[0].expression == result.leaderboard[0].expression
    assert short.counters["constraint_unchecked"] > 0
    assert short.counters["constraint_failed"] < c["constraint_failed"]
    assert [c["text"] for c in d["constraints"]] == list(config.constraints)
    assert d["constraints"][0]["bound"] == pytest.approx(bound) and d["constraints"][0]["rhs"] == "gradcam"
    assert all(c["holds"] for c in d["constraints"])
    assert d["best"]["scores"]["mask_auc"] == pytest.approx(d["constraints"][0]["synthesis_value"])
    # the unconstrained winner violates the guard here, so the guard changed the outcome
    free = synthesize(net, LAYER, samples, None, metric, config=replace(config, constraints=()))
    assert free.best.synthesis_score >= result.best.synthesis_score


def test_guard_metrics_are_scored_on_the_test_split() -> None:
    """Whether the guards hold on held-out images can be read from results: test_scores has every metric."""
    net, samples = tiny_net(), tiny_samples(8)
    config = SynthesisConfig(grammar=SMALL, max_candidates=20, constraints=("mask_auc >= 0.9 * gradcam",))
    result = synthesize(net, LAYER, samples.subset(range(4)), samples.subset(range(4, 8)),
                        get_metric("energy_pointing_game"), config=config)
    d = result.to_dict()
    assert set(d["best"]["test_scores"]) == {"energy_pointing_game", "mask_auc"}
    assert set(d["baselines"]["gradcam"]["test_scores"]) == {"energy_pointing_game", "mask_auc"}
    ws = Workspace.build(net, LAYER, samples.subset(range(4, 8)))
    again = get_metric("mask_auc").aggregate(ws.score([parse(d["best"]["expression"])], get_metric("mask_auc")))
    assert d["best"]["test_scores"]["mask_auc"] == pytest.approx(float(again[0]), abs=1e-6)


# -- several objectives: the Pareto front ----------------------------------------------------------------


class _Fixed(Metric):
    name = "up"
    higher_is_better = True

    def score(self, maps: torch.Tensor, ctx: MetricContext) -> torch.Tensor:  # pragma: no cover - not scored
        raise NotImplementedError


class _Down(_Fixed):
    name = "down"
    higher_is_better = False


def test_pareto_front_on_a_toy() -> None:
    """(up ↑, down ↓): a=(1, 5) b=(2, 6) c=(2, 4) d=(0, 1) e=(2, 4) f=(3, 9). c dominates a and b; e equals c
    (the earlier stays); d and f trade off with c."""
    objectives = [_Fixed(), _Down()]
    points = {"a": (1, 5), "b": (2, 6), "c": (2, 4), "d": (0, 1), "e": (2, 4), "f": (3, 9)}
    front: list[Candidate] = []
    for i, (name, (up, down)) in enumerate(points.items()):
        front = pareto_add(front, Candidate(name, 1, up, i, scores={"up": up, "down": down}), objectives)
    assert sorted(c.expression for c in front) == ["c", "d", "f"]
    for x in front:  # nothing in the front dominates another member
        for y in front:
            assert not (x.scores["up"] >= y.scores["up"] and x.scores["down"] <= y.scores["down"] and x is not y
                        and x.scores != y.scores)


def test_pareto_search_reports_the_front() -> None:
    net, samples = tiny_net(), tiny_samples(6)
    metrics = [get_metric("energy_pointing_game"), get_metric("complexity")]
    config = SynthesisConfig(grammar=SMALL, max_candidates=None, leaderboard_size=1000, guards=False)
    result = synthesize(net, LAYER, samples, samples.subset([0, 1]), metrics, config=config)
    d = result.to_dict()
    front = [(p["scores"]["energy_pointing_game"], p["scores"]["complexity"]) for p in d["pareto"]]
    assert len(front) >= 2 and [m["name"] for m in d["metrics"]] == ["energy_pointing_game", "complexity"]
    everyone = [(c.scores["energy_pointing_game"], c.scores["complexity"]) for c in result.leaderboard]
    for e, c in front:  # non-dominated among every admissible candidate scored
        assert not any(e2 >= e and c2 <= c and (e2, c2) != (e, c) for e2, c2 in everyone)
    # the winner rule: correct members first, then the best first objective among them
    assert d["best"]["expression"] in {p["expression"] for p in d["pareto"]}
    assert set(d["lambdas"]) == {"energy_pointing_game", "complexity"}
    assert set(d["best"]["test_scores"]) == {"energy_pointing_game", "complexity"}


# -- degenerate maps ---------------------------------------------------------------------------------------


def test_correctness_oracle_rejects_degenerate_maps() -> None:
    maps = torch.rand(4, 5, 5)
    oracle = CorrectnessOracle([get_metric("iou")], [0.5], (), max_degenerate=0)
    assert oracle.reject([maps]) is None
    one_blank = maps.clone()
    one_blank[2] = 0.0
    assert oracle.reject([one_blank]) == "degenerate heatmap"
    assert replace(oracle, max_degenerate=1).reject([one_blank]) is None
    assert oracle.reject([torch.zeros(4, 5, 5)]) == "constant heatmap"
    view = maps.clone()
    view[0, 0, 0] = float("nan")
    assert oracle.reject([maps, view]) == "non-finite heatmap"  # on any view


def test_search_never_scores_a_map_degenerate_on_a_synthesis_image() -> None:
    net, samples = tiny_net(), tiny_samples(6)
    metric = get_metric("energy_pointing_game")
    config = SynthesisConfig(grammar=SMALL, max_candidates=None, leaderboard_size=100000, guards=False)
    strict = synthesize(net, LAYER, samples, None, metric, config=config)
    loose = synthesize(net, LAYER, samples, None, metric, config=replace(config, max_degenerate_fraction=0.5))
    ws = Workspace.build(net, LAYER, samples)

    def bad(result):
        maps = ws.heatmaps([parse(c.expression) for c in result.leaderboard])
        return degenerate(maps).sum(-1)

    assert int(bad(strict).max()) == 0 and strict.counters["rejected"].get("degenerate heatmap", 0) > 0
    partly = bad(loose)
    assert 0 < int(partly.max()) <= 3
    assert loose.counters["rejected"].get("degenerate heatmap", 0) < strict.counters["rejected"]["degenerate heatmap"]
    # a partly blank candidate gets the metric's worst value on its blank images
    i = int(partly.argmax())
    node = parse(loose.leaderboard[i].expression)
    per_image = ws.score([node], metric)[0]
    blank = degenerate(ws.heatmaps([node]))[0]
    assert bool((per_image[blank] == metric.worst()).all())
    _identity(strict.counters)
    _identity(loose.counters)


# -- budgets, counters, checkpoints ------------------------------------------------------------------------


@pytest.mark.parametrize("equivalence", ["heatmap", "metric"])
def test_budget_is_exact_and_counters_add_up(equivalence: str) -> None:
    net, samples = tiny_net(), tiny_samples(6)
    config = SynthesisConfig(grammar=Grammar(terminals=("A", "G"), max_size=4, forms=("channel", "pixel")),
                             max_candidates=20, batch=8, equivalence=equivalence)
    result = synthesize(net, LAYER, samples, None, get_metric("energy_pointing_game"), config=config)
    assert result.counters["candidates_scored"] == 20 and result.stopped_because == "max candidates"
    assert result.to_dict()["incomplete"] is False
    _identity(result.counters)
    everything = synthesize(net, LAYER, samples, None, get_metric("energy_pointing_game"),
                            config=replace(config, max_candidates=None, constraints=("iou >= gradcam",)))
    assert everything.stopped_because == "search space exhausted"
    assert everything.counters["candidates_scored"] > 20
    _identity(everything.counters)


def test_interrupt_counts_what_was_dropped(tmp_path) -> None:
    net, samples = tiny_net(), tiny_samples(6)

    def stop(n: int, best: float | None) -> None:
        if n >= 10:
            raise KeyboardInterrupt

    result = synthesize(net, LAYER, samples, None, get_metric("iou"),
                        config=SynthesisConfig(grammar=SMALL, max_candidates=50, batch=4), on_progress=stop)
    assert result.stopped_because == "interrupted" and result.to_dict()["incomplete"] is True
    _identity(result.counters)


def _checkpointed(tmp_path, **kw) -> SynthesisConfig:
    return SynthesisConfig(grammar=SMALL, batch=4, checkpoint=tmp_path / "checkpoint.json", **kw)


def test_budget_may_be_raised_on_resume(tmp_path) -> None:
    net, samples = tiny_net(), tiny_samples(6)
    metric = get_metric("energy_pointing_game")
    first = synthesize(net, LAYER, samples, None, metric, config=_checkpointed(tmp_path, max_candidates=15))
    assert first.counters["candidates_scored"] == 15
    stored = json.loads((tmp_path / "checkpoint.json").read_text())
    assert stored["budget"]["max_candidates"] == 15 and len(stored["scored"]) >= 15
    resumed = synthesize(net, LAYER, samples, None, metric,
                         config=_checkpointed(tmp_path, max_candidates=40, resume=True))
    fresh = synthesize(net, LAYER, samples, None, metric,
                       config=SynthesisConfig(grammar=SMALL, batch=4, max_candidates=40))
    assert resumed.counters["candidates_scored"] == 40
    assert [c.expression for c in resumed.leaderboard] == [c.expression for c in fresh.leaderboard]
    assert any("resumed" in n for n in resumed.notes)
    with pytest.raises(SynthesisError, match=r"other settings.*budgets"):
        synthesize(net, LAYER, samples, None, metric,
                   config=_checkpointed(tmp_path, max_candidates=40, resume=True, constraints=("iou >= 0.0",)))


@pytest.mark.parametrize(("content", "reason"), [
    (b'{"format": "sycam-checkpoint", "version": 2, "key": "x", "col', "not valid JSON"),
    (b"\x89PNG\r\n\x1a\n\x00\x00\xff\xfe", "not UTF-8"),
    (b"[1, 2, 3]", "a JSON list instead of an object"),
    (b'{"format": "sycam-checkpoint", "version": 2, "key": "x", "columns": []}', "missing key"),
    (b'{"format": "other", "version": 1, "key": "x", "columns": [], "scored": {}}', "format"),
])
def test_corrupt_checkpoints_give_one_clear_line(tmp_path, content: bytes, reason: str) -> None:
    path = tmp_path / "checkpoint.json"
    path.write_bytes(content)
    with pytest.raises(SynthesisError, match=reason) as info:
        ckpt.load(path, "x", ["iou"])
    message = str(info.value)
    assert "\n" not in message and "corrupt" in message and str(path) in message


def test_corrupt_values_and_a_corrupt_resume(tmp_path) -> None:
    path = tmp_path / "checkpoint.json"
    ckpt.save(path, "k", ["iou"], {"mean(G)": [0.5], "G": [float("nan")]}, {"max_candidates": 3})
    assert ckpt.load(path, "k", ["iou"])["mean(G)"] == [0.5]
    state = json.loads(path.read_text())
    state["scored"]["mean(G)"] = ["high"]
    path.write_text(json.dumps(state))
    with pytest.raises(SynthesisError, match="'mean\\(G\\)' is not a list of 1 numbers"):
        ckpt.load(path, "k", ["iou"])
    path.write_text('{"format": "sycam-checkpoint", "ver')
    net, samples = tiny_net(), tiny_samples(4)
    with pytest.raises(SynthesisError, match="corrupt"):
        synthesize(net, LAYER, samples, None, get_metric("iou"), config=_checkpointed(tmp_path, resume=True))


def test_resume_refuses_changed_data_and_says_what_changed(tmp_path) -> None:
    """A resumed run's stored scores belong to its data: changed boxes (same ids, same count) are refused."""
    from dataclasses import replace as dc_replace

    net, samples = tiny_net(), tiny_samples(6)
    metric = get_metric("energy_pointing_game")
    synthesize(net, LAYER, samples, None, metric, config=_checkpointed(tmp_path, max_candidates=6))
    shifted = dc_replace(samples, masks=samples.masks.roll(3, dims=-1),
                         boxes=tuple(b + torch.tensor([3.0, 0.0, 3.0, 0.0]) for b in samples.boxes))
    path = tmp_path / "checkpoint.json"
    with pytest.raises(SynthesisError) as info:
        synthesize(net, LAYER, shifted, None, metric, config=_checkpointed(tmp_path, max_candidates=12, resume=True))
    assert str(info.value) == (
        f"checkpoint {path} was written with other settings: the data (images, labels, boxes or masks) changed; "
        "rerun without --resume or with the same settings and data (only the budgets --max-candidates and "
        "--time-limit may change)")
    # another objective brings other default guards: the constraints (part of the search settings) change too
    with pytest.raises(SynthesisError, match=r": the search settings, the metric, the constraints changed; rerun"):
        synthesize(net, LAYER, samples, None, get_metric("iou"),
                   config=_checkpointed(tmp_path, max_candidates=12, resume=True))
    assert samples.fingerprint() == tiny_samples(6).fingerprint() != shifted.fingerprint()


@pytest.mark.parametrize(("edit", "reason"), [
    (lambda t: t.replace("0.5", "Infinity"), "a non-finite number: Infinity"),
    (lambda t: t.replace("0.5", "NaN"), "a non-finite number: NaN"),
    (lambda t: t.replace("0.5", "0.99"), "its values do not match its digest"),
    (lambda t: t.replace("0.5", "1e999"), "a number out of range: 1e999"),
    (lambda t: t.replace("0.5", "1" * 5000), "a number of 5000 characters"),
    (lambda t: t.replace("[0.5]", "[" * 40 + "0.5" + "]" * 40), "nested more than 32 levels deep"),
])
def test_forged_or_non_finite_checkpoint_values_are_refused(tmp_path, edit, reason: str) -> None:
    path = tmp_path / "checkpoint.json"
    ckpt.save(path, "k", ["iou"], {"mean(G)": [0.5], "G": [float("nan")]}, {"max_candidates": 3})
    path.write_text(edit(path.read_text()))
    with pytest.raises(SynthesisError) as info:
        ckpt.load(path, "k", ["iou"])
    message = str(info.value)
    assert message.startswith(f"checkpoint {path} is corrupt (") and reason in message and "\n" not in message


@pytest.mark.parametrize(("field", "value"), [("max_candidates", 0), ("max_candidates", -5), ("time_limit", -5.0),
                                              ("time_limit", float("nan")), ("batch", 0),
                                              ("max_degenerate_fraction", 1.0)])
def test_bad_budgets(field: str, value: object) -> None:
    net, samples = tiny_net(), tiny_samples(4)
    with pytest.raises(SynthesisError, match=field):
        synthesize(net, LAYER, samples, None, get_metric("iou"), config=replace(SynthesisConfig(grammar=SMALL),
                                                                               **{field: value}))


# -- fair baselines, control, evidence ---------------------------------------------------------------------


def test_capped_score_cam_is_labelled_and_never_sets_lambda() -> None:
    net, samples = tiny_net(), tiny_samples(8)
    syn, test = samples.subset(range(5)), samples.subset(range(5, 8))
    # a metric on which the capped Score-CAM is the best baseline: agreement with its own maps
    ws = Workspace.build(net, LAYER, syn, options=ExtractOptions(score_top_k=2))
    target = ws.heatmaps([parse("softmax(S)")])[0]

    class LikeCappedScoreCam(Metric):
        name = "like_scorecam"
        higher_is_better = True

        def score(self, maps: torch.Tensor, ctx: MetricContext) -> torch.Tensor:
            if maps.shape[-3] != target.shape[0]:
                return -maps.mean((-2, -1))
            return -(maps - target).abs().mean((-2, -1))

    config = SynthesisConfig(grammar=SMALL, max_candidates=10)
    result = synthesize(net, LAYER, syn, test, LikeCappedScoreCam(), config=config,
                        options=ExtractOptions(score_top_k=2))
    d = result.to_dict()
    assert d["baselines"]["scorecam"]["title"] == "Score-CAM (top-2 channels)"
    assert d["baselines"]["scorecam"]["exact"] is False and d["baselines"]["gradcam"]["exact"] is True
    assert d["baselines"]["scorecam"]["synthesis_score"] == pytest.approx(0.0, abs=1e-6)  # the best baseline ...
    assert d["lambda_baseline"] != "scorecam"  # ... yet it does not set λ
    exact_best = max(b["synthesis_score"] for b in d["baselines"].values() if b["exact"])
    assert d["lambda"] == pytest.approx(exact_best)
    assert d["comparison"]["lambda_baseline"] == d["lambda_baseline"]
    assert "scorecam" not in d["comparison"]["methods"]  # an approximation enters no comparison
    assert d["comparison"]["n_comparisons"] == sum(b["exact"] for b in d["baselines"].values())
    assert any("top-2 channels" in n for n in d["notes"])


def test_threshold_to_sparsity() -> None:
    g = torch.arange(16.0).reshape(1, 4, 4) / 15
    like = torch.ones(1, 4, 4)
    like[0, :2] = 0.0  # half the winner's pixels are zero
    out = threshold_to_sparsity(g, like)
    assert float((out == 0).float().mean()) == 0.5 and float(out.max()) == pytest.approx(1.0)
    torch.testing.assert_close(threshold_to_sparsity(g, torch.ones(1, 4, 4)), g)  # no zeros: unchanged


def test_evidence_schema_and_comparison() -> None:
    net, samples = tiny_net(), tiny_samples(12)
    syn, val, test = samples.subset(range(6)), samples.subset(range(6, 9)), samples.subset(range(9, 12))
    metric = get_metric("energy_pointing_game")
    result = synthesize(net, LAYER, syn, test, metric, config=SynthesisConfig(grammar=SMALL, max_candidates=30),
                        validation=val)
    d = json.loads(json.dumps(result.to_dict()))
    required = set(SynthesisResults.__required_keys__)
    assert required <= set(d), required - set(d)
    for split, part in (("synthesis", syn), ("validation", val), ("test", test)):
        assert d["ids"][split] == list(part.ids)
        assert set(d["per_image"][split]) == {*d["baselines"], SYNTHESIZED, CONTROL, POWER_CONTROL}
        assert all(len(v) == len(part) for v in d["per_image"][split].values())
        for name, row in d["per_image"][split].items():
            assert d["degenerate"][name][split] >= 0
            if name in d["baselines"]:
                key = f"{split}_score"
                assert sum(row) / len(row) == pytest.approx(d["baselines"][name][key], abs=1e-6)
    assert sum(d["per_image"]["test"][SYNTHESIZED]) / 3 == pytest.approx(d["best"]["test_score"], abs=1e-6)
    assert d["optimism"] == pytest.approx(d["best"]["synthesis_score"] - d["best"]["validation_score"])
    assert d["validation_score"] == d["best"]["validation_score"]
    assert set(d["control"]["scores"]) == {"synthesis", "validation", "test"}
    cmp_ = d["comparison"]
    assert cmp_["lambda_baseline"] == d["lambda_baseline"] and cmp_["verdict"] in VERDICTS
    assert cmp_["ci95"][0] <= cmp_["diff"] <= cmp_["ci95"][1]
    # one entry per exact classic method, by name, each recomputed from the per-image scores with the grouping
    exact = [b for b, v in d["baselines"].items() if v["exact"]]
    assert sorted(cmp_["methods"]) == sorted(exact) and cmp_["n_comparisons"] == len(exact)
    groups, grouping = bootstrap_groups(test)
    assert cmp_["grouping"] == grouping
    per = d["per_image"]["test"]
    for b, e in cmp_["methods"].items():  # the hull of the group and the image bootstrap intervals
        diff, g_lo, g_hi = paired_bootstrap_ci(per[SYNTHESIZED], per[b], True, groups=groups)
        _, i_lo, i_hi = paired_bootstrap_ci(per[SYNTHESIZED], per[b], True)
        lo, hi = min(g_lo, i_lo), max(g_hi, i_hi)
        assert e["ci95_groups"] == pytest.approx([g_lo, g_hi]) and e["ci95_images"] == pytest.approx([i_lo, i_hi])
        assert e["diff"] == pytest.approx(diff) and e["ci95"] == pytest.approx([lo, hi])
        assert e["verdict"] == verdict(lo, hi, True)
    verdicts = [e["verdict"] for e in cmp_["methods"].values()]
    overall = ("worse" if "worse" in verdicts else "better" if set(verdicts) == {"better"}
               else "not distinguishable")
    assert cmp_["verdict"] == overall == cmp_["methods"][cmp_["baseline"]]["verdict"]
    assert set(cmp_["splits"]) == {"synthesis", "validation", "test"}
    assert set(cmp_["controls"]) == {CONTROL, POWER_CONTROL}
    assert d["power_control"]["power"] in d["power_control"]["powers"]
    assert d["selection"]["why"] and d["guards"] == "default"
    assert set(d["timings"]) == {"terminals", "baselines", "search", "validation", "test"}
    assert (d["n_synthesis"], d["n_validation"], d["n_test"]) == (6, 3, 3)
    assert "pareto" not in d  # one objective


def test_overall_verdict_is_never_better_when_any_classic_method_beats_the_winner() -> None:
    """The verdict reads every exact classic method: a winner better than λ's baseline but worse than another
    method is 'worse', never 'better' (issue 18: 'better' than Ablation-CAM while Grad-CAM beat it)."""
    search = object.__new__(Search)
    search.objectives = [get_metric("mask_auc")]
    search.comparison_splits = {"test": {"grouping": "image (4 groups)", "controls": {}, "methods": {
        "ablationcam": {"diff": 0.0003, "ci95": [0.0001, 0.0005], "verdict": "better"},
        "gradcam": {"diff": -0.0035, "ci95": [-0.0070, -0.0008], "verdict": "worse"}}}}
    search.per_image = {"test": {SYNTHESIZED: [0.9, 0.8, 0.7, 0.6], "ablationcam": [0.89, 0.8, 0.7, 0.6],
                                 "gradcam": [0.91, 0.81, 0.71, 0.6]}}
    search.lambda_baseline, search.notes, search.power = "ablationcam", [], None
    out = search._verdict()
    assert out is not None
    assert out["verdict"] == "worse" and out["baseline"] == "gradcam" and out["n_comparisons"] == 2
    assert sorted(out["methods"]) == ["ablationcam", "gradcam"]


def test_validation_prefers_the_smaller_expression_within_noise() -> None:
    metric = get_metric("iou")
    big = Candidate("sum(G * A) / sum(A)", 7, 0.80, 0, validation_score=0.62)
    small = Candidate("mean(G)", 2, 0.70, 1, validation_score=0.60)
    clear = Candidate("relu(G)", 2, 0.75, 2, validation_score=0.40)
    per_image = {big.expression: [0.7, 0.5, 0.66], small.expression: [0.6, 0.55, 0.65],
                 clear.expression: [0.42, 0.38, 0.40]}
    # big − small = (0.1, −0.05, 0.01): mean 0.02 within one standard error (0.044) → the smaller wins
    assert choose_within_noise([big, small, clear], per_image, metric) is small
    # the same gap without spread is not noise
    per_image[small.expression] = [0.68, 0.48, 0.64]
    small.validation_score = 0.60
    assert choose_within_noise([big, small, clear], per_image, metric) is big


def test_synthesize_with_validation_picks_by_validation() -> None:
    net, samples = tiny_net(), tiny_samples(12)
    syn, val = samples.subset(range(6)), samples.subset(range(6, 12))
    result = synthesize(net, LAYER, syn, None, get_metric("energy_pointing_game"),
                        config=SynthesisConfig(grammar=SMALL, max_candidates=40), validation=val)
    scored = [c for c in result.leaderboard if c.validation_score is not None]
    assert result.best in scored and result.best.validation_score is not None
    ws = Workspace.build(net, LAYER, val)
    again = get_metric("energy_pointing_game").aggregate(ws.score([parse(result.best.expression)],
                                                                    get_metric("energy_pointing_game")))
    assert float(again[0]) == pytest.approx(result.best.validation_score, abs=1e-6)
    assert result.optimism == pytest.approx(result.best.synthesis_score - result.best.validation_score)


def test_the_lambda_baseline_competes_on_validation() -> None:
    """The winner is chosen on validation among the correct candidates *and* the λ baseline: a candidate that
    beat λ only on the synthesis split does not win when the baseline is as good on validation."""
    net, samples = tiny_net(), tiny_samples(12)
    syn, val = samples.subset(range(6)), samples.subset(range(6, 12))
    result = synthesize(net, LAYER, syn, None, get_metric("energy_pointing_game"),
                        config=SynthesisConfig(grammar=SMALL, max_candidates=40, baselines=("gradcam",)),
                        validation=val)
    d = result.to_dict()
    base = d["baselines"]["gradcam"]
    assert base["validation_score"] is not None
    if result.best.seed == "gradcam":  # the baseline won: said so
        assert any("no synthesized candidate beats the λ baseline" in n for n in result.notes)
    else:  # a synthesized winner is within noise of, or better than, the baseline on validation
        assert get_metric("energy_pointing_game").better(result.best.validation_score, base["validation_score"]) \
            or result.best.validation_score == pytest.approx(base["validation_score"])


# -- one render path, evaluate_methods ---------------------------------------------------------------------


def test_render_path_pieces_compose_to_finish() -> None:
    torch.manual_seed(0)
    w, acts = torch.randn(3, 5, 1, 1), torch.randn(3, 5, 4, 4)
    assert torch.equal(finish_layer(layer_maps(w, acts), (9, 9)), finish(saliency(w, acts), (9, 9)))


def test_evaluate_methods_keeps_evidence() -> None:
    net, samples = tiny_net(), tiny_samples(4)
    methods = {"gradcam": parse("mean(G)"), "blank": parse("A - A")}
    metrics = {"iou": get_metric("iou"), "complexity": get_metric("complexity")}
    ev = evaluate_methods(net, LAYER, samples, methods, metrics)
    assert set(ev) == {"gradcam", "blank"} and isinstance(ev["gradcam"]["iou"], float)  # the old aggregate
    assert ev.ids == list(samples.ids) and len(ev.per_image["iou"]["gradcam"]) == 4
    assert ev.degenerate == {"gradcam": 0, "blank": 4}
    # a blank map gets each metric's worst value, never a best one (issue 7: zero maps won complexity)
    assert ev.per_image["complexity"]["blank"] == [metrics["complexity"].worst()] * 4
    assert ev["blank"]["iou"] == pytest.approx(metrics["iou"].worst())


def test_validation_must_be_kept_apart() -> None:
    net, samples = tiny_net(), tiny_samples(6)
    with pytest.raises(SynthesisError, match="shares 2 sample"):
        synthesize(net, LAYER, samples, None, get_metric("iou"),
                   config=SynthesisConfig(grammar=SMALL, max_candidates=5),
                   validation=samples.subset([0, 1]))


def test_demo_settings_are_reproducible_and_guarded() -> None:
    from sycam.metrics import METRICS
    from sycam.synth.demo import DEMO

    assert DEMO["time_limit"] is None and isinstance(DEMO["max_candidates"], int)  # same result under any load
    assert all(m in METRICS for m in DEMO["metric"])
    assert "constraint" not in DEMO  # the demo takes the objective's default guards, as every search does
    guards = [parse_constraint(c) for c in default_constraints(DEMO["metric"])]
    assert {g.metric for g in guards} >= {"mask_auc"} and all(g.metric in METRICS for g in guards)
    assert DEMO["validation_fraction"] > 0 and DEMO["validation_fraction"] + DEMO["test_fraction"] < 1


def test_a_checkpoint_of_an_older_sycam_is_named_so(tmp_path) -> None:
    path = tmp_path / "checkpoint.json"
    ckpt.save(path, "k", ["iou"], {"G": [0.5]}, {})
    state = json.loads(path.read_text())
    path.write_text(json.dumps({**state, "version": 2}))
    with pytest.raises(SynthesisError) as info:
        ckpt.load(path, "k", ["iou"])
    assert str(info.value) == (f"checkpoint {path} was written by an older sycam (checkpoint version 2; this one "
                               "reads version 3); rerun without --resume")
def test_positive_rescalings_merge_into_the_smallest_and_nothing_else_merges() -> None:
    """``sum(G)`` is ``mean(G)`` times h·w and ``cube(mean(G) / 3)`` is ``cube(mean(G))`` / 27: the same maps; the
    cube of a map is another map. The smallest of each set is kept (equal sizes: the earlier)."""
    from sycam.synth.selection import merge_rescaled, shapes_on

    ws = Workspace.build(tiny_net(), LAYER, tiny_samples(4))
    texts = ["mean(G)", "sum(G)", "cube(mean(G) / 3)", "cube(mean(G))"]
    cands = [Candidate(t, parse(t).size, 0.5, i) for i, t in enumerate(texts)]
    kept, merged = merge_rescaled(cands, shapes_on(ws, [parse(t) for t in texts]))
    assert [c.expression for c in kept] == ["mean(G)", "cube(mean(G))"]
    assert merged == {"mean(G)": ["sum(G)"], "cube(mean(G))": ["cube(mean(G) / 3)"]}


def test_power_control_by_hand_and_ties_go_to_grad_cam() -> None:
    from sycam.synth.control import POWERS, pick_power, power_maps

    h = torch.tensor([[[[0.0, 0.5], [1.0, 0.25]]]])
    torch.testing.assert_close(power_maps(h, 2.0), torch.tensor([[[[0.0, 0.25], [1.0, 0.0625]]]]), atol=1e-6,
                               rtol=0)
    torch.testing.assert_close(power_maps(h, 1.0), h, atol=1e-6, rtol=0)  # p = 1 is Grad-CAM itself
    metric = get_metric("energy_pointing_game")
    flat = [[0.5, 0.5]] * len(POWERS)
    assert pick_power(flat, metric) == 1.0  # a tie: no sharpening
    rows = [[0.5, 0.5]] * len(POWERS)
    rows[POWERS.index(3.0)] = [0.6, 0.7]
    assert pick_power(rows, metric) == 3.0
