"""The study: one guarded synthesis per (model, metric) *cell*, every classic method scored the same way, and one
table of what the winners are worth on held-out images.

For each cell :func:`run_cell` calls :func:`sycam.synth.synthesize` on that model's synthesis / validation / test
samples with the metric's default guards (:func:`sycam.synth.default_constraints`), so the classic methods are
scored by the same engine on the same images and splits as the winner. From the results it takes the winner,
its score per split, and on the test split the paired difference ``winner − method`` against *every* classic
method, with its bootstrap 95 % interval (:func:`sycam.stats.paired_bootstrap_ci`) and verdict
(:func:`sycam.stats.verdict`). The cell's verdict reads those intervals:

- ``wins``: better than every classic method scored (each interval on the good side of 0) and than the power control
  (Grad-CAM's final map to a power fitted on synthesis, :mod:`sycam.synth.control`) where it was scored: a winner
  that only sharpens or flattens Grad-CAM's map is no win (``controls`` holds that comparison);
- ``loses``: worse than the best classic method on the test split;
- ``ties``: otherwise (not distinguishable from the best classic method on the test split).

:func:`cross_model` scores each cell's winner on the *other* models' test samples
(:func:`sycam.workspace.evaluate_methods`) against the best classic method there. :func:`cost_per_image` is the
cost model printed before a study starts: forwards per image for every terminal (per metric view) and per
candidate for the metrics that run the model.

Example::

    lite0 = sycam.load_model("efficientnet_lite0")
    splits = StudySplits(*sycam.split_three(samples, 0.25, 0.25))
    config = SynthesisConfig(grammar=Grammar(terminals=("A", "G"), max_size=4), max_candidates=200)
    cell = run_cell(lite0, "average_drop", splits, config)
    cell["winner"]["expression"], cell["verdict"], cell["versus"]["gradcam"]["ci95"]
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import torch

from . import stats
from .data.samples import Samples
from .errors import SycamError
from .expr import parse
from .methods import METHODS
from .metrics import Metric, get_metric
from .models import LoadedModel, resolve_layer
from .results import SYNTHESIZED
from .synth import SynthesisConfig, default_constraints, synthesize
from .terminals import ExtractOptions
from .workspace import evaluate_methods

CELL_VERDICTS = ("wins", "ties", "loses")
"""a cell's verdict (see the module doc)"""


class StudyError(SycamError, ValueError):
    """A study that cannot run as asked (a metric without the ground truth it needs, a resumed cell with other
    settings)."""


@dataclass(frozen=True)
class StudySplits:
    """One model's samples of the study: synthesis (the search scores on it), validation (the winner is chosen on
    it; may be ``None``) and test (scored once, at the end).

    Example::

        StudySplits(*sycam.split_three(samples, 0.25, 0.25, seed=0))
        StudySplits(*sycam.split(dev, 1 / 3), test=check)      # synthesis, validation from dev; test from check
    """

    synthesis: Samples
    validation: Samples | None
    test: Samples


def held_out_overlap(splits: StudySplits) -> tuple[list[str], list[str]]:
    """``(shared, clean_ids)``: the sources (``"photo:skimage/coffee"``) that test samples share with the synthesis
    or validation split (a ``--test`` from other data can: the demo composites the photos of the ``photos`` set), and
    the ids of the test samples that share none. ``shared == []`` when the test split is held out cleanly."""
    from .data.split import shared_sources, sources_of

    searched = [splits.synthesis] + ([splits.validation] if splits.validation is not None else [])
    shared = sorted({s for part in searched for s in shared_sources(part, splits.test)})
    clean = [sid for sid, srcs in zip(splits.test.ids, sources_of(splits.test), strict=True)
             if not set(srcs) & set(shared)]
    return shared, clean


def restrict(per_image: Mapping[str, Sequence[Any]], ids: Sequence[str]) -> dict[str, list[Any]]:
    """``test_per_image`` (``ids`` plus one score list per method) restricted to the samples ``ids``, in their order."""
    where = {sid: i for i, sid in enumerate(per_image["ids"])}
    keep = [where[sid] for sid in ids if sid in where]
    return {k: [v[i] for i in keep] for k, v in per_image.items()}


def cell_key(model: str, metric: str) -> str:
    """``"efficientnet_lite0/average_drop"``: how study.json and the checkpoint name a cell."""
    return f"{model}/{metric}"


# --------------------------------------------------------------------------------------------------
# the cost model
# --------------------------------------------------------------------------------------------------


