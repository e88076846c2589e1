"""The shard plane: the one protocol between the search's driver (:class:`~sycam.synth.search.Search`) and the
images, wherever they are. A local run is the plane with one :class:`~sycam.synth.shard.Shard` in this process
(no pickling); a sharded run is the same plane over the shards of an executor (:mod:`sycam.synth.executors`:
in-process or Ray actors). :class:`ShardPlane` lists the protocol's methods.

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
- aggregates are means of exact sums (:mod:`sycam.exactsum`), so they do not depend on the split of the images;
- racing (``config.racing``) runs on the shard (:meth:`~sycam.synth.shard.Shard.run_race`) and needs every
  synthesis image on one shard: its bound reads the best score every unseen image can still reach after each
  stage, so a plane of several shards refuses it (:class:`~sycam.synth.errors.SynthesisError`).

Shards are cut at multiples of the extraction batch (:func:`~sycam.synth.executors.plan_shards`), so the
terminals, per-image scores and therefore the winner, every score and every counter equal those of a local run
with the same extraction batch and the same number of torch threads as each worker (tests/synth/test_sharded.py checks
it; with two threads against one, CPU kernels may sum in another order: scores then differ by about 2e-8, and a
near-tie may fall the other way). The driver reads the candidate stream ahead in
blocks (one round trip per block, not per candidate) and rewinds the learner's counters to the last candidate
the search took when it stops early.

The views of robustness metrics are drawn for the whole split on the driver and sent to the shards with the
images (one shard draws its own, as a local run always did).
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import operator
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from ..data.samples import Samples
from ..exactsum import ExactSum
from ..expr import Node
from ..metrics.base import Metric
from ..terminals import ExtractOptions
from ..workspace import Evaluation, metric_views
from .bank import BankItem, Signature
from .errors import SynthesisError
from .executors import InProcessExecutor
from .learner import BANK_CHUNK, LOCAL_BANK_CHUNK, fingerprint_positions
from .transport import Executor, balanced_batch, plan_shards

__all__ = ["BANK_CHUNK", "TRIAGE_BLOCK", "ShardPlane", "Triaged", "evaluate_sharded"]

TRIAGE_BLOCK = 64
"""candidates read ahead and triaged at once (one batched pass of both oracles; on shards one round trip)"""

Triaged = tuple[bool, int, int, Tensor]
"""per candidate: finite on every shard, blank maps (summed), blank-or-faint maps (summed), and its heatmap at the
positions the fingerprint samples, in position order (each shard sent its share)"""


def _concat(rows: Iterable[list[float]]) -> list[float]:
    """Per-image rows of the shards, in shard order: the split's row."""
    return list(itertools.chain.from_iterable(rows))


