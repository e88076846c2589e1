"""Sums of floating-point scores with no rounding, so an aggregate does not depend on how images are split.

A mean computed in float32 depends on the order of its additions: the mean over 18 images on one machine and
the mean of two partial sums of 9 images on two workers differ in the last bits, and near-ties (candidates
whose scores differ by 1e-7) can then swap places. :class:`ExactSum` adds the scores *exactly*: every finite
float ``x = m · 2^e`` (``m`` a 53-bit integer after widening to float64, which is exact for float32) becomes the
integer ``m · 2^(e + 1126)`` (``2^-1126`` is the smallest unit a float64 can hold: ``2^-1074`` subnormals times
the 53-bit mantissa), and integers add associatively. Partial sums from any partition of the images combine
into the same total, and :meth:`ExactSum.mean` rounds the total divided by the count once, correctly (Python's
integer true division). Non-finite values (which :meth:`sycam.metrics.base.Metric.evaluate` never returns) are
kept apart in float arithmetic, so a NaN or ±inf still propagates.

>>> import torch
>>> x = torch.tensor([[0.1, 0.2, 0.3, 1e8], [1.0, 2.0, 3.0, 4.0]])
>>> a, b = partial_sums(x[:, :2]), partial_sums(x[:, 2:])
>>> [s.mean() for s in (a[0] + b[0], a[1] + b[1])] == exact_means(x).tolist()
True
>>> exact_means(torch.tensor([[1.0, 2.0]])).tolist()
[1.5]
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

_UNIT = 1126
"""``2^-_UNIT`` is the unit of :attr:`ExactSum.units`: the smallest float64 subnormal (2^-1074) over 2^52."""
_MANTISSA = 53
_LOW = 26
"""mantissas are summed as two int64 halves (27 and 26 bits), so 2^36 values never overflow a half"""


@dataclass(frozen=True)
class ExactSum:
    """The exact sum of ``count`` scores: ``units · 2^-1126`` for the finite ones plus ``special``, the float
    sum of the non-finite ones (0.0 when there are none). Add partial sums with ``+``.

    >>> (ExactSum(3 << 1126, 2) + ExactSum(1 << 1126, 2)).mean()
    1.0
    """

    units: int = 0
    """the finite scores' sum in units of 2^-1126 (an exact integer)"""
    count: int = 0
    """how many scores were added"""
    special: float = 0.0
    """the sum of the non-finite scores (NaN or ±inf), 0.0 when there are none"""

    def __add__(self, other: ExactSum) -> ExactSum:
        return ExactSum(self.units + other.units, self.count + other.count, self.special + other.special)

    def mean(self) -> float:
        """The mean, rounded once (NaN for no scores; the non-finite part wins when there is one)."""
        if self.special != 0.0 or math.isnan(self.special):
            return self.special
        if self.count == 0:
            return math.nan
        return self.units / (self.count << _UNIT) if self.units else 0.0


def partial_sums(scores: Tensor) -> list[ExactSum]:
    """One :class:`ExactSum` per row of ``scores`` ``(B, N)`` (any float dtype, any device)."""
    if scores.dim() != 2:
        raise ValueError(f"partial_sums expects scores (B, N), got shape {tuple(scores.shape)}")
    x = scores.detach().to("cpu", torch.float64)
    rows, n = x.shape
    finite = torch.isfinite(x)
    special = torch.where(finite, torch.zeros_like(x), x).sum(-1).tolist() if not bool(finite.all()) else [0.0] * rows
    mant, exp = torch.frexp(torch.where(finite, x, torch.zeros_like(x)))
    ints = (mant * (1 << _MANTISSA)).to(torch.int64)  # exact: |mant| < 1, 53 bits
    shift = (exp.to(torch.int64) - _MANTISSA + _UNIT).clamp_min(0)
    lo_mask = (1 << _LOW) - 1
    hi, lo = ints >> _LOW, ints & lo_mask  # hi · 2^26 + lo == ints (arithmetic shift floors negatives)
    n_shift = int(shift.max()) + 1 if shift.numel() else 1
    group = (torch.arange(rows).unsqueeze(1) * n_shift + shift).reshape(-1)
    sums_hi = torch.zeros(rows * n_shift, dtype=torch.int64).index_add_(0, group, hi.reshape(-1))
    sums_lo = torch.zeros(rows * n_shift, dtype=torch.int64).index_add_(0, group, lo.reshape(-1))
    units = [0] * rows
    for g in torch.nonzero((sums_hi != 0) | (sums_lo != 0)).flatten().tolist():
        r, s = divmod(g, n_shift)
        units[r] += ((int(sums_hi[g]) << _LOW) + int(sums_lo[g])) << s
    return [ExactSum(u, n, sp) for u, sp in zip(units, special, strict=True)]


def exact_means(scores: Tensor) -> Tensor:
    """Means over the last axis of ``scores`` ``(*B, N)``, each the exact sum divided by ``N`` and rounded once:
    a float64 tensor ``(*B,)`` that does not depend on the order of the images or how they were split."""
    lead = scores.shape[:-1]
    flat = scores.reshape(-1, scores.shape[-1]) if scores.dim() else scores.reshape(1, 1)
    means = [s.mean() for s in partial_sums(flat)]
    return torch.tensor(means, dtype=torch.float64).reshape(lead)