def layer_channels(model: LoadedModel) -> int:
    """K, the channels of the model's target layer (one forward of a blank image of the model's input size)."""
    _, layer = resolve_layer(model.module, model.layer)
    seen: list[int] = []
    handle = layer.register_forward_hook(lambda _m, _i, out: seen.append(int(out.shape[1])))
    size = model.preprocess.size
    try:
        with torch.no_grad():
            model.module(torch.zeros(1, 3, size, size, device=model.device))
    finally:
        handle.remove()
    return seen[0]


def candidate_forwards(metric: Metric) -> int:
    """Model forwards per image and candidate of ``metric``: 0 for metrics on cached maps, ``steps − 1`` for the
    deletion and insertion curves (their ends are shared by every candidate), 1 for the other model metrics."""
    if metric.cost != "model":
        return 0
    steps = getattr(metric, "steps", None)
    return int(steps) - 1 if isinstance(steps, int) else 1


def terminal_forwards(terminals: Sequence[str], channels: int, score_top_k: int | None) -> dict[str, int]:
    """Forwards per image and view of each terminal: A and G share one forward (and G one backward), S one per
    channel scored (``min(K, top-k)``, plus one shared by the skipped channels), D one *tail* forward per channel
    (only the network after the layer)."""
    s = channels if score_top_k is None else min(channels, score_top_k) + (score_top_k < channels)
    table = {"A": 1, "G": 1, "S": s, "D": channels}
    return {t: table[t] for t in terminals if t in table}


def cost_per_image(model: LoadedModel, metric: Metric, config: SynthesisConfig, options: ExtractOptions,
                   sample: Samples, channels: int | None = None) -> dict[str, Any]:
    """The cell's cost per image: the terminals its grammar and classic methods need with their forwards per view,
    the views its metric reads (each view's terminals are extracted like the image's), and the metric's forwards
    per candidate; ``sample`` (one sample is enough) gives the number of views."""
    needed = set(config.grammar.terminals)
    for b in config.baselines:
        needed |= set(parse(METHODS[b].expression).terminals())
    order = [t for t in ("A", "G", "S", "D") if t in needed]
    k = layer_channels(model) if channels is None else channels
    per_view = terminal_forwards(order, k, options.score_top_k)
    views = 1 + len(metric.views(sample.subset([0])))
    extraction = views * sum(per_view.values())
    return {"channels": k, "terminals": per_view, "views": views, "extraction": extraction,
            "per_candidate": candidate_forwards(metric), "tail_forwards": views * per_view.get("D", 0),
            "full_forwards": views * sum(v for t, v in per_view.items() if t != "D")}


def cell_forwards(cost: Mapping[str, Any], n: Mapping[str, int], candidates: int, baselines: int,
                  leaderboard: int) -> dict[str, int]:
    """Model forwards of a cell by the cost model (an upper bound: the metrics memoize repeated inputs): ``full``
    forwards (extraction on every split, the metric's forwards for each candidate, classic method and the control
    on the synthesis split, and for the leaderboard, the winner, the classic methods and the control on validation
    and test) and ``tail`` forwards (D's, through the network after the layer only)."""
    images = sum(n.values())
    c = cost["per_candidate"]
    held_out = (n.get("validation", 0) + n.get("test", 0)) * (leaderboard + baselines + 2)
    full = cost["full_forwards"] * images + c * (n.get("synthesis", 0) * (candidates + baselines + 1) + held_out)
    return {"full": int(full), "tail": int(cost["tail_forwards"] * images)}


# --------------------------------------------------------------------------------------------------
# one cell
# --------------------------------------------------------------------------------------------------


def compare_on_test(per_image: Mapping[str, Sequence[float]], winner: str, methods: Sequence[str],
                    higher_is_better: bool) -> dict[str, dict[str, Any]]:
    """``winner − method`` on the test split for every method: mean paired difference, bootstrap 95 % interval and
    verdict; a method with non-finite per-image scores gets ``verdict: "not comparable"``."""
    out: dict[str, dict[str, Any]] = {}
    a = list(per_image[winner])
    for m in methods:
        b = list(per_image[m])
        try:
            diff, lo, hi = stats.paired_bootstrap_ci(a, b, higher_is_better)
        except stats.StatsError as exc:
            out[m] = {"diff": None, "ci95": [None, None], "verdict": "not comparable", "why": str(exc)}
            continue
        out[m] = {"diff": _num(diff), "ci95": [_num(lo), _num(hi)], "verdict": stats.verdict(lo, hi, higher_is_better)}
    return out


