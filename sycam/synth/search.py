"""OGIS search: the learner proposes, the equivalence oracle prunes, the correctness oracle scores.

Data flows one way: model + synthesis images → cached terminals (also of every metric view) → the
learner's bank of sub-expression values → candidate weights → heatmaps → metric scores → leaderboard;
then the winner, the leaderboard and the classic methods are scored once more on the held-out test images.
"""

from __future__ import annotations

import hashlib
import json
import math
import platform
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from ..data.samples import Samples
from ..errors import SycamError
from ..expr import evaluate, kind_of, parse
from ..heatmap import finish, saliency
from ..methods import METHODS
from ..metrics.base import Metric
from ..scoring import BASE, Workspace
from ..terminals import ExtractOptions
from ..viz import write_atomic
from .grammar import Grammar
from .learner import Entry, Learner
from .oracles import CorrectnessOracle, EquivalenceOracle


class SynthesisError(SycamError, ValueError):
    """Bad synthesis settings or a checkpoint that does not match them."""


@dataclass
class SynthesisConfig:
    """Settings of one synthesis run (all recorded in the results)."""

    grammar: Grammar = field(default_factory=Grammar)
    threshold: float | None = None  #: λ; None → the best classic method's synthesis score
    stop_at_threshold: bool = False  #: stop at the first candidate that beats λ
    max_candidates: int | None = 5000  #: candidates scored (after equivalence pruning)
    time_limit: float | None = None  #: seconds of search (terminal extraction excluded)
    equivalence: str = "heatmap"  #: heatmap | metric | none
    tolerance: float = 1e-4  #: of the equivalence oracle
    #: candidates scored per metric call; None: 2 on the CPU (large (B, N, H, W) intermediates thrash its
    #: caches), 32 on an accelerator
    batch: int | None = None
    leaderboard_size: int = 20
    baselines: tuple[str, ...] = tuple(METHODS)
    seed_baselines: bool = True  #: score the classic methods the grammar's terminals/operators allow first
    checkpoint: Path | None = None
    resume: bool = False
    checkpoint_every: float = 30.0  #: seconds between checkpoints
    progress: bool = False
    max_bank_bytes: int = 2 << 30

    def as_dict(self) -> dict[str, Any]:
        return {
            "grammar": self.grammar.as_dict(), "threshold": self.threshold,
            "stop_at_threshold": self.stop_at_threshold, "max_candidates": self.max_candidates,
            "time_limit": self.time_limit, "equivalence": self.equivalence, "tolerance": self.tolerance,
            "batch": self.batch, "leaderboard_size": self.leaderboard_size, "baselines": list(self.baselines),
            "seed_baselines": self.seed_baselines,
        }


@dataclass
class Candidate:
    expression: str
    size: int
    synthesis_score: float
    order: int  #: position in the scoring order (ties: smaller, then earlier wins)
    seed: str | None = None  #: the classic method this candidate is, when it was seeded
    test_score: float | None = None


@dataclass
class SynthesisResult:
    """What a search found; :meth:`to_dict` is the ``results.json`` schema."""

    metric: Metric
    best: Candidate
    baselines: dict[str, dict[str, Any]]
    leaderboard: list[Candidate]
    history: list[tuple[int, float]]
    threshold: float | None
    threshold_source: str
    counters: dict[str, Any]
    timings: dict[str, float]
    settings: dict[str, Any]
    notes: list[str]
    stopped_because: str

    def to_dict(self) -> dict[str, Any]:
        def finite(x: float | None) -> float | None:
            return None if x is None or not math.isfinite(x) else float(x)

        best_node = parse(self.best.expression)
        return {
            "metric": self.metric.describe(),
            "model": self.settings.get("model", {}),
            "data": self.settings.get("data", {}),
            "lambda": finite(self.threshold),
            "lambda_source": self.threshold_source,
            "accepted": self.threshold is not None and CorrectnessOracle(
                self.metric.higher_is_better, self.threshold).accepts(self.best.synthesis_score),
            "best": {"expression": self.best.expression, "latex": best_node.latex(), "size": self.best.size,
                     "synthesis_score": finite(self.best.synthesis_score),
                     "test_score": finite(self.best.test_score), "is_baseline": self.best.seed},
            "baselines": {k: {**v, "synthesis_score": finite(v["synthesis_score"]),
                              "test_score": finite(v.get("test_score"))} for k, v in self.baselines.items()},
            "leaderboard": [{"rank": i + 1, "expression": c.expression, "size": c.size,
                             "synthesis_score": finite(c.synthesis_score), "test_score": finite(c.test_score),
                             "is_baseline": c.seed}
                            for i, c in enumerate(self.leaderboard)],
            "history": [[n, finite(s)] for n, s in self.history],
            **self.counters,
            "stopped_because": self.stopped_because,
            "seconds": round(sum(self.timings.values()), 3),
            "timings": {k: round(v, 3) for k, v in self.timings.items()},
            "settings": self.settings,
            "versions": versions(),
            "notes": self.notes,
        }


