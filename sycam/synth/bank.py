"""The bank's values: what a sub-expression's value is, how it is held, and the admission facts about it.

The learner (:mod:`sycam.synth.learner`) decides symbolically; the values live where the images are, in a
:class:`ValueBank` (on each :class:`~sycam.synth.shard.Shard`, or inside a standalone learner). For each
proposed sub-expression the bank computes its value, its :class:`Signature` (finite, non-zero, non-negative)
and the ids of the earlier entries whose values are ``torch.equal`` to it (:func:`exact_key` buckets them,
:func:`same_values` confirms). The learner's admission rule reads those facts (combined over shards by the
shard plane: signatures with ``&``, equal ids intersected).

**Memory.** A map-valued entry keeps its *recipe* (operator and children) and its value lives in a bounded
:class:`MapCache`; vectors and constants hold their values; an entry of the largest size keeps only its recipe.
"""

from __future__ import annotations

import itertools
import math
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from ..expr import OPS, Call, Const, Kind, Node, Terminal, acts_key

SAMPLE = 1 << 12
"""elements of a value that enter its fingerprint / exact key"""

SAFE_UNARY = frozenset({"abs", "neg"})
"""operators whose result is finite and non-zero whenever their (finite, non-zero) operand is: no signature needed"""

_UIDS = itertools.count()


def new_uid() -> int:
    """A fresh bank id (unique in this process; the driver's ids name entries on every shard)."""
    return next(_UIDS)


