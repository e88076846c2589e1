"""The sharded search: the driver of :class:`~sycam.synth.search.Search` with the images on shards.

The driver keeps what does not grow with the images: the learner's expressions and decisions, the oracles'
decisions, the candidates' scores, the leaderboard. Each :class:`~sycam.synth.shard.Shard` (in this process or on
a Ray actor, :mod:`sycam.synth.executors`) keeps its images' terminals, the bank's values, the heatmap classes'
maps, and scores candidates on its images. Per candidate a shard sends back a fixed number of bytes, whatever
the number of images: a signature, counts, the fingerprint's sampled pixels (at most 4096 over all shards),
distances, and exact partial sums of the metric scores.

**The same decisions as one machine.** Each rule of the search takes a form that combines exactly over shards:

- the bank merges two sub-expressions when their values are ``torch.equal`` on every shard (each shard lists the
  earlier entries equal on its images; the driver intersects the lists), and admits a value when it is finite
  on every shard and non-zero on some shard (:class:`~sycam.synth.learner.Signature`);
- the correctness oracle counts blank and faint maps per shard and adds the counts
  (:meth:`~sycam.synth.oracles.CorrectnessOracle.reject_counts`);
- the heatmap equivalence oracle buckets by the fingerprint of the same sampled pixels (the shards send their
  share) and compares with the largest of the shards' largest differences
  (:meth:`~sycam.synth.oracles.EquivalenceOracle.match`);
- an equivalence key is equal when every shard's digest of its part is (:class:`~sycam.synth.keystore.KeyStore`);
- aggregates are means of exact sums (:mod:`sycam.exactsum`), so they do not depend on the split of the images.

Shards are cut at multiples of the extraction batch (:func:`~sycam.synth.executors.plan_shards`), so the
terminals, per-image scores and therefore the winner, every score and every counter equal those of a local run
with the same extraction batch and the same number of torch threads as each worker (tests/synth/test_sharded.py checks
it; with two threads against one, CPU kernels may sum in another order: scores then differ by about 2e-8, and a
near-tie may fall the other way). The driver reads the candidate stream ahead in
blocks (one round trip per block, not per candidate) and rewinds the learner's counters to the last candidate
the search took when it stops early.

Not sharded (yet): racing (``config.racing``) needs the images in one place; the views of robustness metrics are
drawn for the whole split on the driver and sent to the shards with the images.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import operator
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from ..data.samples import Samples
from ..exactsum import ExactSum
from ..expr import Call, Const, Kind, Node, Terminal, terminal_kind
from ..metrics.base import Metric
from ..terminals import ExtractOptions
from ..workspace import Evaluation, metric_views
from .errors import SynthesisError
from .executors import Executor, balanced_batch, plan_shards
from .grammar import Grammar
from .keystore import KeyStore
from .learner import _UIDS, Entry, Learner, Proposal, Signature, fingerprint_positions, fingerprint_samples
from .oracles import FINGERPRINT_LEVELS
from .search import TRIAGE_BLOCK, Search, SynthesisConfig  # noqa: F401 (TRIAGE_BLOCK: read here by docs tests)

BANK_CHUNK = 4096
"""proposed sub-expressions per round trip of the bank"""


class RemoteEntry:
    """A bank entry whose values live on the shards: the expression, its kind and its id there."""

    __slots__ = ("kind", "node", "nonneg", "uid")

    def __init__(self, node: Node, kind: Kind) -> None:
        self.node, self.kind = node, kind
        self.uid = next(_UIDS)
        self.nonneg = False

    @property
    def size(self) -> int:
        """The expression's size in AST nodes."""
        return self.node.size

    def __repr__(self) -> str:
        return f"RemoteEntry({self.node}, {self.kind!s})"


def _concat(rows: Iterable[list[float]]) -> list[float]:
    """Per-image rows of the shards, in shard order: the split's row."""
    return list(itertools.chain.from_iterable(rows))


def _chunks(items: Iterable[Any], n: int) -> Iterator[list[Any]]:
    it = iter(items)
    while chunk := list(itertools.islice(it, n)):
        yield chunk