SAME_TOLERANCE = 1e-6
"""per-image score difference under which the winner counts as scoring the same as a classic method"""


def same_scores(per_image: Mapping[str, Sequence[float]], winner: str, methods: Sequence[str],
                tolerance: float = SAME_TOLERANCE) -> list[str]:
    """The methods whose per-image scores equal the winner's within ``tolerance`` on every image (e.g. ``sum(G)``
    and Grad-CAM's ``mean(G)``, which render the same heatmaps): a tie with them is no finding."""
    a = list(per_image.get(winner, []))
    return [m for m in methods if m in per_image and len(per_image[m]) == len(a) and a
            and all(abs(x - y) <= tolerance for x, y in zip(a, per_image[m], strict=True))]


def best_method(scores: Mapping[str, float | None], metric: Metric) -> str | None:
    """The method with the best finite score (ties: the first), or ``None``."""
    best: str | None = None
    for name, value in scores.items():
        if value is not None and math.isfinite(value) and (best is None or metric.better(value, scores[best])):
            best = name
    return best


CONTROLS = ("control", "power_control")
"""the controls a cell's winner is compared with on the test split (results.json's per-image keys)"""


def cell_verdict(versus: Mapping[str, Mapping[str, Any]], best: str | None, exact: Sequence[str] | None = None,
                 controls: Mapping[str, Mapping[str, Any]] | None = None) -> str:
    """``wins`` / ``ties`` / ``loses`` from the comparisons with every classic method (see the module doc); with
    ``exact``, only those methods count (an approximation such as a capped Score-CAM is reported, not judged); a
    winner better than every classic method but not than the power control (in ``controls``) ``ties``."""
    verdicts = [v["verdict"] for k, v in versus.items() if exact is None or k in exact]
    if verdicts and all(v == "better" for v in verdicts):
        power = (controls or {}).get("power_control", {}).get("verdict")
        return "ties" if power in ("not distinguishable", "worse") else "wins"
    if best is not None and versus.get(best, {}).get("verdict") == "worse":
        return "loses"
    return "ties"


def summarize_cell(results: Mapping[str, Any], metric: Metric) -> dict[str, Any]:
    """The study's row of one synthesis's ``results.json``: winner, scores per split, every classic method's
    scores, the comparisons on the test split and the verdict."""
    best = results["best"]
    baselines = results["baselines"]
    exact = [b for b, v in baselines.items() if v.get("exact", True)]
    top = best_method({b: baselines[b].get("test_score") for b in exact}, metric)
    per_image = results["per_image"].get("test", {})
    versus = compare_on_test(per_image, SYNTHESIZED, [b for b in baselines if b in per_image],
                             metric.higher_is_better) if SYNTHESIZED in per_image else {}
    controls = compare_on_test(per_image, SYNTHESIZED, [c for c in CONTROLS if c in per_image],
                               metric.higher_is_better) if SYNTHESIZED in per_image else {}
    return {
        "winner": {"expression": best["expression"], "size": best["size"], "is_baseline": best["is_baseline"],
                   "accepted": best["accepted"], **{f"{s}_score": best.get(f"{s}_score")
                                                    for s in ("synthesis", "validation", "test")}},
        "classic": {b: {"title": v.get("title", b), "exact": v.get("exact", True),
                        **{f"{s}_score": v.get(f"{s}_score") for s in ("synthesis", "validation", "test")}}
                    for b, v in baselines.items()},
        "best_classic_on_test": top,
        "exact_classic": exact,
        "same_as": same_scores(per_image, SYNTHESIZED, list(baselines)),
        "versus": versus,
        "controls": controls,
        "verdict": cell_verdict(versus, top, exact, controls),
        "lambda_baseline": results.get("lambda_baseline"),
        "constraints": [{"text": c["text"], "holds": c["holds"]} for c in results.get("constraints", [])],
        "candidates_scored": results.get("candidates_scored"),
        "stopped_because": results.get("stopped_because"),
        "n": {"synthesis": results.get("n_synthesis"), "validation": results.get("n_validation"),
              "test": results.get("n_test")},
        "test_per_image": {"ids": list(results.get("ids", {}).get("test", [])),
                           **{k: list(v) for k, v in per_image.items()}},
        "notes": list(results.get("notes", [])),
    }