class ShardPlane:
    """The images of a run and the search state that grows with them, on the shards of ``executor``; the driver
    calls these typed methods and gets each answer combined exactly over the shards (module doc).

    Protocol: :meth:`start`, :meth:`open_split` / :meth:`close_split` / :meth:`has_split`, :meth:`start_search`,
    :meth:`bank`, :meth:`triage`, :meth:`distances`, :meth:`keys`, :meth:`score`, :meth:`start_race` /
    :meth:`race`, :meth:`forwards`, and the split-level scoring of the selection and the held-out evidence:
    :meth:`split_scores`, :meth:`split_degenerate`, :meth:`split_shapes`, :meth:`split_control`,
    :meth:`split_power`.

    Args:
        executor: where the shards run; None: one shard in this process (a local run: no log, no pickling).

    Example::

        plane = ShardPlane()  # or ShardPlane(RayExecutor(workers=4))
        plane.start(net, "layer4", ExtractOptions())
        plane.open_split("test", test, [metric])
        plane.split_scores("test", [parse("mean(G)")], metric, 8)  # (1, N) per-image scores
    """

    def __init__(self, executor: Executor | None = None) -> None:
        self.local = executor is None
        if executor is None:
            executor = InProcessExecutor(workers=1, threads=None)
            executor.keep_log = False  # one shard in this process is never rebuilt
        self.executor = executor
        self.plans: dict[str, list[range]] = {}
        self.batch = 1
        self._order: Tensor | None = None

    @property
    def bank_chunk(self) -> int:
        """Proposals per :meth:`bank` call: few in this process (nothing read ahead past the budget is built),
        many over workers (one round trip per call)."""
        return LOCAL_BANK_CHUNK if self.local else BANK_CHUNK

    @property
    def workers(self) -> int:
        """The most shards a split is cut into."""
        return self.executor.workers

    def _on(self, split: str, method: str, *args: Any, log: bool = False) -> list[Any]:
        """``method(*args)`` on every shard of ``split`` (the transport); the replies in shard order."""
        plan = self.plans[split]
        return self.executor.call(method, [args] * len(plan), range(len(plan)), log=log)

    # -- splits -------------------------------------------------------------------------------------------

    def start(self, model: nn.Module, layer: str | nn.Module, options: ExtractOptions) -> None:
        """Start the shards, each holding the model; splits are cut at multiples of ``options.batch_size``."""
        self.batch = options.batch_size
        self.executor.start(model, layer, options)

    def open_split(self, split: str, samples: Samples, metrics: Sequence[Metric]) -> None:
        """Send each shard its run of ``samples`` (whole extraction batches) and its rows of the views ``metrics``
        declare, drawn here for the whole split, and have it extract them as ``split``."""
        plan = plan_shards(len(samples), self.executor.workers, self.batch)
        if self.local:  # the shard draws the views and plans its forwards itself, as one process always did
            args = [(split, samples, list(metrics), None, None)]
        else:
            views = metric_views(samples, metrics)
            args = [(split, samples.subset(slice(r.start, r.stop)), list(metrics),
                     {name: v[r.start:r.stop] for name, v in views.items()}, len(samples)) for r in plan]
        self.executor.call("open_split", args, range(len(plan)), log=True)
        self.plans[split] = plan

    def close_split(self, split: str) -> None:
        """Free ``split``'s terminals on its shards."""
        if split not in self.plans:
            return
        self._on(split, "close_split", split)
        for log in self.executor.log:  # a rebuilt shard need not extract a split that is done with
            log[:] = [(m, a) for m, a in log if not (m == "open_split" and a[0] == split)]
        del self.plans[split]

    def has_split(self, split: str) -> bool:
        """Whether ``split`` is open."""
        return split in self.plans

    # -- the search's state on the synthesis split --------------------------------------------------------

    def layout(self, terminals: Sequence[str]) -> dict[str, Any]:
        """The synthesis split's views, the grid candidates are scored on, and the target layer's grid."""
        return self._on("synthesis", "layout", sorted(terminals))[0]

    def start_search(self, columns: Sequence[Metric], terminals: Sequence[str], max_size: int, cache_bytes: int,
                     layout: Mapping[str, Any]) -> None:
        """Have each synthesis shard prepare its part of the search: its terminals' values (the bank's leaves),
        the metric columns, a recompute cache of ``cache_bytes`` and the positions of its flat maps that the
        heatmap fingerprint samples."""
        samples = self._sample_positions(layout)
        plan = self.plans["synthesis"]
        self.executor.call("start_search", [(list(columns), list(terminals), max_size, cache_bytes, samples[i])
                                            for i in range(len(plan))], range(len(plan)), log=True)

    def _sample_positions(self, layout: Mapping[str, Any]) -> list[list[int]]:
        """Per shard, the positions in its flat maps (views × its images × pixels) that the heatmap fingerprint
        samples from the whole split's flat maps (views × all images × pixels); ``self._order`` says where each
        sampled position is in the shards' samples concatenated in shard order (None: in order, one shard)."""
        plan = self.plans["synthesis"]
        h, w = layout["hw"]
        hw, n, views = h * w, plan[-1].stop, layout["views"]
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
        self._order = None if len(plan) == 1 else torch.tensor([offsets[s] + k for s, k in order], dtype=torch.long)
        return per

    def forwards(self) -> int:
        """Model forwards the metrics have run on the synthesis split so far, summed over shards."""
        return sum(self._on("synthesis", "forwards"))

    def bank(self, items: list[BankItem], drop: list[int]) -> list[Any]:
        """The learner's proposed items on every synthesis shard (after forgetting ``drop``), per item the reply
        combined: ``(signature & over shards, bytes summed (when they scale with the images), ids equal on every
        shard)``, or None for a deferred item (:data:`sycam.synth.learner.BankCall`)."""
        parts = self._on("synthesis", "bank", items, drop, log=True)
        out: list[Any] = []
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

    def triage(self, items: list[tuple[int, str | None]], keep: list[int], drop: list[int],
               release: list[int]) -> list[Triaged]:
        """Triage a block of candidates ``(uid, seed expression or None)`` on every shard (after the earlier
        block's decisions: flat maps to ``keep`` as classes or ``drop``, layer maps to ``release``); per
        candidate the combined :data:`Triaged`."""
        parts = self._on("synthesis", "triage", items, keep, drop, release, log=True)
        out: list[Triaged] = []
        for j in range(len(items)):
            replies = [p[j] for p in parts]
            sample = replies[0][3] if len(replies) == 1 else torch.cat([r[3] for r in replies])[self._order]
            out.append((all(r[0] for r in replies), sum(r[1] for r in replies), sum(r[2] for r in replies), sample))
        return out

    def distances(self, pairs: list[tuple[int, int]]) -> list[float]:
        """The largest absolute difference of the flat maps of each pair of candidates or classes (largest over
        shards)."""
        parts = self._on("synthesis", "distances", pairs)
        return [max(p[k] for p in parts) for k in range(len(pairs))]

    def keys(self, uids: list[int], column: int) -> list[bytes] | None:
        """Per candidate its equivalence key under metric column ``column``: the shards' digests of their parts
        (equal keys: equal on every shard), or None when the metric has none."""
        keys = self._on("synthesis", "keys", uids, column)
        return None if keys[0] is None else [b"".join(k[i] for k in keys) for i in range(len(uids))]

    def score(self, uids: list[int], columns: list[int], todo: list[list[int]]) -> list[list[ExactSum]]:
        """Per metric column ``columns[c]``, the exact sums of the per-image scores of candidates ``uids[i]`` for
        ``i`` in ``todo[c]`` (the shards' partial sums added)."""
        parts = self._on("synthesis", "score", uids, columns, todo)
        return [[functools.reduce(operator.add, (p[c][t] for p in parts), ExactSum()) for t in range(len(picked))]
                for c, picked in enumerate(todo)]

    def start_race(self, column: int, order: Sequence[int] | None) -> list[int] | None:
        """Build the race of metric column ``column`` (images in ``order``) on the shard; the block sizes, or None
        when the metric cannot race. Racing needs every synthesis image on one shard (module doc)."""
        if len(self.plans["synthesis"]) > 1:
            raise SynthesisError(f"racing needs every synthesis image in one process: drop racing (--racing) to run "
                                 f"on the {self.executor.name} executor")
        return self._on("synthesis", "start_race", column, None if order is None else list(order), log=True)[0]

    def race(self, uids: list[int], picked: list[int], bar: float | None) -> list[ExactSum | None]:
        """Race candidates ``uids[i]`` for ``i`` in ``picked`` against ``bar``: per candidate the exact sum of its
        per-image scores, or None when it provably cannot beat ``bar``."""
        return self._on("synthesis", "run_race", uids, picked, bar)[0]

    # -- split-level scoring (selection and held-out evidence) ---------------------------------------------

    def split_scores(self, split: str, nodes: Sequence[Node], metric: Metric, batch: int,
                     desc: str | None = None) -> Tensor:
        """Per-image scores ``(B, N)`` of ``nodes`` on ``split``, in its sample order (shards' rows concatenated)."""
        parts = self._on(split, "split_scores", split, [str(n) for n in nodes], metric, batch,
                         desc if self.local else None)
        rows = [_concat(p[b] for p in parts) for b in range(len(nodes))]
        return torch.tensor(rows, dtype=torch.float32).reshape(len(nodes), -1)

    def split_degenerate(self, split: str, nodes: Sequence[Node]) -> list[int]:
        """Per node, the images of ``split`` on which its heatmap is degenerate (counts added)."""
        parts = self._on(split, "split_degenerate", split, [str(n) for n in nodes])
        return [sum(p[b] for p in parts) for b in range(len(nodes))]

    def split_shapes(self, split: str, nodes: Sequence[Node]) -> Tensor:
        """:func:`~sycam.synth.selection.shape_maps` ``(B, N, h, w)`` of ``nodes`` on ``split`` (shards' images
        concatenated)."""
        parts = self._on(split, "split_shapes", split, [str(n) for n in nodes])
        return torch.cat([torch.as_tensor(p) for p in parts], dim=1)

    def split_control(self, split: str, winner: Node, metric: Metric) -> tuple[list[float], int]:
        """Per-image ``metric`` scores on ``split`` and degenerate count of the control
        (:func:`~sycam.synth.control.control_scores`)."""
        parts = self._on(split, "split_control", split, str(winner), metric)
        return _concat(p[0] for p in parts), sum(p[1] for p in parts)

    def split_power(self, split: str, powers: Sequence[float], metric: Metric) -> tuple[list[list[float]], int]:
        """Per power, per-image ``metric`` scores of the power control on ``split``, and its degenerate count
        (:func:`~sycam.synth.control.power_control_scores`)."""
        parts = self._on(split, "split_power", split, list(powers), metric)
        return [_concat(p[0][k] for p in parts) for k in range(len(powers))], sum(p[1] for p in parts)


