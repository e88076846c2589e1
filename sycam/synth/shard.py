"""What a search keeps per image, for one shard of the images: the worker side of a sharded search.

A :class:`Shard` holds, for its images only, everything whose size grows with the number of images: the
workspaces (terminals of every split and metric view), the learner's bank of sub-expression *values*, the
heatmaps of the equivalence classes, and the model (for model-cost metrics). The driver
(:mod:`sycam.synth.search`, through the shard plane :class:`~sycam.synth.sharded.ShardPlane`) holds what does
not grow with the images: the expressions, the decisions and the scores. A local run is one shard in this process.
Every method takes and returns small, picklable values, so the same class runs in-process or as a Ray actor
(:mod:`sycam.synth.executors`), and what each returns combines exactly over shards:

- :meth:`Shard.bank` — per proposed sub-expression a :class:`~sycam.synth.bank.Signature` (finite, non-zero,
  non-negative: they combine with ``&``), its bytes, and the ids of the earlier entries it equals *on this
  shard* (``torch.equal``): two values are equal iff they are equal on every shard, so the driver intersects;
- :meth:`Shard.triage` — per candidate whether its maps are finite, how many are blank or faint (counts add),
  and its heatmap at the positions the fingerprint samples (the driver assembles the fingerprint);
  :meth:`Shard.distances` — the largest absolute difference to a class on this shard (the driver takes the
  largest over shards);
- :meth:`Shard.keys` / :meth:`Shard.score` — per candidate the digest of its equivalence key on this shard and
  the exact partial sums of its per-image scores (:class:`~sycam.exactsum.ExactSum`: they add exactly);
- :meth:`Shard.start_race` / :meth:`Shard.run_race` — racing (:mod:`sycam.synth.racing`) on this shard's images:
  the exact sum of a candidate's per-image scores, or None when it was raced out (one shard only: the race's
  bound reads every image's best reachable score);
- ``split_*`` — per-image rows for the held-out evidence (the driver concatenates them in shard order).
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from ..exactsum import ExactSum, partial_sums
from ..expr import Node, evaluate, kind_of, parse
from ..heatmap import finish_layer, grid_of, layer_maps_of
from ..metrics.base import Metric
from ..terminals import ExtractOptions
from ..workspace import BASE, Workspace
from .bank import BankItem, BankReply, Entry, ValueBank
from .control import control_scores, power_control_scores
from .keystore import digest
from .oracles import triage_block
from .racing import Race
from .selection import shapes_on

TriageReply = tuple[bool, int, int, Tensor]
"""``(finite on every view, blank maps, blank-or-faint maps, the maps at the fingerprint's positions)``"""


class Shard:
    """One shard of the images and the search state that scales with them (see the module doc).

    Args:
        model, layer: the classifier and its target layer (the shard keeps its own copy).
        options: terminal extraction options (the driver cuts shards at multiples of ``options.batch_size``,
            so every image meets the model in the same batch as on one machine).
        threads: torch threads for this shard (None: leave the setting alone).

    Example (in-process; :class:`~sycam.synth.executors.RayExecutor` runs the same calls on actors)::

        shard = Shard(net, "layer4", ExtractOptions(batch_size=8))
        shard.open_split("synthesis", samples[:8], [get_metric("iou")])
        shard.split_scores("synthesis", ["mean(G)"], get_metric("iou"), 2)  # [[per-image IoU], ...]
    """

    def __init__(self, model: nn.Module, layer: str | nn.Module, options: ExtractOptions,
                 threads: int | None = None) -> None:
        if threads is not None:
            torch.set_num_threads(threads)
        self.model, self.layer, self.options = model, layer, options
        self.splits: dict[str, Workspace] = {}
        self._metrics: dict[str, Metric] = {}

    def _metric(self, metric: Metric) -> Metric:
        """This shard's own copy of ``metric``, one per class and settings. A metric keeps its memo of forwards
        (e.g. perturbed inputs already scored, one workspace at a time) in itself: a copy per shard keeps in-process
        shards, which receive the driver's very object, from evicting each other's memo, and one copy for every call
        lets the search reuse the forwards the baselines' scoring ran, as on one machine (Ray calls arrive as
        fresh copies)."""
        key = repr((type(metric).__module__, type(metric).__qualname__, sorted(metric.describe().items())))
        if key not in self._metrics:
            self._metrics[key] = copy.deepcopy(metric)
        return self._metrics[key]

    # -- splits ---------------------------------------------------------------------------------------

    def open_split(self, split: str, samples: Any, metrics: Sequence[Metric],
                   views: Mapping[str, Tensor] | None = None, split_images: int | None = None) -> int:
        """Extract the terminals of this shard's ``samples`` (and of ``views``, this shard's rows of the views
        drawn for the whole split of ``split_images`` images) as ``split``; returns the number of images."""
        options = dataclasses.replace(self.options, plan_images=split_images)
        self.splits[split] = Workspace.build(self.model, self.layer, samples, metrics, options, views)
        return len(samples)

    def close_split(self, split: str) -> None:
        """Free ``split``'s terminals."""
        self.splits.pop(split, None)

    def split_scores(self, split: str, texts: Sequence[str], metric: Metric, batch: int,
                     desc: str | None = None) -> list[list[float]]:
        """Per-image scores of the expressions ``texts`` on this shard of ``split`` (``desc``: a progress bar's)."""
        rows = self.splits[split].score([parse(t) for t in texts], self._metric(metric), batch, desc=desc)
        return [[float(x) for x in r] for r in rows.tolist()]

    def split_degenerate(self, split: str, texts: Sequence[str]) -> list[int]:
        """Per expression, this shard's images of ``split`` whose heatmap is degenerate."""
        return self.splits[split].degenerate_counts([parse(t) for t in texts])

    def split_control(self, split: str, winner: str, metric: Metric) -> tuple[list[float], int]:
        """:func:`~sycam.synth.control.control_scores` on this shard of ``split``."""
        return control_scores(self.splits[split], parse(winner), self._metric(metric))

    def split_power(self, split: str, powers: Sequence[float], metric: Metric) -> tuple[list[list[float]], int]:
        """:func:`~sycam.synth.control.power_control_scores` on this shard of ``split``."""
        return power_control_scores(self.splits[split], powers, metric)

    def split_shapes(self, split: str, texts: Sequence[str]) -> Tensor:
        """:func:`~sycam.synth.selection.shapes_on` on this shard of ``split``."""
        return shapes_on(self.splits[split], [parse(t) for t in texts])

    # -- the search's state ---------------------------------------------------------------------------

    def start_search(self, columns: Sequence[Metric], terminals: Sequence[str], max_size: int, cache_bytes: int,
                     sample: Sequence[int]) -> None:
        """Prepare the search on split ``"synthesis"``: its terminal values on every view (the learner's
        leaves), the metric columns, the bank's recompute cache, and the positions of this shard's flat maps
        that the heatmap fingerprint samples."""
        ws = self.splits["synthesis"]
        self.ws = ws
        self.columns = [self._metric(m) for m in columns]
        self.views = [BASE, *[v for v in ws.caches if v != BASE]]
        self.per_view = [ws.values(terminals, v) for v in self.views]
        self.acts = tuple(pv["A"] for pv in self.per_view)
        self.grid = grid_of(self.per_view[0])
        self.values = ValueBank(self.per_view, max_size, cache_bytes)
        self.entries = self.values.entries
        self.flats: dict[int, Tensor] = {}
        self.classes: dict[int, Tensor] = {}
        self.held: dict[int, list[Tensor]] = {}
        """layer maps per view of the candidates triaged and not yet released (scoring reads them)"""
        self.race: Race | None = None
        self.sample = torch.tensor(list(sample), dtype=torch.long)
        self._batch: tuple[tuple[int, ...], dict[str, Tensor]] = ((), {})

    def forwards(self) -> int:
        """Model forwards the metrics have run on this shard's synthesis images (:attr:`Workspace.forwards`),
        racing's block workspaces included."""
        race = self.race.workspaces if self.race is not None else []
        return self.splits["synthesis"].forwards + sum(w.forwards for w in race)

    def layout(self, terminals: Sequence[str] = ("A",)) -> dict[str, Any]:
        """Images, views and layer map size of the synthesis split (for the fingerprint positions): the finest grid
        of the layers ``terminals`` read, where a multi-layer search scores its maps, and the target layer's."""
        ws = self.splits["synthesis"]
        values = ws.caches[BASE].values(sorted(set(terminals) | {"A"}))
        return {"n": int(values["A"].shape[0]), "views": len(ws.caches), "hw": grid_of(values),
                "target_hw": tuple(int(x) for x in values["A"].shape[-2:])}

    def bank(self, items: Sequence[BankItem], drop: Sequence[int] = ()) -> list[BankReply]:
        """:meth:`~sycam.synth.bank.ValueBank.bank` on this shard's images: per proposed sub-expression its
        signature, bytes and the ids of the earlier entries equal to it here."""
        return self.values.bank(items, drop)

    # -- triage: the correctness oracle's counts and the equivalence oracle's distances -------------------

    def triage(self, items: Sequence[tuple[int, str | None]], keep: Sequence[int] = (),
               drop: Sequence[int] = (), release: Sequence[int] = ()) -> list[TriageReply]:
        """Reply per candidate ``(uid, seed expression or None)`` (:data:`TriageReply`), holding its flat maps
        until the driver says whether it founded a heatmap class (``keep``: they become the class's maps) or not
        (``drop``), and its layer maps on every view until the driver is done with it (``release``: rejected,
        pruned or scored), so that scoring reuses them. A seed (a classic method) is built here from its expression.
        The block is triaged in one batched pass (:func:`~sycam.synth.oracles.triage_block`, the same code as on
        one machine)."""
        for uid in keep:
            self.classes[uid] = self.flats.pop(uid)
        for uid in drop:
            self.flats.pop(uid, None)
        for uid in release:
            self.held.pop(uid, None)
        for uid, seed in items:
            if seed is not None:
                node = parse(seed)
                self.entries[uid] = Entry(node, kind_of(node), tuple(evaluate(node, pv) for pv in self.per_view),
                                          uid=uid)
        entries = [self.entries[uid] for uid, _ in items]
        block = triage_block([e.node for e in entries], [e.values for e in entries], self.per_view, self.grid)
        out: list[TriageReply] = []
        sample = block.flat.index_select(1, self.sample.to(block.flat.device)).cpu() if items else None
        for j, (uid, _) in enumerate(items):
            self.flats[uid] = block.flat[j].clone()  # a row of its own: the block's tensor is freed
            self.held[uid] = [m[j] for m in block.maps]
            assert sample is not None
            out.append((block.finite[j], block.blank[j], block.bad[j], sample[j].clone()))
        return out

    def _flat(self, uid: int) -> Tensor:
        flat = self.flats.get(uid)
        return self.classes[uid] if flat is None else flat

    def distances(self, pairs: Sequence[tuple[int, int]]) -> list[float]:
        """The largest absolute difference of the flat maps of each pair of candidates or classes."""
        return [float((self._flat(a) - self._flat(b)).abs().max()) for a, b in pairs]

    # -- scoring --------------------------------------------------------------------------------------

    def _layers(self, uids: Sequence[int]) -> dict[str, Tensor]:
        """Layer maps per view of a batch of candidates (the last batch is memoized: keys, then scores)."""
        key = tuple(uids)
        if self._batch[0] != key:
            self._batch = (key, {})
        return self._batch[1]

    def _view(self, uids: Sequence[int], view: str) -> Tensor:
        memo = self._layers(uids)
        if view not in memo:
            i = self.views.index(view)
            if all(u in self.held for u in uids):  # computed in triage: the same numbers, not recomputed
                memo[view] = torch.stack([self.held[u][i] for u in uids])
                return memo[view]
            memo[view] = layer_maps_of([self.entries[u].node for u in uids], [self.entries[u].values[i] for u in uids],
                                       self.per_view[i], self.grid)
        return memo[view]

    def keys(self, uids: Sequence[int], column: int) -> list[bytes] | None:
        """Digests of the candidates' equivalence keys on this shard under metric column ``column`` (None when
        the metric has none)."""
        metric = self.columns[column]
        if type(metric).equivalence_key is Metric.equivalence_key:
            return None
        key = metric.equivalence_key(finish_layer(self._view(uids, BASE), self.ws.size))
        if key is None:
            return None
        return [digest(key[i].contiguous().cpu().numpy().tobytes()) for i in range(len(uids))]

    def score(self, uids: Sequence[int], columns: Sequence[int],
              todo: Sequence[Sequence[int]]) -> list[list[ExactSum]]:
        """Per metric column ``columns[c]``, exact partial sums of the per-image scores of candidates ``uids[i]``
        for ``i`` in ``todo[c]`` (a batch as on one machine: the same candidates meet the metric together)."""
        out = []
        for column, picked in zip(columns, todo, strict=True):
            idx = torch.tensor(list(picked), dtype=torch.long)

            def sub(view: str, idx: Tensor = idx) -> Tensor:
                maps = self._view(uids, view)
                return maps.index_select(0, idx.to(maps.device))

            nodes: list[Node] = [self.entries[uids[i]].node for i in picked]
            out.append(partial_sums(self.ws.evaluate_layers(self.columns[column], sub, nodes)))
        return out

    # -- racing ---------------------------------------------------------------------------------------

    def start_race(self, column: int, order: Sequence[int] | None) -> list[int] | None:
        """Build the race of metric column ``column`` over this shard's synthesis images, raced in ``order``
        (:meth:`~sycam.synth.racing.Race.build`); the sizes of its blocks, or None when the metric cannot race."""
        self.race = Race.build(self.ws, self.columns[column], order=order)
        return None if self.race is None else [len(p) for p in self.race.positions]

    def run_race(self, uids: Sequence[int], picked: Sequence[int], bar: float | None) -> list[ExactSum | None]:
        """Race candidates ``uids[i]`` for ``i`` in ``picked`` against ``bar`` (:meth:`~sycam.synth.racing.Race.run`):
        per candidate the exact sum of its per-image scores, or None when it was dropped."""
        assert self.race is not None
        idx = torch.tensor(list(picked), dtype=torch.long)

        def sub(view: str) -> Tensor:
            maps = self._view(uids, view)
            return maps.index_select(0, idx.to(maps.device))

        rows = self.race.run(sub, [self.entries[uids[i]].node for i in picked], bar)
        return [None if r is None else partial_sums(r[None])[0] for r in rows]
