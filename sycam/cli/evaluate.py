"""``sycam evaluate``: score methods and expressions with metrics; a table, a CSV, JSON and a report."""

from __future__ import annotations

import argparse
import csv
import io
import json
import time
from typing import Any

from ._common import (
    CLIError,
    HelpFormatter,
    add_data_args,
    add_executor_args,
    add_model_args,
    add_output_args,
    check_executor_args,
    executor_from,
    gallery,
    info,
    load_model,
    load_samples,
    method_list,
    name_list,
    non_empty,
    nonneg_int,
    output_folder,
    pick,
)

DESCRIPTION = """\
Score classic methods and CAM expressions with one or more metrics on a data set (no search). Prints a
table and writes evaluation.json, evaluation.csv, evaluation.md and report.html into --out. Each method's
mean comes with its difference from --reference and a 95% interval (paired bootstrap resampling the data's
groups: manifest group, object photo, texture, else image), and a verdict read from that interval.

examples:
  sycam evaluate --data demo --metrics energy_pointing_game,deletion_auc --out runs/eval
  sycam evaluate --data boxes.csv --methods "gradcam,mean(G) * relu(D)" --metrics iou --out runs/mine
"""
"""The ``sycam evaluate --help`` text: what the command writes, and examples."""


def add_parsers(sub: Any) -> None:
    """Register ``evaluate``."""
    p = sub.add_parser("evaluate", help="score methods and expressions with metrics (a table and a report)",
                       description=DESCRIPTION, formatter_class=HelpFormatter)
    add_model_args(p)
    add_data_args(p)
    g = p.add_argument_group("what to score")
    g.add_argument("--methods", type=non_empty("method names or expressions"), default="all",
                   metavar="LIST", help="comma-separated method names (`sycam list methods`) or expressions; all: "
                   "every classic method")
    g.add_argument("--metrics", type=non_empty("metric names"), required=True, metavar="LIST",
                   help="comma-separated metric names (`sycam list metrics`) or module:function")
    g.add_argument("--reference", type=non_empty("a method name"), default=None, metavar="METHOD",
                   help="the method every other is compared with (intervals of the difference); default: the best "
                   "exact classic method on the first metric")
    g.add_argument("--gallery", type=nonneg_int, default=4, metavar="N", help="samples shown in the report")
    add_executor_args(p)
    add_output_args(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Score every method with every metric; write the outputs; print the table."""
    from ..heatmap import explain
    from ..methods import resolve_method
    from ..metrics import get_metric
    from ..report import write_evaluation_report
    from ..terminals import ExtractOptions
    from ..workspace import evaluate_methods

    methods = dict(resolve_method(m) for m in method_list(args.methods))
    metric_names = name_list(args.metrics, "--metrics", "metric (see sycam list metrics)")
    metrics = {name: get_metric(name) for name in metric_names}
    reference = None
    if args.reference is not None:
        reference = resolve_method(args.reference)[0]
        if reference not in methods:
            raise CLIError(f"--reference {args.reference} is not among the methods scored "
                           f"({', '.join(methods)}); add it to --methods")
    check_executor_args(args)
    with output_folder(args, "evaluate") as out, executor_from(args) as executor:
        model = load_model(args, "cpu" if executor is not None else None)  # pickled to the workers from the CPU
        samples = load_samples(args, model)
        for name, metric in metrics.items():  # before the terminals are computed (scoring checks only later)
            if metric.requires == "mask" and samples.masks is None:
                raise CLIError(f"metric {name} needs ground truth (boxes or masks), but {args.data} has none")
        t0 = time.perf_counter()
        options = ExtractOptions(batch_size=args.batch_size, score_top_k=args.score_top_k,
                                 reshape=model.reshape_transform)
        if executor is None:
            results = evaluate_methods(model.module, model.layer, samples, methods, metrics, options,
                                       progress=lambda m: info(f"scoring {m} ..."))
        else:
            from ..synth.sharded import evaluate_sharded

            results = evaluate_sharded(model.module, model.layer, samples, methods, metrics, options, executor)
        from ..data.split import bootstrap_groups

        groups, grouping = bootstrap_groups(samples)
        reference = reference or default_reference(results, metric_names[0], metrics[metric_names[0]],
                                                   args.score_top_k)
        evaluation = {
            "metrics": {n: m.describe() for n, m in metrics.items()},
            "results": {name: dict(scores) for name, scores in results.items()},
            **per_image_evidence(results, metric_names),
            "reference": reference, "grouping": grouping,
            "intervals": intervals(results, metric_names, metrics, reference, groups),
            "model": {"name": model.name, "layer": model.layer, "weights": model.weights,
                      "reshape": args.reshape},
            "data": {"source": str(args.data), "n": len(samples)},
            "settings": {"methods": {k: str(v) for k, v in methods.items()}, "batch_size": args.batch_size,
                         "score_top_k": args.score_top_k, "seed": args.seed, "limit": args.limit},
            "seconds": round(time.perf_counter() - t0, 3),
        }
        text = markdown_table(results, metric_names, metrics, evaluation["intervals"], reference)
        text += (f"\nΔ: difference from the reference {reference} (mean over images) with its 95% interval, "
                 f"resampling {grouping}; * marks a difference distinguishable from 0.\n")
        out.write("evaluation.json", json.dumps(evaluation, indent=1))
        out.write("evaluation.md", text)
        out.write("evaluation.csv", csv_table(results, metric_names))
        items: list[Any] = []
        if args.gallery:
            picked = pick(samples, args.gallery)
            maps = explain(model, picked.images.to(model.device), list(methods.values()), targets=picked.labels,
                           score_top_k=args.score_top_k)
            items = gallery(model, picked, {name: maps[str(node)] for name, node in methods.items()}, ALL)
        write_evaluation_report(out.path("report.html"), evaluation, items)
    print(text, end="")
    info(f"wrote {out.root / 'evaluation.json'}, evaluation.csv, evaluation.md and report.html")
    return 0


ALL = "all"
"""the one image set of an evaluation, as evaluation.json names it (its per-image keys are by split)"""


def per_image_evidence(results: Any, metric_names: list[str]) -> dict[str, Any]:
    """evaluation.json's ``per_image[all][method][metric]``, ``ids[all]`` and ``degenerate[method][all]``
    (:class:`sycam.report.evaluation.EvaluationResults`) from an :class:`~sycam.workspace.Evaluation`."""
    return {
        "per_image": {ALL: {name: {m: results.per_image[m][name] for m in metric_names} for name in results}},
        "ids": {ALL: list(results.ids)},
        "degenerate": {name: {ALL: int(count)} for name, count in results.degenerate.items()},
    }


def default_reference(results: Any, metric_name: str, metric: Any, score_top_k: int | None) -> str:
    """The best exact classic method on ``metric`` (a capped Score-CAM is an approximation and never the
    reference); without a classic method among the results, the first method."""
    from ..methods import METHODS

    classic = [n for n in results if n in METHODS
               and not (score_top_k is not None and "S" in METHODS[n].node.terminals())]
    if not classic:
        return next(iter(results))
    best = classic[0]
    for n in classic[1:]:
        if metric.better(results[n][metric_name], results[best][metric_name]):
            best = n
    return best


def intervals(results: Any, metric_names: list[str], metrics: dict[str, Any], reference: str,
              groups: list[str]) -> dict[str, dict[str, Any]]:
    """evaluation.json's ``intervals[method][metric]``: method − ``reference`` per image, its mean and clustered
    bootstrap 95 % CI and the verdict (:func:`sycam.stats.difference`); the reference itself has none."""
    from ..stats import difference

    return {name: {m: difference(results.per_image[m][name], results.per_image[m][reference],
                                 metrics[m].higher_is_better, groups) for m in metric_names}
            for name in results if name != reference}


def markdown_table(results: dict[str, dict[str, float]], metric_names: list[str], metrics: dict[str, Any],
                   diffs: dict[str, dict[str, Any]] | None = None, reference: str | None = None) -> str:
    """``| method | metric ↑ | ... |`` with 4 decimals (n/a for a missing score); with ``diffs`` (``intervals``)
    each cell also holds the difference from ``reference`` and its 95% interval, ``*`` where distinguishable."""
    heads = ["method", *[f"{m} {'↑' if metrics[m].higher_is_better else '↓'}" for m in metric_names]]

    def fmt(x: Any) -> str:
        return "n/a" if x is None or x != x else f"{x:.4f}"

    def signed(x: Any) -> str:
        return "n/a" if x is None or x != x else f"{x:+.4f}"

    def cell(name: str, m: str, value: Any) -> str:
        if diffs is None:
            return fmt(value)
        if name == reference:
            return f"{fmt(value)} (reference)"
        e = diffs.get(name, {}).get(m)
        if not e:
            return fmt(value)
        lo, hi = e["ci95"]
        star = "*" if e["verdict"] != "not distinguishable" else ""
        return f"{fmt(value)} Δ {signed(e['diff'])} [{signed(lo)}, {signed(hi)}]{star}"

    rows = [[name, *[cell(name, m, vals.get(m)) for m in metric_names]] for name, vals in results.items()]
    widths = [max(len(r[i]) for r in [heads, *rows]) for i in range(len(heads))]
    line = "| " + " | ".join(f"{{:<{w}}}" for w in widths) + " |"
    lines = [line.format(*heads), "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    lines += [line.format(*r) for r in rows]
    return "\n".join(lines) + "\n"


def csv_table(results: dict[str, dict[str, float]], metric_names: list[str]) -> str:
    """``method,metric,...`` rows, full precision."""
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["method", *metric_names])
    for name, vals in results.items():
        w.writerow([name, *[vals.get(m) for m in metric_names]])
    return buf.getvalue()
