"""``sycam list``: what there is to choose from, as tables with headers."""

from __future__ import annotations

import argparse
from typing import Any

from ._common import HelpFormatter, table

DESCRIPTION = """\
List what you can choose from: models, classic methods (and their expressions), metrics, the operators and
terminals of the expression language, or the search grammar (with the same options as synthesize).

examples:
  sycam list metrics
  sycam list metrics --long          # with the paper that defines each metric
  sycam list grammar --terminals A,G --max-size 4
"""
"""The ``sycam list --help`` text, with examples."""

WHAT = ("models", "methods", "metrics", "operators", "terminals", "grammar")
"""What ``sycam list`` can list (its positional argument)."""


def add_parsers(sub: Any) -> None:
    """Register ``list``."""
    from .synthesize import add_grammar_args

    p = sub.add_parser("list", help="list models, methods, metrics, operators, terminals or the grammar",
                       description=DESCRIPTION, formatter_class=HelpFormatter)
    p.add_argument("what", choices=WHAT, metavar="WHAT", help=f"one of: {', '.join(WHAT)}")
    p.add_argument("--long", action="store_true", help="metrics: add the paper that defines each (with a link)")
    add_grammar_args(p)
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
        from ..methods import METHODS

        print(table(["method", "name", "expression", "reference"],
                    [(m.name, m.title, m.expression, m.reference) for m in METHODS.values()]))
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
    else:
        from .synthesize import grammar_from

        print(grammar_from(args).describe())
    return 0
