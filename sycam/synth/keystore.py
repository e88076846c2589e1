"""Scores shared by exact equivalence key: a candidate whose key equals (byte for byte) that of a candidate scored
before takes its scores without any forward (:meth:`sycam.metrics.base.Metric.equivalence_key`).

One store serves every executor: on one machine a key is the metric's key tensor as bytes; on shards it is the
shards' BLAKE2 digests of their parts of that tensor, concatenated in shard order (equal on every shard ⇔ equal).
"""

from __future__ import annotations

import hashlib
import zlib
from typing import Generic, TypeVar

V = TypeVar("V")

KEY_STORE_BYTES = 512 << 20
"""Memory for the equivalence keys of scored candidates (compressed); past it, new keys are no longer kept."""


def digest(blob: bytes) -> bytes:
    """The 16-byte BLAKE2b digest keys are looked up (and shard parts combined) by."""
    return hashlib.blake2b(blob, digest_size=16).digest()


class KeyStore(Generic[V]):
    """Per metric column: key → the value scored for it (per-image scores, or their exact partial sums).

    Keys are looked up by digest and confirmed on the stored (zlib-compressed) bytes, so a hit is exact.

    >>> store: KeyStore[str] = KeyStore()
    >>> store.put(0, b"k1", "scores of k1")
    >>> store.match(0, [b"k1", b"k2", b"k2"])
    ({0: 'scores of k1'}, [(2, 1)], [1])
    """

    def __init__(self, budget: int = KEY_STORE_BYTES) -> None:
        self.budget = budget
        self.used = 0
        self._columns: dict[int, dict[bytes, tuple[bytes, V]]] = {}

    def match(self, column: int, blobs: list[bytes]) -> tuple[dict[int, V], list[tuple[int, int]], list[int]]:
        """For the keys ``blobs`` of a batch: ``hits`` (index → stored value), ``copies`` ((index, earlier index
        in this batch with the same key)) and ``todo`` (the indices to score, first of their key)."""
        store = self._columns.setdefault(column, {})
        hits: dict[int, V] = {}
        copies: list[tuple[int, int]] = []
        todo: list[int] = []
        first: dict[bytes, int] = {}
        for i, blob in enumerate(blobs):
            d = digest(blob)
            hit = store.get(d)
            if hit is not None and zlib.decompress(hit[0]) == blob:
                hits[i] = hit[1]
            elif d in first and blobs[first[d]] == blob:
                copies.append((i, first[d]))
            else:
                first.setdefault(d, i)
                todo.append(i)
        return hits, copies, todo

    def batch(self, column: int, blobs: list[bytes] | None, n: int) -> KeyBatch[V]:
        """The lookup of a batch of ``n`` candidates by their keys ``blobs`` (None: the metric has no keys, every
        candidate is scored)."""
        return KeyBatch(self, column, blobs, n)

    def put(self, column: int, blob: bytes, value: V) -> None:
        """Keep ``value`` for key ``blob`` while the budget lasts."""
        if self.used >= self.budget:
            return
        packed = zlib.compress(blob, 1)
        self.used += len(packed)
        self._columns.setdefault(column, {})[digest(blob)] = (packed, value)


class KeyBatch(Generic[V]):
    """One batch's pass through a :class:`KeyStore`: the values found there, :attr:`todo` (the candidates to score,
    each the first of its key), :meth:`scored` for each of those, then :meth:`done` copies values to the later
    candidates of the batch with an equal key.

    >>> store: KeyStore[str] = KeyStore()
    >>> b = store.batch(0, [b"k", b"k", b"j"], 3)
    >>> b.todo
    [0, 2]
    >>> b.scored(0, "scores of k"); b.scored(2, "scores of j")
    >>> b.done()
    (['scores of k', 'scores of k', 'scores of j'], [False, True, False])
    """

    def __init__(self, store: KeyStore[V], column: int, blobs: list[bytes] | None, n: int) -> None:
        self._store, self._column, self._blobs = store, column, blobs
        self.values: list[V | None] = [None] * n
        self.shared = [False] * n
        """whether each value came from an earlier candidate with an equal key (no scoring)"""
        if blobs is None:
            self._copies: list[tuple[int, int]] = []
            self.todo = list(range(n))
            return
        hits, self._copies, self.todo = store.match(column, blobs)
        for i, v in hits.items():
            self.values[i], self.shared[i] = v, True

    def scored(self, i: int, value: V | None) -> None:
        """Candidate ``i`` of :attr:`todo` scored ``value`` (None: not scored, e.g. raced out; not kept)."""
        self.values[i] = value
        if value is not None and self._blobs is not None:
            self._store.put(self._column, self._blobs[i], value)

    def done(self) -> tuple[list[V | None], list[bool]]:
        """Every candidate's value and whether it was shared, after copying within the batch."""
        for i, src in self._copies:
            self.values[i], self.shared[i] = self.values[src], True
        return self.values, self.shared
