"""Step 5 of :func:`~sycam.synth.search.synthesize`: the held-out evidence and the verdict.

On every split (synthesis, validation, test) the winner, the classic methods and both controls get their
per-image primary scores and degenerate counts (from the plane's split-level scoring); off the synthesis split
the leaderboard and the front get their scores too. The comparisons are clustered paired bootstraps
(:func:`sycam.stats.difference`); the verdict (:meth:`HeldOut._verdict`) is the test split's: "better" only when
the interval against every exact classic method lies on the better side."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

from .. import stats
from ..data.samples import Samples
from ..data.split import bootstrap_groups
from ..expr import Node, parse
from ..metrics.base import Metric
from ..results import CONTROL, POWER_CONTROL, SYNTHESIZED
from .control import POWERS, pick_power
from .selection import Candidate


class HeldOut:
    """Step 5 of a :class:`~sycam.synth.search.Search` (a mixin: the search holds the state; see the module doc).

    Example::

        run.select(validation); run.held_out(test)
        run.comparison["verdict"]  # "better", "not distinguishable" or "worse"
    """

    config: Any
    plane: Any
    objectives: list[Metric]
    columns: list[Metric]
    notes: list[str]
    timings: dict[str, float]
    per_image: dict[str, dict[str, list[float]]]
    degenerate: dict[str, dict[str, int]]
    ids: dict[str, list[str]]
    n_split: dict[str, int]
    groups: dict[str, tuple[list[str], str]]
    baselines: dict[str, dict[str, Any]]
    baseline_nodes: dict[str, Node]
    comparison_splits: dict[str, Any] | None
    comparison: dict[str, Any] | None
    winner: Candidate
    leaderboard: list[Candidate]
    front: list[Candidate]
    lambda_baseline: str | None
    power: float | None
    exact: Callable[[str], bool]

    @property
    def primary(self) -> Metric:
        """The first objective: it orders the leaderboard and sets the per-image evidence and the comparison."""
        return self.objectives[0]

    def held_out(self, test: Samples | None) -> None:
        """Evidence on every split; the winner's comparison with every exact classic method and the controls
        (clustered paired bootstrap CIs), the verdict from the test split's."""
        self.comparison_splits = {}
        self._evidence("synthesis")
        if self.plane.has_split("validation"):
            t0 = time.perf_counter()
            self._evidence("validation")
            self.timings["validation"] += time.perf_counter() - t0
            self.plane.close_split("validation")
        t0 = time.perf_counter()
        self.comparison = None
        if test is not None and len(test):
            self.ids["test"] = list(test.ids)
            self.n_split["test"] = len(test)
            self.groups["test"] = bootstrap_groups(test)
            self.plane.open_split("test", test, self.columns)
            self._evidence("test")
            self.plane.close_split("test")
            self.comparison = self._verdict()
        self.timings["test"] = time.perf_counter() - t0

    def _evidence(self, split: str) -> None:
        """On ``split``: degenerate counts, per-image primary scores and the control for the baselines and the
        winner; off the synthesis split also every objective's score of the baselines, the leaderboard and the
        front, and on the test split every constraint metric's too (``test_scores``; ``validation_score`` and
        ``test_score`` are the primary objective's)."""
        winner_node = parse(self.winner.expression)
        names = [*self.baseline_nodes, SYNTHESIZED]
        nodes = [*self.baseline_nodes.values(), winner_node]
        per_image = self.per_image.setdefault(split, {})
        for name, bad in zip(names, self.plane.split_degenerate(split, nodes), strict=True):
            self.degenerate.setdefault(name, {})[split] = int(bad)
        if split == "synthesis":
            rows = self.plane.split_scores(split, [winner_node], self.primary, self.config.batch)
            per_image[SYNTHESIZED] = rows[0].tolist()
        else:
            cands = list({id(c): c for c in [self.winner, *self.leaderboard, *self.front]}.values())
            texts = list(dict.fromkeys(c.expression for c in cands))
            base_nodes = list(self.baseline_nodes.values())
            agg_c: dict[str, list[float]] = {}
            agg_b: dict[str, list[float]] = {}
            # on test also the guard metrics, so results show whether the guards hold on held-out images
            for m in (self.columns if split == "test" else self.objectives):
                batch = self.config.batch
                rows_c = self.plane.split_scores(split, [parse(t) for t in texts], m, batch, desc=f"{split}: {m.name}")
                rows_b = self.plane.split_scores(split, base_nodes, m, batch, desc=f"{split}: {m.name} (baselines)")
                agg_c[m.name], agg_b[m.name] = m.aggregate(rows_c).tolist(), m.aggregate(rows_b).tolist()
                if m is self.primary:
                    for b, row in zip(self.baseline_nodes, rows_b.tolist(), strict=True):
                        per_image[b] = row
                    per_image[SYNTHESIZED] = rows_c[texts.index(self.winner.expression)].tolist()
            key = f"{split}_score"
            for cand in cands:
                i = texts.index(cand.expression)
                setattr(cand, key, float(agg_c[self.primary.name][i]))
                if split == "test":
                    cand.test_scores = {name: float(v[i]) for name, v in agg_c.items()}
            for j, b in enumerate(self.baseline_nodes):
                self.baselines[b][key] = float(agg_b[self.primary.name][j])
                if split == "test":
                    self.baselines[b]["test_scores"] = {name: float(v[j]) for name, v in agg_b.items()}
        control_scores, control_bad = self.plane.split_control(split, winner_node, self.primary)
        per_image[CONTROL] = control_scores
        self.degenerate.setdefault(CONTROL, {})[split] = control_bad
        if "gradcam" in self.baseline_nodes:
            if split == "synthesis":
                rows, bad = self.plane.split_power(split, POWERS, self.primary)
                self.power = pick_power(rows, self.primary)
                per_image[POWER_CONTROL] = rows[POWERS.index(self.power)]
                bad = self.plane.split_power(split, [self.power], self.primary)[1] if self.power != POWERS[0] else bad
            else:
                got, bad = self.plane.split_power(split, [self.power], self.primary)
                per_image[POWER_CONTROL] = got[0]
            self.degenerate.setdefault(POWER_CONTROL, {})[split] = bad
        if split != "synthesis" or self.comparison_splits is not None:
            self._compare(split)

    def _compare(self, split: str) -> None:
        """Winner minus every exact classic method (and each control) on ``split``: the mean paired difference
        and its clustered bootstrap 95 % CI (:func:`sycam.stats.paired_bootstrap_ci`, groups of
        :func:`~sycam.data.split.bootstrap_groups`), with each verdict."""
        per = self.per_image[split]
        groups, grouping = self.groups[split]
        hib = self.primary.higher_is_better

        def entry(other: str) -> dict[str, Any]:
            return stats.difference(per[SYNTHESIZED], per[other], hib, groups)

        methods = {b: entry(b) for b in self.baseline_nodes if self.exact(b) and b in per}
        controls = {c: entry(c) for c in (CONTROL, POWER_CONTROL) if per.get(c)}
        splits = self.comparison_splits if self.comparison_splits is not None else {}
        splits[split] = {"grouping": grouping, "methods": methods, "controls": controls}
        self.comparison_splits = splits

    def _verdict(self) -> dict[str, Any] | None:
        """``results.json``'s ``comparison``: the test split's comparisons; the verdict is "better" only when the
        interval against every exact classic method lies on the better side, "worse" when one lies on the worse
        side; ``baseline``/``diff``/``ci95`` name the least favourable comparison (whose verdict is the
        overall one)."""
        test = (self.comparison_splits or {}).get("test")
        if not test or not test["methods"]:
            return None
        methods = test["methods"]
        rank = {"worse": 0, "not distinguishable": 1, "better": 2}
        sign = 1.0 if self.primary.higher_is_better else -1.0

        def hardness(name: str) -> tuple[int, float, bool]:  # ties (to float noise): λ's method first
            m = methods[name]
            return (rank[m["verdict"]], round(sign * (m["diff"] if m["diff"] is not None else -math.inf), 9),
                    name != self.lambda_baseline)

        toughest = min(methods, key=hardness)
        verdict = methods[toughest]["verdict"]
        power = test["controls"].get(POWER_CONTROL)
        out: dict[str, Any] = {
            "baseline": toughest, **methods[toughest], "verdict": verdict, "grouping": test["grouping"],
            "n_comparisons": len(methods), "methods": methods, "controls": test["controls"],
            "splits": self.comparison_splits,
            "lambda_baseline": self.lambda_baseline, "power": getattr(self, "power", None),
            "beats_power_control": None if power is None else power["verdict"] == "better",
        }
        if power is not None and power["verdict"] != "better":
            self.notes.append(f"the winner is not better than Grad-CAM sharpened to the power p = {self.power:g} "
                              "(fitted on the synthesis split) on the test split: its gain over Grad-CAM may be "
                              "contrast (sharpening), not a better-placed map")
        return out
