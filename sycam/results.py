"""The typed schema of ``results.json`` (``sycam synthesize``) and ``evaluation.json`` (``sycam evaluate``).

TypedDicts, so the JSON stays plain data while the writer (:meth:`SynthesisResult.to_dict`) and the
readers (the report, the CLI summary) are checked against one declaration. Keys that older files or
smaller runs may lack are ``NotRequired``.
"""

from __future__ import annotations

from typing import TypedDict

__all__ = [
    "BaselineEntry",
    "BestEntry",
    "Comparison",
    "ConstraintEntry",
    "ControlEntry",
    "DataInfo",
    "EvaluationResults",
    "LeaderboardEntry",
    "MetricInfo",
    "ModelInfo",
    "ParetoEntry",
    "SynthesisResults",
]


class MetricInfo(TypedDict, total=False):
    """``Metric.describe()``: at least the name and the direction."""

    name: str
    higher_is_better: bool
    params: dict[str, object]
    requires: str
    cost: str


class ModelInfo(TypedDict, total=False):
    """The model and the layer its CAMs are read at."""

    name: str
    layer: str
    weights: str


class DataInfo(TypedDict, total=False):
    """Where the images came from and how they were split."""

    source: str
    n: int
    n_synthesis: int
    n_validation: int
    n_test: int
    test_fraction: float
    validation_fraction: float
    seed: int
    #: what the splits share (source photos/textures seen on two sides); ``[]`` when nothing.
    shared_sources: list[str]


class BestEntry(TypedDict, total=False):
    """The winning expression and its scores on every split."""

    expression: str
    latex: str
    size: int
    synthesis_score: float | None
    validation_score: float | None
    test_score: float | None
    is_baseline: str | None


class BaselineEntry(TypedDict, total=False):
    """One classic method; ``display_name`` names approximations (``"Score-CAM (top-16 channels)"``)."""

    expression: str
    display_name: str
    approximate: bool
    synthesis_score: float | None
    validation_score: float | None
    test_score: float | None


class LeaderboardEntry(TypedDict, total=False):
    """One of the top candidates on the synthesis split."""

    rank: int
    expression: str
    size: int
    synthesis_score: float | None
    validation_score: float | None
    test_score: float | None
    is_baseline: str | None


class Comparison(TypedDict):
    """Paired bootstrap of (winner − best baseline) on the test split."""

    baseline: str
    diff: float
    ci95: list[float]
    verdict: str


class ConstraintEntry(TypedDict, total=False):
    """A guard ``metric op rhs`` and whether the winner satisfies it on the synthesis split."""

    text: str
    metric: str
    op: str
    rhs: str
    bound: float
    synthesis_value: float
    holds: bool


class ParetoEntry(TypedDict):
    """A non-dominated expression of a several-metric search."""

    expression: str
    scores: dict[str, float]


class ControlEntry(TypedDict):
    """Trivial post-processing the winner must beat to mean something."""

    name: str
    scores: dict[str, float]


class SynthesisResults(TypedDict, total=False):
    """``results.json``."""

    metric: MetricInfo
    metrics: list[MetricInfo]
    model: ModelInfo
    data: DataInfo
    # lambda is a keyword: read it as results["lambda"]
    lambda_source: str
    accepted: bool
    best: BestEntry
    baselines: dict[str, BaselineEntry]
    leaderboard: list[LeaderboardEntry]
    history: list[list[float]]
    per_image: dict[str, dict[str, list[float]]]
    ids: dict[str, list[str]]
    degenerate: dict[str, dict[str, int]]
    comparison: Comparison
    constraints: list[ConstraintEntry]
    pareto: list[ParetoEntry]
    control: ControlEntry
    validation_score: float | None
    optimism: float | None
    incomplete: bool
    stopped_because: str
    candidates_enumerated: int
    candidates_scored: int
    equivalent_pruned: int
    rejected_total: int
    rejected: dict[str, int]
    subexpressions_pruned: int
    form_skipped: int
    duplicates_of_seeds: int
    seconds: float
    timings: dict[str, float]
    settings: dict[str, object]
    versions: dict[str, str]
    notes: list[str]


class EvaluationResults(TypedDict, total=False):
    """``evaluation.json``: methods × metrics on one image set."""

    metrics: dict[str, MetricInfo]
    results: dict[str, dict[str, float]]
    methods: dict[str, str]
    model: ModelInfo
    data: DataInfo
    per_image: dict[str, dict[str, dict[str, list[float]]]]
    ids: dict[str, list[str]]
    degenerate: dict[str, dict[str, int]]
    seconds: float
    timings: dict[str, float]
    settings: dict[str, object]
    versions: dict[str, str]
    notes: list[str]
