"""The operator table of the CAM expression language.

Every value an expression computes has one of three *kinds*:

- ``scalar`` — a constant number (shape ``()``),
- ``vector`` — one number per image and channel, stored as ``(N, K, 1, 1)``,
- ``map``    — one number per image, channel and layer position, stored as ``(N, K, h, w)``.

Storing vectors with two trailing singleton axes makes broadcasting between a channel vector and a map
plain tensor broadcasting. Each operator declares its arity, the kinds it accepts and returns, whether
it is commutative (so that the enumerator does not build ``a + b`` and ``b + a``), its torch
implementation and its LaTeX rendering.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import IntEnum

import torch
from torch import Tensor


class Kind(IntEnum):
    """Kind of a value; the order is the broadcasting order (scalar < vector < map)."""

    SCALAR = 0
    VECTOR = 1
    MAP = 2

    def __str__(self) -> str:
        return {0: "scalar", 1: "channel vector", 2: "map"}[int(self)]


def safe_div(x: Tensor, y: Tensor) -> Tensor:
    r"""Safe division: :math:`x / y` where that is finite, and 0 where it is not (``y == 0``, or an overflow).

    Never produces ``inf`` or ``NaN`` from finite inputs, and equals plain division everywhere else
    (Grad-CAM++'s denominators are ~1e-6, so no ε is added: pytorch-grad-cam's own ε is part of the
    Grad-CAM++ expression instead).
    """
    return torch.nan_to_num(torch.as_tensor(x) / torch.as_tensor(y), nan=0.0, posinf=0.0, neginf=0.0)


def _spatial_max(x: Tensor) -> Tensor:
    return x.amax(dim=(-2, -1), keepdim=True)


def _minmax_channels(x: Tensor) -> Tensor:
    lo = x.amin(dim=-3, keepdim=True)
    hi = x.amax(dim=-3, keepdim=True)
    return safe_div(x - lo, hi - lo)


@dataclass(frozen=True)
class Op:
    """One operator of the language: its name, arity, torch implementation, LaTeX template and typing form.

    >>> from sycam.expr import OPS
    >>> OPS["mean"].arity, OPS["mean"].form, OPS["+"].infix, OPS["+"].commutative
    (1, 'reduce', '+', True)
    """

    name: str
    arity: int
    fn: Callable[..., Tensor]
    latex: str  # format string with {0}, {1} for the operands
    form: str
    """``"elementwise"`` (result kind = broadcast of the operands), ``"reduce"`` (map → vector),
    ``"channel"`` (vector → vector)."""
    commutative: bool = False
    infix: str | None = None
    precedence: int = 100  # infix binding strength; functions bind tightest
    doc: str = ""

    def result_kind(self, kinds: tuple[Kind, ...]) -> Kind | None:
        """Kind of the result for operand kinds ``kinds``, or ``None`` if they are not accepted."""
        if self.form == "elementwise":
            return max(kinds)
        if self.form == "reduce":
            return Kind.VECTOR if kinds[0] == Kind.MAP else None
        if self.form == "channel":
            return Kind.VECTOR if kinds[0] == Kind.VECTOR else None
        raise AssertionError(self.form)

    def expects(self) -> str:
        """Human description of the operand kinds, for error messages."""
        return {"elementwise": "numbers, channel vectors or maps", "reduce": "a map",
                "channel": "a channel vector"}[self.form]


OPS: dict[str, Op] = {
    op.name: op
    for op in [
        Op("+", 2, torch.add, r"{0} + {1}", "elementwise", True, "+", 1, "sum"),
        Op("-", 2, torch.sub, r"{0} - {1}", "elementwise", False, "-", 1, "difference"),
        Op("*", 2, torch.mul, r"{0} \cdot {1}", "elementwise", True, "*", 2, "product"),
        Op("/", 2, safe_div, r"\frac{{{0}}}{{{1}}}", "elementwise", False, "/", 2,
           "safe division: x / y, 0 where that is not finite (y = 0)"),
        Op("relu", 1, torch.relu, r"\mathrm{{relu}}\left({0}\right)", "elementwise", doc="max(x, 0)"),
        Op("abs", 1, torch.abs, r"\left|{0}\right|", "elementwise", doc="|x|"),
        Op("sq", 1, torch.square, r"\left({0}\right)^{{2}}", "elementwise", doc="x²"),
        Op("cube", 1, lambda x: x * x * x, r"\left({0}\right)^{{3}}", "elementwise", doc="x³"),
        Op("neg", 1, torch.neg, r"-\left({0}\right)", "elementwise", doc="−x"),
        Op("mean", 1, lambda x: x.mean(dim=(-2, -1), keepdim=True), r"\operatorname{{mean}}_{{ij}}\,{0}",
           "reduce", doc="spatial mean of each channel: (1/hw) Σ_ij x_kij"),
        Op("sum", 1, lambda x: x.sum(dim=(-2, -1), keepdim=True), r"\sum_{{ij}} {0}", "reduce",
           doc="spatial sum of each channel: Σ_ij x_kij"),
        Op("max", 1, _spatial_max, r"\max_{{ij}} {0}", "reduce", doc="spatial maximum of each channel"),
        Op("softmax", 1, lambda x: torch.softmax(x, dim=-3), r"\operatorname{{softmax}}_k\left({0}\right)",
           "channel", doc="softmax over channels: exp(x_k) / Σ_j exp(x_j)"),
        Op("minmax", 1, _minmax_channels, r"\operatorname{{minmax}}_k\left({0}\right)", "channel",
           doc="(x_k − min_j x_j) / (max_j x_j − min_j x_j) over channels"),
    ]
}

FUNCTIONS = {name for name, op in OPS.items() if op.infix is None}
INFIX = {op.infix: op for op in OPS.values() if op.infix is not None}
