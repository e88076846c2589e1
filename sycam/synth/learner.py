"""The learner: bottom-up, type-directed enumeration of expressions by size over a bank of memoized,
value-distinct sub-expressions.

Every bank entry carries its *value* on every cached input set (the synthesis images and each metric
view), so building a bigger expression is one tensor operation on its children's values — no forward or
backward pass. Commutative operators are applied to each unordered pair once.

**Pruning is exact.** Two sub-expressions are merged (only the first, smallest one is kept) only when
their values are *equal* on every input set (``torch.equal``: the same numbers, where ``-0.0`` equals
``0.0``). That is sound for every operator of the grammar: each is a function of its operands' real
values, except that the sign of a zero can reach a result only through ``x / ±0`` (which
:func:`~sycam.expr.ops.safe_div` maps to 0 either way) or as the sign of a zero result, and every later
step (operators, the heatmap's Σ, relu and normalization) maps zeros of either sign to the same numbers.
So two merged sub-expressions give identical candidates, heatmaps and scores inside any larger
expression. A hash of a strided sample of each value is only a fast filter; every merge is confirmed on
the full values. (An earlier version merged values within a relative 1e-5, and ``softmax(sum(sq(A)))``
and ``softmax(sum(cube(A)))`` merged although ``1 / ·`` tells them apart.)

**Memory.** The bank keeps full values only for the terminals and for channel vectors and constants;
a map-valued sub-expression keeps its *recipe* (operator and children) and its value lives in a
bounded least-recently-used cache, recomputed bit-for-bit from the recipe when it was evicted. In the
channel form, maps one step below the size limit can only be reduced (``mean``/``sum``/``max``) into a
candidate, so they are not even computed until then (their reductions are checked instead), and
candidates of the largest size are never children: they keep only their recipe, to catch later
duplicates.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import torch
from torch import Tensor

from ..expr import OPS, Call, Const, Kind, Node, Terminal, layer_of, split_terminal, terminal_kind
from .bank import (
    SAMPLE,
    BankItem,
    BankReply,
    Entry,
    MapCache,
    Signature,
    ValueBank,
    chunks,
    exact_key,
    lift_args,
    make_entry,
    new_uid,
    same_values,
)
from .grammar import Grammar

__all__ = ["BANK_CHUNK", "LOCAL_BANK_CHUNK", "Entry", "Learner", "LearnerStats", "MapCache", "Proposal", "Signature",
           "SymbolicEntry", "exact_key", "fingerprint", "fingerprint_positions", "fingerprint_sample",
           "fingerprint_samples", "lift_args", "make_entry", "same_values"]

_SAMPLE = SAMPLE  #: elements of a value that enter its fingerprint / exact key
_BLOCKS = 32

BANK_CHUNK = 4096
"""proposed sub-expressions per call of a remote bank (shards on workers: one round trip each)"""
LOCAL_BANK_CHUNK = 32
"""proposed sub-expressions per call of a bank in this process: the search stops reading the stream once its
budget is spent, so every proposal built past that point is wasted work (a chunk of 4096 built about 2.2 entries
per entry the search took); with no round trip to save, small chunks cost nothing"""

#: operators whose result is always finite for finite operands (zero is still possible)
_FINITE = frozenset({"/", "relu", "abs", "neg", "max", "softmax", "minmax"})
#: bytes counted per held entry for its Python objects (node, entry, index)
_OVERHEAD = 512


def fingerprint(values: tuple[Tensor, ...], levels: float) -> tuple[int, int]:
    """A hash of tensors that equal tensors always share and nearly equal ones almost always share.

    From a fixed strided sample of at most 4096 elements per tensor (:func:`fingerprint_positions`), divided
    by its largest magnitude, it rounds 64 block statistics (block means and mean magnitudes) to ``1/levels``.
    Block statistics average out float noise, so values that differ only by rounding land in the same bucket
    except with a small probability. Used by the heatmap equivalence oracle (which has a tolerance); the
    learner uses the exact :func:`exact_key` instead.
    """
    parts = []
    for v in values:
        flat = v.reshape(-1)
        step = max(1, flat.numel() // _SAMPLE)
        parts.append(flat[::step][:_SAMPLE])
    return fingerprint_sample(torch.cat(parts), levels)


def fingerprint_positions(numel: int) -> range:
    """The flat positions of a tensor of ``numel`` elements that :func:`fingerprint` samples (so that shards
    holding parts of the tensor can send just those elements)."""
    step = max(1, numel // _SAMPLE)
    return range(0, numel, step)[:_SAMPLE]


def fingerprint_sample(sample: Tensor, levels: float) -> tuple[int, int]:
    """:func:`fingerprint` of the sampled elements (a 1-d tensor, in position order)."""
    return fingerprint_samples(sample[None], levels)[0]


def fingerprint_samples(samples: Tensor, levels: float) -> list[tuple[int, int]]:
    """:func:`fingerprint_sample` of each row of ``samples`` ``(B, S)``, in one pass of tensor arithmetic (a row's
    key does not depend on the rows beside it: each row's statistics are reductions of that row alone).

    >>> x = torch.rand(3, 100)
    >>> fingerprint_samples(x, 1e3)[1] == fingerprint_sample(x[1], 1e3)
    True
    """
    samples = samples.to(torch.float64)
    b, numel = samples.shape
    if b == 0:
        return []
    scale = samples.abs().amax(1)
    blocks = _BLOCKS
    pad = (-numel) % blocks
    if pad:
        samples = torch.cat([samples, samples.new_zeros(b, pad)], 1)
    safe = torch.where(scale == 0, torch.ones_like(scale), scale)
    rows = (samples / safe[:, None]).reshape(b, blocks, -1)
    stats = torch.round(torch.cat([rows.mean(2), rows.abs().mean(2)], 1) * levels).tolist()
    exponents = torch.floor(torch.log2(safe) * 8).to(torch.int64).tolist()
    zero = (scale == 0).tolist()
    width = numel + pad
    return [(0, 0) if z else (hash((e, *st)), width) for z, e, st in zip(zero, exponents, stats, strict=True)]


class SymbolicEntry:
    """A bank entry as the learner sees it: the expression, its kind and its id in the :class:`ValueBank` that
    holds its value (on the shards, or this learner's own bank). ``values`` asks that bank when it is here.

    >>> e = SymbolicEntry(Terminal("A"), Kind.MAP)
    >>> e.size, e.kind == Kind.MAP
    (1, True)
    """

    __slots__ = ("kind", "node", "nonneg", "source", "uid")

    def __init__(self, node: Node, kind: Kind, source: ValueBank | None = None) -> None:
        self.node, self.kind, self.source = node, kind, source
        self.uid = new_uid()
        self.nonneg = False  #: known ≥ 0 everywhere (set on admission): then relu(x) and |x| equal x

    @property
    def size(self) -> int:
        """The expression's size in AST nodes (the enumeration order's first key)."""
        return self.node.size

    @property
    def values(self) -> tuple[Tensor, ...]:
        """The value on every input set, from the bank that holds it (only for a learner with its own bank)."""
        if self.source is None:
            raise LookupError(f"the values of {self.node} live on the shards")
        return self.source.values(self.uid)

    def __repr__(self) -> str:
        return f"SymbolicEntry({self.node}, {self.kind!s})"


class Proposal(NamedTuple):
    """One expression to build: ``op`` over the entries ``args`` giving ``kind``; ``op`` is ``"leaf"`` for a
    terminal or constant (``args`` holds its entry) and ``"skip"`` for relu/abs of a non-negative child (equal
    to the child: counted as pruned without building)."""

    op: str
    args: tuple[SymbolicEntry, ...]
    kind: Kind


def admissible_pair(op: str, a: SymbolicEntry, b: SymbolicEntry, layered: bool) -> bool:
    """Whether ``op(a, b)`` is worth building beyond its kinds: a final-map operator's parameter is a valid
    constant, and (when the grammar has terminals at several layers) no operator mixes two layers' channels."""
    spec = OPS[op]
    if spec.form == "final" and not (isinstance(b.node, Const) and spec.accepts(b.node.value)):
        return False
    if layered and spec.form in ("elementwise",):
        la, lb = layer_of(a.node), layer_of(b.node)
        return la is None or lb is None or la == lb
    return True


@dataclass
class LearnerStats:
    """Counters of one enumeration: ``enumerated == yielded + subexpr_pruned + sum(rejected.values())``."""

    enumerated: int = 0  #: expressions built and typed correctly
    subexpr_pruned: int = 0  #: equal in value to a smaller (or earlier) sub-expression
    rejected: dict[str, int] = field(default_factory=dict)  #: non-finite or identically zero values
    bank_size: int = 0  #: entries held (for composition, or to catch duplicates of the largest size)
    bank_bytes: int = 0  #: bytes held by those entries (map recipes hold none; see ``cache_bytes``)
    cache_bytes: int = 0  #: bytes of map values in the recompute cache now
    cache_misses: int = 0  #: map values recomputed from their recipe
    deferred: int = 0  #: maps yielded without computing them (channel form, one below the size limit)
    bank_full: bool = False


BankCall = Callable[[list[BankItem], list[int]], list[Any]]
"""the bank the learner sends its proposals to: ``(items, ids to forget) → per item (signature or None, bytes, ids
of equal earlier entries)``, or None for a deferred item (:meth:`sycam.synth.sharded.ShardPlane.bank`)"""


def _bucket_key(values: tuple[Tensor, ...]) -> int:
    """:func:`exact_key`, looked up here at each call (a test replaces it to see the enumeration unpruned)."""
    return exact_key(values)


def local_bank(bank: ValueBank) -> BankCall:
    """The :data:`BankCall` of one in-process :class:`ValueBank` (the replies of one shard, as they are)."""

    def call(items: list[BankItem], drop: list[int]) -> list[Any]:
        replies: list[BankReply] = bank.bank(items, drop)
        return [None if r is None else (r[0], r[1], set(r[3])) for r in replies]

    return call


class Learner:
    """Enumerates the grammar's expressions by size, yielding each value-distinct entry once.

    The learner is symbolic: it proposes expressions (:meth:`proposals`), sends them to the bank that holds the
    values (a :class:`~sycam.synth.bank.ValueBank`: its own, built from ``leaves``, or the shards' through the
    shard plane, ``bank``), and admits each from the bank's reply by one rule (:meth:`_decide`).

    Args:
        grammar: the search space.
        leaves: terminal name → its values, one tensor per input set (maps ``(N,K,h,w)``, vectors
            ``(N,K,1,1)``); ignored when ``bank`` is given.
        max_bank_bytes: memory cap of the bank, map cache included (half of it); past it, new
            entries are still yielded (as candidates) but no longer stored for composition.
        tolerance: ignored; kept for compatibility (merging is exact, see the module docstring).
        cache_bytes: the part of ``max_bank_bytes`` for recomputable map values (default: half).
        bank: where the values live (:data:`BankCall`); None: a bank of ``leaves`` in this process.
        chunk: proposals per call of ``bank`` (default: :data:`LOCAL_BANK_CHUNK` for a bank in this process,
            :data:`BANK_CHUNK` otherwise). Only the work read ahead depends on it, never the entries or their order.

    Example::

        learner = Learner(Grammar(terminals=("A", "G"), max_size=3), {"A": (acts,), "G": (grads,)})
        [str(e.node) for e in learner.entries()][:3]  # ['A', 'G', 'relu(G)']
    """

    def __init__(self, grammar: Grammar, leaves: Mapping[str, tuple[Tensor, ...]] | None = None,
                 max_bank_bytes: int = 2 << 30, tolerance: float = 0.0, cache_bytes: int | None = None,
                 bank: BankCall | None = None, chunk: int | None = None) -> None:
        self.grammar = grammar
        self.max_bank_bytes = max_bank_bytes
        self.bank: dict[int, list[SymbolicEntry]] = {}
        self.stats = LearnerStats()
        cache = max_bank_bytes // 2 if cache_bytes is None else min(cache_bytes, max_bank_bytes)
        self._held_budget = max_bank_bytes - cache
        self.values: ValueBank | None = None
        """this learner's own bank (None when the values live on the shards)"""
        if bank is None:
            leaves = leaves or {}
            n_sets = len(next(iter(leaves.values()), ()))
            per_view = [{t: v[i] for t, v in leaves.items()} for i in range(n_sets)]
            self.values = ValueBank(per_view, grammar.max_size, cache, key=_bucket_key)
            bank = local_bank(self.values)
            chunk = LOCAL_BANK_CHUNK if chunk is None else chunk
        self._bank = bank
        self._chunk = BANK_CHUNK if chunk is None else chunk
        self._held: set[int] = set()
        self._drop: list[int] = []
        #: channel form only: maps are never candidates, so one below the size limit they are only reduced
        self._defer_maps = "pixel" not in grammar.forms
        #: terminals at more than one layer: binary operators must not mix their channels
        self._layered = len({split_terminal(t)[1] for t in grammar.terminals}) > 1

    # -- building ------------------------------------------------------------------------------------

    def _leaf_entries(self) -> Iterator[SymbolicEntry]:
        for name in self.grammar.terminals:
            yield SymbolicEntry(Terminal(name), terminal_kind(name), self.values)
        for c in self.grammar.constants:
            yield SymbolicEntry(Const(float(c)), Kind.SCALAR, self.values)

    def _useful(self, kind: Kind, size: int) -> bool:
        """A map is a candidate only in pixel form; in channel form it must still fit under a reduction."""
        return not (kind == Kind.MAP and size >= self.grammar.max_size and "pixel" not in self.grammar.forms)

    def _deferred(self, node: Node, kind: Kind) -> bool:
        """Channel form: a map one step below the size limit is only ever reduced, so it is not computed yet."""
        return kind == Kind.MAP and self._defer_maps and node.size == self.grammar.max_size - 1

    def _defer(self, entry: SymbolicEntry) -> None:
        self.stats.deferred += 1
        self.bank.setdefault(entry.size, []).append(entry)
        self.stats.bank_size += 1
        self.stats.bank_bytes += _OVERHEAD

    def _decide(self, entry: SymbolicEntry, op: str | None, sig: Signature | None, duplicate: Callable[[], bool],
                nbytes: int) -> bool | None:
        """Admission of a computed entry, from its :class:`Signature` (None: not needed, ``op`` keeps finite
        non-zero values so) and whether it equals a held entry: None when rejected or pruned, False when it is a
        fresh candidate the full bank does not keep, True when it is held. The one admission rule, for every
        bank: the shard plane combines signatures and equalities over its shards before it is read."""
        if op == "abs":
            entry.nonneg = True
        if sig is not None:
            entry.nonneg = sig.nonneg
            if not (op in _FINITE or sig.finite):
                self._reject("non-finite value")
                return None
            if entry.kind != Kind.SCALAR and not sig.nonzero:
                self._reject("identically zero")
                return None
        if duplicate():
            self.stats.subexpr_pruned += 1
            return None
        held = nbytes + _OVERHEAD
        if self.stats.bank_bytes + held > self._held_budget:
            self.stats.bank_full = True
            return False  # a fresh candidate, but not kept
        self.stats.bank_size += 1
        self.stats.bank_bytes += held
        if entry.size < self.grammar.max_size:  # the largest ones are never children
            self.bank.setdefault(entry.size, []).append(entry)
        return True

    def _reject(self, reason: str) -> None:
        self.stats.rejected[reason] = self.stats.rejected.get(reason, 0) + 1

    def _sync_stats(self) -> None:
        if self.values is not None:
            self.stats.cache_bytes = self.values.cache.used
            self.stats.cache_misses = self.values.cache.misses

    @staticmethod
    def _pairs(n_left: int, n_right: int, right_outer: bool) -> Iterator[tuple[int, int]]:
        """Index pairs, the side of larger sub-expressions outermost: its (map) values are fetched once
        per entry, while the small side (mostly terminals and constants) cycles in the inner loop."""
        if right_outer:
            for j in range(n_right):
                for i in range(n_left):
                    yield i, j
        else:
            for i in range(n_left):
                for j in range(n_right):
                    yield i, j

    def proposals(self, size: int) -> Iterator[Proposal]:
        """What to build at ``size``, in enumeration order, from the bank of smaller sizes (symbolic: no values).

        Within a size: unary operators child by child (each child's value is fetched once for all of them),
        then binary operators pair by pair, the larger operand's entries outermost."""
        if size == 1:
            for entry in self._leaf_entries():
                yield Proposal("leaf", (entry,), entry.kind)
            return
        unary = [OPS[o] for o in self.grammar.operators if OPS[o].arity == 1]
        binary = [OPS[o] for o in self.grammar.operators if OPS[o].arity == 2]
        for child in list(self.bank.get(size - 1, [])):
            if child.kind == Kind.SCALAR:
                continue
            for op in unary:
                kind = op.result_kind((child.kind,))
                if kind is None or not self._useful(kind, size):
                    continue
                if child.nonneg and op.name in ("relu", "abs"):  # equal to the child, which is held
                    yield Proposal("skip", (child,), kind)
                else:
                    yield Proposal(op.name, (child,), kind)
        for left in range(1, size - 1):
            right = size - 1 - left
            lefts, rights = list(self.bank.get(left, [])), list(self.bank.get(right, []))
            for i, j in self._pairs(len(lefts), len(rights), left < right):
                a, b = lefts[i], rights[j]
                if a.kind == Kind.SCALAR and b.kind == Kind.SCALAR:
                    continue  # constant folding: the grammar's constants are the constants
                for op in binary:
                    if op.commutative and (left > right or (left == right and j < i)):
                        continue
                    kind = op.result_kind((a.kind, b.kind))
                    if kind is None or not self._useful(kind, size) \
                            or not admissible_pair(op.name, a, b, self._layered):
                        continue
                    yield Proposal(op.name, (a, b), kind)

    def _item(self, p: Proposal) -> tuple[SymbolicEntry, str | None, bool, BankItem] | None:
        """The entry a proposal builds, its operator, whether it is deferred, and the bank's item."""
        if p.op == "skip":
            return None
        if p.op == "leaf":
            e = p.args[0]
            leaf = e.node.name if isinstance(e.node, Terminal) else e.node.value
            return e, None, False, (e.uid, "leaf", (), int(e.kind), leaf)
        node = Call(p.op, tuple(a.node for a in p.args))
        e = SymbolicEntry(node, p.kind, self.values)
        deferred = self._deferred(node, p.kind)
        return e, p.op, deferred, (e.uid, p.op, tuple(a.uid for a in p.args), int(p.kind), deferred)

    def _resolve(self, proposals: Iterator[Proposal]) -> Iterator[SymbolicEntry]:
        """Build the proposals in the bank, ``chunk`` at a time, and admit them in order (:meth:`_decide`),
        yielding the admitted entries; the bank forgets the others with the next call."""
        for chunk in chunks(proposals, self._chunk):
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
                    self._defer(entry)
                    yield entry
                    continue
                sig, nbytes, equal = reply
                held = self._decide(entry, op, sig, lambda eq=equal: not self._held.isdisjoint(eq), nbytes)
                if held is None:
                    self._drop.append(entry.uid)
                    continue
                if held:
                    self._held.add(entry.uid)
                yield entry

    def entries(self) -> Iterator[Entry]:
        """All value-distinct expressions of the grammar, by increasing size (deterministic order: see
        :meth:`proposals`)."""
        for size in range(1, self.grammar.max_size + 1):
            yield from self._resolve(self.proposals(size))
            self._sync_stats()
