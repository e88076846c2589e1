"""Racing (``SynthesisConfig.racing``): score a candidate on a growing share of the synthesis images and drop
it as soon as it provably cannot enter the leaderboard.

The synthesis images are split once, in an order fixed before the race (the search passes those the classic
methods score worst on first, :func:`hardest_first`; default: seeded random), into disjoint blocks that end at
5, 10, 15, 20, 25, 30, 40, 50, 75 and 100 % of them (rounded up, :data:`FRACTIONS`); a block is scored in parts
of at most ``ceil(N / 40)`` images (:data:`CHECK_EVERY`) and the bound is checked after every part, so a
hopeless candidate is dropped at most 2.5 % of the images after its bound crossed the bar. A candidate is scored block
by block; each image is scored once, by the metric's ordinary path
(:meth:`sycam.workspace.Workspace.evaluate_layers`, whose forwards have a fixed shape), so the per-image scores of
a survivor are exactly those of the exact run. After a block, with ``m`` of the ``N`` images scored (sum ``s``),
the best mean the candidate can still reach is

.. math:: \\bar s_{\\text{best}} = \\frac{s + \\sum_{i\\ \\text{unseen}} v_{\\text{best}, i}}{N},

where ``v_best`` is the best value one image can score (a metric states its range in :func:`score_range`;
average drop and increase in confidence with ``output="prob"`` lie in [0, 1]).
For ``deletion_auc`` and ``insertion_auc`` with ``output="prob"`` the best value is per image
(:func:`best_per_image`): the curve's end points (the clean input and the all-baseline input) do not depend on
the candidate, so with every inner point at its best (probability 0 for deletion, 1 for insertion) the
trapezoid gives the best AUC image ``i`` can reach. This is a worst-case bound, not a
probabilistic one: when ``\\bar s_{\\text{best}}`` is worse than the leaderboard's last entry by more than the
rounding margin, the candidate could not have entered the leaderboard (nor become the best, nor the winner)
in the exact run, and it is counted ``raced_out`` instead of ``candidates_scored``. While the leaderboard is
not full, every candidate enters it, so nothing is raced out.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor

from ..expr import Node
from ..metrics.base import Metric
from ..workspace import Workspace

FRACTIONS = (0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5, 0.75, 1.0)
"""Cumulative shares of the synthesis images scored at each stage of a race."""
CHECK_EVERY = 1 / 40
"""Share of the synthesis images (rounded up) after which a candidate's bound is checked again: blocks are
scored in parts of this size (each part has its own workspace, so a part is one metric call)."""
MARGIN = 1e-6
"""A bound must be worse than the bar by more than this share of the metric's range to drop a candidate
(covers float32 rounding of the mean)."""


def score_range(metric: Metric) -> tuple[float, float] | None:
    """The ``(lowest, highest)`` value one image can score under ``metric``, or None when unknown (racing is
    then off). A metric may state it as an attribute ``score_range``; deletion and insertion AUC with
    ``output="prob"`` integrate a probability over [0, 1], so they lie in [0, 1].

    >>> from sycam.metrics import get_metric
    >>> score_range(get_metric("deletion_auc")), score_range(get_metric("deletion_auc", output="logit"))
    ((0.0, 1.0), None)
    """
    stated = getattr(metric, "score_range", None)
    if stated is not None:
        lo, hi = (float(v) for v in stated)
        return (lo, hi) if math.isfinite(lo) and math.isfinite(hi) and lo <= hi else None
    if metric.name in ("deletion_auc", "insertion_auc") and getattr(metric, "output", None) == "prob":
        return (0.0, 1.0)
    return None


def best_per_image(metric: Metric, ws: Workspace) -> Tensor | None:
    r"""The best score ``(N,)`` each image of ``ws`` can reach under ``metric``, whatever the map: for deletion
    (insertion) AUC with ``output="prob"`` the trapezoid of the curve whose candidate-independent end points
    ``f_0`` (clean input; all-baseline for insertion) and ``f_S`` (all-baseline; clean for insertion) are
    forwarded once and whose inner points are 0 (1):

    .. math:: v_i = \tfrac{x_1 - x_0}{2}(f_{0,i} + y) + \sum_{k=1}^{S-2} (x_{k+1} - x_k)\, y
              + \tfrac{x_S - x_{S-1}}{2}(y + f_{S,i}), \quad y \in \{0, 1\},\ x_k = c_k / P.

    Otherwise the best end of :func:`score_range` for every image; None when that is unknown."""
    rng = score_range(metric)
    if rng is None:
        return None
    n = len(ws.samples)
    best = torch.full((n,), rng[1] if metric.higher_is_better else rng[0], dtype=torch.float64)
    if metric.name not in ("deletion_auc", "insertion_auc") or getattr(metric, "output", None) != "prob":
        return best
    from ..metrics._util import target_scores

    probe = copy.deepcopy(metric)
    ctx = ws.context([])
    s = ws.samples
    clean = probe.clean_scores(ctx).detach().to("cpu", torch.float64)  # type: ignore[attr-defined]
    base = probe.baseline_images(s)  # type: ignore[attr-defined]
    on_base = target_scores(ctx.logits(base), s.labels, "prob").detach().to("cpu", torch.float64)
    steps = int(probe.steps)  # type: ignore[attr-defined]
    p = int(s.images.shape[-2] * s.images.shape[-1])
    x = [c / p for c in probe.counts(p)]  # type: ignore[attr-defined]
    first, last = (clean, on_base) if metric.name == "deletion_auc" else (on_base, clean)
    y = 1.0 if metric.higher_is_better else 0.0
    inner = sum(x[k + 1] - x[k] for k in range(1, steps - 1)) * y
    value = (x[1] - x[0]) / 2 * (first + y) + inner + (x[steps] - x[steps - 1]) / 2 * (y + last)
    if steps == 1:
        value = (x[1] - x[0]) / 2 * (first + last)
    return torch.minimum(value, best) if metric.higher_is_better else torch.maximum(value, best)


def blocks(n: int, seed: int = 0, fractions: Sequence[float] = FRACTIONS,
           order: Sequence[int] | None = None) -> list[list[int]]:
    """Disjoint blocks of image positions covering ``range(n)`` in ``order`` (default: a seeded random order);
    block ``k`` ends at ``ceil(fractions[k] * n)`` (empty blocks are dropped).

    >>> blocks(8, fractions=(0.1, 0.25, 0.5, 1.0))
    [[4], [0], [7, 3], [2, 5, 1, 6]]
    >>> blocks(4, order=[3, 1, 2, 0])
    [[3], [1], [2], [0]]
    """
    if order is None:
        order = torch.randperm(n, generator=torch.Generator().manual_seed(seed)).tolist()
    elif sorted(order) != list(range(n)):
        raise ValueError(f"order must be a permutation of range({n})")
    order = list(order)
    ends = sorted({min(n, math.ceil(f * n)) for f in fractions} | {n})
    out, start = [], 0
    for end in ends:
        if end > start:
            out.append(order[start:end])
        start = end
    return out


def hardest_first(metric: Metric, rows: Sequence[Sequence[float]]) -> list[int]:
    """Image positions ordered by the mean of ``rows`` (per-image scores of the classic methods, one row each),
    worst first (ties: lower position first). Any order fixed before a race keeps the bound exact; racing the
    images on which maps score worst first makes a hopeless candidate's partial sum grow fastest, so it is
    dropped after fewer images.

    >>> from sycam.metrics import get_metric
    >>> hardest_first(get_metric("average_drop"), [[0.1, 0.9, 0.5], [0.3, 0.7, 0.5]])
    [1, 2, 0]
    """
    if not rows:
        return []
    mean = torch.tensor([list(r) for r in rows], dtype=torch.float64).nan_to_num(metric.worst()).mean(0)
    keys = [metric.sort_key(float(v)) for v in mean.tolist()]
    return sorted(range(len(keys)), key=lambda i: (-keys[i], i))


@dataclass
class Race:
    """Blocks of the synthesis images (``positions``), scored in parts (``parts``: each block cut into pieces of
    at most ``ceil(CHECK_EVERY * N)`` images), each part with its own workspace and copy of the metric (so that
    the metric's per-context memo of forwards lives per part and is shared by every candidate raced on it).

    Build with :meth:`build`; :meth:`run` races a batch of candidates against a bar."""

    metric: Metric
    positions: list[list[int]]
    workspaces: list[Workspace]
    metrics: list[Metric]
    best: Tensor
    """the best score each image can reach, ``(N,)`` (:func:`best_per_image`)"""
    margin: float
    n: int
    parts: list[list[int]] = field(default_factory=list)
    """the scoring units, in race order: ``positions`` cut into pieces (one workspace and metric copy each);
    empty: the blocks themselves"""
    log: list[tuple[str, int, bool]] = field(default_factory=list)
    """per candidate raced, in turn: its expression, the images it was scored on and whether it was dropped
    (for benchmarks)"""

    @classmethod
    def build(cls, ws: Workspace, metric: Metric, seed: int = 0, order: Sequence[int] | None = None) -> Race | None:
        """A race over the samples of ``ws`` for ``metric``; None when the metric's range is unknown or there
        are fewer than two blocks. ``order``: the images in the order they are raced (default: seeded random;
        the search passes the hardest images first, :func:`hardest_first`)."""
        rng = score_range(metric)
        n = len(ws.samples)
        parts = blocks(n, seed, order=order)
        if rng is None or len(parts) < 2:
            return None
        best = best_per_image(metric, ws)
        assert best is not None
        step = max(1, math.ceil(CHECK_EVERY * n))
        pieces = [block[a:a + step] for block in parts for a in range(0, len(block), step)]
        spaces = [Workspace(ws.model, ws.layer, ws.samples.subset(p), ws.options) for p in pieces]
        return cls(metric, parts, spaces, [copy.deepcopy(metric) for _ in pieces], best, MARGIN * (rng[1] - rng[0]),
                   n, pieces)

    def __post_init__(self) -> None:
        if not self.parts:
            self.parts = [list(p) for p in self.positions]
        if len(self.parts) != len(self.workspaces) or len(self.parts) != len(self.metrics):
            raise ValueError("a race needs one workspace and one metric per part")
        # best sum over the parts from k on (k = 0 .. len(parts))
        sums = [float(self.best[p].sum()) if p else 0.0 for p in self.parts]
        self._best_after = [sum(sums[k:]) for k in range(len(sums) + 1)]

    def optimistic_mean(self, total: float, stages: int) -> float:
        """The best full mean a candidate whose scores on the first ``stages`` blocks sum to ``total`` can
        still reach (every unseen image at its best)."""
        unseen = [i for part in self.positions[stages:] for i in part]
        return (total + float(self.best[unseen].sum())) / self.n

    def cannot_beat(self, bound: float, bar: float) -> bool:
        """Whether the optimistic mean ``bound`` is worse than ``bar`` beyond the rounding margin."""
        return self.metric.sort_key(bound) > self.metric.sort_key(bar) + self.margin

    def run(self, layers: Callable[[str], Tensor], nodes: Sequence[Node], bar: float | None) -> list[Tensor | None]:
        """Race candidates ``nodes`` whose layer maps ``(B, N, h, w)`` on each view are ``layers(view)``.

        Returns per candidate its per-image scores ``(N,)`` in the samples' order, or None if it was dropped
        (its optimistic mean after some block cannot beat ``bar``; ``bar=None``: nothing is dropped)."""
        b = len(nodes)
        rows = torch.full((b, self.n), math.nan, dtype=torch.float64)
        totals = [0.0] * b
        alive = list(range(b))
        seen_by = [0] * b
        last = len(self.parts) - 1
        for k, (pos, space, metric) in enumerate(zip(self.parts, self.workspaces, self.metrics, strict=True)):
            if not alive:
                break
            cand = torch.tensor(alive)
            img = torch.tensor(pos)

            def block(view: str, cand: Tensor = cand, img: Tensor = img) -> Tensor:
                maps = layers(view)
                return maps.index_select(0, cand.to(maps.device)).index_select(1, img.to(maps.device))

            got = space.evaluate_layers(metric, block, [nodes[i] for i in alive]).detach().to("cpu", torch.float64)
            rows[cand.unsqueeze(1), img.unsqueeze(0)] = got
            for i, t in zip(alive, got.sum(1).tolist(), strict=True):
                seen_by[i] += len(pos)
                totals[i] += t
            if bar is None or k == last:
                continue
            rest = self._best_after[k + 1]
            alive = [i for i in alive if not self.cannot_beat((totals[i] + rest) / self.n, bar)]
        self.log.extend((str(nodes[i]), seen_by[i], i not in alive) for i in range(b))
        return [rows[i].to(torch.float32) if i in alive else None for i in range(b)]
