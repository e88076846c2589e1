"""OGIS search: the learner proposes, the oracles prune, reject and judge, the metrics score.

Data flows one way: model + synthesis images → cached terminals (also of every metric view) → the
learner's bank of sub-expression values → candidate weights → heatmaps → metric scores → leaderboard (and,
with several objectives, the Pareto front); then the winner is chosen (on a separate validation split when
one is given), and the winner, the leaderboard, the classic methods and a control are scored once more on
the held-out test images.

:func:`synthesize` runs the steps of :class:`Search` in order, one job each:

1. :meth:`Search.extract` — terminals of the synthesis split and its metric views;
2. :meth:`Search.score_baselines` — the classic methods, λ per objective, the constraints' bounds;
3. :meth:`Search.search` — the OGIS loop (budget in candidates, checkpoints);
4. :meth:`Search.select` — the winner (see below);
5. :meth:`Search.held_out` — validation and test scores, per-image evidence, the control, the comparison.

Winner rule. A candidate is *admissible* when every constraint holds on the synthesis split (and its heatmap
was not rejected as non-finite or degenerate), *correct* when it also beats λ on every objective. Without
constraints every objective gets its default guards (``config.guards``). The pool is the leaderboard (the best
admissible candidates on the first objective) or, with several objectives, the Pareto front of admissible
candidates; candidates whose maps are the same up to a positive factor are merged into the smallest
(:func:`~sycam.synth.selection.merge_rescaled`). The correct members of the pool are eligible (all members when
none is correct). Without a validation split the winner is the eligible candidate best on the first objective
(ties: smaller, then earlier). With one, the members tied with λ on the synthesis split (within noise of its
per-image scores) are eligible too, every eligible candidate is re-scored on validation, the best there is found,
and among the candidates within noise of it (:func:`sycam.stats.within_noise`: paired mean difference within one
standard error, or below ``config.min_effect``) the smallest expression wins (ties: better validation score, then
earlier).

Verdict. On every split the winner is compared with every exact classic method and both controls (clustered
paired bootstrap, :func:`sycam.data.split.bootstrap_groups`); the test split's comparisons give the verdict:
"better" only when every interval against an exact classic method lies on the better side.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

import torch
from torch import nn

from .._torch import module_device
from ..data.samples import Samples
from ..data.split import bootstrap_groups
from ..heatmap import needed_terminals
from ..methods import METHODS, method_at_layer, method_title
from ..metrics.base import Metric, MetricError
from ..results import CONTROL, CONTROL_TITLE, POWER_CONTROL, POWER_CONTROL_TITLE
from ..targets import Targets
from ..terminals import ExtractOptions
from .config import SynthesisConfig
from .constraints import Constraint, default_constraints, parse_constraints
from .control import POWERS
from .errors import SynthesisError
from .heldout import HeldOut
from .ogis import OgisLoop
from .oracles import CorrectnessOracle
from .result import SynthesisResult, finite_or_none
from .selection import Candidate
from .sharded import ShardPlane
from .transport import Executor, balanced_batch
from .winner import WinnerChoice

__all__ = ["Candidate", "Search", "SynthesisError", "synthesize"]


class Search(OgisLoop, WinnerChoice, HeldOut):
    """One synthesis run, step by step (see the module doc); :func:`synthesize` is the usual entry point.

    The search is the driver: it keeps the expressions, the decisions and the scores, and reaches the images only
    through its shard plane (:class:`~sycam.synth.sharded.ShardPlane`: one shard in this process, or the shards
    of ``executor``). Steps 3–5 live in :mod:`sycam.synth.ogis`, :mod:`sycam.synth.winner` and
    :mod:`sycam.synth.heldout`.

    Args:
        model, layer: the classifier and its target layer.
        synthesis: the split the search scores candidates on.
        metrics: the objectives (the first is the primary one: leaderboard order, λ, per-image evidence).
        config, options, settings: as for :func:`synthesize`.
        on_progress: called after every scored batch with (candidates scored, best primary score or None).
        executor: where the images live (None: one shard in this process). With one, the extraction batch is
            lowered, when the synthesis split holds fewer batches than workers, to ``ceil(N / workers)`` so every
            worker gets images (recorded in the settings and the notes: a local run with that ``batch_size``
            gives the same result).

    Example::

        run = Search(net, "layer4", syn, [get_metric("iou")], SynthesisConfig(max_candidates=200), ExtractOptions())
        run.extract(); run.score_baselines(); run.search(); run.select(None); run.held_out(test)
        run.result().best.expression
    """

    def __init__(self, model: nn.Module, layer: str | nn.Module, synthesis: Samples, metrics: Sequence[Metric],
                 config: SynthesisConfig, options: ExtractOptions, settings: dict[str, Any] | None = None,
                 on_progress: Callable[[int, float | None], None] | None = None,
                 executor: Executor | None = None) -> None:
        config.check()
        if executor is not None and config.racing:
            raise SynthesisError("racing needs every synthesis image in one process: drop racing (--racing) to run "
                                 f"on the {executor.name} executor")
        lowered = False
        if executor is not None:
            batch = balanced_batch(len(synthesis), executor.workers, options.batch_size)
            lowered = batch != options.batch_size
            options = replace(options, batch_size=batch)
        self.plane = ShardPlane(executor)
        self.objectives = list(metrics)
        self.guards = "user" if config.constraints else ("default" if config.guards else "off")
        """which constraints apply: "user" (given), "default" (the objectives' default guards) or "off" (none)"""
        if self.guards == "default":
            config = replace(config, constraints=default_constraints(self.objectives))
        self.config = config
        self.constraint_specs = parse_constraints(config.constraints)
        self.columns = _columns(self.objectives, self.constraint_specs, config, synthesis)
        """every metric a candidate is scored on: the objectives, then the constraints' other metrics"""
        if config.batch is None:
            on_cpu = module_device(model, synthesis.device).type == "cpu"
            config = replace(config, batch=default_batch(self.columns, on_cpu))
        self.model, self.layer, self.synthesis = model, layer, synthesis
        self.config, self.options, self.on_progress = config, options, on_progress
        self.names = [m.name for m in self.columns]
        self.timings: dict[str, float] = {}
        self.notes: list[str] = []
        self.baseline_nodes = {b: METHODS[b].node for b in config.baselines}
        for layer in config.grammar.layers():  # the classic methods at every layer the search may use
            for b in config.baselines:
                moved = method_at_layer(b, layer)
                if moved is not None:
                    self.baseline_nodes[moved[0]] = moved[1]
        self.settings = {**(settings or {}), "synthesis": config.as_dict(), "guards": self.guards,
                         "extraction": {"batch_size": options.batch_size, "score_top_k": options.score_top_k,
                                        **({} if options.reshape is None else {"reshape": repr(options.reshape)})},
                         "metric": self.objectives[0].describe(), "metrics": [m.describe() for m in self.objectives],
                         "synthesis_ids": list(synthesis.ids)}
        if executor is not None:
            self.settings["executor"] = executor.describe()
        if lowered:
            threads = executor.threads or "the workers'"  # type: ignore[union-attr]
            self.notes.append(f"extraction batch lowered to {options.batch_size} images so that each of the "
                              f"{executor.workers} workers gets a shard (a local run with "  # type: ignore[union-attr]
                              f"batch_size={options.batch_size} and {threads} torch thread(s) gives the same result)")
        self.per_image: dict[str, dict[str, list[float]]] = {}
        self.degenerate: dict[str, dict[str, int]] = {}
        self.ids: dict[str, list[str]] = {"synthesis": list(synthesis.ids)}
        self.n_split: dict[str, int] = {"synthesis": len(synthesis)}
        self.groups: dict[str, tuple[list[str], str]] = {"synthesis": bootstrap_groups(synthesis)}
        """split → (cluster per sample, grouping) for the clustered bootstrap"""
        self.comparison_splits: dict[str, Any] | None = None
        self.merged: dict[str, list[str]] = {}
        self.why_winner = ""
        self.power: float | None = None
        self.count = {"seeds": 0, "form_skipped": 0, "duplicates_of_seeds": 0, "unscored": 0, "constraint_failed": 0,
                      "constraint_unchecked": 0, "raced_out": 0, "scored_by_key": 0, "forwards": 0}
        self._start_loop_state()

    @property
    def primary(self) -> Metric:
        """The first objective: it orders the leaderboard and sets the per-image evidence and the comparison."""
        return self.objectives[0]

    # -- 1. terminals ---------------------------------------------------------------------------------

    def extract(self) -> None:
        """Start the plane's shards; each extracts its images' terminals (and the metric views') and prepares its
        part of the search (the bank's leaves, the fingerprint's positions)."""
        t0 = time.perf_counter()
        self.plane.start(self.model, self.layer, self.options)
        self.plane.open_split("synthesis", self.synthesis, self.columns)
        needed = sorted(self._needed_terminals())
        layout = self.plane.layout(needed)
        plan = self.plane.plans["synthesis"]
        cache = self.config.max_bank_bytes // 2 // len(plan)  # each shard's values are 1/W of the whole's
        self.plane.start_search(self.columns, needed, self.config.grammar.max_size, cache, layout)
        grid, target = tuple(layout["hw"]), tuple(layout["target_hw"])
        if grid != target:
            self.notes.append(f"candidates and baselines are scored on the finest grid of the searched layers, "
                              f"{grid[0]}×{grid[1]}: maps of the {target[0]}×{target[1]} target layer are "
                              "first resized onto it (bilinear), so baselines score slightly apart from sycam evaluate")
        self._diagnose()
        self.timings["terminals"] = time.perf_counter() - t0

    def _diagnose(self) -> None:
        """The target layer's :class:`~sycam.diagnostics.Diagnosis` on the first synthesis images (results.json's
        ``diagnostics``); a degenerate layer's sentence also goes to the notes."""
        from ..diagnostics import diagnose_layer

        syn = self.synthesis.to(module_device(self.model, self.synthesis.device))
        self.diagnosis = diagnose_layer(self.model, self.layer, syn.images, Targets(classes=syn.labels),
                                        options=self.options)
        if self.diagnosis.sentence:
            self.notes.append(self.diagnosis.sentence)

    def _needed_terminals(self) -> set[str]:
        """The terminals the grammar and the baselines use (A always: it renders every map); notes a capped S."""
        needed = set(self.config.grammar.terminals) | {"A"}
        needed |= {f"A@{layer}" for layer in self.config.grammar.layers()}
        needed |= needed_terminals(self.baseline_nodes.values())
        k = self.options.score_top_k
        if k is not None and "S" in needed:
            self.notes.append(f"Score-CAM terminal S capped to the top-{k} channels per image by mean activation; "
                              "the other channels get the score of the fully masked input. Score-CAM is then an "
                              f"approximation (\"Score-CAM (top-{k} channels)\"): it never sets λ nor enters a "
                              "comparison.")
        return needed

    # -- 2. baselines, λ and the constraints' bounds ----------------------------------------------------

    def exact(self, name: str) -> bool:
        """Whether baseline ``name`` is computed exactly (a capped S makes Score-CAM an approximation)."""
        return self.options.score_top_k is None or "S" not in self.baseline_nodes[name].terminals()

    def score_baselines(self) -> None:
        """Score every baseline on every metric; λ per objective from the best *exact* baseline."""
        t0 = time.perf_counter()
        names, nodes = list(self.baseline_nodes), list(self.baseline_nodes.values())
        self.baselines: dict[str, dict[str, Any]] = {}
        for b in names:
            title = method_title(b)
            if not self.exact(b):
                title = f"{title} (top-{self.options.score_top_k} channels)"
            self.baselines[b] = {"expression": str(self.baseline_nodes[b]), "title": title, "exact": self.exact(b),
                                 "scores": {}}
        self.per_image["synthesis"] = {}
        for m in self.columns:
            per_image = self.plane.split_scores("synthesis", nodes, m, self.config.batch)
            for b, row, agg in zip(names, per_image.tolist(), m.aggregate(per_image).tolist(), strict=True):
                self.baselines[b]["scores"][m.name] = float(agg)
                if m is self.primary:
                    self.baselines[b]["synthesis_score"] = float(agg)
                    self.per_image["synthesis"][b] = [float(x) for x in row]
        exact = [b for b in names if self.exact(b)]
        lambdas: list[float | None] = []
        self.lambda_baseline: str | None = None
        for m in self.objectives:
            top = self._best_of(exact, m)
            lambdas.append(None if top is None else self.baselines[top]["scores"][m.name])
            if m is self.primary:
                self.lambda_baseline = top
        if self.config.lambda_ is not None:
            lambdas[0], self.lambda_source = float(self.config.lambda_), "user"
        else:
            self.lambda_source = "best_baseline" if lambdas[0] is not None else "none"
        bounds = []
        for c in self.constraint_specs:
            metric = self.columns[self.names.index(c.metric)]
            values = {b: self.baselines[b]["scores"][c.metric] for b in names}
            bounds.append((c, c.bound(values, exact, lambda a, b, m=metric: m.better(a, b))))
        allowed = math.floor(self.config.max_degenerate_fraction * len(self.synthesis) + 1e-9)
        self.oracle = CorrectnessOracle(self.objectives, lambdas, bounds, allowed)
        self.timings["baselines"] = time.perf_counter() - t0

    def _best_of(self, names: Sequence[str], metric: Metric) -> str | None:
        top = None
        for b in names:
            if top is None or metric.better(self.baselines[b]["scores"][metric.name],
                                          self.baselines[top]["scores"][metric.name]):
                top = b
        return top

    # -- the result -------------------------------------------------------------------------------------

    def counters(self) -> dict[str, Any]:
        """Counters that add up: enumerated = scored + raced out + equivalent + rejected + merged
        sub-expressions + form skipped + duplicates of seeds + unscored (dropped by an interrupt).
        ``scored_by_key`` (a subset of the scored) took their scores from an earlier candidate with an identical
        equivalence key, without forwards; ``raced_out`` is 0 without ``config.racing``; ``forwards`` counts the
        model forwards (one per input image) the metrics ran during the search (0 for cached metrics; a naive
        average-drop search runs candidates × images)."""
        ls = self.learner.stats
        rejected = dict(ls.rejected)
        for k, v in self.rejected.items():
            rejected[k] = rejected.get(k, 0) + v
        return {
            "candidates_enumerated": ls.enumerated + self.count["seeds"],
            "candidates_scored": len(self.scored),
            "raced_out": self.count["raced_out"],
            "scored_by_key": self.count["scored_by_key"],
            "forwards": self.count["forwards"],
            "equivalent_pruned": self.equivalence.pruned,
            "rejected": rejected,
            "rejected_total": sum(rejected.values()),
            "subexpressions_pruned": ls.subexpr_pruned,
            "form_skipped": self.count["form_skipped"],
            "duplicates_of_seeds": self.count["duplicates_of_seeds"],
            "unscored": self.count["unscored"],
            "constraint_failed": self.count["constraint_failed"],
            "constraint_unchecked": self.count["constraint_unchecked"],
            "merged_rescaled": sum(len(v) for v in self.merged.values()),
            "bank_size": ls.bank_size,
            "n_synthesis": len(self.synthesis),
            "n_validation": self.n_split.get("validation", 0),
            "n_test": self.n_split.get("test", 0),
        }

    def result(self) -> SynthesisResult:
        """The :class:`SynthesisResult` of the steps run so far (all of them)."""
        winner = self.winner
        control = {"name": CONTROL_TITLE,
                   "scores": {split: finite_or_none(self.primary.aggregate(torch.tensor(v[CONTROL])).item())
                              for split, v in self.per_image.items() if v.get(CONTROL)}}
        power = None
        if self.power is not None:
            power = {"name": POWER_CONTROL_TITLE, "power": self.power, "powers": list(POWERS),
                     "scores": {split: finite_or_none(self.primary.aggregate(torch.tensor(v[POWER_CONTROL])).item())
                                for split, v in self.per_image.items() if v.get(POWER_CONTROL)}}
        selection = {"why": self.why_winner, "top_row": self.leaderboard[0].expression if self.leaderboard else None,
                     "min_effect": self.config.min_effect, "merged": self.merged}
        counters = self.counters()
        incomplete = self.learner.stats.bank_full or self.stopped in ("time limit", "interrupted")
        return SynthesisResult(
            metric=self.primary, best=winner, baselines=self.baselines, leaderboard=self.leaderboard,
            history=self.history, lambda_=self.oracle.lambdas[0], lambda_source=self.lambda_source,
            counters=counters, timings=self.timings, settings=self.settings, notes=self.notes,
            stopped_because=self.stopped, metrics=self.objectives,
            lambdas=dict(zip([m.name for m in self.objectives], self.oracle.lambdas, strict=True)),
            lambda_baseline=self.lambda_baseline, accepted=self.oracle.correct(winner.scores),
            constraints=list(self.oracle.constraints), pareto=sorted(self.front, key=self._rank),
            per_image=self.per_image, ids=self.ids, degenerate=self.degenerate, comparison=self.comparison,
            control=control, incomplete=incomplete, power_control=power, selection=selection,
            diagnostics=None if getattr(self, "diagnosis", None) is None else self.diagnosis.as_dict())


LOWRES_CPU_BATCH = 64
"""Candidates per metric call on the CPU when every metric scores exactly at layer resolution (``Metric.lowres``):
their intermediates are ``(B, N, h, w)``, small, so a large batch costs no cache misses and saves per-call work."""


def default_batch(columns: Sequence[Metric], on_cpu: bool) -> int:
    """Candidates per metric call when ``SynthesisConfig.batch`` is None: 32 on an accelerator; on the CPU
    :data:`LOWRES_CPU_BATCH` when every metric of ``columns`` is a cached one with the exact layer-resolution path,
    else 2 (full-resolution ``(B, N, H, W)`` intermediates of larger batches thrash the caches).

    >>> from sycam.metrics import get_metric
    >>> default_batch([get_metric("energy_pointing_game")], True), default_batch([get_metric("deletion_auc")], True)
    (64, 2)
    """
    if not on_cpu:
        return 32
    return LOWRES_CPU_BATCH if all(m.lowres and m.cost != "model" for m in columns) else 2


def _columns(objectives: list[Metric], constraints: Sequence[Constraint], config: SynthesisConfig,
             synthesis: Samples) -> list[Metric]:
    """The metrics to score (objectives first, then each constraint metric not among them), after checking that
    the objectives are distinct, the baselines known and the ground truth there."""
    if not objectives:
        raise SynthesisError("at least one metric (objective) is needed")
    names = [m.name for m in objectives]
    if len(set(names)) != len(names):
        raise SynthesisError(f"each objective may be given once, got {names}")
    unknown = [b for b in config.baselines if b not in METHODS]
    if unknown:
        raise SynthesisError(f"unknown baseline(s) {unknown}; known: {', '.join(METHODS)}")
    columns = list(objectives)
    for c in constraints:
        if c.metric not in [m.name for m in columns]:
            columns.append(_metric_named(c))
    for m in columns:
        if m.requires == "mask" and synthesis.masks is None:
            raise SynthesisError(f"metric {m.name} needs ground truth (boxes or masks), but the data has none")
    return columns


def _metric_named(c: Constraint) -> Metric:
    from ..metrics import get_metric

    try:
        return get_metric(c.metric)
    except MetricError as exc:
        raise SynthesisError(f"constraint {c.text!r}: {exc}") from None


def synthesize(model: nn.Module, layer: str | nn.Module, synthesis: Samples, test: Samples | None,
               metric: Metric | Sequence[Metric], *, config: SynthesisConfig | None = None,
               options: ExtractOptions | None = None, settings: dict[str, Any] | None = None,
               on_progress: Callable[[int, float | None], None] | None = None,
               validation: Samples | None = None, executor: Executor | None = None) -> SynthesisResult:
    """Search the grammar for the expression that scores best on ``synthesis`` under ``metric``.

    Args:
        model, layer: the classifier and its target layer.
        synthesis: the split the search scores candidates on.
        test: held-out samples scored once at the end (``None``: no held-out scores).
        metric: the objective, or several (a Pareto search; the first is the primary objective). The arguments
            after it are keyword-only.
        config: grammar, λ, budget, equivalence, constraints, checkpointing.
        options: terminal extraction options (batch sizes, Score-CAM top-k cap).
        settings: extra provenance recorded in the results (model, data, ...).
        on_progress: called after every scored batch with (candidates scored, best score so far).
        validation: samples kept apart from ``synthesis`` on which the winner is chosen among the best
            candidates (``None``: the best synthesis score wins).
        executor: where the images live (:mod:`sycam.synth.executors`): ``None`` runs in this process; a
            :class:`~sycam.synth.ray_executor.RayExecutor` shards them over Ray actors, with the same result
            (:mod:`sycam.synth.sharded`). The caller closes it.

    Example::

        result = synthesize(net, "layer4", syn, test, [get_metric("energy_pointing_game")],
                            config=SynthesisConfig(max_candidates=2000, constraints=("mask_auc >= gradcam",)),
                            validation=val)
        result.best.expression, result.to_dict()["comparison"]["verdict"]
    """
    metrics = [metric] if isinstance(metric, Metric) else list(metric)
    args = (model, layer, synthesis, metrics, config or SynthesisConfig(), options or ExtractOptions(), settings,
            on_progress)
    run = Search(*args, executor=executor)
    run.extract()
    run.score_baselines()
    run.search()
    run.select(validation)
    run.held_out(test)
    return run.result()
