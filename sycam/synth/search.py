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

import itertools
import math
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn

from .. import stats
from .._progress import progress
from .._torch import module_device
from ..data.samples import Samples
from ..data.split import bootstrap_groups
from ..expr import Kind, Node, evaluate, kind_of, parse
from ..heatmap import finish_layer, grid_of, needed_terminals
from ..methods import METHODS, method_at_layer, method_title
from ..metrics.base import Metric, MetricError
from ..results import CONTROL, CONTROL_TITLE, POWER_CONTROL, POWER_CONTROL_TITLE, SYNTHESIZED
from ..targets import Targets
from ..terminals import ExtractOptions
from ..workspace import BASE, Workspace
from . import checkpoint as ckpt
from .config import SynthesisConfig
from .constraints import Constraint, default_constraints, parse_constraints
from .control import POWERS, control_scores, pick_power, power_control_scores
from .errors import SynthesisError
from .keystore import KeyStore
from .learner import Entry, Learner
from .oracles import CorrectnessOracle, EquivalenceOracle, triage_block
from .racing import Race, hardest_first
from .result import SynthesisResult, _finite
from .selection import Candidate, choose_within_noise, merge_rescaled, pareto_add, shapes_on

if TYPE_CHECKING:
    from .executors import Executor

TRIAGE_BLOCK = 64
"""candidates read ahead and triaged at once (one batched pass of both oracles; on shards one round trip)"""

__all__ = ["Candidate", "Search", "SynthesisError", "synthesize"]