def chunks(items: Iterable[Any], n: int) -> Iterator[list[Any]]:
    """``items`` in lists of ``n`` (the last may be shorter).

    >>> list(chunks(range(5), 2))
    [[0, 1], [2, 3], [4]]
    """
    it = iter(items)
    while chunk := list(itertools.islice(it, n)):
        yield chunk


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
        step = max(1, flat.numel() // SAMPLE)
        sample = flat[::step][:SAMPLE] + 0.0  # -0.0 → 0.0: torch.equal treats them as equal
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


class MapCache:
    """Least-recently-used store of recomputable values, bounded in bytes: the bank's map values live here and
    are recomputed bit-for-bit from their recipe when evicted.

    >>> cache = MapCache(8)
    >>> cache.put(1, (torch.zeros(2),)); cache.get(1) is not None, cache.used
    (True, 8)
    >>> cache.put(2, (torch.zeros(2),)); cache.get(1), cache.used  # 1 evicted: 2 fits alone
    (None, 8)
    """

    def __init__(self, budget: int) -> None:
        self.budget = budget
        self.used = 0
        self.store: OrderedDict[int, tuple[Tensor, ...]] = OrderedDict()
        self.misses = 0

    def get(self, uid: int) -> tuple[Tensor, ...] | None:
        """The values stored for ``uid`` (now the most recently used), or None when evicted or never stored."""
        hit = self.store.get(uid)
        if hit is not None:
            self.store.move_to_end(uid)
        return hit

    def put(self, uid: int, values: tuple[Tensor, ...]) -> None:
        """Store ``values`` for ``uid``, evicting the least recently used until they fit (values larger than the
        whole budget are not stored)."""
        if uid in self.store:
            return
        nbytes = nbytes_of(values)
        while self.store and self.used + nbytes > self.budget:
            _, old = self.store.popitem(last=False)
            self.used -= nbytes_of(old)
        if nbytes <= self.budget:
            self.store[uid] = values
            self.used += nbytes

    def discard(self, uid: int) -> None:
        """Forget ``uid``'s values, if stored."""
        old = self.store.pop(uid, None)
        if old is not None:
            self.used -= nbytes_of(old)


def nbytes_of(values: tuple[Tensor, ...]) -> int:
    """Bytes held by the tensors ``values``."""
    return sum(v.numel() * v.element_size() for v in values)


class Entry:
    """A bank entry: an expression, its kind and its value on each input set (base first).

    ``Entry(node, kind, values)`` holds its values. The learner also makes *recipe* entries whose value
    is ``fn(*children values)``, computed on first use and kept in a bounded cache.
    """

    __slots__ = ("_cache", "_recipe", "_values", "kind", "node", "nonneg", "uid")

    def __init__(self, node: Node, kind: Kind, values: tuple[Tensor, ...] | None = None, *,
                 recipe: tuple[Callable[..., Tensor], tuple[Entry, ...]] | None = None,
                 cache: MapCache | None = None, uid: int | None = None) -> None:
        if values is None and (recipe is None or cache is None):
            raise ValueError("an entry needs values or a recipe and a cache")
        self.node = node
        self.kind = kind
        self._values = values
        self._recipe = recipe
        self._cache = cache
        self.uid = new_uid() if uid is None else uid
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
        return 0 if self._values is None else nbytes_of(self._values)

    def __repr__(self) -> str:
        return f"Entry({self.node}, {self.kind!s})"


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
        # one pass each (NaN and ±inf show up), then one read of all the bounds as Python floats
        bounds = torch.stack([torch.stack(torch.aminmax(v)).to(torch.float64) for v in values]).tolist()
        return cls(all(math.isfinite(lo) and math.isfinite(hi) for lo, hi in bounds),
                   any(lo != 0 or hi != 0 for lo, hi in bounds),
                   all(lo >= 0 for lo, _ in bounds))

    def __and__(self, other: Signature) -> Signature:
        return Signature(self.finite and other.finite, self.nonzero or other.nonzero, self.nonneg and other.nonneg)


def lift_args(op: str, args: tuple[Entry, ...], acts: Callable[[str], Entry]) -> tuple[Entry, ...]:
    """The entries whose values ``op`` is computed from: ``args``, and for ``cam`` also the activations entry of
    its argument's layer (``acts(key)``), which the node does not show (``cam(α)`` reads A at α's layer)."""
    return (*args, acts(acts_key(args[0].node))) if op == "cam" else args


def make_entry(node: Node, op: str, args: tuple[Entry, ...], kind: Kind, cache: MapCache, deferred: bool,
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


BankItem = tuple[int, str, tuple[int, ...], int, Any]
"""``(uid, op, child uids, kind, extra)``: ``op`` ``"leaf"`` with ``extra`` the terminal name or constant, or
an operator with ``extra`` whether the (map) value is deferred"""
BankReply = tuple[Signature | None, int, bool, tuple[int, ...]] | None
"""``(signature or None when the operator needs none, bytes held, whether the bytes scale with the images, ids of
equal earlier entries)``; None for a deferred entry"""


class ValueBank:
    """The values of the learner's bank on one set of images (every view), built from the learner's proposals.

    Args:
        per_view: per view (base first), terminal name → its value (the learner's leaves and the activations).
        max_size: the grammar's size limit (entries of that size are never children: recipe only).
        cache_bytes: the budget of the map cache (:class:`MapCache`).
        key: the bucket key of a value (equal values must share it; default :func:`exact_key`).

    Example::

        bank = ValueBank([{"A": acts, "G": grads}], max_size=4, cache_bytes=1 << 28)
        bank.bank([(0, "leaf", (), int(Kind.MAP), "A"), (1, "leaf", (), int(Kind.MAP), "G"),
                   (2, "*", (0, 1), int(Kind.MAP), False)])  # [(Signature, bytes, True, ()), ...]
        bank.values(2)  # A * G on every view
    """

    def __init__(self, per_view: Sequence[dict[str, Tensor]], max_size: int, cache_bytes: int,
                 key: Callable[[tuple[Tensor, ...]], int] | None = None) -> None:
        self.per_view = list(per_view)
        self.key = exact_key if key is None else key
        ref = next((v for pv in self.per_view for v in pv.values()), None)
        self.device = torch.device("cpu") if ref is None else ref.device
        self.max_size = max_size
        self.cache = MapCache(cache_bytes)
        self.entries: dict[int, Entry] = {}
        self._acts: dict[str, Entry] = {}
        self._keys: dict[int, tuple[int, int]] = {}
        self._seen: dict[tuple[int, int], list[Entry]] = {}

    def values(self, uid: int) -> tuple[Tensor, ...]:
        """The value of entry ``uid`` on every view (recomputed from its recipe when evicted)."""
        return self.entries[uid].values

    def _leaf(self, uid: int, kind: Kind, name: Any) -> Entry:
        if isinstance(name, str):
            return Entry(Terminal(name), kind, tuple(pv[name] for pv in self.per_view), uid=uid)
        value = torch.tensor(float(name), device=self.device)
        return Entry(Const(float(name)), kind, (value,) * len(self.per_view), uid=uid)

    def _acts_entry(self, key: str) -> Entry:
        """The activations leaf ``key`` (``A`` or ``A@LAYER``) that ``cam`` reads, a terminal of the grammar or not."""
        if key not in self._acts:
            self._acts[key] = Entry(Terminal(key), Kind.MAP, tuple(pv[key] for pv in self.per_view))
        return self._acts[key]

    def forget(self, uid: int) -> None:
        """Drop entry ``uid`` (pruned or rejected by the learner): no later item compares with it."""
        entry = self.entries.pop(uid, None)
        key = self._keys.pop(uid, None)
        if entry is not None and key is not None:
            bucket = self._seen.get(key, [])
            if entry in bucket:
                bucket.remove(entry)
        self.cache.discard(uid)

    def bank(self, items: Sequence[BankItem], drop: Sequence[int] = ()) -> list[BankReply]:
        """Build the proposed entries (after forgetting the entries ``drop`` the learner pruned or rejected) and
        reply per item (:data:`BankReply`). Every built entry is remembered, so later items (and later calls)
        compare with it; the learner's ``drop`` lists keep the bank equal to the one it decided."""
        for uid in drop:
            self.forget(uid)
        out: list[BankReply] = []
        for uid, op, children, kind_i, extra in items:
            kind = Kind(kind_i)
            if op == "leaf":
                entry = self._leaf(uid, kind, extra)
                values: tuple[Tensor, ...] | None = entry.values
            else:
                args = tuple(self.entries[c] for c in children)
                node = Call(op, tuple(a.node for a in args))
                entry, values = make_entry(node, op, lift_args(op, args, self._acts_entry), kind, self.cache,
                                           bool(extra), self.max_size, uid=uid)
            self.entries[uid] = entry
            if values is None:
                out.append(None)
                continue
            sig = None if op in SAFE_UNARY else Signature.of(values)
            key = (kind_i, self.key(values))
            bucket = self._seen.setdefault(key, [])
            equal = tuple(o.uid for o in bucket if same_values(values, o.values))
            bucket.append(entry)
            self._keys[uid] = key
            out.append((sig, entry.nbytes(), values[0].dim() > 0, equal))
        return out