def open_on_shards(executor: Executor, split: str, samples: Samples, metrics: Sequence[Metric],
                   batch: int) -> list[range]:
    """Send each shard its run of ``samples`` (whole extraction batches) and its rows of the views ``metrics``
    declare, drawn here for the whole split, and have it extract them as ``split``; the shards' image ranges."""
    plan = plan_shards(len(samples), executor.workers, batch)
    views = metric_views(samples, metrics)
    args = [(split, samples.subset(slice(r.start, r.stop)), list(metrics),
             {name: v[r.start:r.stop] for name, v in views.items()}, len(samples)) for r in plan]
    executor.call("open_split", args, range(len(plan)), log=True)
    return plan


class ShardedLearner(Learner):
    """:class:`~sycam.synth.learner.Learner` whose values live on shards: the same proposals and the same
    admission rule (:meth:`~sycam.synth.learner.Learner._decide`), from signatures combined over the shards.

    Args:
        grammar, max_bank_bytes: as for :class:`~sycam.synth.learner.Learner` (the bytes are those of the whole
            bank, summed over shards, so the cap cuts where it would on one machine).
        bank: sends proposed items to every shard (:meth:`~sycam.synth.shard.Shard.bank`) and returns the combined
            reply per item: ``(signature or None, bytes, ids equal on every shard)``, or None for a deferred one.
    """

    def __init__(self, grammar: Grammar, max_bank_bytes: int,
                 bank: Callable[[list[tuple[Any, ...]], list[int]], list[Any]]) -> None:
        super().__init__(grammar, {}, max_bank_bytes)
        self._bank = bank
        self._held: set[int] = set()
        self._drop: list[int] = []

    def _leaf_entries(self) -> Iterator[Any]:
        for name in self.grammar.terminals:
            yield RemoteEntry(Terminal(name), terminal_kind(name))
        for c in self.grammar.constants:
            yield RemoteEntry(Const(float(c)), Kind.SCALAR)

    def _item(self, p: Proposal) -> tuple[RemoteEntry, str | None, bool, tuple[Any, ...]] | None:
        """The entry a proposal builds, its operator, whether it is deferred, and the shards' item."""
        if p.op == "skip":
            return None
        if p.op == "leaf":
            e = p.args[0]
            leaf = e.node.name if isinstance(e.node, Terminal) else e.node.value
            return e, None, False, (e.uid, "leaf", (), int(e.kind), leaf)
        node = Call(p.op, tuple(a.node for a in p.args))
        e = RemoteEntry(node, p.kind)
        deferred = self._deferred(node, p.kind)
        return e, p.op, deferred, (e.uid, p.op, tuple(a.uid for a in p.args), int(p.kind), deferred)

    def _resolve(self, proposals: Iterator[Proposal]) -> Iterator[Any]:
        for chunk in _chunks(proposals, BANK_CHUNK):
            built = [self._item(p) for p in chunk]
            replies = iter(self._bank([b[3] for b in built if b is not None], self._drop))
            self._drop = []
            for b in built:
                self.stats.enumerated += 1
                if b is None:
                    self.stats.subexpr_pruned += 1
                    continue
                entry, op, deferred, _ = b
                reply = next(replies)
                if deferred:
                    self._defer(entry)  # type: ignore[arg-type]
                    yield entry
                    continue
                sig, nbytes, equal = reply
                held = self._decide(entry, op, sig, lambda eq=equal: not self._held.isdisjoint(eq),  # type: ignore[arg-type]
                                    nbytes)
                if held is None:
                    self._drop.append(entry.uid)
                    continue
                if held:
                    self._held.add(entry.uid)
                yield entry


