"""``sycam demo``'s settings (:data:`sycam.synth.demo.DEMO`) keep the properties that make its result
reproducible and honest (issue 7, points 7-9); no model is run here."""

from __future__ import annotations

from sycam.expr import TERMINALS
from sycam.metrics import get_metric
from sycam.synth import Grammar, SynthesisConfig
from sycam.synth.constraints import DEFAULT_GUARDS, default_constraints, parse_constraints
from sycam.synth.demo import DEMO


def _terminals() -> list[str]:
    return [t.strip() for t in str(DEMO["terminals"]).split(",") if t.strip()]


def test_budget_is_in_candidates_and_there_is_no_time_limit() -> None:
    assert DEMO["time_limit"] is None
    assert isinstance(DEMO["max_candidates"], int) and not isinstance(DEMO["max_candidates"], bool)
    assert DEMO["max_candidates"] > 0


def test_terminals_are_exact() -> None:
    """S (Score-CAM) is in the search only when it is exact (no top-k cap)."""
    terms = _terminals()
    assert terms and all(t in TERMINALS for t in terms)
    assert "S" not in terms or DEMO.get("score_top_k") is None


def test_objective_has_its_default_guards() -> None:
    """The demo sets no constraint of its own: the search applies the objective's default guards."""
    metrics = list(DEMO["metric"])
    assert metrics
    assert not DEMO.get("constraint") and not DEMO.get("no_guards")
    guards = default_constraints(metrics)
    for m in metrics:
        get_metric(m)  # a known metric
        assert set(DEFAULT_GUARDS.get(m, ())) <= set(guards)
    # localization objectives have guards at all (sparsification alone must not win)
    assert guards and any(DEFAULT_GUARDS.get(m) for m in metrics)
    for c in parse_constraints(guards):
        get_metric(c.metric)
        assert c.rhs != "best" or c.scale > 0


def test_no_degenerate_maps_allowed_and_splits_for_selection() -> None:
    assert DEMO["max_degenerate"] == 0.0
    assert DEMO["validation_fraction"] and DEMO["test_fraction"]
    assert DEMO["validation_fraction"] + DEMO["test_fraction"] < 1
    assert isinstance(DEMO["seed"], int)


def test_settings_build_a_valid_config() -> None:
    """The settings make a checked SynthesisConfig (what the CLI builds from them)."""
    grammar = Grammar(terminals=tuple(_terminals()), max_size=int(DEMO["max_size"]))
    config = SynthesisConfig(grammar=grammar, max_candidates=DEMO["max_candidates"], time_limit=DEMO["time_limit"],
                             max_degenerate_fraction=float(DEMO["max_degenerate"]))
    config.check()
    assert config.time_limit is None and config.max_candidates == DEMO["max_candidates"]


#: candidates scored when the demo's search space is exhausted (grammar defaults, measured on the demo data with
#: ``python benchmarks/demo_experiments.py demo``: "stopped because 'search space exhausted'; candidates scored N")
MEASURED_SPACE = {("A,G,D", 4): 362}  # 346 scored once faint maps are rejected: the bound holds


def test_budget_covers_the_whole_search_space() -> None:
    """The demo searches its grammar completely (never stops at an arbitrary point of the enumeration); a new
    grammar needs its space measured first."""
    key = (str(DEMO["terminals"]), int(DEMO["max_size"]))
    assert key in MEASURED_SPACE, f"measure the search space of {key} and add it to MEASURED_SPACE"
    assert DEMO["max_candidates"] >= MEASURED_SPACE[key]


def test_every_metric_has_default_guards_that_never_bound_itself() -> None:
    """Issue 18: every objective is guarded, by name, by family, or by the generic class-evidence guard."""
    from sycam.metrics import METRICS
    from sycam.synth.constraints import FAMILY_GUARDS, GENERIC_GUARD, guards_of

    for name, cls in METRICS.items():
        guards = default_constraints([name])
        assert guards, name
        assert all(c.metric != name and c.rhs == "gradcam" for c in parse_constraints(guards)), name
        for c in parse_constraints(guards):
            get_metric(c.metric)
        assert guards == guards_of(name, cls.family)
    assert default_constraints(["sparseness"]) == GENERIC_GUARD == default_constraints(["my_metric"])
    assert default_constraints(["adcc"]) == FAMILY_GUARDS["faithfulness"]
    # an objective's own metric is never a guard of it, also when its entry would name it
    assert guards_of("average_drop", "faithfulness") == ("increase_in_confidence >= 0.9 * gradcam",)
    assert guards_of("average_drop", "complexity") == guards_of("average_drop")
    assert default_constraints(["energy_pointing_game", "iou"])[:1] == ("mask_auc >= 0.99 * gradcam",)
