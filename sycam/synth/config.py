"""The settings of one synthesis run: :class:`SynthesisConfig` (validated by :meth:`SynthesisConfig.check`,
recorded in ``results.json`` as ``settings.synthesis`` by :meth:`SynthesisConfig.as_dict`).

The search itself is :mod:`sycam.synth.search`; what it returns, :mod:`sycam.synth.result`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..methods import METHODS
from .constraints import GUARD_REFERENCE
from .errors import SynthesisError
from .grammar import Grammar

__all__ = ["SynthesisConfig"]


@dataclass
class SynthesisConfig:
    """Settings of one synthesis run (all recorded in the results); :meth:`check` validates them.

    The defaults search the whole built-in grammar up to size 7 for at most 5000 scored candidates, with λ
    set by the best exact classic method. A reproducible, constrained run::

        SynthesisConfig(grammar=Grammar.load("grammar.txt"), max_candidates=2000,
                        constraints=("mask_auc >= gradcam", "deletion_auc <= 0.2"))
    """

    grammar: Grammar = field(default_factory=Grammar)
    """the search space (terminals, constants, operators, form, maximum size)"""
    lambda_: float | None = None
    """λ of the first objective; None → the best exact classic method's score"""
    stop_at_lambda: bool = False
    """stop at the first correct candidate"""
    max_candidates: int | None = 5000
    """candidates scored (after pruning), exactly; None: no limit"""
    time_limit: float | None = None
    """seconds of search (terminal extraction excluded); not reproducible"""
    equivalence: str = "heatmap"
    """how the equivalence oracle prunes (:mod:`sycam.synth.oracles`): "heatmap" (layer maps agree within
    ``tolerance`` on every image and view), "metric" (objective values agree within ``tolerance``) or "none"
    (no pruning)"""
    tolerance: float = 1e-4
    """largest absolute difference at which two candidates count as equivalent"""
    batch: int | None = None
    """candidates scored per metric call; None: :func:`~sycam.synth.search.default_batch` (2 on the CPU, where
    large (B, N, H, W) intermediates thrash its caches, unless every metric scores at layer resolution; 32 on an
    accelerator)"""
    leaderboard_size: int = 20
    """candidates kept on the leaderboard (the pool the winner is chosen from without several objectives)"""
    baselines: tuple[str, ...] = tuple(METHODS)
    """the classic methods scored beside the search (keys of :data:`sycam.methods.METHODS`)"""
    seed_baselines: bool = True
    """score the classic methods the grammar's terminals/operators allow first"""
    checkpoint: Path | None = None
    """file the scored values are saved to during the search (:mod:`sycam.synth.checkpoint`); None: none"""
    resume: bool = False
    """take the values stored in ``checkpoint`` instead of scoring them again (same settings required)"""
    checkpoint_every: float = 30.0
    """seconds between checkpoints"""
    max_bank_bytes: int = 2 << 30
    """memory cap of the learner's bank of sub-expression values; past it, new candidates are still scored but no
    longer stored for composition (the result is then marked incomplete)"""
    constraints: tuple[str, ...] = ()
    """"METRIC OP RHS" conditions on the synthesis split (see :mod:`sycam.synth.constraints`); empty: the objectives'
    default guards (unless ``guards`` is False)"""
    guards: bool = True
    """with no ``constraints``, apply the objectives' default guards
    (:func:`~sycam.synth.constraints.default_constraints`; they bound candidates by Grad-CAM's synthesis scores,
    so ``gradcam`` must be among the baselines); False: no constraint at all (``--no-guards``)"""
    min_effect: float = 0.0
    """smallest difference of mean scores (in the metric's units) that counts: two candidates closer than this are
    tied on synthesis (both may enter the validation pool) and on validation (the smaller wins)"""
    max_degenerate_fraction: float = 0.0
    """share of synthesis images on which a candidate's heatmap may be degenerate (constant/all-zero)"""
    racing: bool = False
    """score each candidate on a growing subset of the synthesis images and drop it as soon as it provably
    cannot enter the leaderboard (:mod:`sycam.synth.racing`); survivors are scored on every image, so every
    reported score, the leaderboard and the winner are those of the exact run"""

    def check(self) -> None:
        """Raise :class:`SynthesisError` for a setting out of range."""
        def bad(name: str, value: object, want: str) -> SynthesisError:
            return SynthesisError(f"{name} must be {want}, got {value!r}")

        def positive_int(name: str, value: object, allow_none: bool = True) -> None:
            if value is None and allow_none:
                return
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise bad(name, value, "a positive integer" + (" or None" if allow_none else ""))

        positive_int("max_candidates", self.max_candidates)
        positive_int("batch", self.batch)
        positive_int("leaderboard_size", self.leaderboard_size, allow_none=False)
        for name in ("time_limit", "checkpoint_every"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)
                                      or not math.isfinite(value) or value <= 0):
                raise bad(name, value, "a positive number of seconds" + (" or None" if name == "time_limit" else ""))
        f = self.max_degenerate_fraction
        if isinstance(f, bool) or not isinstance(f, int | float) or not 0.0 <= f < 1.0:
            raise bad("max_degenerate_fraction", f, "in [0, 1)")
        if self.lambda_ is not None and not math.isfinite(self.lambda_):
            raise bad("lambda_ (λ)", self.lambda_, "finite")
        if not isinstance(self.racing, bool):
            raise bad("racing", self.racing, "True or False")
        if isinstance(self.constraints, str):
            raise bad("constraints", self.constraints, "a tuple of strings")
        if not isinstance(self.guards, bool):
            raise bad("guards", self.guards, "True or False")
        if self.guards and not self.constraints and GUARD_REFERENCE not in self.baselines:
            raise SynthesisError(f"the default guards are bounds of {GUARD_REFERENCE}'s scores: add "
                                 f"{GUARD_REFERENCE} to the baselines, give constraints, or turn the guards off "
                                 "(guards=False, --no-guards)")
        e = self.min_effect
        if isinstance(e, bool) or not isinstance(e, int | float) or not math.isfinite(e) or e < 0:
            raise bad("min_effect", e, "a finite number ≥ 0")

    def as_dict(self) -> dict[str, Any]:
        """The settings that shape the result, JSON-ready (``settings.synthesis`` in ``results.json``).

        λ's keys keep their schema names, ``"threshold"`` (``lambda_``) and ``"stop_at_threshold"``
        (``stop_at_lambda``): results.json is read by other tools and hashed into the checkpoint's settings key."""
        return {
            "grammar": self.grammar.as_dict(), "threshold": self.lambda_,
            "stop_at_threshold": self.stop_at_lambda, "max_candidates": self.max_candidates,
            "time_limit": self.time_limit, "equivalence": self.equivalence, "tolerance": self.tolerance,
            "batch": self.batch, "leaderboard_size": self.leaderboard_size, "baselines": list(self.baselines),
            "seed_baselines": self.seed_baselines, "constraints": list(self.constraints), "guards": self.guards,
            "min_effect": self.min_effect,
            "max_degenerate_fraction": self.max_degenerate_fraction, "max_bank_bytes": self.max_bank_bytes,
            "racing": self.racing,
        }
