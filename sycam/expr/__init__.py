"""The CAM expression language: operators, trees, a safe parser and batched evaluation."""

from .ast import TERMINAL_DOCS, TERMINALS, Call, Const, Node, Terminal
from .evaluate import evaluate
from .ops import OPS, Kind, Op, safe_div
from .parser import ExpressionError, kind_of, parse

__all__ = [
    "OPS",
    "TERMINALS",
    "TERMINAL_DOCS",
    "Call",
    "Const",
    "ExpressionError",
    "Kind",
    "Node",
    "Op",
    "Terminal",
    "evaluate",
    "kind_of",
    "parse",
    "safe_div",
]