def cell_settings(model: LoadedModel, metric: Metric, splits: StudySplits, config: SynthesisConfig,
                  options: ExtractOptions, data: Mapping[str, Any]) -> dict[str, Any]:
    """What a cell's result depends on, JSON-normalized (tuples as lists); a resumed cell is reused only when these
    are equal."""
    return _json({"model": {"name": model.name, "layer": model.layer, "weights": model.weights},
            "metric": metric.describe(), "synthesis": config.as_dict(),
            "options": {"batch_size": options.batch_size, "score_top_k": options.score_top_k},
            "data": dict(data),
            "ids": {s: list(x.ids) for s, x in (("synthesis", splits.synthesis), ("validation", splits.validation),
                                                ("test", splits.test)) if x is not None}})


def _json(value: Any) -> Any:
    """``value`` as it reads back from JSON (tuples become lists, keys strings)."""
    return json.loads(json.dumps(value))


def run_cell(model: LoadedModel, metric_name: str, splits: StudySplits, config: SynthesisConfig,
             options: ExtractOptions | None = None, metric_params: Mapping[str, Any] | None = None,
             data: Mapping[str, Any] | None = None, executor: Any = None) -> dict[str, Any]:
    """One cell: the guarded synthesis of ``metric_name`` on ``model`` (``config`` with the metric's default
    guards as its constraints), summarized (:func:`summarize_cell`) with its cost and wall time."""
    options = options or ExtractOptions()
    metric = get_metric(metric_name, **dict(metric_params or {}))
    if metric.requires == "mask" and (splits.synthesis.masks is None or splits.test.masks is None):
        raise StudyError(f"metric {metric_name} needs boxes or masks, but the study's data has none on "
                         f"{'the synthesis split' if splits.synthesis.masks is None else 'the test split'}")
    cell_config = replace(config, constraints=default_constraints([metric.name]), checkpoint=None, resume=False)
    settings = {"model": {"name": model.name, "layer": model.layer, "weights": model.weights},
                "data": dict(data or {})}
    cost = cost_per_image(model, metric, cell_config, options, splits.synthesis)
    t0 = time.perf_counter()
    where = {} if executor is None else {"executor": executor}
    result = synthesize(model.module, model.layer, splits.synthesis, splits.test, metric, config=cell_config,
                        options=options, settings=settings, validation=splits.validation, **where)
    results = result.to_dict()
    wall = time.perf_counter() - t0
    row = summarize_cell(results, metric)
    shared, clean = held_out_overlap(splits)
    row["test_shares_sources"] = shared
    if shared:  # the comparisons again on the test samples that share no source with what was searched
        clean_per_image = restrict(row["test_per_image"], clean)
        row["versus_unshared"] = {"n": len(clean), **compare_on_test(clean_per_image, SYNTHESIZED,
                                                                     list(row["versus"]), metric.higher_is_better)}
    n = {k: int(v or 0) for k, v in row["n"].items()}
    candidates = int(results.get("candidates_scored") or 0)
    row.update({
        "model": model.name, "layer": model.layer, "weights": model.weights, "metric": metric.describe(),
        "constraints_applied": list(cell_config.constraints), "cost_per_image": cost,
        "forwards": cell_forwards(cost, n, candidates, len(row["classic"]), cell_config.leaderboard_size),
        "wall_seconds": round(wall, 3), "timings": results.get("timings", {}),
        "settings": cell_settings(model, metric, splits, cell_config, options, data or {}),
    })
    return row


# --------------------------------------------------------------------------------------------------
# the study and the cross-model table
# --------------------------------------------------------------------------------------------------