class ShardedSearch(Search):
    """:class:`~sycam.synth.search.Search` with the images on the shards of ``executor`` (see the module doc).

    The extraction batch is lowered, when the synthesis split holds fewer batches than workers, to
    ``ceil(N / workers)`` so every worker gets images (recorded in the settings and the notes: a local run with
    that ``batch_size`` gives the same result).
    """

    def __init__(self, model: nn.Module, layer: str | nn.Module, synthesis: Samples, metrics: Sequence[Metric],
                 config: SynthesisConfig, options: ExtractOptions, settings: dict[str, Any] | None = None,
                 on_progress: Callable[[int, float | None], None] | None = None, *, executor: Executor) -> None:
        if config.racing:
            raise SynthesisError("racing needs every synthesis image in one process: drop racing (--racing) to run "
                                 f"on the {executor.name} executor")
        batch = balanced_batch(len(synthesis), executor.workers, options.batch_size)
        lowered = batch != options.batch_size
        options = dataclasses.replace(options, batch_size=batch)
        super().__init__(model, layer, synthesis, metrics, config, options, settings, on_progress)
        self.executor = executor
        self.settings["executor"] = executor.describe()
        if lowered:
            threads = executor.threads or "the workers'"
            self.notes.append(f"extraction batch lowered to {batch} images so that each of the {executor.workers} "
                              f"workers gets a shard (a local run with batch_size={batch} and {threads} torch "
                              "thread(s) gives the same result)")
        self.plans: dict[str, list[range]] = {}
        self._seed_texts: dict[int, str] = {}
        self._tri: dict[int, tuple[str | None, tuple[int, int] | None]] = {}
        self._block: list[int] = []
        self._dist: dict[tuple[int, int], float] = {}
        self._measured: set[int] = set()
        self._keep: list[int] = []
        self._drop: list[int] = []

    # -- calls on the shards of a split -----------------------------------------------------------------

    def _on(self, split: str, method: str, *args: Any, log: bool = False) -> list[Any]:
        """``method(*args)`` on every shard of ``split``; the replies in shard order."""
        plan = self.plans[split]
        return self.executor.call(method, [args] * len(plan), range(len(plan)), log=log)

    def extract(self) -> None:
        """Start the workers; each extracts its shard's terminals and prepares its part of the search."""
        t0 = time.perf_counter()
        self.executor.start(self.model, self.layer, self.options)
        self._open_split("synthesis", self.synthesis, self.columns)
        needed = sorted(self._needed_terminals())
        layout = self._on("synthesis", "layout", needed)
        samples = self._sample_positions(layout)
        plan = self.plans["synthesis"]
        cache = self.config.max_bank_bytes // 2 // len(plan)  # each shard's values are 1/W of the whole's
        self.executor.call("start_search", [(self.columns, needed, self.config.grammar.max_size, cache, samples[i])
                                            for i in range(len(plan))], range(len(plan)), log=True)
        self._diagnose()
        self.timings["terminals"] = time.perf_counter() - t0

    def _sample_positions(self, layout: list[dict[str, Any]]) -> list[list[int]]:
        """Per shard, the positions in its flat maps (views × its images × pixels) that the heatmap fingerprint
        samples from the whole split's flat maps (views × all images × pixels); ``self._order`` says, for each
        sampled position in order, (shard, index in that shard's list)."""
        plan = self.plans["synthesis"]
        h, w = layout[0]["hw"]
        hw, n, views = h * w, len(self.synthesis), layout[0]["views"]
        per: list[list[int]] = [[] for _ in plan]
        order: list[tuple[int, int]] = []
        for g in fingerprint_positions(views * n * hw):
            v, rem = divmod(g, n * hw)
            image = rem // hw
            s = next(i for i, r in enumerate(plan) if image in r)
            r = plan[s]
            order.append((s, len(per[s])))
            per[s].append(v * len(r) * hw + rem - r.start * hw)
        offsets = list(itertools.accumulate((len(p) for p in per), initial=0))
        self._order = torch.tensor([offsets[s] + k for s, k in order], dtype=torch.long)
        """where each sampled position is in the shards' samples concatenated in shard order"""
        return per

    def _open_split(self, split: str, samples: Samples, metrics: Sequence[Metric]) -> None:
        self.plans[split] = open_on_shards(self.executor, split, samples, metrics, self.options.batch_size)

    def _close_split(self, split: str) -> None:
        if split not in self.plans:
            return
        self._on(split, "close_split", split)
        for log in self.executor.log:  # a rebuilt shard need not extract a split that is done with
            log[:] = [(m, a) for m, a in log if not (m == "open_split" and a[0] == split)]
        del self.plans[split]

    def _has_split(self, split: str) -> bool:
        return split in self.plans

    def _split_scores(self, split: str, nodes: Sequence[Node], metric: Metric, desc: str | None = None) -> Tensor:
        parts = self._on(split, "split_scores", split, [str(n) for n in nodes], metric, self.config.batch)
        rows = [_concat(p[b] for p in parts) for b in range(len(nodes))]
        return torch.tensor(rows, dtype=torch.float32).reshape(len(nodes), -1)

    def _split_degenerate(self, split: str, nodes: Sequence[Node]) -> list[int]:
        parts = self._on(split, "split_degenerate", split, [str(n) for n in nodes])
        return [sum(p[b] for p in parts) for b in range(len(nodes))]

    def _split_control(self, split: str, winner: Node) -> tuple[list[float], int]:
        parts = self._on(split, "split_control", split, str(winner), self.primary)
        return _concat(p[0] for p in parts), sum(p[1] for p in parts)

    def _split_power(self, split: str, powers: Sequence[float]) -> tuple[list[list[float]], int]:
        parts = self._on(split, "split_power", split, list(powers), self.primary)
        return [_concat(p[0][k] for p in parts) for k in range(len(powers))], sum(p[1] for p in parts)

    def _split_shapes(self, split: str, nodes: Sequence[Node]) -> Tensor:
        parts = self._on(split, "split_shapes", split, [str(n) for n in nodes])
        return torch.cat([torch.as_tensor(p) for p in parts], dim=1)

    # -- the learner and the candidate stream -----------------------------------------------------------

    def _metric_forwards(self) -> int:
        """The shards' model forwards on the synthesis split, summed."""
        return sum(self._on("synthesis", "forwards"))

    def _new_learner(self) -> Learner:
        return ShardedLearner(self.config.grammar, self.config.max_bank_bytes, self._bank)

    def _bank(self, items: list[tuple[Any, ...]], drop: list[int]) -> list[Any]:
        """Proposed bank items on every synthesis shard, combined per item (see :class:`ShardedLearner`)."""
        parts = self._on("synthesis", "bank", items, drop, log=True)
        out = []
        for replies in zip(*parts, strict=True):
            if replies[0] is None:
                out.append(None)
                continue
            sigs = [r[0] for r in replies]
            sig: Signature | None = None if sigs[0] is None else functools.reduce(operator.and_, sigs)
            nbytes = sum(r[1] for r in replies) if replies[0][2] else replies[0][1]
            equal = set(replies[0][3]).intersection(*(r[3] for r in replies[1:]))
            out.append((sig, nbytes, equal))
        return out

    def _seed_entry(self, node: Node, kind: Kind) -> Entry:
        entry = RemoteEntry(node, kind)
        self._seed_texts[entry.uid] = str(node)
        return entry  # type: ignore[return-value]

    # -- triage ---------------------------------------------------------------------------------------

    def _triage_block(self, entries: Sequence[Any]) -> None:
        items = [(e.uid, self._seed_texts.pop(e.uid, None)) for e in entries]
        parts = self._on("synthesis", "triage", items, self._keep, self._drop, log=True)
        self._keep, self._drop = [], []
        n = len(self.synthesis)
        self._block = [e.uid for e in entries]
        self._dist, self._measured = {}, set()
        heatmap = self.equivalence.mode == "heatmap"
        reasons, samples = [], []
        for j in range(len(entries)):
            replies = [p[j] for p in parts]
            reasons.append(self.oracle.reject_counts(all(r[0] for r in replies), sum(r[1] for r in replies),
                                                     sum(r[2] for r in replies), n))
            if reasons[-1] is None and heatmap:
                samples.append(torch.cat([r[3] for r in replies])[self._order])
        keys = iter(fingerprint_samples(torch.stack(samples), FINGERPRINT_LEVELS) if samples else [])
        for e, reason in zip(entries, reasons, strict=True):  # the block's fingerprints in one pass, as on one machine
            self._tri[e.uid] = (reason, next(keys) if reason is None and heatmap else None)

    def _measure(self, uid: int) -> None:
        """Distances (largest over shards) from the block's undecided candidates, from ``uid`` on, to the classes
        of their bucket and to the earlier of them in the same bucket (which may found a class first)."""
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
            parts = self._on("synthesis", "distances", pairs)
            for k, pair in enumerate(pairs):
                self._dist[pair] = max(p[k] for p in parts)

    def _triage(self, entry: Entry) -> bool:
        if entry.uid not in self._measured and self._tri[entry.uid][1] is not None:
            self._measure(entry.uid)
        reason, key = self._tri.pop(entry.uid)
        if reason is not None:
            self.rejected[reason] = self.rejected.get(reason, 0) + 1
            self._drop.append(entry.uid)
            return False
        if key is None:  # no heatmap equivalence: nothing to compare
            self._drop.append(entry.uid)
            return True
        uid = entry.uid
        if self.equivalence.match(str(entry.node), key, uid, lambda other: self._dist[(uid, other)]):
            self._drop.append(uid)
            return False
        self._keep.append(uid)
        return True

    # -- scoring --------------------------------------------------------------------------------------

    def _score(self, entries: Sequence[Entry], columns: Sequence[int],
               race: bool = False) -> tuple[list[list[float] | None], list[bool]]:
        uids = [e.uid for e in entries]
        sums, shared = self._column_sums(uids, list(columns))
        out: list[list[float] | None] = [[sums[j][b].mean() for j in columns] for b in range(len(uids))]
        by_key = [all(shared[j][b] for j in columns) for b in range(len(uids))]
        return out, by_key

    def _column_sums(self, uids: list[int],
                     columns: list[int]) -> tuple[dict[int, list[ExactSum]], dict[int, list[bool]]]:
        """Per metric column, the exact sums of the per-image scores of a batch (from the key store when every
        shard's key digest matches a scored candidate's) and whether each came from the store. One round trip
        scores every column; a metric with equivalence keys costs one more, for the digests."""
        b = len(uids)
        store: KeyStore[ExactSum] = self._keys  # type: ignore[assignment]
        batches = {}
        for j in columns:
            blobs = None
            if type(self.columns[j]).equivalence_key is not Metric.equivalence_key:  # else no round trip for keys
                keys = self._on("synthesis", "keys", uids, j)
                blobs = None if keys[0] is None else [b"".join(k[i] for k in keys) for i in range(b)]
            batches[j] = store.batch(j, blobs, b)
        wanted = [j for j in columns if batches[j].todo]
        if wanted:
            parts = self._on("synthesis", "score", uids, wanted, [batches[j].todo for j in wanted])
            for c, j in enumerate(wanted):
                for t, i in enumerate(batches[j].todo):
                    batches[j].scored(i, functools.reduce(operator.add, (p[c][t] for p in parts), ExactSum()))
        done = {j: batches[j].done() for j in columns}
        return {j: d[0] for j, d in done.items()}, {j: d[1] for j, d in done.items()}  # type: ignore[misc]


