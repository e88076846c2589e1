"""``sycam study``: one guarded synthesis per (model, metric) cell, every classic method compared on the test split,
the cost model, resuming per cell, the cross-model table, and the command line end to end."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from engine_helpers import tiny_net, tiny_samples

from sycam import stats
from sycam.cli import main
from sycam.data import split_three
from sycam.metrics import get_metric
from sycam.models import LoadedModel, Preprocess
from sycam.study import (
    CELL_VERDICTS,
    StudyError,
    StudySplits,
    candidate_forwards,
    cell_forwards,
    cell_verdict,
    run_study,
    terminal_forwards,
)
from sycam.synth import Grammar, SynthesisConfig, default_constraints

BASELINES = ("gradcam", "xgradcam", "layercam")


def _tiny(name: str, seed: int) -> LoadedModel:
    return LoadedModel(name, tiny_net(seed), "body", Preprocess(size=16, resize=16), ["a", "b", "c", "d"],
                       f"random(seed={seed})")


def _config() -> SynthesisConfig:
    return SynthesisConfig(grammar=Grammar(terminals=("A", "G"), max_size=2), max_candidates=6, baselines=BASELINES,
                           leaderboard_size=3)


SPLITS = StudySplits(*split_three(tiny_samples(18), 0.3, 0.3, seed=0))


def test_two_models_one_metric_cells_comparisons_and_cross_model() -> None:
    models = [_tiny("tiny_a", 0), _tiny("tiny_b", 1)]
    seen: list[tuple[str, bool]] = []
    study = run_study(models, ["energy_pointing_game"], lambda m: SPLITS, _config(),
                      on_cell=lambda key, cell, reused: seen.append((key, reused)))
    assert seen == [("tiny_a/energy_pointing_game", False), ("tiny_b/energy_pointing_game", False)]
    for cell in study["cells"]:
        assert cell["verdict"] in CELL_VERDICTS and set(cell["versus"]) == set(BASELINES)
        assert cell["constraints_applied"] == list(default_constraints(["energy_pointing_game"]))  # guarded
        assert cell["n"] == {"synthesis": len(SPLITS.synthesis), "validation": len(SPLITS.validation),
                             "test": len(SPLITS.test)}
        per = cell["test_per_image"]
        for b, v in cell["versus"].items():  # the interval is the paired bootstrap of the per-image scores
            _, lo, hi = stats.paired_bootstrap_ci(per["synthesized"], per[b], True)
            assert v["diff"] == pytest.approx(np.mean(np.subtract(per["synthesized"], per[b])))
            assert v["ci95"] == [pytest.approx(lo), pytest.approx(hi)] and v["verdict"] == stats.verdict(lo, hi, True)
        scores = {b: cell["classic"][b]["test_score"] for b in BASELINES}
        assert scores[cell["best_classic_on_test"]] == max(scores.values())
        assert cell["candidates_scored"] >= 1 and cell["wall_seconds"] > 0
    rows = study["cross_model"]
    assert [(r["from_model"], r["on_model"]) for r in rows] == [("tiny_a", "tiny_b"), ("tiny_b", "tiny_a")]
    a, b = study["cells"]
    assert rows[1]["expression"] == b["winner"]["expression"] and rows[1]["own_winner"] == a["winner"]["expression"]
    if b["winner"]["expression"] == a["winner"]["expression"]:  # the same expression on the same model: same score
        assert rows[1]["score"] == pytest.approx(a["winner"]["test_score"])


def test_finished_cells_are_reused_and_other_settings_refused() -> None:
    model = _tiny("tiny_a", 0)
    first = run_study([model], ["sparseness"], lambda m: SPLITS, _config())
    done = {"tiny_a/sparseness": json.loads(json.dumps(first["cells"][0]))}  # as read back from the checkpoint
    seen: list[bool] = []
    again = run_study([model], ["sparseness"], lambda m: SPLITS, _config(), done=done,
                      on_cell=lambda key, cell, reused: seen.append(reused))
    assert seen == [True] and again["cells"][0] == done["tiny_a/sparseness"]
    other = SynthesisConfig(grammar=Grammar(terminals=("A", "G"), max_size=2), max_candidates=7, baselines=BASELINES,
                            leaderboard_size=3)
    with pytest.raises(StudyError, match=r"^cell tiny_a/sparseness in the checkpoint was run with other settings"):
        run_study([model], ["sparseness"], lambda m: SPLITS, other, done=done)


def test_a_metric_without_its_ground_truth_is_refused() -> None:
    s = SPLITS.synthesis
    bare = StudySplits(type(s)(s.images, s.labels, ids=s.ids, mean=s.mean, std=s.std), None, SPLITS.test)
    with pytest.raises(StudyError, match=r"^metric iou needs boxes or masks, but the study's data has none on the "
                                         r"synthesis split$"):
        run_study([_tiny("tiny_a", 0)], ["iou"], lambda m: bare, _config())


def test_cost_model_by_hand() -> None:
    assert terminal_forwards(["A", "G", "S", "D"], 1280, 8) == {"A": 1, "G": 1, "S": 9, "D": 1280}
    assert terminal_forwards(["S"], 16, None) == {"S": 16} and terminal_forwards(["S"], 4, 8) == {"S": 4}
    assert candidate_forwards(get_metric("deletion_auc", steps=10)) == 9
    assert candidate_forwards(get_metric("average_drop")) == 1 and candidate_forwards(get_metric("iou")) == 0
    cost = {"extraction": 6, "per_candidate": 9, "full_forwards": 4, "tail_forwards": 2}
    # full: 4 per image on 30 images; synthesis 10 × (20 candidates + 3 classic + 1 control) × 9; held-out
    # 20 × (5 + 3 + 2) × 9; tail: 2 per image
    assert cell_forwards(cost, {"synthesis": 10, "validation": 8, "test": 12}, 20, 3, 5) == \
        {"full": 4 * 30 + 9 * (10 * 24 + 20 * 10), "tail": 2 * 30}


def test_cell_verdicts() -> None:
    better, nd, worse = ({"verdict": v} for v in stats.VERDICTS)
    assert cell_verdict({"a": better, "b": better}, "a") == "wins"
    assert cell_verdict({"a": better, "b": nd}, "b") == "ties"
    assert cell_verdict({"a": better, "b": worse}, "b") == "loses"
    assert cell_verdict({"a": better, "s": nd}, "a", exact=["a"]) == "wins"  # an approximation is not judged
    # better than every classic method but not than the power control (Grad-CAM's map to a fitted power): no win
    assert cell_verdict({"a": better, "b": better}, "a", controls={"power_control": nd}) == "ties"
    assert cell_verdict({"a": better, "b": better}, "a", controls={"power_control": worse}) == "ties"
    assert cell_verdict({"a": better, "b": better}, "a", controls={"power_control": better}) == "wins"


def test_cli_study_end_to_end_then_resume(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "study"
    argv = ["study", "--random-weights", "--metric", "sparseness", "--metric", "complexity", "--data", "demo",
            "--limit", "9", "--terminals", "A,G", "--max-size", "2", "--max-candidates", "3", "--baselines",
            "gradcam,layercam", "--leaderboard-size", "2", "--out", str(out)]
    assert main(argv) == 0
    captured = capsys.readouterr()
    assert "cost efficientnet_lite0 × sparseness: per image and view A 1, G 1; 1 view(s); 0 forward(s) per image" \
        in captured.err
    assert "| efficientnet_lite0 | bn2 | sparseness ↑ |" in captured.out
    study = json.loads((out / "study.json").read_text())
    assert [c["metric"]["name"] for c in study["cells"]] == ["sparseness", "complexity"]
    assert study["cross_model"] == [] and study["settings"]["synthesis"]["max_candidates"] == 3
    assert "<h1>Study</h1>" in (out / "report.html").read_text() and (out / "study.md").read_text() == captured.out
    entries = json.loads((out / "wins.json").read_text())
    assert [(e["metric"], e["expression"], e["verdict"]) for e in entries] == \
        [(c["metric"]["name"], c["winner"]["expression"], c["verdict"]) for c in study["cells"]]
    top = study["cells"][0]["best_classic_on_test"]
    assert entries[0]["baseline"] == top and entries[0]["interval"] == study["cells"][0]["versus"][top]["ci95"]
    checkpoint = json.loads((out / "study-checkpoint.json").read_text())
    assert sorted(checkpoint["cells"]) == ["efficientnet_lite0/complexity", "efficientnet_lite0/sparseness"]
    assert main([*argv, "--resume"]) == 0
    again = capsys.readouterr()
    assert again.err.count("reused: efficientnet_lite0/") == 2 and "synthesize:" not in again.err
    assert json.loads((out / "study.json").read_text())["cells"] == study["cells"]


def test_same_scores_names_the_classic_methods_the_winner_equals() -> None:
    from sycam.study import same_scores

    per = {"synthesized": [0.5, 0.25], "gradcam": [0.5 + 1e-7, 0.25], "layercam": [0.5, 0.2], "short": [0.5]}
    assert same_scores(per, "synthesized", ["gradcam", "layercam", "short", "absent"]) == ["gradcam"]


def test_an_executor_reaches_every_cell_with_the_local_results(monkeypatch: pytest.MonkeyPatch) -> None:
    """``executor`` goes to each cell's synthesis (the CLI's --executor ray passes a RayExecutor the same way):
    two in-process shards give the local study's winner and verdicts, and scores equal to float rounding."""
    import sycam.study
    from sycam.synth.executors import InProcessExecutor

    model = _tiny("tiny_a", 0)
    local = run_study([model], ["sparseness"], lambda m: SPLITS, _config())["cells"][0]
    seen: list[object] = []
    real = sycam.study.synthesize

    def spy(*args: object, **kwargs: object) -> object:
        seen.append(kwargs.get("executor"))
        return real(*args, **kwargs)

    monkeypatch.setattr(sycam.study, "synthesize", spy)
    with InProcessExecutor(workers=2) as ex:
        sharded = run_study([model], ["sparseness"], lambda m: SPLITS, _config(), executor=ex)["cells"][0]
    assert seen == [ex]
    assert sharded["winner"]["expression"] == local["winner"]["expression"]
    assert sharded["winner"]["test_score"] == pytest.approx(local["winner"]["test_score"], abs=1e-6)
    assert {b: v["verdict"] for b, v in sharded["versus"].items()} == \
        {b: v["verdict"] for b, v in local["versus"].items()}
    assert sharded["settings"] == local["settings"]


