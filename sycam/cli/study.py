"""``sycam study``: the guarded synthesis for every (model, metric) cell on one data spec, every classic method
scored the same way, one table (study.json, study.md, report.html); resumable per cell."""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

from ._common import (
    CLIError,
    HelpFormatter,
    Repeat,
    add_executor_args,
    add_output_args,
    as_list,
    check_executor_args,
    device_arg,
    executor_from,
    fraction,
    fraction0,
    info,
    key_value,
    non_empty,
    nonneg_int,
    output_folder,
    positive_int,
    resolve_device,
)
from .synthesize import add_grammar_args, baselines_from, grammar_from

CHECKPOINT = "study-checkpoint.json"
"""The file holding every finished cell, written after each one; ``--resume`` reuses the cells it holds."""

DESCRIPTION = """\
Run the guarded synthesis for every (model, metric) cell on one data set, score every classic method the same
way, and write one table: the winner, its score per split, its held-out difference against every classic method
with a paired bootstrap 95% interval, the verdict (wins: better than every exact classic method and than the power
control, Grad-CAM's map to a fitted power; loses: worse than the best one on the test split; ties: otherwise),
candidates scored, model forwards (cost model) and wall time.
With several models, each cell's winner is also scored on the other models (the cross-model table). The cost per
image (forwards per terminal and view, and per candidate for metrics that run the model) is printed first.

The data split is grouped (no image on two sides): synthesis / validation / test from --data, or synthesis /
validation from --data and the test split from --test. Writes study.json, study.md, report.html, wins.json
(one line per cell: winner, best classic method, verdict, difference, interval) and study-checkpoint.json into
--out; --resume reuses the finished cells of an interrupted study.

examples:
  sycam study --model efficientnet_lite0 --metric average_drop --metric equivariance \\
      --data dev.csv --test check.csv --terminals A,G --max-size 4 --max-candidates 200 --out runs/study
  sycam study --model efficientnet_lite0 --model efficientnet_lite1 --metric energy_pointing_game \\
      --data demo --test photos --out runs/loc
  sycam study ... --out runs/study --resume                 # finish an interrupted study
  sycam study ... --executor ray --workers 4                # each cell's images sharded over Ray actors
"""
"""The ``sycam study --help`` text."""


def add_parsers(sub: Any) -> None:
    """Register ``study``."""
    p = sub.add_parser("study", help="synthesis for every (model, metric) cell, against every classic method",
                       description=DESCRIPTION, formatter_class=HelpFormatter)
    g = p.add_argument_group("models")
    g.add_argument("--model", action=Repeat, type=non_empty("a model name"), default=["efficientnet_lite0"],
                   metavar="NAME", help="a model of the zoo (`sycam list models`); repeat it for several")
    g.add_argument("--random-weights", action="store_true",
                   help="seeded random weights instead of ImageNet ones (for trying things out)")
    g.add_argument("--device", type=device_arg, default="auto", metavar="DEVICE",
                   help="auto, cpu, cuda, cuda:N or mps (auto: cuda when available)")
    g.add_argument("--seed", type=nonneg_int, default=0, metavar="N", help="seed of random weights and of the split")
    g.add_argument("--batch-size", type=positive_int, default=32, metavar="N",
                   help="images (or masked inputs) per forward pass")
    g.add_argument("--score-top-k", type=positive_int, default=None, metavar="K",
                   help="cap the Score-CAM terminal S to the top-K channels per image")

    g = p.add_argument_group("data")
    g.add_argument("--data", type=non_empty("a data source"), required=True, metavar="SOURCE",
                   help="'demo', 'photos', a manifest .csv/.json, or a folder (XML boxes, or images named by synset)")
    g.add_argument("--limit", type=positive_int, default=None, metavar="N", help="use only the first N of --data")
    g.add_argument("--test", type=non_empty("a data source"), default=None, metavar="SOURCE",
                   help="the test split, from other data (never searched or selected on)")
    g.add_argument("--test-limit", type=positive_int, default=None, metavar="N",
                   help="use only the first N of --test")
    g.add_argument("--test-fraction", type=fraction, default=0.25, metavar="FRACTION",
                   help="share of --data held out for the test split (without --test)")
    g.add_argument("--validation-fraction", type=fraction, default=0.25, metavar="FRACTION",
                   help="share of --data held out for the validation split (the winner is chosen on it)")

    g = p.add_argument_group("objectives")
    g.add_argument("--metric", action=Repeat, type=non_empty("a metric name"), required=True, metavar="NAME",
                   help="a metric (`sycam list metrics`); repeat it: one cell per model and metric")
    g.add_argument("--metric-param", action=Repeat, type=key_value, metavar="METRIC.KEY=VALUE",
                   help="a metric parameter, e.g. deletion_auc.steps=10 (repeatable)")
    g.add_argument("--baselines", type=non_empty("method names"), default="all", metavar="LIST",
                   help="classic methods scored beside each search, comma-separated, or all")
    g.add_argument("--max-degenerate", type=fraction0, default=0.0, metavar="FRACTION",
                   help="largest share of images on which a candidate's map may be degenerate (constant)")

    add_grammar_args(p)
    g = p.add_argument_group("search (per cell)")
    g.add_argument("--max-candidates", type=positive_int, default=500, metavar="N",
                   help="exact budget per cell: candidates scored (after equivalence pruning)")
    g.add_argument("--leaderboard-size", type=positive_int, default=10, metavar="N",
                   help="best candidates scored on validation (the winner is chosen among them) and test")
    g.add_argument("--equivalence", choices=["heatmap", "metric", "none"], default="heatmap",
                   help="prune candidates whose heatmaps (or metric scores) equal an earlier candidate's")
    g.add_argument("--racing", action="store_true", help="race candidates on growing image shares (same winner)")
    g.add_argument("--no-cross-model", action="store_true", help="skip the table of winners scored on other models")
    g.add_argument("--resume", action="store_true",
                   help=f"reuse the finished cells in --out ({CHECKPOINT}) and run the others")
    add_executor_args(p)
    add_output_args(p)
    p.set_defaults(func=run)


