r"""Constraints of the correctness oracle: ``METRIC OP RHS`` checked on the synthesis split.

Grammar of a constraint (spaces optional)::

    constraint := METRIC OP RHS
    OP         := ">=" | "<=" | ">" | "<"
    RHS        := NUMBER | [NUMBER "*"] REFERENCE
    REFERENCE  := a baseline name (its synthesis score on METRIC) | "best" (the best exact baseline on METRIC)

Examples: ``"mask_auc >= gradcam"``, ``"deletion_auc <= 0.2"``, ``"energy_pointing_game >= 1.02 * best"``.
A candidate satisfies a constraint when its aggregate synthesis score ``v`` on METRIC satisfies
``v OP bound`` with ``bound = scale × reference`` (NaN never does). The right side is resolved once, after the
baselines are scored; a baseline that is an approximation (Score-CAM with a capped S) cannot be a reference.

Default guards (:data:`DEFAULT_GUARDS`, per objective; :data:`FAMILY_GUARDS` for an objective without an entry
there, by its metric family; :data:`GENERIC_GUARD` for everything else, custom metrics included). The search
applies them in the CLI and the API alike whenever no constraint is given (``SynthesisConfig(guards=False)``,
``--no-guards``, opts out; results.json records which set was used). Localization objectives reward maps that
concentrate energy inside the box, and zeroing most of a map does that without locating anything better
(issue 7: a winner blank on 2 of 26 images, 70 % zero pixels, mask AUC 0.861 vs Grad-CAM's 0.985). The mask AUC
ranks every pixel, so a map whose ranking is destroyed by ties at zero loses it; the guard keeps a candidate
within 1 % of Grad-CAM's mask AUC (the exact classic methods spread over 0.4 % of mask AUC on the demo's splits,
so an equally good ranking is not refused for noise). The pointing game guard keeps the peak inside the box at
least as often as Grad-CAM does. The IoU guard (the map above half its maximum against the box, within 1 % of
Grad-CAM's) rejects *near-blank* maps, which the other three cannot see because they are scale-invariant: on
the demo, ``mean(cube(cube(G)))`` renders with a maximum of about 1e-6 instead of 1 on every image (G⁹ is so
small that the normalization's absolute 1e-7 dominates), looks blank, yet ties ``cube(cube(sum(G)))`` on the
energy pointing game, mask AUC and pointing game to 1e-7 and won the demo without this guard; its IoU is 0.
The mask AUC objective gets the IoU guard with 10 % slack (near-blank maps score 0 there; a better ranking
that moves the half-maximum region a little is not refused). Faithfulness objectives are guarded by their
counterpart (deletion ↔ insertion, average drop ↔ increase in confidence): a map that games one curve must not
lose the other. Metrics with no natural guard (complexity, robustness, equivariance, custom metrics) reward
maps that ignore the object — a constant map is perfectly robust, an inverted one as sparse as the original —
so they get :data:`GENERIC_GUARD`: the image kept by the map must keep the class evidence about as well as
Grad-CAM's does (average drop within 10 % of Grad-CAM's): an inverted map keeps the background and a near-blank
one keeps nothing, and both lose the class score. Blank and constant maps are also refused outright as
degenerate (``max_degenerate_fraction``). Measurements: docs/synthesis.md "The demo"
(``benchmarks/demo_experiments.py``).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

from ..methods import METHODS, resolve_method
from .errors import SynthesisError

OPS: dict[str, Callable[[float, float], bool]] = {
    ">=": lambda a, b: a >= b, "<=": lambda a, b: a <= b, ">": lambda a, b: a > b, "<": lambda a, b: a < b}

GENERIC_GUARD: tuple[str, ...] = ("average_drop <= 1.1 * gradcam",)
"""the guard of an objective without a natural one: the map must keep the class evidence (module doc)"""

DEFAULT_GUARDS: dict[str, tuple[str, ...]] = {
    "energy_pointing_game": ("mask_auc >= 0.99 * gradcam", "pointing_game >= gradcam", "iou >= 0.99 * gradcam"),
    "iou": ("mask_auc >= 0.99 * gradcam",),
    "pointing_game": ("mask_auc >= 0.99 * gradcam", "iou >= 0.99 * gradcam"),
    "mask_auc": ("iou >= 0.9 * gradcam",),
    "deletion_auc": ("insertion_auc >= 0.99 * gradcam",),
    "insertion_auc": ("deletion_auc <= 1.01 * gradcam",),
    "average_drop": ("increase_in_confidence >= 0.9 * gradcam",),
    "increase_in_confidence": ("average_drop <= 1.1 * gradcam",),
    "adcc": ("average_drop <= 1.1 * gradcam",),
}
"""objective name → the guards applied when no constraint is given (justified in the module doc)"""

FAMILY_GUARDS: dict[str, tuple[str, ...]] = {
    "ground truth": ("mask_auc >= 0.99 * gradcam",),
    "faithfulness": ("average_drop <= 1.1 * gradcam",),
}
"""metric family → the guards of an objective of that family without an entry in :data:`DEFAULT_GUARDS`; any
other family (complexity, robustness, equivariance, custom) gets :data:`GENERIC_GUARD`"""

GUARD_REFERENCE = "gradcam"
"""the classic method every default guard is a bound of (it must be among the baselines scored)"""

_NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
_FORM = re.compile(r"^\s*(?P<metric>[A-Za-z_][\w]*)\s*(?P<op>>=|<=|>|<)\s*(?P<rhs>.*?)\s*$")
_RHS = re.compile(rf"^(?:(?P<scale>{_NUMBER})\s*\*\s*)?(?P<ref>[A-Za-z_][\w+\-]*)$|^(?P<number>{_NUMBER})$")


@dataclass(frozen=True)
class Constraint:
    """A parsed constraint. ``rhs`` is ``"best"``, a baseline name, or ``None`` for a number (``scale``)."""

    text: str
    metric: str
    op: str
    rhs: str | None
    scale: float

    def bound(self, baseline_values: Mapping[str, float], exact: Iterable[str], better: Callable[[float, float | None],
                                                                                                   bool]) -> float:
        """The right side's value given the baselines' synthesis scores on :attr:`metric`.

        Args:
            baseline_values: baseline name → its synthesis score on this constraint's metric.
            exact: the baselines that are exact (may be referenced).
            better: the metric's ordering (``Metric.better``), for ``best``.
        """
        if self.rhs is None:
            return self.scale
        exact = set(exact)
        if self.rhs == "best":
            best: str | None = None
            for name in baseline_values:
                if name in exact and (best is None or better(baseline_values[name], baseline_values[best])):
                    best = name
            if best is None:
                raise SynthesisError(f"constraint {self.text!r}: 'best' needs at least one exact baseline")
            return self.scale * baseline_values[best]
        if self.rhs not in baseline_values:
            raise SynthesisError(f"constraint {self.text!r}: baseline {self.rhs} is not among the baselines scored "
                                 f"({', '.join(baseline_values)})")
        if self.rhs not in exact:
            raise SynthesisError(f"constraint {self.text!r}: {self.rhs} is an approximation here (capped Score-CAM "
                                 "terminal); compare with an exact baseline or drop the cap")
        return self.scale * baseline_values[self.rhs]

    def holds(self, value: float, bound: float) -> bool:
        """``value OP bound``; NaN never holds."""
        if math.isnan(value) or math.isnan(bound):
            return False
        return OPS[self.op](value, bound)


def parse_constraint(text: str) -> Constraint:
    """Parse ``"METRIC OP RHS"`` (see the module doc); raises :class:`SynthesisError` with the reason.

    Example::

        >>> c = parse_constraint("energy_pointing_game >= 1.02 * best")
        >>> c.metric, c.op, c.rhs, c.scale
        ('energy_pointing_game', '>=', 'best', 1.02)
    """
    if not isinstance(text, str) or not text.strip():
        raise SynthesisError("empty constraint; expected 'METRIC OP RHS', e.g. 'mask_auc >= gradcam'")
    m = _FORM.match(text)
    if m is None:
        raise SynthesisError(f"constraint {text!r}: expected 'METRIC OP RHS' with OP one of >=, <=, >, < "
                             "(e.g. 'mask_auc >= gradcam')")
    rhs_text = m["rhs"]
    r = _RHS.match(rhs_text)
    if r is None:
        raise SynthesisError(f"constraint {text!r}: the right side {rhs_text!r} must be a number, a baseline name, "
                             "'best', or NUMBER * one of these")
    if r["number"] is not None:
        value = float(r["number"])
        if not math.isfinite(value):
            raise SynthesisError(f"constraint {text!r}: the bound must be finite")
        return Constraint(text.strip(), m["metric"], m["op"], None, value)
    scale = float(r["scale"]) if r["scale"] is not None else 1.0
    if not math.isfinite(scale):
        raise SynthesisError(f"constraint {text!r}: the scale must be finite")
    ref = r["ref"]
    if ref.lower() != "best":
        try:
            label, _ = resolve_method(ref)
        except ValueError:
            label = ""
        if label not in METHODS:
            raise SynthesisError(f"constraint {text!r}: {ref!r} is neither 'best' nor a baseline "
                                 f"({', '.join(METHODS)})")
        ref = label
    else:
        ref = "best"
    return Constraint(text.strip(), m["metric"], m["op"], ref, scale)


def parse_constraints(texts: Sequence[str]) -> list[Constraint]:
    """Parse every constraint (see :func:`parse_constraint`)."""
    if isinstance(texts, str):
        texts = [texts]
    return [parse_constraint(t) for t in texts]


def guards_of(name: str, family: str = "") -> tuple[str, ...]:
    """The default guards of one objective: :data:`DEFAULT_GUARDS` by name, else :data:`FAMILY_GUARDS` by family,
    else :data:`GENERIC_GUARD`; never a guard on the objective's own metric.

    >>> guards_of("iou"), guards_of("sparseness", "complexity")
    (('mask_auc >= 0.99 * gradcam',), ('average_drop <= 1.1 * gradcam',))
    """
    chosen = DEFAULT_GUARDS.get(name) or FAMILY_GUARDS.get(family) or GENERIC_GUARD
    return tuple(c for c in chosen if parse_constraint(c).metric != name)


def default_constraints(objectives: Sequence[object]) -> tuple[str, ...]:
    """The default guards of these objectives (names, or :class:`~sycam.metrics.base.Metric` objects whose
    ``family`` picks :data:`FAMILY_GUARDS`), without repeats, in order; a guard on another objective's metric is
    kept (it bounds that objective too)."""
    from ..metrics import METRICS

    out: list[str] = []
    for obj in objectives:
        name = obj if isinstance(obj, str) else str(getattr(obj, "name", ""))
        family = str(getattr(obj, "family", "") or getattr(METRICS.get(name), "family", "") or "")
        for c in guards_of(name, family):
            if c not in out:
                out.append(c)
    return tuple(out)
