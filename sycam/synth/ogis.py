"""The OGIS loop of :class:`~sycam.synth.search.Search`: the learner proposes, the oracles triage, the metrics
score, the leaderboard files (step 3 of :func:`~sycam.synth.search.synthesize`).

Everything that touches the images goes through the shard plane (:class:`~sycam.synth.sharded.ShardPlane`): the
learner's bank (:meth:`~sycam.synth.sharded.ShardPlane.bank`), both oracles' tensor work in blocks of
:data:`~sycam.synth.sharded.TRIAGE_BLOCK` candidates (:meth:`~sycam.synth.sharded.ShardPlane.triage`,
:meth:`~sycam.synth.sharded.ShardPlane.distances`), equivalence keys and exact score sums
(:meth:`~sycam.synth.sharded.ShardPlane.keys`, :meth:`~sycam.synth.sharded.ShardPlane.score`) and racing
(:meth:`~sycam.synth.sharded.ShardPlane.race`). The decisions are taken here, once: the correctness oracle's
reasons (:meth:`~sycam.synth.oracles.CorrectnessOracle.reject_counts`), the equivalence oracle's classes
(:meth:`~sycam.synth.oracles.EquivalenceOracle.match`), the key store, the budget and the leaderboard.
"""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Iterator, Sequence
from dataclasses import replace
from typing import Any

import torch

from .._progress import progress
from ..exactsum import ExactSum
from ..expr import Kind, Node, kind_of
from ..metrics.base import Metric
from . import checkpoint as ckpt
from .errors import SynthesisError
from .keystore import KeyStore
from .learner import Learner, SymbolicEntry, fingerprint_samples
from .oracles import FINGERPRINT_LEVELS, EquivalenceOracle
from .racing import hardest_first
from .selection import Candidate, pareto_add
from .sharded import TRIAGE_BLOCK

Entry = SymbolicEntry