def _params(args: argparse.Namespace, metrics: list[str]) -> dict[str, dict[str, Any]]:
    params: dict[str, dict[str, Any]] = {m: {} for m in metrics}
    for key, value in as_list(args.metric_param):
        prefix, dot, rest = key.partition(".")
        if not dot or prefix not in params:
            raise CLIError(f"--metric-param {key}=...: name one of the study's metrics: METRIC.KEY=VALUE with METRIC "
                           f"one of {', '.join(metrics)}")
        params[prefix][rest] = value
    return params


def _check(args: argparse.Namespace, metrics: list[str], params: dict[str, dict[str, Any]]) -> None:
    from ..metrics import get_metric
    from ..models import ZOO

    if len(set(metrics)) != len(metrics):
        raise CLIError(f"--metric names a metric twice: {', '.join(metrics)}")
    models = as_list(args.model)
    if len(set(models)) != len(models):
        raise CLIError(f"--model names a model twice: {', '.join(models)}")
    for name in models:
        if name not in ZOO:
            raise CLIError(f"unknown model {name!r} for a study; the zoo: {', '.join(ZOO)}")
    for m in metrics:
        get_metric(m, **params[m])  # a bad name or parameter, before any model is loaded
    if args.test is None and args.test_fraction + args.validation_fraction >= 1:
        raise CLIError(f"--test-fraction {args.test_fraction} and --validation-fraction {args.validation_fraction} "
                       "leave no samples for the synthesis split (their sum must be below 1)")


