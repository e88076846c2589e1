"""``sycam list``: what there is to choose from, as tables with headers."""

from __future__ import annotations

import argparse
from typing import Any

from ._common import HelpFormatter, table

DESCRIPTION = """\
List what you can choose from: models, classic methods (and their expressions), metrics, the operators and
terminals of the expression language, the search grammar (with the same options as synthesize), or a
model's candidate target layers (their output shapes and whether the gradient G varies over space there:
where it does not, Grad-CAM-like terminals only re-weight CAM's channels).

examples:
  sycam list metrics
  sycam list metrics --long          # with the paper that defines each metric
  sycam list grammar --terminals A,G --max-size 4
  sycam list layers --model efficientnet_lite0
"""
"""The ``sycam list --help`` text, with examples."""

WHAT = ("models", "methods", "metrics", "operators", "terminals", "grammar", "layers")
"""What ``sycam list`` can list (its positional argument)."""


def add_parsers(sub: Any) -> None:
    """Register ``list``."""
    from ._common import add_model_args
    from .synthesize import add_grammar_args

    p = sub.add_parser("list", help="list models, methods, metrics, operators, terminals, the grammar or layers",
                       description=DESCRIPTION, formatter_class=HelpFormatter)
    p.add_argument("what", choices=WHAT, metavar="WHAT", help=f"one of: {', '.join(WHAT)}")
    p.add_argument("--long", action="store_true", help="metrics: add the paper that defines each (with a link)")
    add_grammar_args(p)
    add_model_args(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Print the table of ``args.what``."""
    what = args.what
    if what == "models":
        from ..models import DEFAULT_MODEL, ZOO

        print(table(["model", "description"],
                    [(n + (" (default)" if n == DEFAULT_MODEL else ""), d) for n, d in ZOO.items()]))
        print("(any timm model name is accepted too)")
    elif what == "methods":
        from ..methods import METHODS, MULTI_LAYER

        print(table(["method", "name", "expression", "reference"],
                    [(m.name, m.title, m.expression, m.reference) for m in [*METHODS.values(), MULTI_LAYER]]))
    elif what == "operators":
        from ..expr import OPS

        rows = []
        for op in OPS.values():
            sig = f"x {op.infix} y" if op.infix else f"{op.name}({', '.join('xy'[:op.arity])})"
            rows.append((sig, op.form, op.expects(), op.doc))
        print(table(["operator", "form", "operands", "meaning"], rows))
    elif what == "terminals":
        from ..expr import TERMINAL_DOCS, TERMINALS

        print(table(["terminal", "kind", "meaning"], [(n, str(k), TERMINAL_DOCS.get(n, "")) for n, k in
                                                       TERMINALS.items()]))
    elif what == "metrics":
        from ..metrics import list_metrics

        rows = [[m["name"], m["direction"], "boxes/masks" if m["requires"] == "mask" else "-", m["cost"], m["doc"]]
                for m in list_metrics()]
        head = ["metric", "better", "needs", "cost", "description"]
        if args.long:
            head.append("reference")
            for row, m in zip(rows, list_metrics(), strict=True):
                row.append(m["reference"])
        print(table(head, rows))
    elif what == "layers":
        list_layers(args)
    else:
        from .synthesize import grammar_from

        print(grammar_from(args).describe())
    return 0


def list_layers(args: argparse.Namespace) -> None:
    """``sycam list layers``: every module two levels deep with a 4-d output, its shape and whether G varies
    over space there, probed with one forward and one backward of a seeded noise image."""
    import torch

    from ..diagnostics import probe_layers
    from ._common import load_model

    model = load_model(args)
    size = model.preprocess.size
    image = torch.randn(1, 3, size, size, generator=torch.Generator().manual_seed(0)).to(model.device)
    rows = []
    for info in probe_layers(model.module, image):
        k, h, w = info.shape
        note = " (default)" if info.name == model.layer else ""
        same = f"same output as {info.same_as}" if info.same_as else ""
        rows.append((info.name + note, f"{k}×{h}×{w}", "yes" if info.gradient_varies else "no (constant)", same))
    print(table(["layer", "output K×h×w", "G varies over space", "note"], rows))
    print("where G is constant (the network pools right after the layer), Grad-CAM, XGrad-CAM and HiResCAM equal "
          "CAM; use --layer or the terminals A@LAYER, G@LAYER of a layer where it varies")
