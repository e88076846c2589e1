"""The typed schema of ``results.json`` (``sycam synthesize`` / ``sycam demo``), shared by
:meth:`sycam.synth.SynthesisResult.to_dict` (which builds it) and the report (which reads it).

Scores are floats, ``None`` where there is no value (no λ, no test split). Method names in ``per_image`` and
``degenerate`` are the baseline keys (``"gradcam"``, ...), ``"synthesized"`` for the winner and ``"control"``
for the control. Splits are ``"synthesis"``, ``"validation"`` and ``"test"`` (present only when scored).
"""

from typing import Any, NotRequired, TypedDict

SYNTHESIZED = "synthesized"
"""the name of the winner in ``per_image`` and ``degenerate``"""
CONTROL = "control"
"""the name of the control in ``per_image`` and ``degenerate``"""
CONTROL_TITLE = "Grad-CAM thresholded to the winner's sparsity"
"""the display name of the control"""
POWER_CONTROL = "power_control"
"""the name of the power control in ``per_image`` and ``degenerate``"""
POWER_CONTROL_TITLE = "Grad-CAM sharpened to a fitted power"
"""the display name of the power control (Grad-CAM's final map to the power fitted on the synthesis split)"""
SPLITS = ("synthesis", "validation", "test")
"""the split names, in the order the report shows them"""


class BestResult(TypedDict):
    """The winner: its expression, size and scores on each split (the primary objective)."""

    expression: str
    latex: str
    size: int
    synthesis_score: float | None
    validation_score: float | None
    test_score: float | None
    is_baseline: str | None
    """the classic method the winner is, when it is one"""
    scores: dict[str, float | None]
    """synthesis score on every objective and constraint metric"""
    test_scores: dict[str, float | None]
    """test score on every objective"""
    accepted: bool
    """beats λ on every objective and every constraint holds"""


class BaselineResult(TypedDict):
    """A classic method scored beside the search."""

    expression: str
    title: str
    """display name; an approximation says so: "Score-CAM (top-16 channels)"."""
    exact: bool
    """False for an approximation, which never sets λ nor enters a comparison"""
    synthesis_score: float | None
    validation_score: float | None
    test_score: float | None
    scores: dict[str, float | None]
    """synthesis score on every objective and constraint metric"""
    test_scores: dict[str, float | None]


class LeaderboardRow(TypedDict):
    """One row of the leaderboard: a scored candidate (or a baseline) ranked by its synthesis score, best first."""

    rank: int
    expression: str
    size: int
    synthesis_score: float | None
    validation_score: float | None
    test_score: float | None
    is_baseline: str | None


class ConstraintResult(TypedDict):
    """A constraint of the correctness oracle and whether the winner satisfies it."""

    text: str
    metric: str
    op: str
    rhs: str
    """"best", a baseline name, or the number as text"""
    bound: float | None
    """the resolved right side"""
    synthesis_value: float | None
    """the winner's synthesis score on the metric"""
    holds: bool


class ParetoPoint(TypedDict):
    """A candidate on the Pareto front of a multi-objective search (no other candidate is at least as good on
    every objective and better on one)."""

    expression: str
    size: int
    scores: dict[str, float | None]
    """synthesis score per objective"""


class Difference(TypedDict):
    """Winner minus one method on one split: the mean paired difference and its clustered bootstrap 95 % CI."""

    diff: float | None
    ci95: list[float | None]
    """[lo, hi], the hull of ``ci95_groups`` and ``ci95_images`` (sycam.stats.difference); None where fewer than two
    groups leave no spread to measure"""
    ci95_groups: NotRequired[list[float | None]]
    """the interval of the bootstrap that resamples groups"""
    ci95_images: NotRequired[list[float | None]]
    """the interval of the bootstrap that resamples images"""
    verdict: str
    """"better" | "not distinguishable" | "worse" (from the CI, see sycam.stats.verdict)"""
    why: NotRequired[str]
    """why there is no interval (non-finite per-image scores)"""


class SplitComparison(TypedDict):
    """Every comparison on one split."""

    grouping: str
    """which clusters the bootstrap resampled, e.g. "photo (3 groups)" (sycam.data.split.bootstrap_groups)"""
    methods: dict[str, Difference]
    """exact classic method key → winner minus it"""
    controls: dict[str, Difference]
    """"control" / "power_control" → winner minus it"""


class Comparison(TypedDict):
    """The winner against every exact classic method on the test split (clustered paired bootstrap 95 % CIs).
    The top-level ``diff``/``ci95`` are those of ``baseline``, the least favourable comparison; ``verdict`` is
    "better" only when every method's interval lies on the better side, "worse" when any lies on the worse side
    (that is also ``baseline``'s own verdict)."""

    baseline: str
    diff: float | None
    ci95: list[float | None]
    verdict: str
    """"better" | "not distinguishable" | "worse" (from the CI, see sycam.stats.verdict)"""
    grouping: NotRequired[str]
    n_comparisons: NotRequired[int]
    """how many exact classic methods the winner was compared with"""
    methods: NotRequired[dict[str, Difference]]
    controls: NotRequired[dict[str, Difference]]
    ci95_groups: NotRequired[list[float | None]]
    ci95_images: NotRequired[list[float | None]]
    """``baseline``'s two intervals, of which ``ci95`` is the hull"""
    splits: NotRequired[dict[str, SplitComparison]]
    """split → its comparisons (the forest plot)"""
    lambda_baseline: NotRequired[str | None]
    power: NotRequired[float | None]
    """the power control's p"""
    beats_power_control: NotRequired[bool | None]
    """whether the winner is better than the power control on the test split"""


