"""The CAM expression language: operators, trees, a safe parser and batched evaluation."""

from .ast import (
    LAYERED,
    TARGET,
    TERMINAL_DOCS,
    TERMINALS,
    Call,
    Const,
    Node,
    Terminal,
    acts_key,
    layer_of,
    split_terminal,
    terminal_kind,
)
from .evaluate import evaluate
from .ops import HEATMAP_OPS, OPS, Kind, Op, safe_div
from .parser import ExpressionError, kind_of, parse

__all__ = [
    "HEATMAP_OPS",
    "LAYERED",
    "OPS",
    "TARGET",
    "TERMINALS",
    "TERMINAL_DOCS",
    "Call",
    "Const",
    "ExpressionError",
    "Kind",
    "Node",
    "Op",
    "Terminal",
    "acts_key",
    "evaluate",
    "kind_of",
    "layer_of",
    "parse",
    "safe_div",
    "split_terminal",
    "terminal_kind",
]