def test_a_test_split_sharing_sources_is_said_and_compared_without_them() -> None:
    from sycam.study import held_out_overlap, restrict, run_cell

    syn, val, test = SPLITS.synthesis, SPLITS.validation, SPLITS.test
    assert held_out_overlap(SPLITS) == ([], list(test.ids))  # a grouped split shares nothing
    leaky = StudySplits(syn, val, type(test)(test.images, test.labels, test.masks, test.boxes, test.ids,
                                             sources=(("image:img0",), *[() for _ in range(len(test) - 1)]),
                                             mean=test.mean, std=test.std))
    shared, clean = held_out_overlap(leaky)
    assert "img0" in [s.split("#")[0] for s in syn.ids + val.ids]  # the sample whose image the leak names
    assert shared == ["image:img0"] and clean == list(test.ids[1:])
    cell = run_cell(_tiny("tiny_a", 0), "sparseness", leaky, _config())
    assert cell["test_shares_sources"] == ["image:img0"] and cell["versus_unshared"]["n"] == len(test) - 1
    per = restrict(cell["test_per_image"], clean)
    _, lo, hi = stats.paired_bootstrap_ci(per["synthesized"], per["gradcam"], True)
    assert cell["versus_unshared"]["gradcam"]["ci95"] == [pytest.approx(lo), pytest.approx(hi)]