def evaluate_sharded(model: nn.Module, layer: str | nn.Module, samples: Samples, methods: Mapping[str, Node],
                     metrics: Mapping[str, Metric], options: ExtractOptions | None,
                     executor: Executor) -> Evaluation:
    """:func:`sycam.workspace.evaluate_methods` with the images on the shards of ``executor``: the same
    :class:`~sycam.workspace.Evaluation` (per-image rows concatenated in sample order, exact means)."""
    options = options or ExtractOptions()
    options = dataclasses.replace(options, batch_size=balanced_batch(len(samples), executor.workers,
                                                                      options.batch_size))
    executor.start(model, layer, options)
    plan = open_on_shards(executor, "evaluate", samples, list(metrics.values()), options.batch_size)
    labels = list(methods)
    texts = [str(methods[k]) for k in labels]

    def on_all(method: str, *args: Any) -> list[Any]:
        return executor.call(method, [("evaluate", *args)] * len(plan), range(len(plan)))

    results: dict[str, dict[str, float]] = {k: {} for k in labels}
    per_image: dict[str, dict[str, list[float]]] = {}
    for mname, metric in metrics.items():
        parts = on_all("split_scores", texts, metric, 8)
        rows = [_concat(p[b] for p in parts) for b in range(len(labels))]
        per_image[mname] = dict(zip(labels, rows, strict=True))
        means = metric.aggregate(torch.tensor(rows, dtype=torch.float32).reshape(len(labels), -1)).tolist()
        for label, value in zip(labels, means, strict=True):
            results[label][mname] = float(value)
    bad = on_all("split_degenerate", texts)
    blank = {label: sum(p[b] for p in bad) for b, label in enumerate(labels)}
    return Evaluation(results, per_image, blank, list(samples.ids), metrics)