def run_study(models: Sequence[LoadedModel], metrics: Sequence[str], splits_of: Callable[[LoadedModel], StudySplits],
              config: SynthesisConfig, options: ExtractOptions | None = None,
              metric_params: Mapping[str, Mapping[str, Any]] | None = None, data: Mapping[str, Any] | None = None,
              done: Mapping[str, Mapping[str, Any]] | None = None,
              on_cell: Callable[[str, dict[str, Any], bool], None] | None = None, executor: Any = None,
              cross: bool = True) -> dict[str, Any]:
    """Every (model, metric) cell, then the cross-model table; ``done`` holds finished cells (by :func:`cell_key`)
    that are reused when their settings are those of this run (else :class:`StudyError`); ``on_cell(key, cell,
    reused)`` is called after each cell (a caller saves its checkpoint there).

    Returns ``{"cells": [...], "cross_model": [...]}`` (cells in model-major order)."""
    options = options or ExtractOptions()
    params = {m: dict((metric_params or {}).get(m, {})) for m in metrics}
    cells: list[dict[str, Any]] = []
    split_cache: dict[str, StudySplits] = {}
    for model in models:
        splits = split_cache[model.name] = splits_of(model)
        for name in metrics:
            key = cell_key(model.name, name)
            earlier = (done or {}).get(key)
            if earlier is not None:
                metric = get_metric(name, **params[name])
                cell_config = replace(config, constraints=default_constraints([metric.name]), checkpoint=None,
                                      resume=False)
                now = cell_settings(model, metric, splits, cell_config, options, data or {})
                if earlier.get("settings") != now:
                    raise StudyError(f"cell {key} in the checkpoint was run with other settings (model, metric, "
                                     "data, grammar or budget); pass --force to start the study again")
                cell = dict(earlier)
            else:
                cell = run_cell(model, name, splits, config, options, params[name], data, executor)
            cells.append(cell)
            if on_cell is not None:
                on_cell(key, cell, earlier is not None)
    table = cross_model(models, cells, split_cache, options, params) if cross and len(models) > 1 else []
    return {"cells": cells, "cross_model": table}


def cross_model(models: Sequence[LoadedModel], cells: Sequence[Mapping[str, Any]],
                splits: Mapping[str, StudySplits], options: ExtractOptions,
                metric_params: Mapping[str, Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Each cell's winner scored on every *other* model's test samples (its own target layer) against the best
    classic method of that model's cell for the same metric: difference, interval, verdict."""
    by_key = {cell_key(c["model"], c["metric"]["name"]): c for c in cells}
    rows: list[dict[str, Any]] = []
    for src in cells:
        name = src["metric"]["name"]
        metric = get_metric(name, **dict(metric_params.get(name, {})))
        for model in models:
            dst = by_key.get(cell_key(model.name, name))
            if model.name == src["model"] or dst is None or dst.get("best_classic_on_test") is None:
                continue
            test = splits[model.name].test
            ev = evaluate_methods(model.module, model.layer, test, {"winner": parse(src["winner"]["expression"])},
                                  {name: metric}, options)
            ours = dict(zip(test.ids, ev.per_image[name]["winner"], strict=True))
            per_image = dst["test_per_image"]
            top = dst["best_classic_on_test"]
            a = [ours[i] for i in per_image["ids"]]
            versus = compare_on_test({"winner": a, top: per_image[top]}, "winner", [top], metric.higher_is_better)
            rows.append({"metric": name, "from_model": src["model"], "on_model": model.name,
                         "expression": src["winner"]["expression"], "score": _num(ev["winner"][name]),
                         "own_winner": dst["winner"]["expression"], "own_winner_score": dst["winner"]["test_score"],
                         "best_classic": top, "best_classic_score": dst["classic"][top]["test_score"],
                         "n": len(a), **versus[top]})
    return rows


def _num(x: float | None) -> float | None:
    return None if x is None or not math.isfinite(x) else float(x)


def wins(study: Mapping[str, Any], note: str = "") -> list[dict[str, Any]]:
    """One entry per cell, as docs/wins.json publishes them: ``model``, ``layer``, ``metric``, ``expression`` (the
    winner), ``baseline`` (the best exact classic method on the test split), ``verdict`` (the cell's), ``difference``
    (winner − baseline on the test split) and ``interval`` (its 95 % bootstrap interval), with the test size ``n``,
    ``power_control`` (winner − the power control, where it was scored) and ``note`` (e.g. what the test images
    are).

    Example::

        wins({"cells": [cell]})[0]["verdict"]  # "wins", "ties" or "loses"
    """
    out = []
    for c in study["cells"]:
        top = c.get("best_classic_on_test")
        v = c["versus"].get(top, {}) if top is not None else {}
        out.append({"model": c["model"], "layer": c["layer"], "metric": c["metric"]["name"],
                    "higher_is_better": c["metric"]["higher_is_better"], "expression": c["winner"]["expression"],
                    "baseline": top, "baseline_score": None if top is None else c["classic"][top]["test_score"],
                    "winner_score": c["winner"]["test_score"], "verdict": c["verdict"], "difference": v.get("diff"),
                    "interval": v.get("ci95"), "n_test": c["n"]["test"],
                    "test_shares_sources": c.get("test_shares_sources", []),
                    **({"power_control": {k: power[k] for k in ("diff", "ci95", "verdict")}}
                       if (power := (c.get("controls") or {}).get("power_control")) else {}),
                    **({"note": note} if note else {})})
    return out