def run(args: argparse.Namespace) -> int:
    """``sycam study``: every cell, then the tables; prints the summary."""
    from ..data import load_data, split, split_three
    from ..models import load_model
    from ..study import StudySplits, cell_forwards, cell_key, cost_per_image, held_out_overlap, run_study
    from ..synth import SynthesisConfig
    from ..terminals import ExtractOptions

    metrics = [str(m) for m in as_list(args.metric)]
    params = _params(args, metrics)
    _check(args, metrics, params)
    grammar = grammar_from(args)
    baselines = baselines_from(args.baselines)
    check_executor_args(args)
    config = SynthesisConfig(grammar=grammar, max_candidates=args.max_candidates, equivalence=args.equivalence,
                             baselines=baselines, max_degenerate_fraction=args.max_degenerate, racing=args.racing,
                             leaderboard_size=args.leaderboard_size)
    options = ExtractOptions(batch_size=args.batch_size, score_top_k=args.score_top_k)
    data = {"source": str(args.data), "limit": args.limit, "test": None if args.test is None else str(args.test),
            "test_limit": args.test_limit, "test_fraction": None if args.test else args.test_fraction,
            "validation_fraction": args.validation_fraction, "seed": args.seed}

    def splits_of(model: Any) -> StudySplits:
        samples = load_data(args.data, model.preprocess, model.classes, limit=args.limit)
        if args.test is None:
            return StudySplits(*split_three(samples, args.validation_fraction, args.test_fraction, args.seed))
        synthesis, validation = split(samples, args.validation_fraction, args.seed)
        test = load_data(args.test, model.preprocess, model.classes, limit=args.test_limit)
        splits = StudySplits(synthesis, validation, test)
        shared, clean = held_out_overlap(splits)
        if shared:
            info(f"note: {len(test) - len(clean)} of {len(test)} test samples share a source with the synthesis or "
                 f"validation split ({', '.join(shared)}); each cell also compares on the {len(clean)} that do not")
        return splits

    t0 = time.perf_counter()
    with output_folder(args, "study", checkpoint=CHECKPOINT) as out, executor_from(args) as executor:
        device = "cpu" if executor is not None else resolve_device(args.device)
        weights = None if args.random_weights else "imagenet"
        models = [load_model(name, weights=weights, seed=args.seed).to(device) for name in as_list(args.model)]
        done = _earlier_cells(out.root / CHECKPOINT) if args.resume else {}
        cache: dict[str, StudySplits] = {}

        def cached_splits(model: Any) -> StudySplits:
            if model.name not in cache:
                cache[model.name] = splits_of(model)
            return cache[model.name]

        _print_cost(models, metrics, params, cached_splits, config, options, cost_per_image, cell_forwards, cell_key,
                    done)
        finished: dict[str, Any] = dict(done)

        def on_cell(key: str, cell: dict[str, Any], reused: bool) -> None:
            finished[key] = cell
            out.write(CHECKPOINT, json.dumps({"cells": finished}, indent=1))
            w = cell["winner"]
            info(f"{'reused' if reused else 'done'}: {key}: {w['expression']} ({cell['verdict']}; "
                 f"{cell['candidates_scored']} candidates, {cell['wall_seconds']:.0f} s)")

        study = run_study(models, metrics, cached_splits, config, options, params, data, done, on_cell, executor,
                          cross=not args.no_cross_model)
        study.update({
            "settings": {"models": [m.name for m in models], "metrics": metrics, "metric_params": params,
                         "data": data, "synthesis": config.as_dict(),
                         "options": {"batch_size": args.batch_size, "score_top_k": args.score_top_k},
                         "executor": args.executor, "device": device},
            "seconds": round(time.perf_counter() - t0, 3),
        })
        from ..report.study import study_html, study_markdown
        from ..study import wins

        out.write("study.json", json.dumps(study, indent=1))
        out.write("wins.json", json.dumps(wins(study), indent=1))
        text = study_markdown(study)
        out.write("study.md", text)
        out.write("report.html", study_html(study))
    print(text, end="")
    info(f"wrote {out.root / 'study.json'}, study.md, report.html and wins.json")
    return 0


def _earlier_cells(path: Any) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise CLIError(f"--resume: cannot read {path}: {exc}") from None
    cells = data.get("cells") if isinstance(data, dict) else None
    if not isinstance(cells, dict):
        raise CLIError(f"--resume: {path} holds no cells")
    return cells


def _print_cost(models: list[Any], metrics: list[str], params: dict[str, dict[str, Any]], splits_of: Any,
                config: Any, options: Any, cost_per_image: Any, cell_forwards: Any, cell_key: Any,
                done: dict[str, Any]) -> None:
    """The cost model, per cell, before any search: forwards per image per terminal and view, per candidate."""
    from dataclasses import replace

    from ..metrics import get_metric
    from ..study import layer_channels
    from ..synth import default_constraints

    total = 0
    for model in models:
        splits = splits_of(model)
        n = {"synthesis": len(splits.synthesis), "validation": 0 if splits.validation is None
             else len(splits.validation), "test": len(splits.test)}
        info(f"{model.name} ({model.layer}): {n['synthesis']} synthesis, {n['validation']} validation and "
             f"{n['test']} test samples")
        k = layer_channels(model)
        for name in metrics:
            metric = get_metric(name, **params[name])
            cell_config = replace(config, constraints=default_constraints([metric.name]))
            cost = cost_per_image(model, metric, cell_config, options, splits.synthesis, channels=k)
            terms = ", ".join(f"{t} {v}{' (tail)' if t == 'D' else ''}" for t, v in cost["terminals"].items())
            forwards = cell_forwards(cost, n, config.max_candidates or 0, len(config.baselines),
                                     config.leaderboard_size)
            reused = " (finished: reused)" if cell_key(model.name, name) in done else ""
            total += 0 if reused else forwards["full"]
            info(f"  cost {model.name} × {name}{reused}: per image and view {terms}; {cost['views']} view(s); "
                 f"{cost['per_candidate']} forward(s) per image and candidate; at most {forwards['full']:,} forwards "
                 f"and {forwards['tail']:,} tail forwards")
    info(f"study: at most {total:,} model forwards in all, besides D's tail forwards (cost model; memoized inputs "
         "run once)")