class ControlResult(TypedDict):
    """The control: Grad-CAM thresholded to the winner's sparsity, to tell a better map from a sparser one."""

    name: str
    """CONTROL_TITLE"""
    scores: dict[str, float | None]
    """split → primary objective score"""


class PowerControlResult(TypedDict):
    """Grad-CAM's final map to the power ``p`` fitted on the synthesis split (``sycam.synth.control``)."""

    name: str
    power: float
    powers: list[float]
    """the grid ``p`` was chosen from"""
    scores: dict[str, float | None]
    """split → primary objective score"""


class Selection(TypedDict):
    """How the winner was chosen."""

    why: str
    """one line: why the winner and not the leaderboard's top row"""
    top_row: str | None
    min_effect: float
    merged: dict[str, list[str]]
    """kept expression → candidates merged into it (the same normalized map up to a positive factor)"""


class LayerDiagnostics(TypedDict):
    """What the target layer's terminals can express (:class:`sycam.diagnostics.Diagnosis`)."""

    layer: str
    gradient_constant: bool
    """G is spatially constant on every synthesis image (the network pools right after the layer)"""
    ablation_proportional: bool | None
    """D ∝ w·mean(A) on every image (None: D was not computed)"""
    varying_layers: list[str]
    """layers where G does vary over space, deepest first (probed only when G is constant)"""
    sentence: str | None
    """one plain sentence (it contains "constant" when G is spatially constant); None when G varies"""


class Timings(TypedDict, total=False):
    """Wall-clock seconds per phase of a run."""

    terminals: float
    baselines: float
    search: float
    validation: float
    test: float
    report: float
    """added by the CLI"""


_LambdaKeys = TypedDict("_LambdaKeys", {"lambda": float | None, "lambda_source": str})
"""``lambda`` is a Python keyword: these two keys are declared in the functional form and inherited"""


class SynthesisResults(_LambdaKeys):
    """``results.json``. The counters satisfy ``candidates_enumerated == candidates_scored + equivalent_pruned
    + rejected_total + subexpressions_pruned + form_skipped + duplicates_of_seeds + unscored + raced_out``."""

    metric: dict[str, Any]
    """the primary objective's describe()"""
    metrics: list[dict[str, Any]]
    """every objective's describe()"""
    model: dict[str, Any]
    data: dict[str, Any]
    lambdas: dict[str, float | None]
    """λ per objective (``lambda`` is the primary objective's)"""
    lambda_baseline: str | None
    accepted: bool
    best: BestResult
    baselines: dict[str, BaselineResult]
    leaderboard: list[LeaderboardRow]
    history: list[list[float | None]]
    guards: NotRequired[str]
    """which constraints applied: "default" (the objectives' default guards), "user" (given) or "off"
    (``--no-guards``); absent in results of older versions"""
    constraints: list[ConstraintResult]
    pareto: NotRequired[list[ParetoPoint]]
    """only with several objectives"""
    per_image: dict[str, dict[str, list[float]]]
    ids: dict[str, list[str]]
    degenerate: dict[str, dict[str, int]]
    comparison: Comparison | None
    control: ControlResult | None
    power_control: NotRequired[PowerControlResult | None]
    selection: NotRequired[Selection]
    validation_score: float | None
    optimism: float | None
    """synthesis − validation score of the winner (None without validation)"""
    incomplete: bool
    """a bank cap, a time limit or an interrupt cut the search"""
    stopped_because: str
    """search space exhausted | max candidates | beat λ | time limit | interrupted"""
    candidates_enumerated: int
    candidates_scored: int
    equivalent_pruned: int
    rejected: dict[str, int]
    rejected_total: int
    subexpressions_pruned: int
    form_skipped: int
    duplicates_of_seeds: int
    unscored: int
    raced_out: int
    """dropped by racing: provably unable to enter the leaderboard on the images seen so far (``--racing``)"""
    scored_by_key: int
    """scored candidates that took an earlier candidate's scores from an identical metric equivalence key"""
    forwards: int
    """model forwards (one per input image) the metrics ran during the search; naive: candidates × images per
    forward the metric needs per image (0 for cached metrics)"""
    constraint_failed: int
    """scored candidates for which a constraint fails (a subset of the scored)"""
    constraint_unchecked: int
    """scored candidates whose constraints were not checked: they could not enter the leaderboard or the front"""
    merged_rescaled: NotRequired[int]
    """scored candidates taken off the leaderboard: the same normalized map as a smaller one up to a positive
    factor (a subset of the scored)"""
    bank_size: int
    n_synthesis: int
    n_validation: int
    n_test: int
    seconds: float
    timings: Timings
    settings: dict[str, Any]
    versions: dict[str, str]
    notes: list[str]
    diagnostics: NotRequired[LayerDiagnostics]
    """the target layer's diagnostics (absent for a sharded search)"""