class Search:
    """One synthesis run, step by step (see the module doc); :func:`synthesize` is the usual entry point.

    Args:
        model, layer: the classifier and its target layer.
        synthesis: the split the search scores candidates on.
        metrics: the objectives (the first is the primary one: leaderboard order, λ, per-image evidence).
        config, options, settings: as for :func:`synthesize`.
        on_progress: called after every scored batch with (candidates scored, best primary score or None).
    """

    def __init__(self, model: nn.Module, layer: str | nn.Module, synthesis: Samples, metrics: Sequence[Metric],
                 config: SynthesisConfig, options: ExtractOptions, settings: dict[str, Any] | None = None,
                 on_progress: Callable[[int, float | None], None] | None = None) -> None:
        config.check()
        self.objectives = list(metrics)
        self.guards = "user" if config.constraints else ("default" if config.guards else "off")
        """which constraints apply: "user" (given), "default" (the objectives' default guards) or "off" (none)"""
        if self.guards == "default":
            config = replace(config, constraints=default_constraints(self.objectives))
        self.config = config
        self.constraint_specs = parse_constraints(config.constraints)
        self.columns = _columns(self.objectives, self.constraint_specs, config, synthesis)
        if config.batch is None:
            on_cpu = module_device(model, synthesis.device).type == "cpu"
            config = replace(config, batch=default_batch(self.columns, on_cpu))
        self.model, self.layer, self.synthesis = model, layer, synthesis
        self.config, self.options, self.on_progress = config, options, on_progress
        """every metric a candidate is scored on: the objectives, then the constraints' other metrics"""
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
        # search state
        self.done: dict[str, list[float]] = {}
        self.scored: list[Candidate] = []
        self.leaderboard: list[Candidate] = []
        self.front: list[Candidate] = []
        self.history: list[tuple[int, float]] = []
        self.best: Candidate | None = None
        self.pending: list[tuple[Entry, str | None]] = []
        self.stopped = "search space exhausted"
        self.count = {"seeds": 0, "form_skipped": 0, "duplicates_of_seeds": 0, "unscored": 0, "constraint_failed": 0,
                      "constraint_unchecked": 0, "raced_out": 0, "scored_by_key": 0, "forwards": 0}
        self._keys: KeyStore[Tensor] = KeyStore()
        self.race: Race | None = None
        self.raced: list[tuple[str, float | None]] = []
        """raced-out candidates with the bar (the leaderboard's last score) they could not beat"""
        self._bar_at_flush: float | None = None
        self.rejected: dict[str, int] = {}
        self._snap: tuple[Any, dict[str, int]] | None = None
        self._tri: dict[int, tuple[str | None, tuple[int, int] | None, Tensor, list[Tensor]]] = {}
        """per candidate read ahead: the reason to reject it, its fingerprint, flat maps and layer maps per view"""
        self._held: dict[int, list[Tensor]] = {}
        """layer maps per view of the candidates waiting to be scored (computed once, in triage)"""

    triage_size: int = TRIAGE_BLOCK
    """candidates read ahead and triaged at once (1: one by one, the unbatched path the tests compare with)"""

    @property
    def primary(self) -> Metric:
        """The first objective: it orders the leaderboard and sets the per-image evidence and the comparison."""
        return self.objectives[0]

    # -- 1. terminals ---------------------------------------------------------------------------------

    def extract(self) -> None:
        """Terminal caches of the synthesis split and every metric view; the learner's leaves."""
        t0 = time.perf_counter()
        self.ws = Workspace.build(self.model, self.layer, self.synthesis, self.columns, self.options)
        self._splits: dict[str, Workspace] = {"synthesis": self.ws}
        self.views = [BASE, *[v for v in self.ws.caches if v != BASE]]
        needed = self._needed_terminals()
        self.per_view = [self.ws.values(needed, v) for v in self.views]
        self.leaves = {t: tuple(pv[t] for pv in self.per_view) for t in sorted(needed)}
        self.acts = tuple(pv["A"] for pv in self.per_view)
        self.grid = grid_of(self.per_view[0])
        """the grid every candidate's layer map is scored on: the finest of the layers searched"""
        target = tuple(int(s) for s in self.acts[0].shape[-2:])
        if self.grid != target:
            self.notes.append(f"candidates and baselines are scored on the finest grid of the searched layers, "
                              f"{self.grid[0]}×{self.grid[1]}: maps of the {target[0]}×{target[1]} target layer are "
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
            per_image = self._split_scores("synthesis", nodes, m)
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

    # -- 3. the OGIS loop -------------------------------------------------------------------------------

    def _checkpoint_settings(self) -> dict[str, Any]:
        """What the scores depend on: the settings (any executor resumes any run), the constraints, and the
        fingerprint of the synthesis data (:meth:`Samples.fingerprint`: ids, labels, boxes, masks, pixels)."""
        settings = {k: v for k, v in self.settings.items() if k != "executor"}
        return {**settings, "constraints": [c.text for c in self.constraint_specs],
                "data_fingerprint": self.synthesis.fingerprint()}

    def _checkpoint_key(self) -> str:
        return ckpt.settings_key(self._checkpoint_settings())

    def _save_checkpoint(self) -> None:
        if self.config.checkpoint is not None:
            ckpt.save(self.config.checkpoint, self._checkpoint_key(), self.names, self.done,
                      {"max_candidates": self.config.max_candidates, "time_limit": self.config.time_limit},
                      ckpt.settings_parts(self._checkpoint_settings()))
        self._last_checkpoint = time.perf_counter()

    def _candidates(self) -> Iterator[tuple[Entry, str | None]]:
        """Seeds (the classic methods the grammar admits) first, then the learner's entries by size."""
        grammar = self.config.grammar
        seed_texts: set[str] = set()
        if self.config.seed_baselines:
            for b, node in self.baseline_nodes.items():
                kind = kind_of(node)
                if grammar.uses_only(node) and grammar.form_allows(kind):
                    self.count["seeds"] += 1
                    seed_texts.add(str(node))
                    yield self._seed_entry(node, kind), b
        for entry in self.learner.entries():
            if not grammar.form_allows(entry.kind):
                self.count["form_skipped"] += 1
            elif str(entry.node) in seed_texts:
                self.count["duplicates_of_seeds"] += 1
            else:
                yield entry, None

    def _stream_state(self) -> tuple[Any, dict[str, int]]:
        stats = replace(self.learner.stats, rejected=dict(self.learner.stats.rejected))
        return stats, {k: self.count[k] for k in ("seeds", "form_skipped", "duplicates_of_seeds")}

    def _stream(self) -> Iterator[tuple[Entry, str | None]]:
        """The candidate stream read ahead in blocks of :data:`TRIAGE_BLOCK`, each block triaged at once
        (:meth:`_triage_block`) before its candidates are handed out one by one; the counters are those of the
        last candidate handed out (:meth:`_rewind_stream`)."""
        it = self._candidates()
        while True:
            block = [(item, self._stream_state()) for item in itertools.islice(it, self.triage_size)]
            if not block:
                return
            self._triage_block([entry for (entry, _), _ in block])
            for item, snap in block:
                self._snap = snap
                yield item

    def _seed_entry(self, node: Node, kind: Kind) -> Entry:
        """The bank-style entry of a seeded classic method (its values on every view)."""
        return Entry(node, kind, tuple(evaluate(node, pv) for pv in self.per_view))

    def _new_learner(self) -> Learner:
        return Learner(self.config.grammar, self.leaves, self.config.max_bank_bytes)

    def _rewind_stream(self) -> None:
        """Counters back to the last candidate the search took (the stream was read ahead)."""
        if self._snap is not None:
            self.learner.stats, counts = self._snap
            self.count.update(counts)

    def _triage_block(self, entries: Sequence[Entry]) -> None:
        """Both oracles' tensor work for a block of candidates at once (:func:`~sycam.synth.oracles.triage_block`):
        the reason to reject each, its heatmap fingerprint and flat maps, and its layer maps (kept for scoring)."""
        block = triage_block([e.node for e in entries], [e.values for e in entries], self.per_view, self.grid)
        n = len(self.synthesis)
        keys = block.keys() if self.equivalence.mode == "heatmap" else [None] * len(entries)
        for j, e in enumerate(entries):
            reason = self.oracle.reject_counts(block.finite[j], block.blank[j], block.bad[j], n)
            self._tri[e.uid] = (reason, keys[j], block.flat[j].clone(), [m[j] for m in block.maps])

    def _triage(self, entry: Entry) -> bool:
        """True when the candidate is to be scored; otherwise it was rejected or pruned (and counted)."""
        reason, key, flat, maps = self._tri.pop(entry.uid)
        if reason is not None:
            self.rejected[reason] = self.rejected.get(reason, 0) + 1
            return False
        if key is not None and self.equivalence.match(str(entry.node), key, flat,
                                                      lambda other: float((flat - other).abs().max())):
            return False
        self._held[entry.uid] = maps
        return True

    def _considered(self) -> int:
        """Candidates that reached scoring: scored plus raced out (the budget counts both; racing off: scored)."""
        return len(self.scored) + self.count["raced_out"]

    def _race(self) -> Race | None:
        """The race of the objective (``config.racing``), or None with a note saying why racing is off."""
        why = None
        if len(self.objectives) > 1:
            why = "several objectives (the Pareto front has no single bar)"
        else:
            rows = [v for k, v in self.per_image.get("synthesis", {}).items() if k in self.baselines]
            race = Race.build(self.ws, self.primary, order=hardest_first(self.primary, rows) or None)
            if race is not None:
                self.notes.append(f"racing: candidates scored on {', '.join(str(len(p)) for p in race.positions)} "
                                  "images in turn (those the classic methods score worst on first) and dropped "
                                  "once they provably could not enter the leaderboard")
                return race
            why = f"no known per-image range of {self.primary.name} (or too few images)"
        self.notes.append(f"racing requested but off: {why}")
        return None

    def _metric_forwards(self) -> int:
        """Model forwards (one per input image) the metrics have run on the synthesis split so far (racing's
        block workspaces included)."""
        race = self.race.workspaces if self.race is not None else []
        return self.ws.forwards + sum(w.forwards for w in race)

    def _budget_left(self) -> int | None:
        n = self.config.max_candidates
        return None if n is None else n - self._considered()

    def _over_time(self) -> bool:
        limit = self.config.time_limit
        return limit is not None and time.perf_counter() - self._t_search > limit

    def search(self) -> None:
        """Enumerate, triage, score in batches, until the space, the budget or the time runs out."""
        t0 = self._t_search = self._last_checkpoint = time.perf_counter()
        if self.config.checkpoint is not None and self.config.resume and self.config.checkpoint.exists():
            self.done = ckpt.load(self.config.checkpoint, self._checkpoint_key(), self.names,
                                  ckpt.settings_parts(self._checkpoint_settings()))
            self.notes.append(f"resumed from a checkpoint holding {len(self.done)} scored candidates")
        self.learner = self._new_learner()
        self.equivalence = EquivalenceOracle(self.config.equivalence, self.config.tolerance)
        forwards0 = self._metric_forwards()
        self.race = self._race() if self.config.racing else None
        with progress(self.config.max_candidates, "synthesize", "cand") as self._bar:
            try:
                for entry, seed in self._stream():
                    if self._triage(entry):
                        self.pending.append((entry, seed))
                        left = self._budget_left()
                        if len(self.pending) >= self.config.batch or (left is not None and len(self.pending) >= left):
                            self._flush()
                    if self.stopped != "search space exhausted":
                        break
                    if self._over_time():
                        self._flush()
                        if self.stopped == "search space exhausted":
                            self.stopped = "time limit"
                        break
                else:
                    self._flush()
            except KeyboardInterrupt:
                self.count["unscored"] += len(self.pending)
                self.pending = []
                self.stopped = "interrupted"
                self.notes.append("interrupted by the user: the best candidate so far is reported")
            if self.stopped == "search space exhausted":
                self._bar.set_total(len(self.scored))  # the space ran out before the budget: the bar is full
            else:
                self._rewind_stream()
        self._save_checkpoint()
        self.count["forwards"] = self._metric_forwards() - forwards0
        self.timings["search"] = time.perf_counter() - t0
        if self.learner.stats.bank_full:
            self.notes.append("the sub-expression bank reached its memory cap; larger expressions were built only "
                              "from the bank kept until then: the search is incomplete")
        if self.best is None:
            rejected = {**self.learner.stats.rejected, **self.rejected}
            if self.scored:
                raise SynthesisError(f"none of the {len(self.scored)} candidates scored satisfies the constraints "
                                     f"({'; '.join(c.text for c in self.constraint_specs)})")
            raise SynthesisError("no candidate could be scored: the grammar yields no valid heatmap "
                                 f"(rejected: {rejected})")

    def _score(self, entries: Sequence[Entry], columns: Sequence[int],
               race: bool = False) -> tuple[list[list[float] | None], list[bool]]:
        """Aggregate synthesis scores ``[candidate][column]`` of bank entries (values on every view), for the
        metric columns ``columns``, and per candidate whether it took every score from an equivalent one
        (no forwards). With ``race`` the first column is raced (:mod:`sycam.synth.racing`): a candidate
        dropped there gets None."""
        nodes = [e.node for e in entries]
        memo: dict[str, Tensor] = {}
        fresh = [e for e in entries if e.uid not in self._held]
        # not triaged here: one pass for all
        made = triage_block([e.node for e in fresh], [e.values for e in fresh], self.per_view, self.grid).maps
        extra = {e.uid: [m[j] for m in made] for j, e in enumerate(fresh)}
        held = [self._held.get(e.uid) or extra[e.uid] for e in entries]

        def layers(view: str) -> Tensor:
            if view not in memo:
                i = self.views.index(view)
                memo[view] = torch.stack([h[i] for h in held])
            return memo[view]

        per_column = [self._column(j, nodes, layers, race and k == 0) for k, j in enumerate(columns)]
        out: list[list[float] | None] = []
        for b in range(len(entries)):
            rows = [col[0][b] for col in per_column]
            out.append(None if any(r is None for r in rows)
                       else [float(self.columns[j].aggregate(r)) for j, r in zip(columns, rows, strict=True)])
        by_key = [all(col[1][b] for col in per_column) for b in range(len(entries))]
        return out, by_key

    def _column(self, j: int, nodes: Sequence[Node], layers: Callable[[str], Tensor],
                race: bool) -> tuple[list[Tensor | None], list[bool]]:
        """Per-image scores ``(N,)`` of candidates ``nodes`` under metric column ``j`` (None: raced out) and
        whether each took them from an earlier candidate with an identical equivalence key.

        Exact equivalence: when the metric gives :meth:`~sycam.metrics.base.Metric.equivalence_key`, a
        candidate whose key equals (byte for byte) the key of a candidate scored before, in this batch or an
        earlier one, takes its per-image scores without any forward (:class:`~sycam.synth.keystore.KeyStore`)."""
        metric = self.columns[j]
        b = len(nodes)
        blobs: list[bytes] | None = None
        if type(metric).equivalence_key is not Metric.equivalence_key:
            key = metric.equivalence_key(finish_layer(layers(BASE), self.ws.size))
            if key is not None:
                blobs = [key[i].contiguous().cpu().numpy().tobytes() for i in range(b)]
        batch = self._keys.batch(j, blobs, b)
        todo = batch.todo
        if todo:
            idx = torch.tensor(todo)

            def sub(view: str) -> Tensor:
                maps = layers(view)
                return maps.index_select(0, idx.to(maps.device))

            picked = [nodes[i] for i in todo]
            if race and self.race is not None:
                got: list[Tensor | None] = self.race.run(sub, picked, self._bar_at_flush)
            else:
                got = list(self.ws.evaluate_layers(metric, sub, picked).detach().cpu())
            for i, r in zip(todo, got, strict=True):
                batch.scored(i, r)
        return batch.done()

    def _flush(self) -> None:
        """Score the pending candidates (stored values first) and file them; may set :attr:`stopped`.

        Objectives are scored for every candidate (raced, with ``config.racing``). Constraints are checked
        only for a candidate that would enter the leaderboard or the front (the others cannot win or be
        reported): their metrics are scored then, once, and stored like the objectives (NaN marks a value not
        scored yet)."""
        if not self.pending:
            return
        n_obj = len(self.objectives)
        todo = [e for e, _ in self.pending if str(e.node) not in self.done]
        raced: set[str] = set()
        by_key: set[str] = set()
        board = self.leaderboard
        self._bar_at_flush = board[-1].synthesis_score if len(board) >= self.config.leaderboard_size else None
        if todo:
            scores, shared = self._score(todo, range(n_obj), race=self.race is not None)
            extra = [math.nan] * (len(self.columns) - n_obj)
            for e, row, k in zip(todo, scores, shared, strict=True):
                if row is None:
                    raced.add(str(e.node))
                else:
                    self.done[str(e.node)] = row + extra
                    if k:
                        by_key.add(str(e.node))
        while self.pending:
            entry, seed = self.pending[0]
            text = str(entry.node)
            if text in raced:
                self.count["raced_out"] += 1
                self.raced.append((text, self._bar_at_flush))
                self.pending.pop(0)
                continue
            values = self.done[text]
            if not self.equivalence.check_score(text, values[:n_obj]):
                cand = Candidate(text, entry.size, values[0], self._considered(), seed,
                                 scores=dict(zip(self.names, values, strict=True)))
                self.scored.append(cand)
                self.count["scored_by_key"] += text in by_key
                if self._could_enter(cand):
                    missing = [j for j in range(n_obj, len(self.columns)) if math.isnan(values[j])]
                    if missing:
                        row = self._score([entry], missing)[0][0]
                        assert row is not None  # no race off the objectives
                        for j, v in zip(missing, row, strict=True):
                            values[j] = v
                        cand.scores = dict(zip(self.names, values, strict=True))
                    cand.holds = self.oracle.holds(cand.scores)
                    self._file(cand)
                else:
                    cand.holds = None
                    self.count["constraint_unchecked"] += bool(self.constraint_specs)
            self.pending.pop(0)
            self._held.pop(entry.uid, None)
        self._bar.update(self._considered() - self._bar.n)
        if self.best is not None:
            self._bar.set_postfix_str(f"best={self.best.synthesis_score:.4f}")
        if self.on_progress is not None:
            self.on_progress(len(self.scored), self.best.synthesis_score if self.best else None)
        if (self.config.checkpoint is not None
                and time.perf_counter() - self._last_checkpoint > self.config.checkpoint_every):
            self._save_checkpoint()
        left = self._budget_left()
        if self.config.stop_at_lambda and any(self.oracle.correct(c.scores) for c in self._pool()):
            self.stopped = "beat λ"
        elif left is not None and left <= 0:
            self.stopped = "max candidates"

    def _could_enter(self, cand: Candidate) -> bool:
        """Whether ``cand``, if admissible, would join the leaderboard or the Pareto front."""
        board = self.leaderboard
        if len(board) < self.config.leaderboard_size or self._rank(cand) < self._rank(board[-1]):
            return True
        return len(self.objectives) > 1 and pareto_add(self.front, cand, self.objectives) is not self.front

    def _rank(self, c: Candidate) -> tuple[float, int, int]:
        return (self.primary.sort_key(c.synthesis_score), c.size, c.order)

    def _file(self, cand: Candidate) -> None:
        """Leaderboard, Pareto front, best-so-far and history for a newly scored candidate."""
        if not cand.holds:
            self.count["constraint_failed"] += 1
            return
        if self.best is None or self.primary.better(cand.synthesis_score, self.best.synthesis_score):
            self.best = cand
        self.history.append((self._considered(), self.best.synthesis_score))
        self.leaderboard.append(cand)
        self.leaderboard.sort(key=self._rank)
        del self.leaderboard[self.config.leaderboard_size:]
        if len(self.objectives) > 1:
            self.front = pareto_add(self.front, cand, self.objectives)

    def _pool(self) -> list[Candidate]:
        return self.front if len(self.objectives) > 1 else self.leaderboard

    # -- 4. the winner ----------------------------------------------------------------------------------

    def select(self, validation: Samples | None) -> Candidate:
        """Choose the winner (module doc: eligible pool; validation and the size rule when given)."""
        pool = sorted(self._pool(), key=self._rank)
        top_row = pool[0]
        pool = self._merge_rescaled(pool)
        correct = [c for c in pool if self.oracle.correct(c.scores)]
        eligible = correct or pool
        self.timings["validation"] = 0.0
        if validation is None or not len(validation):
            self.winner = eligible[0]
            self.why_winner = self._why(top_row, "synthesis")
            return self.winner
        shared = set(validation.ids) & set(self.synthesis.ids)
        if shared:
            raise SynthesisError(f"the validation split shares {len(shared)} sample(s) with the synthesis split "
                                 f"(e.g. {sorted(shared)[0]}); keep them apart")
        t0 = time.perf_counter()
        tied = self._tied_with_lambda([c for c in pool if c not in correct]) if correct else []
        eligible = [*correct, *tied] if correct else pool
        self._open_split("validation", validation, self.objectives)
        self.ids["validation"] = list(validation.ids)
        self.n_split["validation"] = len(validation)
        self.groups["validation"] = bootstrap_groups(validation)
        base = self._lambda_candidate()
        if base is not None and all(c.expression != base.expression for c in eligible):
            eligible = [*eligible, base]  # the λ baseline competes on validation: a winner must beat it there too
        rows = self._split_scores("validation", [parse(c.expression) for c in eligible], self.primary,
                                  desc="validation: candidates")
        per = {c.expression: [float(x) for x in r] for c, r in zip(eligible, rows.tolist(), strict=True)}
        for c, agg in zip(eligible, self.primary.aggregate(rows).tolist(), strict=True):
            c.validation_score = float(agg)
        effect = self.config.min_effect
        self.winner = choose_within_noise(eligible, per, self.primary, effect)
        within = "one standard error" + (f" or {effect:g}" if effect else "")
        self.notes.append(f"winner chosen on {len(validation)} validation samples among {len(eligible)} "
                          f"{'correct ' if correct else ''}candidates"
                          + (f" ({len(tied)} of them tied with λ on synthesis, within {within})" if tied else "")
                          + f": the smallest expression within {within} of the best validation score")
        if base is not None and self.winner.expression == base.expression:
            self.notes.append(f"on validation no synthesized candidate beats the λ baseline {self.lambda_baseline} "
                              "beyond noise: the winner is that baseline")
        self.why_winner = self._why(top_row, "validation")
        self.timings["validation"] = time.perf_counter() - t0
        return self.winner

    def _merge_rescaled(self, pool: list[Candidate]) -> list[Candidate]:
        """``pool`` without candidates whose normalized maps equal a smaller one's under a positive rescaling
        (:func:`~sycam.synth.selection.merge_rescaled`, on the synthesis split); they leave the leaderboard and the
        front too, and :attr:`merged` records them."""
        if len(pool) < 2:
            return pool
        kept, merged = merge_rescaled(pool, self._split_shapes("synthesis", [parse(c.expression) for c in pool]))
        self.merged = merged
        if merged:
            gone = {t for ts in merged.values() for t in ts}
            self.leaderboard = [c for c in self.leaderboard if c.expression not in gone]
            self.front = [c for c in self.front if c.expression not in gone]
            self.notes.append(f"{len(gone)} leaderboard candidate(s) merged into a smaller one whose normalized map "
                              "is the same up to a positive factor: "
                              + "; ".join(f"{k} ← {', '.join(v)}" for k, v in merged.items()))
        return kept

    def _tied_with_lambda(self, candidates: Sequence[Candidate]) -> list[Candidate]:
        """The ``candidates`` whose per-image synthesis scores are within noise (or ``min_effect``) of the λ
        baseline's: tied with λ, they may still be better held out, so they enter the validation pool."""
        b = self.lambda_baseline
        if b is None or not candidates or self.lambda_source == "user" or len(self.objectives) > 1:
            return []
        rows = self._split_scores("synthesis", [parse(c.expression) for c in candidates], self.primary)
        ref = self.per_image["synthesis"][b]
        return [c for c, r in zip(candidates, rows.tolist(), strict=True)
                if stats.within_noise(r, ref, self.config.min_effect)]

    def _why(self, top: Candidate, chosen_on: str) -> str:
        """One line: why the winner and not the leaderboard's top row."""
        w = self.winner
        if w.expression == top.expression:
            return f"The winner is the leaderboard's top row ({w.expression}), the best on the synthesis split."
        merged = next((k for k, v in getattr(self, "merged", {}).items() if top.expression in v), None)
        if merged is not None:
            return (f"The leaderboard's top row {top.expression} is {merged} rescaled by a positive factor (the same "
                    "map), so the smaller expression represents it; " + (
                        "" if merged == w.expression else self._why(next(c for c in self.scored
                                                                          if c.expression == merged), chosen_on)))
        if chosen_on == "synthesis":
            return (f"The leaderboard's top row {top.expression} does not beat λ on every objective; the winner "
                    f"{w.expression} is the best candidate that does.")
        effect = self.config.min_effect
        tv, wv = top.validation_score, w.validation_score
        if tv is None:
            return (f"The leaderboard's top row {top.expression} was not eligible (it does not beat λ and is not tied "
                    f"with it on synthesis); the winner {w.expression} was chosen on the validation split.")
        noise = "one standard error" + (f" or {effect:g}" if effect else "")
        if wv is not None and self.primary.better(wv, tv):
            return (f"The leaderboard's top row {top.expression} (best on synthesis) scores {tv:.4f} on validation, "
                    f"below the winner {w.expression} ({wv:.4f}), the smallest expression within {noise} of the best "
                    "validation score.")
        return (f"The leaderboard's top row {top.expression} scores {tv:.4f} on validation and the winner "
                f"{w.expression} {wv:.4f}: within {noise} of each other (or of the best), so the smaller expression "
                "wins.")

    def _lambda_candidate(self) -> Candidate | None:
        """The scored candidate that is the λ baseline (seeded), if the grammar allowed seeding it."""
        if self.lambda_baseline is None:
            return None
        return next((c for c in self.scored if c.seed == self.lambda_baseline), None)

    # -- 5. held-out evidence ---------------------------------------------------------------------------

    # -- the splits' data: where the images live (here, one workspace per split; sharded executors override) ----

    def _open_split(self, split: str, samples: Samples, metrics: Sequence[Metric]) -> None:
        """Extract the terminals of ``samples`` (and of the views ``metrics`` need) as split ``split``."""
        self._splits[split] = Workspace.build(self.model, self.layer, samples, metrics, self.options)

    def _close_split(self, split: str) -> None:
        """Free split ``split``'s terminals."""
        self._splits.pop(split, None)

    def _has_split(self, split: str) -> bool:
        return split in self._splits

    def _split_scores(self, split: str, nodes: Sequence[Node], metric: Metric, desc: str | None = None) -> Tensor:
        """Per-image scores ``(B, N)`` of ``nodes`` on split ``split``, in its sample order."""
        return self._splits[split].score(nodes, metric, self.config.batch, desc=desc)

    def _split_degenerate(self, split: str, nodes: Sequence[Node]) -> list[int]:
        """Per node, the images of split ``split`` on which its heatmap is degenerate."""
        return self._splits[split].degenerate_counts(nodes)

    def _split_shapes(self, split: str, nodes: Sequence[Node]) -> Tensor:
        """:func:`~sycam.synth.selection.shape_maps` ``(B, N, h, w)`` of ``nodes`` on split ``split``."""
        return shapes_on(self._splits[split], nodes)

    def _split_power(self, split: str, powers: Sequence[float]) -> tuple[list[list[float]], int]:
        """Per power, per-image primary scores of the power control on ``split``, and its degenerate count
        (:func:`~sycam.synth.control.power_control_scores`)."""
        return power_control_scores(self._splits[split], powers, self.primary)

    def _evidence(self, split: str) -> None:
        """On ``split``: degenerate counts, per-image primary scores and the control for the baselines and the
        winner; off the synthesis split also every objective's score of the baselines, the leaderboard and the
        front, and on the test split every constraint metric's too (``test_scores``; ``validation_score`` and
        ``test_score`` are the primary objective's)."""
        winner_node = parse(self.winner.expression)
        names = [*self.baseline_nodes, SYNTHESIZED]
        nodes = [*self.baseline_nodes.values(), winner_node]
        per_image = self.per_image.setdefault(split, {})
        for name, bad in zip(names, self._split_degenerate(split, nodes), strict=True):
            self.degenerate.setdefault(name, {})[split] = int(bad)
        if split == "synthesis":
            per_image[SYNTHESIZED] = self._split_scores(split, [winner_node], self.primary)[0].tolist()
        else:
            cands = list({id(c): c for c in [self.winner, *self.leaderboard, *self.front]}.values())
            texts = list(dict.fromkeys(c.expression for c in cands))
            base_nodes = list(self.baseline_nodes.values())
            agg_c: dict[str, list[float]] = {}
            agg_b: dict[str, list[float]] = {}
            # on test also the guard metrics, so results show whether the guards hold on held-out images
            for m in (self.columns if split == "test" else self.objectives):
                rows_c = self._split_scores(split, [parse(t) for t in texts], m, desc=f"{split}: {m.name}")
                rows_b = self._split_scores(split, base_nodes, m, desc=f"{split}: {m.name} (baselines)")
                agg_c[m.name], agg_b[m.name] = m.aggregate(rows_c).tolist(), m.aggregate(rows_b).tolist()
                if m is self.primary:
                    for b, row in zip(self.baseline_nodes, rows_b.tolist(), strict=True):
                        per_image[b] = row
                    per_image[SYNTHESIZED] = rows_c[texts.index(self.winner.expression)].tolist()
            key = f"{split}_score"
            for cand in cands:
                i = texts.index(cand.expression)
                setattr(cand, key, float(agg_c[self.primary.name][i]))
                if split == "test":
                    cand.test_scores = {name: float(v[i]) for name, v in agg_c.items()}
            for j, b in enumerate(self.baseline_nodes):
                self.baselines[b][key] = float(agg_b[self.primary.name][j])
                if split == "test":
                    self.baselines[b]["test_scores"] = {name: float(v[j]) for name, v in agg_b.items()}
        control_scores, control_bad = self._split_control(split, winner_node)
        per_image[CONTROL] = control_scores
        self.degenerate.setdefault(CONTROL, {})[split] = control_bad
        if "gradcam" in self.baseline_nodes:
            if split == "synthesis":
                rows, bad = self._split_power(split, POWERS)
                self.power = pick_power(rows, self.primary)
                per_image[POWER_CONTROL] = rows[POWERS.index(self.power)]
                bad = self._split_power(split, [self.power])[1] if self.power != POWERS[0] else bad
            else:
                got, bad = self._split_power(split, [self.power])
                per_image[POWER_CONTROL] = got[0]
            self.degenerate.setdefault(POWER_CONTROL, {})[split] = bad
        if split != "synthesis" or self.comparison_splits is not None:
            self._compare(split)

    def _compare(self, split: str) -> None:
        """Winner minus every exact classic method (and each control) on ``split``: the mean paired difference
        and its clustered bootstrap 95 % CI (:func:`sycam.stats.paired_bootstrap_ci`, groups of
        :func:`~sycam.data.split.bootstrap_groups`), with each verdict."""
        per = self.per_image[split]
        groups, grouping = self.groups[split]
        hib = self.primary.higher_is_better

        def entry(other: str) -> dict[str, Any]:
            return stats.difference(per[SYNTHESIZED], per[other], hib, groups)

        methods = {b: entry(b) for b in self.baseline_nodes if self.exact(b) and b in per}
        controls = {c: entry(c) for c in (CONTROL, POWER_CONTROL) if per.get(c)}
        splits = self.comparison_splits if self.comparison_splits is not None else {}
        splits[split] = {"grouping": grouping, "methods": methods, "controls": controls}
        self.comparison_splits = splits

    def _split_control(self, split: str, winner: Node) -> tuple[list[float], int]:
        """Per-image primary scores on split ``split`` and degenerate count of Grad-CAM thresholded to the
        winner's sparsity (:func:`~sycam.synth.control.control_scores`)."""
        return control_scores(self._splits[split], winner, self.primary)

    def held_out(self, test: Samples | None) -> None:
        """Evidence on every split; the winner's comparison with every exact classic method and the controls
        (clustered paired bootstrap CIs), the verdict from the test split's."""
        self.comparison_splits = {}
        self._evidence("synthesis")
        if self._has_split("validation"):
            t0 = time.perf_counter()
            self._evidence("validation")
            self.timings["validation"] += time.perf_counter() - t0
            self._close_split("validation")
        t0 = time.perf_counter()
        self.comparison = None
        if test is not None and len(test):
            self.ids["test"] = list(test.ids)
            self.n_split["test"] = len(test)
            self.groups["test"] = bootstrap_groups(test)
            self._open_split("test", test, self.columns)
            self._evidence("test")
            self._close_split("test")
            self.comparison = self._verdict()
        self.timings["test"] = time.perf_counter() - t0

    def _verdict(self) -> dict[str, Any] | None:
        """``results.json``'s ``comparison``: the test split's comparisons; the verdict is "better" only when the
        interval against every exact classic method lies on the better side, "worse" when one lies on the worse
        side; ``baseline``/``diff``/``ci95`` name the least favourable comparison (whose verdict is the
        overall one)."""
        test = (self.comparison_splits or {}).get("test")
        if not test or not test["methods"]:
            return None
        methods = test["methods"]
        rank = {"worse": 0, "not distinguishable": 1, "better": 2}
        sign = 1.0 if self.primary.higher_is_better else -1.0

        def hardness(name: str) -> tuple[int, float, bool]:  # ties (to float noise): λ's method first
            m = methods[name]
            return (rank[m["verdict"]], round(sign * (m["diff"] if m["diff"] is not None else -math.inf), 9),
                    name != self.lambda_baseline)

        toughest = min(methods, key=hardness)
        verdict = methods[toughest]["verdict"]
        power = test["controls"].get(POWER_CONTROL)
        out: dict[str, Any] = {
            "baseline": toughest, **methods[toughest], "verdict": verdict, "grouping": test["grouping"],
            "n_comparisons": len(methods), "methods": methods, "controls": test["controls"],
            "splits": self.comparison_splits,
            "lambda_baseline": self.lambda_baseline, "power": getattr(self, "power", None),
            "beats_power_control": None if power is None else power["verdict"] == "better",
        }
        if power is not None and power["verdict"] != "better":
            self.notes.append(f"the winner is not better than Grad-CAM sharpened to the power p = {self.power:g} "
                              "(fitted on the synthesis split) on the test split: its gain over Grad-CAM may be "
                              "contrast (sharpening), not a better-placed map")
        return out

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
                   "scores": {split: _finite(self.primary.aggregate(torch.tensor(v[CONTROL])).item())
                              for split, v in self.per_image.items() if v.get(CONTROL)}}
        power = None
        if self.power is not None:
            power = {"name": POWER_CONTROL_TITLE, "power": self.power, "powers": list(POWERS),
                     "scores": {split: _finite(self.primary.aggregate(torch.tensor(v[POWER_CONTROL])).item())
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
    if executor is None:
        run = Search(*args)
    else:
        from .sharded import ShardedSearch

        run = ShardedSearch(*args, executor=executor)
    run.extract()
    run.score_baselines()
    run.search()
    run.select(validation)
    run.held_out(test)
    return run.result()