class OgisLoop:
    """Step 3 of a :class:`~sycam.synth.search.Search` (a mixin: the search holds the state; see the module doc).

    Example::

        run = Search(net, "layer4", syn, [metric], SynthesisConfig(max_candidates=100), ExtractOptions())
        run.extract(); run.score_baselines(); run.search()
        run.leaderboard[0].expression
    """

    triage_size: int = TRIAGE_BLOCK
    """candidates read ahead and triaged at once (1: one by one, the unbatched path the tests compare with)"""

    # the search's state this step reads and writes (set by Search.__init__ and the earlier steps)
    config: Any
    plane: Any
    oracle: Any
    objectives: list[Metric]
    columns: list[Metric]
    names: list[str]
    notes: list[str]
    timings: dict[str, float]
    count: dict[str, int]
    per_image: dict[str, dict[str, list[float]]]
    baselines: dict[str, dict[str, Any]]
    baseline_nodes: dict[str, Node]
    settings: dict[str, Any]
    constraint_specs: list[Any]
    synthesis: Any
    on_progress: Any

    @property
    def primary(self) -> Metric:
        """The first objective: it orders the leaderboard and sets the per-image evidence and the comparison."""
        return self.objectives[0]

    def _start_loop_state(self) -> None:
        """The loop's state (called by ``Search.__init__``)."""
        self.done: dict[str, list[float]] = {}
        self.scored: list[Candidate] = []
        self.leaderboard: list[Candidate] = []
        self.front: list[Candidate] = []
        self.history: list[tuple[int, float]] = []
        self.best: Candidate | None = None
        self.pending: list[tuple[Entry, str | None]] = []
        self.stopped = "search space exhausted"
        self.race: list[int] | None = None
        """the sizes of racing's image blocks (None: not racing)"""
        self.raced: list[tuple[str, float | None]] = []
        """raced-out candidates with the bar (the leaderboard's last score) they could not beat"""
        self.rejected: dict[str, int] = {}
        self._keys: KeyStore[ExactSum] = KeyStore()
        self._bar_at_flush: float | None = None
        self._snap: tuple[Any, dict[str, int]] | None = None
        self._seed_texts: dict[int, str] = {}
        self._tri: dict[int, tuple[str | None, tuple[int, int] | None]] = {}
        """per candidate read ahead: the reason to reject it and its heatmap fingerprint"""
        self._block: list[int] = []
        self._dist: dict[tuple[int, int], float] = {}
        self._measured: set[int] = set()
        self._keep: list[int] = []
        self._drop: list[int] = []
        self._release: list[int] = []

    # -- checkpoints ----------------------------------------------------------------------------------

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

    # -- the candidate stream -------------------------------------------------------------------------

    def _seed_entry(self, node: Node, kind: Kind) -> Entry:
        """The entry of a seeded classic method: built on the shards from its expression when triaged."""
        entry = SymbolicEntry(node, kind)
        self._seed_texts[entry.uid] = str(node)
        return entry

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
        """The candidate stream read ahead in blocks of :attr:`triage_size`, each block triaged at once
        (:meth:`_triage_block`) before its candidates are handed out one by one; :attr:`_snap` holds the counters
        of the last candidate handed out (the search rewinds to them when it stops early)."""
        it = self._candidates()
        while True:
            block = [(item, self._stream_state()) for item in itertools.islice(it, self.triage_size)]
            if not block:
                return
            self._triage_block([entry for (entry, _), _ in block])
            for item, snap in block:
                self._snap = snap
                yield item

    # -- triage ---------------------------------------------------------------------------------------

    def _triage_block(self, entries: Sequence[Entry]) -> None:
        """Both oracles' tensor work for a block of candidates at once, on the plane: per candidate the reason to
        reject it (from the counts) and its heatmap fingerprint (from the sampled pixels, in one pass)."""
        items = [(e.uid, self._seed_texts.pop(e.uid, None)) for e in entries]
        replies = self.plane.triage(items, self._keep, self._drop, self._release)
        self._keep, self._drop, self._release = [], [], []
        n = len(self.synthesis)
        self._block = [e.uid for e in entries]
        self._dist, self._measured = {}, set()
        heatmap = self.equivalence.mode == "heatmap"
        reasons = [self.oracle.reject_counts(finite, blank, bad, n) for finite, blank, bad, _ in replies]
        samples = [r[3] for r, reason in zip(replies, reasons, strict=True) if reason is None and heatmap]
        keys = iter(fingerprint_samples(torch.stack(samples), FINGERPRINT_LEVELS) if samples else [])
        for e, reason in zip(entries, reasons, strict=True):
            self._tri[e.uid] = (reason, next(keys) if reason is None and heatmap else None)

    def _measure(self, uid: int) -> None:
        """Distances from the block's undecided candidates, from ``uid`` on, to the classes of their bucket and to
        the earlier of them in the same bucket (which may found a class first): one call for the rest of the
        block."""
        rest = self._block[self._block.index(uid):]
        pairs: list[tuple[int, int]] = []
        earlier: dict[tuple[int, int], list[int]] = {}
        for u in rest:
            reason, key = self._tri[u]
            if reason is not None or key is None:
                continue
            pairs += [(u, c) for _, c in self.equivalence.classes.get(key, [])]
            pairs += [(u, c) for c in earlier.get(key, [])]
            earlier.setdefault(key, []).append(u)
            self._measured.add(u)
        if pairs:
            self._dist.update(zip(pairs, self.plane.distances(pairs), strict=True))

    def _triage(self, entry: Entry) -> bool:
        """True when the candidate is to be scored; otherwise it was rejected or pruned (and counted)."""
        uid = entry.uid
        if uid not in self._measured and self._tri[uid][1] is not None:
            self._measure(uid)
        reason, key = self._tri.pop(uid)
        if reason is not None:
            self.rejected[reason] = self.rejected.get(reason, 0) + 1
            self._drop.append(uid)
            self._release.append(uid)
            return False
        if key is None:  # no heatmap equivalence: nothing to compare
            self._drop.append(uid)
            return True
        if self.equivalence.match(str(entry.node), key, uid, lambda other: self._dist[(uid, other)]):
            self._drop.append(uid)
            self._release.append(uid)
            return False
        self._keep.append(uid)
        return True

    # -- the loop -------------------------------------------------------------------------------------

    def _considered(self) -> int:
        """Candidates that reached scoring: scored plus raced out (the budget counts both; racing off: scored)."""
        return len(self.scored) + self.count["raced_out"]

    def _start_race(self) -> list[int] | None:
        """The race of the objective on the plane (``config.racing``), or None with a note saying why racing is
        off; the sizes of its image blocks."""
        why = None
        if len(self.objectives) > 1:
            why = "several objectives (the Pareto front has no single bar)"
        else:
            rows = [v for k, v in self.per_image.get("synthesis", {}).items() if k in self.baselines]
            blocks = self.plane.start_race(0, hardest_first(self.primary, rows) or None)
            if blocks is not None:
                self.notes.append(f"racing: candidates scored on {', '.join(str(n) for n in blocks)} "
                                  "images in turn (those the classic methods score worst on first) and dropped "
                                  "once they provably could not enter the leaderboard")
                return blocks
            why = f"no known per-image range of {self.primary.name} (or too few images)"
        self.notes.append(f"racing requested but off: {why}")
        return None

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
        self.learner = Learner(self.config.grammar, max_bank_bytes=self.config.max_bank_bytes, bank=self.plane.bank,
                               chunk=self.plane.bank_chunk)
        self.equivalence = EquivalenceOracle(self.config.equivalence, self.config.tolerance)
        forwards0 = self.plane.forwards()
        self.race = self._start_race() if self.config.racing else None
        with progress(self.config.max_candidates, "synthesize", "cand") as self._bar:
            self._loop()
            if self.stopped == "search space exhausted":
                self._bar.set_total(len(self.scored))  # the space ran out before the budget: the bar is full
            elif self._snap is not None:  # counters back to the last candidate taken (the stream was read ahead)
                self.learner.stats, counts = self._snap
                self.count.update(counts)
        self._save_checkpoint()
        self.count["forwards"] = self.plane.forwards() - forwards0
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

    def _loop(self) -> None:
        """Take candidates from the stream, score them in batches; sets :attr:`stopped` (Ctrl-C: "interrupted")."""
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

    # -- scoring --------------------------------------------------------------------------------------

    def _score(self, entries: Sequence[Entry], columns: Sequence[int],
               race: bool = False) -> tuple[list[list[float] | None], list[bool]]:
        """Aggregate synthesis scores ``[candidate][column]`` for the metric columns ``columns`` (means of exact
        sums), and per candidate whether it took every score from an equivalent one (no forwards). With ``race``
        the first column is raced (:mod:`sycam.synth.racing`): a candidate dropped there gets None.

        Exact equivalence: when a metric gives :meth:`~sycam.metrics.base.Metric.equivalence_key`, a candidate
        whose key equals (byte for byte, on every shard) the key of a candidate scored before takes its scores
        without any forward (:class:`~sycam.synth.keystore.KeyStore`)."""
        uids = [e.uid for e in entries]
        cols = list(columns)
        batches = {}
        for j in cols:
            blobs = None
            if type(self.columns[j]).equivalence_key is not Metric.equivalence_key:  # else no round trip for keys
                blobs = self.plane.keys(uids, j)
            batches[j] = self._keys.batch(j, blobs, len(uids))
        wanted = [j for j in cols if batches[j].todo]
        if race and wanted and wanted[0] == cols[0]:
            todo = batches[cols[0]].todo
            for i, s in zip(todo, self.plane.race(uids, todo, self._bar_at_flush), strict=True):
                batches[cols[0]].scored(i, s)
            wanted = wanted[1:]
        if wanted:
            sums = self.plane.score(uids, wanted, [batches[j].todo for j in wanted])
            for j, got in zip(wanted, sums, strict=True):
                for i, s in zip(batches[j].todo, got, strict=True):
                    batches[j].scored(i, s)
        done = {j: batches[j].done() for j in cols}
        out: list[list[float] | None] = []
        for b in range(len(uids)):
            row = [done[j][0][b] for j in cols]
            out.append(None if any(s is None for s in row) else [s.mean() for s in row])  # type: ignore[union-attr]
        return out, [all(done[j][1][b] for j in cols) for b in range(len(uids))]

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
            self._take(entry, seed, raced, by_key)
            self.pending.pop(0)
            self._release.append(entry.uid)
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

    def _take(self, entry: Entry, seed: str | None, raced: set[str], by_key: set[str]) -> None:
        """One scored (or raced-out) candidate: counted, checked against the constraints when it could enter the
        leaderboard or the front, and filed."""
        n_obj = len(self.objectives)
        text = str(entry.node)
        if text in raced:
            self.count["raced_out"] += 1
            self.raced.append((text, self._bar_at_flush))
            return
        values = self.done[text]
        if self.equivalence.check_score(text, values[:n_obj]):
            return
        cand = Candidate(text, entry.size, values[0], self._considered(), seed,
                         scores=dict(zip(self.names, values, strict=True)))
        self.scored.append(cand)
        self.count["scored_by_key"] += text in by_key
        if not self._could_enter(cand):
            cand.holds = None
            self.count["constraint_unchecked"] += bool(self.constraint_specs)
            return
        missing = [j for j in range(n_obj, len(self.columns)) if math.isnan(values[j])]
        if missing:
            row = self._score([entry], missing)[0][0]
            assert row is not None  # no race off the objectives
            for j, v in zip(missing, row, strict=True):
                values[j] = v
            cand.scores = dict(zip(self.names, values, strict=True))
        cand.holds = self.oracle.holds(cand.scores)
        self._file(cand)

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