def versions() -> dict[str, str]:
    import torchvision

    from .. import __version__

    return {"sycam": __version__, "torch": torch.__version__, "torchvision": torchvision.__version__,
            "python": platform.python_version()}


def _render(weights: Sequence[Tensor], acts: Tensor, size: tuple[int, int]) -> Tensor:
    return finish(torch.stack([saliency(w, acts) for w in weights]), size)


class _Scorer:
    """Scores batches of bank entries (weights already computed on every input set) with the metric."""

    def __init__(self, ws: Workspace, metric: Metric, views: list[str]) -> None:
        self.ws = ws
        self.metric = metric
        self.views = views  # input-set order of the entries' values (BASE first)
        self.acts = [ws.caches[v].values(["A"])["A"] for v in views]

    def scores(self, entries: Sequence[Entry]) -> list[float]:
        size = self.ws.size
        maps = _render([e.values[0] for e in entries], self.acts[0], size)

        def view_maps(view: str) -> Tensor:
            i = self.views.index(view)
            return _render([e.values[i] for e in entries], self.acts[i], size)

        ctx = self.ws.context([e.node for e in entries], view_maps)
        return [float(x) for x in self.metric.aggregate(self.metric.score(maps, ctx)).tolist()]


def _settings_key(settings: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()[:16]


def synthesize(model: nn.Module, layer: str | nn.Module, synthesis: Samples, test: Samples | None, metric: Metric,
               config: SynthesisConfig | None = None, options: ExtractOptions | None = None,
               settings: dict[str, Any] | None = None,
               on_progress: Callable[[int, float | None], None] | None = None) -> SynthesisResult:
    """Search the grammar for the expression that scores best on ``synthesis`` under ``metric``.

    Args:
        model, layer: the classifier and its target layer.
        synthesis, test: the two splits (``test`` may be ``None``: no held-out scores).
        metric: the objective; its direction is respected.
        config: grammar, λ, budget, equivalence, checkpointing.
        options: terminal extraction options (batch sizes, Score-CAM top-k cap).
        settings: extra provenance recorded in the results (model, data, ...).
    """
    config = config or SynthesisConfig()
    options = options or ExtractOptions()
    if config.batch is None:
        param = next(model.parameters(), None)
        on_cpu = (param.device if param is not None else synthesis.device).type == "cpu"
        config = replace(config, batch=2 if on_cpu else 32)
    timings: dict[str, float] = {}
    notes: list[str] = []
    if metric.requires == "mask" and synthesis.masks is None:
        raise SynthesisError(f"metric {metric.name} needs ground truth (boxes or masks), but the data has none")
    unknown = [b for b in config.baselines if b not in METHODS]
    if unknown:
        raise SynthesisError(f"unknown baseline(s) {unknown}; known: {', '.join(METHODS)}")

    # 1. terminals of the synthesis split, its metric views included
    t0 = time.perf_counter()
    ws = Workspace.build(model, layer, synthesis, [metric], options)
    views = [BASE, *[v for v in ws.caches if v != BASE]]
    baseline_nodes = {b: METHODS[b].node for b in config.baselines}
    needed = set(config.grammar.terminals)
    for node in baseline_nodes.values():
        needed |= node.terminals()
    per_view = [ws.values(needed, v) for v in views]
    leaves = {t: tuple(pv[t] for pv in per_view) for t in config.grammar.terminals}
    timings["terminals"] = time.perf_counter() - t0
    if options.score_top_k is not None and "S" in needed:
        notes.append(f"Score-CAM terminal S capped to the top-{options.score_top_k} channels per image by mean "
                     "activation; the other channels get the score of the fully masked input.")

    # 2. baselines and λ
    t0 = time.perf_counter()
    base_scores = metric.aggregate(ws.score(list(baseline_nodes.values()), metric, config.batch)).tolist()
    baselines = {b: {"expression": str(baseline_nodes[b]), "title": METHODS[b].title, "synthesis_score": float(s)}
                 for b, s in zip(baseline_nodes, base_scores, strict=True)}
    oracle = CorrectnessOracle(metric.higher_is_better, None)
    best_baseline = None
    for b, info in baselines.items():
        if best_baseline is None or oracle.better(info["synthesis_score"], baselines[best_baseline]["synthesis_score"]):
            best_baseline = b
    if config.threshold is not None:
        oracle.threshold, source = float(config.threshold), "user"
    elif best_baseline is not None:
        oracle.threshold, source = baselines[best_baseline]["synthesis_score"], "best_baseline"
    else:
        source = "none"
    timings["baselines"] = time.perf_counter() - t0

    all_settings = {**(settings or {}), "synthesis": config.as_dict(),
                    "extraction": {"batch_size": options.batch_size, "score_top_k": options.score_top_k},
                    "metric": metric.describe(), "synthesis_ids": list(synthesis.ids)}
    key = _settings_key(all_settings)
    done: dict[str, float] = {}
    if config.checkpoint is not None and config.resume and config.checkpoint.exists():
        state = json.loads(config.checkpoint.read_text())
        if state.get("key") != key:
            raise SynthesisError(f"checkpoint {config.checkpoint} was written with other settings; "
                                 "rerun without --resume or with the same settings")
        done = {k: float(v) if v is not None else math.nan for k, v in state["scored"].items()}
        notes.append(f"resumed from a checkpoint holding {len(done)} scored candidates")

    # 3. the OGIS loop
    t0 = time.perf_counter()
    learner = Learner(config.grammar, leaves, config.max_bank_bytes)
    equivalence = EquivalenceOracle(config.equivalence, config.tolerance)
    scorer = _Scorer(ws, metric, views)
    acts = tuple(pv["A"] for pv in per_view)
    scored: list[Candidate] = []
    leaderboard: list[Candidate] = []
    history: list[tuple[int, float]] = []
    best: Candidate | None = None
    stopped = "search space exhausted"
    last_checkpoint = time.perf_counter()
    bar = None
    if config.progress:
        from tqdm import tqdm

        bar = tqdm(total=config.max_candidates, unit="cand", desc="synthesize", dynamic_ncols=True, leave=False)

    def seeds() -> list[tuple[Entry, str]]:
        out = []
        if not config.seed_baselines:
            return out
        for b, node in baseline_nodes.items():
            kind = kind_of(node)
            if config.grammar.uses_only(node) and config.grammar.form_allows(kind):
                vals = tuple(evaluate(node, pv) for pv in per_view)
                out.append((Entry(node, kind, vals), b))
        return out

    def flush(batch: list[tuple[Entry, str | None]]) -> bool:
        """Score a batch; return True when the search must stop."""
        nonlocal best, stopped
        todo = [e for e, _ in batch if str(e.node) not in done]
        fresh = dict(zip((str(e.node) for e in todo), scorer.scores(todo), strict=True)) if todo else {}
        for entry, seed in batch:
            text = str(entry.node)
            score = fresh[text] if text in fresh else done[text]
            done[text] = score
            if equivalence.check_score(text, score):
                continue
            cand = Candidate(text, entry.size, score, len(scored), seed)
            scored.append(cand)
            if best is None or oracle.better(score, best.synthesis_score):
                best = cand
            history.append((len(scored), best.synthesis_score))
            leaderboard.append(cand)
        leaderboard.sort(key=lambda c: (_rank_key(c.synthesis_score, metric.higher_is_better), c.size, c.order))
        del leaderboard[config.leaderboard_size:]
        if bar is not None:
            bar.update(len(batch))
            rate = len(scored) / max(time.perf_counter() - t0, 1e-9)
            bar.set_postfix(best=f"{best.synthesis_score:.4f}" if best else "-", rate=f"{rate:.0f}/s")
        if on_progress is not None:
            on_progress(len(scored), best.synthesis_score if best else None)
        if config.checkpoint is not None and time.perf_counter() - last_checkpoint > config.checkpoint_every:
            _checkpoint()
        if config.stop_at_threshold and best is not None and oracle.accepts(best.synthesis_score):
            stopped = "beat λ"
            return True
        if config.max_candidates is not None and len(scored) >= config.max_candidates:
            stopped = "max candidates"
            return True
        if config.time_limit is not None and time.perf_counter() - t0 > config.time_limit:
            stopped = "time limit"
            return True
        return False

    def _checkpoint() -> None:
        nonlocal last_checkpoint
        assert config.checkpoint is not None
        write_atomic(config.checkpoint, json.dumps({"key": key, "scored": {
            k: (None if not math.isfinite(v) else v) for k, v in done.items()}}))
        last_checkpoint = time.perf_counter()

    pending: list[tuple[Entry, str | None]] = []
    seen_seeds: set[str] = set()
    try:
        stop = False
        for entry, name in seeds():
            if equivalence.check(str(entry.node), entry.values, acts) is None:
                pending.append((entry, name))
                seen_seeds.add(str(entry.node))
        if pending:
            stop = flush(pending)
            pending = []
        if not stop:
            for entry in learner.entries():
                if config.time_limit is not None and time.perf_counter() - t0 > config.time_limit:
                    stopped = "time limit"
                    break
                if not config.grammar.form_allows(entry.kind) or str(entry.node) in seen_seeds:
                    continue
                if equivalence.check(str(entry.node), entry.values, acts) is not None:
                    continue
                pending.append((entry, None))
                if len(pending) >= config.batch:
                    stop = flush(pending)
                    pending = []
                    if stop:
                        break
            if pending:
                flush(pending)
                pending = []
    except KeyboardInterrupt:
        stopped = "interrupted"
        notes.append("interrupted by the user: the best candidate so far is reported")
    finally:
        if bar is not None:
            bar.close()
    if config.checkpoint is not None:
        _checkpoint()
    timings["search"] = time.perf_counter() - t0
    if learner.stats.bank_full:
        notes.append("the sub-expression bank reached its memory cap; larger expressions were built only from "
                     "the bank kept until then")
    if best is None:
        raise SynthesisError("no candidate could be scored: the grammar yields no valid heatmap "
                             f"(rejected: {equivalence.rejected or learner.stats.rejected})")

    # 4. held-out scores for the winner, the leaderboard and the baselines
    t0 = time.perf_counter()
    if test is not None and len(test):
        ws_test = Workspace.build(model, layer, test, [metric], options)
        exprs = list(dict.fromkeys([best.expression, *[c.expression for c in leaderboard]]))
        nodes = [parse(e) for e in exprs] + list(baseline_nodes.values())
        test_scores = metric.aggregate(ws_test.score(nodes, metric, config.batch)).tolist()
        by_text = dict(zip(exprs, test_scores[: len(exprs)], strict=True))
        best.test_score = by_text[best.expression]
        for c in leaderboard:
            c.test_score = by_text[c.expression]
        for b, s in zip(baseline_nodes, test_scores[len(exprs):], strict=True):
            baselines[b]["test_score"] = float(s)
    timings["test"] = time.perf_counter() - t0

    rejected = dict(learner.stats.rejected)
    for k, v in equivalence.rejected.items():
        rejected[k] = rejected.get(k, 0) + v
    counters = {
        "candidates_enumerated": learner.stats.enumerated + len(seen_seeds),
        "candidates_scored": len(scored),
        "equivalent_pruned": equivalence.pruned,
        "subexpressions_pruned": learner.stats.subexpr_pruned,
        "rejected": rejected,
        "bank_size": learner.stats.bank_size,
        "n_synthesis": len(synthesis),
        "n_test": 0 if test is None else len(test),
    }
    return SynthesisResult(metric, best, baselines, leaderboard, history, oracle.threshold, source, counters,
                           timings, all_settings, notes, stopped)


def _rank_key(score: float, higher_is_better: bool) -> float:
    if score != score:
        return math.inf
    return -score if higher_is_better else score