def evaluate_sharded(model: nn.Module, layer: str | nn.Module, samples: Samples, methods: Mapping[str, Node],
                     metrics: Mapping[str, Metric], options: ExtractOptions | None,
                     executor: Executor) -> Evaluation:
    """:func:`sycam.workspace.evaluate_methods` with the images on the shards of ``executor``: the same
    :class:`~sycam.workspace.Evaluation` (per-image rows concatenated in sample order, exact means)."""
    options = options or ExtractOptions()
    options = dataclasses.replace(options, batch_size=balanced_batch(len(samples), executor.workers,
                                                                      options.batch_size))
    plane = ShardPlane(executor)
    plane.start(model, layer, options)
    plane.open_split("evaluate", samples, list(metrics.values()))
    labels = list(methods)
    nodes = [methods[k] for k in labels]
    results: dict[str, dict[str, float]] = {k: {} for k in labels}
    per_image: dict[str, dict[str, list[float]]] = {}
    for mname, metric in metrics.items():
        rows = plane.split_scores("evaluate", nodes, metric, 8)
        per_image[mname] = dict(zip(labels, rows.tolist(), strict=True))
        means = metric.aggregate(rows).tolist()
        for label, value in zip(labels, means, strict=True):
            results[label][mname] = float(value)
    bad = plane.split_degenerate("evaluate", nodes)
    blank = dict(zip(labels, bad, strict=True))
    return Evaluation(results, per_image, blank, list(samples.ids), metrics)
