"""Step 4 of :func:`~sycam.synth.search.synthesize`: the winner (the winner rule: :mod:`sycam.synth.search`'s
module doc). It reads the search's pool, merges rescaled maps (on the synthesis split's shapes), and with a
validation split re-scores the eligible candidates there and applies the size rule
(:func:`~sycam.synth.selection.choose_within_noise`)."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

from torch import Tensor

from .. import stats
from ..data.samples import Samples
from ..data.split import bootstrap_groups
from ..expr import Node, parse
from ..metrics.base import Metric
from .errors import SynthesisError
from .selection import Candidate, choose_within_noise, merge_rescaled


class WinnerChoice:
    """Step 4 of a :class:`~sycam.synth.search.Search` (a mixin: the search holds the state; see the module doc).

    Example::

        run.search(); run.select(validation)
        run.winner.expression, run.why_winner
    """

    config: Any
    plane: Any
    oracle: Any
    objectives: list[Metric]
    notes: list[str]
    timings: dict[str, float]
    per_image: dict[str, dict[str, list[float]]]
    ids: dict[str, list[str]]
    n_split: dict[str, int]
    groups: dict[str, tuple[list[str], str]]
    synthesis: Samples
    scored: list[Candidate]
    leaderboard: list[Candidate]
    front: list[Candidate]
    merged: dict[str, list[str]]
    lambda_baseline: str | None
    lambda_source: str
    primary: Metric
    winner: Candidate
    why_winner: str
    _pool: Callable[[], list[Candidate]]
    _rank: Callable[[Candidate], tuple[float, int, int]]

    def _split_scores(self, split: str, nodes: Sequence[Node], metric: Metric, desc: str | None = None) -> Tensor:
        """Per-image scores ``(B, N)`` of ``nodes`` on split ``split`` (the plane's), in its sample order."""
        return self.plane.split_scores(split, nodes, metric, self.config.batch, desc)

    def select(self, validation: Samples | None) -> Candidate:
        """Choose the winner (module doc: eligible pool; validation and the size rule when given)."""
        pool = sorted(self._pool(), key=self._rank)
        top_row = pool[0]
        pool = self._merge_rescaled(pool)
        correct = [c for c in pool if self.oracle.correct(c.scores)]
        eligible = correct or pool
        self.timings["validation"] = 0.0
        if validation is None or not len(validation):
            self.winner = eligible[0]
            self.why_winner = self._why(top_row, "synthesis")
            return self.winner
        shared = set(validation.ids) & set(self.synthesis.ids)
        if shared:
            raise SynthesisError(f"the validation split shares {len(shared)} sample(s) with the synthesis split "
                                 f"(e.g. {sorted(shared)[0]}); keep them apart")
        t0 = time.perf_counter()
        tied = self._tied_with_lambda([c for c in pool if c not in correct]) if correct else []
        eligible = [*correct, *tied] if correct else pool
        self.plane.open_split("validation", validation, self.objectives)
        self.ids["validation"] = list(validation.ids)
        self.n_split["validation"] = len(validation)
        self.groups["validation"] = bootstrap_groups(validation)
        base = self._lambda_candidate()
        if base is not None and all(c.expression != base.expression for c in eligible):
            eligible = [*eligible, base]  # the λ baseline competes on validation: a winner must beat it there too
        rows = self._split_scores("validation", [parse(c.expression) for c in eligible], self.primary,
                                  desc="validation: candidates")
        per = {c.expression: [float(x) for x in r] for c, r in zip(eligible, rows.tolist(), strict=True)}
        for c, agg in zip(eligible, self.primary.aggregate(rows).tolist(), strict=True):
            c.validation_score = float(agg)
        effect = self.config.min_effect
        self.winner = choose_within_noise(eligible, per, self.primary, effect)
        within = "one standard error" + (f" or {effect:g}" if effect else "")
        self.notes.append(f"winner chosen on {len(validation)} validation samples among {len(eligible)} "
                          f"{'correct ' if correct else ''}candidates"
                          + (f" ({len(tied)} of them tied with λ on synthesis, within {within})" if tied else "")
                          + f": the smallest expression within {within} of the best validation score")
        if base is not None and self.winner.expression == base.expression:
            self.notes.append(f"on validation no synthesized candidate beats the λ baseline {self.lambda_baseline} "
                              "beyond noise: the winner is that baseline")
        self.why_winner = self._why(top_row, "validation")
        self.timings["validation"] = time.perf_counter() - t0
        return self.winner

    def _merge_rescaled(self, pool: list[Candidate]) -> list[Candidate]:
        """``pool`` without candidates whose normalized maps equal a smaller one's under a positive rescaling
        (:func:`~sycam.synth.selection.merge_rescaled`, on the synthesis split); they leave the leaderboard and the
        front too, and :attr:`merged` records them."""
        if len(pool) < 2:
            return pool
        kept, merged = merge_rescaled(pool, self.plane.split_shapes("synthesis", [parse(c.expression) for c in pool]))
        self.merged = merged
        if merged:
            gone = {t for ts in merged.values() for t in ts}
            self.leaderboard = [c for c in self.leaderboard if c.expression not in gone]
            self.front = [c for c in self.front if c.expression not in gone]
            self.notes.append(f"{len(gone)} leaderboard candidate(s) merged into a smaller one whose normalized map "
                              "is the same up to a positive factor: "
                              + "; ".join(f"{k} ← {', '.join(v)}" for k, v in merged.items()))
        return kept

    def _tied_with_lambda(self, candidates: Sequence[Candidate]) -> list[Candidate]:
        """The ``candidates`` whose per-image synthesis scores are within noise (or ``min_effect``) of the λ
        baseline's: tied with λ, they may still be better held out, so they enter the validation pool."""
        b = self.lambda_baseline
        if b is None or not candidates or self.lambda_source == "user" or len(self.objectives) > 1:
            return []
        rows = self._split_scores("synthesis", [parse(c.expression) for c in candidates], self.primary)
        ref = self.per_image["synthesis"][b]
        return [c for c, r in zip(candidates, rows.tolist(), strict=True)
                if stats.within_noise(r, ref, self.config.min_effect)]

    def _why(self, top: Candidate, chosen_on: str) -> str:
        """One line: why the winner and not the leaderboard's top row."""
        w = self.winner
        if w.expression == top.expression:
            return f"The winner is the leaderboard's top row ({w.expression}), the best on the synthesis split."
        merged = next((k for k, v in getattr(self, "merged", {}).items() if top.expression in v), None)
        if merged is not None:
            return (f"The leaderboard's top row {top.expression} is {merged} rescaled by a positive factor (the same "
                    "map), so the smaller expression represents it; " + (
                        "" if merged == w.expression else self._why(next(c for c in self.scored
                                                                          if c.expression == merged), chosen_on)))
        if chosen_on == "synthesis":
            return (f"The leaderboard's top row {top.expression} does not beat λ on every objective; the winner "
                    f"{w.expression} is the best candidate that does.")
        effect = self.config.min_effect
        tv, wv = top.validation_score, w.validation_score
        if tv is None:
            return (f"The leaderboard's top row {top.expression} was not eligible (it does not beat λ and is not tied "
                    f"with it on synthesis); the winner {w.expression} was chosen on the validation split.")
        noise = "one standard error" + (f" or {effect:g}" if effect else "")
        if wv is not None and self.primary.better(wv, tv):
            return (f"The leaderboard's top row {top.expression} (best on synthesis) scores {tv:.4f} on validation, "
                    f"below the winner {w.expression} ({wv:.4f}), the smallest expression within {noise} of the best "
                    "validation score.")
        return (f"The leaderboard's top row {top.expression} scores {tv:.4f} on validation and the winner "
                f"{w.expression} {wv:.4f}: within {noise} of each other (or of the best), so the smaller expression "
                "wins.")

    def _lambda_candidate(self) -> Candidate | None:
        """The scored candidate that is the λ baseline (seeded), if the grammar allowed seeding it."""
        if self.lambda_baseline is None:
            return None
        return next((c for c in self.scored if c.seed == self.lambda_baseline), None)
