"""The learner: bottom-up, type-directed enumeration of expressions by size over a bank of memoized,
value-distinct sub-expressions.

Every bank entry carries its *value* on every cached input set (the synthesis images and each metric
view), so building a bigger expression is one tensor operation on its children's values — no forward or
backward pass. Two sub-expressions whose values agree on every image and view are interchangeable inside
any larger expression, so only the first (smallest) one is kept: this is the sound, value-level
equivalence pruning of the bank. Commutative operators are applied to each unordered pair once.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

import torch
from torch import Tensor

from ..expr import OPS, TERMINALS, Call, Const, Kind, Node, Terminal
from .grammar import Grammar

_SAMPLE = 1 << 12  #: elements of a value that enter its fingerprint
_BLOCKS = 32


def fingerprint(values: tuple[Tensor, ...], levels: float) -> tuple[int, int]:
    """A hash of tensors that equal tensors always share and nearly equal ones almost always share.

    From a fixed strided sample of at most 4096 elements per tensor, divided by its largest magnitude, it
    rounds 64 block statistics (block means and mean magnitudes) to ``1/levels``. Block statistics
    average out float noise, so values that differ only by rounding (``sum(G)/hw`` vs ``mean(G)``) land in
    the same bucket except with a small probability — which only costs a missed pruning, never a wrong
    one: every match is verified on the full values before anything is pruned.
    """
    parts = []
    for v in values:
        flat = v.reshape(-1)
        step = max(1, flat.numel() // _SAMPLE)
        parts.append(flat[::step][:_SAMPLE])
    sample = torch.cat(parts).to(torch.float64)
    scale = sample.abs().max()
    if scale == 0:
        return (0, 0)
    blocks = _BLOCKS
    pad = (-sample.numel()) % blocks
    if pad:
        sample = torch.cat([sample, sample.new_zeros(pad)])
    rows = (sample / scale).reshape(blocks, -1)
    stats = torch.round(torch.cat([rows.mean(1), rows.abs().mean(1)]) * levels).tolist()
    exponent = int(torch.floor(torch.log2(scale) * 8).item())
    return (hash((exponent, *stats)), sample.numel())


@dataclass
class Entry:
    """A bank entry: an expression, its kind and its value on each input set (base first)."""

    node: Node
    kind: Kind
    values: tuple[Tensor, ...]

    @property
    def size(self) -> int:
        return self.node.size

    def nbytes(self) -> int:
        return sum(v.numel() * v.element_size() for v in self.values)


@dataclass
class LearnerStats:
    enumerated: int = 0  #: expressions built and typed correctly
    subexpr_pruned: int = 0  #: value-equivalent to a smaller sub-expression
    rejected: dict[str, int] = field(default_factory=dict)  #: non-finite or identically zero values
    bank_size: int = 0
    bank_bytes: int = 0
    bank_full: bool = False


class Learner:
    """Enumerates the grammar's expressions by size, yielding each value-distinct entry once.

    Args:
        grammar: the search space.
        leaves: terminal name → its values, one tensor per input set (maps ``(N,K,h,w)``, vectors
            ``(N,K,1,1)``).
        max_bank_bytes: memory cap of the bank; past it, new entries are still yielded (as candidates)
            but no longer stored for composition.
    """

    def __init__(self, grammar: Grammar, leaves: Mapping[str, tuple[Tensor, ...]],
                 max_bank_bytes: int = 2 << 30, tolerance: float = 1e-5) -> None:
        self.grammar = grammar
        self.leaves = leaves
        self.max_bank_bytes = max_bank_bytes
        self.tolerance = tolerance
        self.bank: dict[int, list[Entry]] = {}
        self._seen: dict[tuple[int, int], list[Entry]] = {}
        self.stats = LearnerStats()
        ref = next(iter(leaves.values()))
        self._n_sets = len(ref)
        self._device = ref[0].device

    # -- building ------------------------------------------------------------------------------------

    def _leaf_entries(self) -> Iterator[Entry]:
        for name in self.grammar.terminals:
            yield Entry(Terminal(name), TERMINALS[name], self.leaves[name])
        for c in self.grammar.constants:
            value = torch.tensor(float(c), device=self._device)
            yield Entry(Const(float(c)), Kind.SCALAR, (value,) * self._n_sets)

    def _useful(self, kind: Kind, size: int) -> bool:
        """A map is a candidate only in pixel form; in channel form it must still fit under a reduction."""
        return not (kind == Kind.MAP and size >= self.grammar.max_size and "pixel" not in self.grammar.forms)

    def _combine(self, op: str, args: tuple[Entry, ...]) -> Entry | None:
        spec = OPS[op]
        kind = spec.result_kind(tuple(a.kind for a in args))
        if kind is None or not self._useful(kind, 1 + sum(a.size for a in args)):
            return None
        values = tuple(spec.fn(*(a.values[i] for a in args)) for i in range(self._n_sets))
        return Entry(Call(op, tuple(a.node for a in args)), kind, values)

    def _admit(self, entry: Entry) -> bool:
        """Check finiteness and value-distinctness; store in the bank. False when pruned/rejected."""
        self.stats.enumerated += 1
        bounds = [torch.aminmax(v) for v in entry.values]  # one pass each; NaN propagates
        scales = [max(-float(lo), float(hi)) for lo, hi in bounds]
        if not all(math.isfinite(x) for x in scales):
            self._reject("non-finite value")
            return False
        if entry.kind != Kind.SCALAR and max(scales) == 0.0:
            self._reject("identically zero")
            return False
        key = (int(entry.kind), *fingerprint(entry.values, 1e4))
        for other in self._seen.get(key, []):
            if all(self._same(a, b, scale) for a, b, scale in zip(entry.values, other.values, scales, strict=True)):
                self.stats.subexpr_pruned += 1
                return False
        if self.stats.bank_bytes + entry.nbytes() > self.max_bank_bytes:
            self.stats.bank_full = True
            return True  # a fresh candidate, but not kept for composition
        self._seen.setdefault(key, []).append(entry)
        self.bank.setdefault(entry.size, []).append(entry)
        self.stats.bank_size += 1
        self.stats.bank_bytes += entry.nbytes()
        return True

    def _same(self, a: Tensor, b: Tensor, scale: float) -> bool:
        """Values equal within ``tolerance`` relative to their scale (full comparison, no sampling)."""
        if a.shape != b.shape:
            return False
        return float((a - b).abs().amax()) <= self.tolerance * scale

    def _reject(self, reason: str) -> None:
        self.stats.rejected[reason] = self.stats.rejected.get(reason, 0) + 1

    def entries(self) -> Iterator[Entry]:
        """All value-distinct expressions of the grammar, by increasing size (deterministic order)."""
        ops = [OPS[o] for o in self.grammar.operators]
        for size in range(1, self.grammar.max_size + 1):
            if size == 1:
                for entry in self._leaf_entries():
                    if self._admit(entry):
                        yield entry
                continue
            for op in ops:
                if op.arity == 1:
                    for child in list(self.bank.get(size - 1, [])):
                        if child.kind == Kind.SCALAR:
                            continue
                        entry = self._combine(op.name, (child,))
                        if entry is not None and self._admit(entry):
                            yield entry
                    continue
                for left in range(1, size - 1):
                    right = size - 1 - left
                    if op.commutative and left > right:
                        continue
                    lefts, rights = list(self.bank.get(left, [])), list(self.bank.get(right, []))
                    for i, a in enumerate(lefts):
                        for j, b in enumerate(rights):
                            if op.commutative and left == right and j < i:
                                continue
                            if a.kind == Kind.SCALAR and b.kind == Kind.SCALAR:
                                continue  # constant folding: the grammar's constants are the constants
                            entry = self._combine(op.name, (a, b))
                            if entry is not None and self._admit(entry):
                                yield entry
