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

import itertools
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import NamedTuple

import torch
from torch import Tensor

from ..expr import OPS, Call, Const, Kind, Node, Terminal, acts_key, layer_of, split_terminal, terminal_kind
from .grammar import Grammar

_SAMPLE = 1 << 12  #: elements of a value that enter its fingerprint / exact key
_BLOCKS = 32

#: operators whose result is finite and non-zero whenever their (finite, non-zero) operand is
_SAFE_UNARY = frozenset({"abs", "neg"})
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


_WEIGHTS: dict[tuple[int, str], Tensor] = {}


def _weights(n: int, device: torch.device) -> Tensor:
    key = (n, str(device))
    w = _WEIGHTS.get(key)
    if w is None:
        gen = torch.Generator().manual_seed(0x5CA3)
        w = torch.randint(1, 1 << 31, (n,), generator=gen, dtype=torch.int64).to(device)
        _WEIGHTS[key] = w
    return w


def exact_key(values: tuple[Tensor, ...]) -> int:
    """A hash that values equal under ``torch.equal`` always share (exact integer arithmetic).

    The bit patterns of a strided sample (≤ 4096 elements) of each tensor, with ``-0.0`` read as
    ``0.0``, enter a weighted sum in wrap-around int64 arithmetic, so the key does not depend on
    summation order, thread count or device. Different values may share a key; the learner then compares
    the full tensors.
    """
    parts: list[object] = []
    for v in values:
        flat = v.reshape(-1)
        step = max(1, flat.numel() // _SAMPLE)
        sample = flat[::step][:_SAMPLE] + 0.0  # -0.0 → 0.0: torch.equal treats them as equal
        if sample.dtype == torch.float32:
            bits = sample.contiguous().view(torch.int32).to(torch.int64)
        elif sample.dtype == torch.float64:
            bits = sample.contiguous().view(torch.int64) >> 8
        else:
            bits = sample.to(torch.float64).contiguous().view(torch.int64) >> 8
        parts.append(int((bits * _weights(bits.numel(), bits.device)).sum()))
        parts.append(tuple(v.shape))
    return hash(tuple(parts))


def same_values(a: tuple[Tensor, ...], b: tuple[Tensor, ...]) -> bool:
    """Whether two values are equal on every input set: same shapes and ``torch.equal`` (the learner's merge rule)."""
    return all(x.shape == y.shape and torch.equal(x, y) for x, y in zip(a, b, strict=True))


class _MapCache:
    """Least-recently-used store of recomputable values, bounded in bytes."""

    def __init__(self, budget: int) -> None:
        self.budget = budget
        self.used = 0
        self.store: OrderedDict[int, tuple[Tensor, ...]] = OrderedDict()
        self.misses = 0

    def get(self, uid: int) -> tuple[Tensor, ...] | None:
        hit = self.store.get(uid)
        if hit is not None:
            self.store.move_to_end(uid)
        return hit

    def put(self, uid: int, values: tuple[Tensor, ...]) -> None:
        if uid in self.store:
            return
        nbytes = _nbytes(values)
        while self.store and self.used + nbytes > self.budget:
            _, old = self.store.popitem(last=False)
            self.used -= _nbytes(old)
        if nbytes <= self.budget:
            self.store[uid] = values
            self.used += nbytes

    def discard(self, uid: int) -> None:
        old = self.store.pop(uid, None)
        if old is not None:
            self.used -= _nbytes(old)


def _nbytes(values: tuple[Tensor, ...]) -> int:
    return sum(v.numel() * v.element_size() for v in values)


_UIDS = itertools.count()


class Entry:
    """A bank entry: an expression, its kind and its value on each input set (base first).

    ``Entry(node, kind, values)`` holds its values. The learner also makes *recipe* entries whose value
    is ``fn(*children values)``, computed on first use and kept in a bounded cache.
    """

    __slots__ = ("_cache", "_recipe", "_values", "kind", "node", "nonneg", "uid")

    def __init__(self, node: Node, kind: Kind, values: tuple[Tensor, ...] | None = None, *,
                 recipe: tuple[Callable[..., Tensor], tuple[Entry, ...]] | None = None,
                 cache: _MapCache | None = None, uid: int | None = None) -> None:
        if values is None and (recipe is None or cache is None):
            raise ValueError("an entry needs values or a recipe and a cache")
        self.node = node
        self.kind = kind
        self._values = values
        self._recipe = recipe
        self._cache = cache
        self.uid = next(_UIDS) if uid is None else uid
        self.nonneg = False  #: known ≥ 0 everywhere (set on admission): then relu(x) and |x| equal x

    @property
    def size(self) -> int:
        """The expression's size in AST nodes (the enumeration order's first key)."""
        return self.node.size

    @property
    def values(self) -> tuple[Tensor, ...]:
        """The value on every input set (recomputed from the recipe when it is not held)."""
        if self._values is not None:
            return self._values
        assert self._recipe is not None and self._cache is not None
        hit = self._cache.get(self.uid)
        if hit is not None:
            return hit
        self._cache.misses += 1
        fn, children = self._recipe
        child_values = [c.values for c in children]
        out = tuple(fn(*vals) for vals in zip(*child_values, strict=True))
        self._cache.put(self.uid, out)
        return out

    def nbytes(self) -> int:
        """Bytes this entry holds itself (0 for a recipe entry, whose value lives in the cache)."""
        return 0 if self._values is None else _nbytes(self._values)

    def __repr__(self) -> str:
        return f"Entry({self.node}, {self.kind!s})"


class Proposal(NamedTuple):
    """One expression to build: ``op`` over the entries ``args`` giving ``kind``; ``op`` is ``"leaf"`` for a
    terminal or constant (``args`` holds its entry) and ``"skip"`` for relu/abs of a non-negative child (equal
    to the child: counted as pruned without building)."""

    op: str
    args: tuple[Entry, ...]
    kind: Kind


@dataclass(frozen=True)
class Signature:
    """What admission needs to know of a value besides its equality to others, computed where the value lives
    (one ``aminmax`` pass per input set). Signatures of parts of a value (image shards) combine with ``&``:
    finite and non-negative everywhere, non-zero somewhere."""

    finite: bool
    nonzero: bool
    nonneg: bool

    @classmethod
    def of(cls, values: tuple[Tensor, ...]) -> Signature:
        """The signature of a value on every input set."""
        bounds = [torch.aminmax(v) for v in values]  # one pass each; NaN and ±inf show up
        return cls(all(bool(torch.isfinite(lo) & torch.isfinite(hi)) for lo, hi in bounds),
                   any(bool((lo != 0) | (hi != 0)) for lo, hi in bounds),
                   all(bool(lo >= 0) for lo, _ in bounds))

    def __and__(self, other: Signature) -> Signature:
        return Signature(self.finite and other.finite, self.nonzero or other.nonzero, self.nonneg and other.nonneg)


def lift_args(op: str, args: tuple[Entry, ...], acts: Callable[[str], Entry]) -> tuple[Entry, ...]:
    """The entries whose values ``op`` is computed from: ``args``, and for ``cam`` also the activations entry of
    its argument's layer (``acts(key)``), which the node does not show (``cam(α)`` reads A at α's layer)."""
    return (*args, acts(acts_key(args[0].node))) if op == "cam" else args


def admissible_pair(op: str, a: Entry, b: Entry, layered: bool) -> bool:
    """Whether ``op(a, b)`` is worth building beyond its kinds: a final-map operator's parameter is a valid
    constant, and (when the grammar has terminals at several layers) no operator mixes two layers' channels."""
    spec = OPS[op]
    if spec.form == "final" and not (isinstance(b.node, Const) and spec.accepts(b.node.value)):
        return False
    if layered and spec.form in ("elementwise",):
        la, lb = layer_of(a.node), layer_of(b.node)
        return la is None or lb is None or la == lb
    return True


def make_entry(node: Node, op: str, args: tuple[Entry, ...], kind: Kind, cache: _MapCache, deferred: bool,
               max_size: int, uid: int | None = None) -> tuple[Entry, tuple[Tensor, ...] | None]:
    """The entry of ``node = op(*args)`` and its values (None when ``deferred``: not computed yet).

    How the value is held: a map keeps its recipe (its value lives in ``cache``); a vector or scalar below
    ``max_size`` holds its values; one of ``max_size`` is never a child, so it keeps only its recipe."""
    fn = OPS[op].fn
    if kind == Kind.MAP:
        entry = Entry(node, kind, recipe=(fn, args), cache=cache, uid=uid)
        return entry, None if deferred else entry.values  # computed now, and cached
    values = tuple(fn(*vals) for vals in zip(*(a.values for a in args), strict=True))
    if node.size == max_size:  # never a child: recomputed if a later duplicate asks
        entry = Entry(node, kind, recipe=(fn, args), cache=cache, uid=uid)
        cache.put(entry.uid, values)
    else:
        entry = Entry(node, kind, values, uid=uid)
    return entry, values


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


class Learner:
    """Enumerates the grammar's expressions by size, yielding each value-distinct entry once.

    Args:
        grammar: the search space.
        leaves: terminal name → its values, one tensor per input set (maps ``(N,K,h,w)``, vectors
            ``(N,K,1,1)``).
        max_bank_bytes: memory cap of the bank, map cache included (half of it); past it, new
            entries are still yielded (as candidates) but no longer stored for composition.
        tolerance: ignored; kept for compatibility (merging is exact, see the module docstring).
        cache_bytes: the part of ``max_bank_bytes`` for recomputable map values (default: half).
    """

    def __init__(self, grammar: Grammar, leaves: Mapping[str, tuple[Tensor, ...]],
                 max_bank_bytes: int = 2 << 30, tolerance: float = 0.0, cache_bytes: int | None = None) -> None:
        self.grammar = grammar
        self.leaves = leaves
        self.max_bank_bytes = max_bank_bytes
        self.bank: dict[int, list[Entry]] = {}
        self._seen: dict[tuple[int, int], list[Entry]] = {}
        self.stats = LearnerStats()
        ref = next(iter(leaves.values()), None)
        self._n_sets = 0 if ref is None else len(ref)  # no leaves here: the values live on shards
        self._device = torch.device("cpu") if ref is None else ref[0].device
        self._cache = _MapCache(max_bank_bytes // 2 if cache_bytes is None else min(cache_bytes, max_bank_bytes))
        self._held_budget = max_bank_bytes - self._cache.budget
        #: channel form only: maps are never candidates, so one below the size limit they are only reduced
        self._defer_maps = "pixel" not in grammar.forms
        #: terminals at more than one layer: binary operators must not mix their channels
        self._layered = len({split_terminal(t)[1] for t in grammar.terminals}) > 1
        self._acts: dict[str, Entry] = {}

    def _acts_entry(self, key: str) -> Entry:
        """The activations leaf ``key`` (``A`` or ``A@LAYER``) that ``cam`` reads, whether or not it is a terminal
        of the grammar."""
        if key not in self._acts:
            self._acts[key] = Entry(Terminal(key), Kind.MAP, self.leaves[key])
        return self._acts[key]

    # -- building ------------------------------------------------------------------------------------

    def _leaf_entries(self) -> Iterator[Entry]:
        for name in self.grammar.terminals:
            yield Entry(Terminal(name), terminal_kind(name), self.leaves[name])
        for c in self.grammar.constants:
            value = torch.tensor(float(c), device=self._device)
            yield Entry(Const(float(c)), Kind.SCALAR, (value,) * self._n_sets)

    def _useful(self, kind: Kind, size: int) -> bool:
        """A map is a candidate only in pixel form; in channel form it must still fit under a reduction."""
        return not (kind == Kind.MAP and size >= self.grammar.max_size and "pixel" not in self.grammar.forms)

    def _build(self, op: str, args: tuple[Entry, ...], kind: Kind) -> Entry | None:
        """The entry ``op(*args)`` of ``kind``, admitted (value computed and checked) or deferred;
        ``None`` when it is pruned or rejected."""
        node = Call(op, tuple(a.node for a in args))
        self.stats.enumerated += 1
        entry, values = make_entry(node, op, lift_args(op, args, self._acts_entry), kind, self._cache,
                                   self._deferred(node, kind), self.grammar.max_size)
        if values is None:
            self._defer(entry)
            return entry
        if self._admit(entry, values, op):
            return entry
        self._cache.discard(entry.uid)
        return None

    def _deferred(self, node: Node, kind: Kind) -> bool:
        """Channel form: a map one step below the size limit is only ever reduced, so it is not computed yet."""
        return kind == Kind.MAP and self._defer_maps and node.size == self.grammar.max_size - 1

    def _defer(self, entry: Entry) -> None:
        self.stats.deferred += 1
        self.bank.setdefault(entry.size, []).append(entry)
        self.stats.bank_size += 1
        self.stats.bank_bytes += _OVERHEAD

    def _admit(self, entry: Entry, values: tuple[Tensor, ...], op: str | None = None) -> bool:
        """Check finiteness, non-zeroness and exact distinctness; hold the entry. False when pruned/rejected."""
        key = (int(entry.kind), exact_key(values))

        def duplicate() -> bool:
            return any(same_values(values, other.values) for other in self._seen.get(key, ()))

        sig = None if op in _SAFE_UNARY else Signature.of(values)
        held = self._decide(entry, op, sig, duplicate, entry.nbytes())
        if held is None:
            return False
        if held:
            self._seen.setdefault(key, []).append(entry)
        return True

    def _decide(self, entry: Entry, op: str | None, sig: Signature | None, duplicate: Callable[[], bool],
                nbytes: int) -> bool | None:
        """Admission of a computed entry, from its :class:`Signature` (None: not needed, ``op`` keeps finite
        non-zero values so) and whether it equals a held entry: None when rejected or pruned, False when it is a
        fresh candidate the full bank does not keep, True when it is held. One rule for every executor: the
        sharded learner calls it with signatures and equalities combined over the shards."""
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
        self.stats.cache_bytes = self._cache.used
        self.stats.cache_misses = self._cache.misses

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

    def _resolve(self, proposals: Iterator[Proposal]) -> Iterator[Entry]:
        """Build and admit the proposals in order, yielding the admitted entries (values computed here)."""
        for p in proposals:
            if p.op == "leaf":
                self.stats.enumerated += 1
                if self._admit(p.args[0], p.args[0].values):
                    yield p.args[0]
            elif p.op == "skip":
                self.stats.enumerated += 1
                self.stats.subexpr_pruned += 1
            else:
                entry = self._build(p.op, p.args, p.kind)
                if entry is not None:
                    yield entry

    def entries(self) -> Iterator[Entry]:
        """All value-distinct expressions of the grammar, by increasing size (deterministic order: see
        :meth:`proposals`)."""
        for size in range(1, self.grammar.max_size + 1):
            yield from self._resolve(self.proposals(size))
            self._sync_stats()
