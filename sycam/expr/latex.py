r"""Typeset an expression tree: LaTeX source and MathML, with brackets decided by one rule set.

Both printers walk the tree once and ask the same question at every edge — *does this operand need
brackets here?* — so the LaTeX and the MathML of an expression always have the same shape, and each
reads back as the tree it came from.

Every node falls in one *class*:

========= ================================================ ===============================================
class     nodes                                            printed as
========= ================================================ ===============================================
atom      terminals, plain non-negative numbers,           ``A``, ``2``, ``\mathrm{relu}\left(x\right)``,
          ``relu``, ``abs``, ``softmax``, ``minmax``       ``\left|x\right|``, ``\operatorname{softmax}_k(x)``
frac      ``/``                                            ``\frac{x}{y}``
power     ``sq``, ``cube``                                 ``x^{2}``, ``x^{3}``
bigop     ``sum``, ``mean``, ``max`` (spatial reductions)  ``\sum_{ij} x``, ``\max_{ij}\left(x - y\right)``
neg       ``neg``, negative numbers                        ``-\left(x\right)``, ``-2``
product   ``*``, numbers in scientific notation            ``x \cdot y``, ``2 \times 10^{-5}``
sum       ``+``, ``-``                                     ``x + y``, ``x - y``
========= ================================================ ===============================================

and the bracket rules are (an operand in ``\left(\,\right)`` where its class is listed):

* left of ``+``/``-``: never; right of ``+``/``-``: sum, neg (so ``a - (b - c)`` keeps its shape);
* left of ``\cdot``: sum, bigop (``\left(\sum_{ij} A\right) \cdot D`` — a big operator would otherwise
  seem to run over the product); right of ``\cdot``: sum, product, neg, bigop;
* base of a power: everything but an atom;
* argument of a big operator: sum, product, neg, bigop (``\max_{ij}\left(G - A\right)``);
* inside ``\frac{}{}``, function brackets and bars: never; ``neg`` always brackets its operand.

Example::

    >>> from sycam.expr import parse
    >>> to_latex(parse("sum(A - G) * D"))
    '\\left(\\sum_{ij}\\left(A - G\\right)\\right) \\cdot D'
"""

from __future__ import annotations

import math
from html import escape

from .ast import Call, Const, Node, Terminal

__all__ = ["LATEX_OPS", "to_latex", "to_mathml"]

LATEX_OPS: dict[str, tuple[str, str, str]] = {
    "+": ("sum", "+", "+"),
    "-": ("sum", "-", "\u2212"),
    "*": ("product", r"\cdot", "\u22c5"),
    "/": ("frac", "", ""),
    "relu": ("atom", r"\mathrm{relu}", "relu"),
    "abs": ("atom", "", ""),
    "sq": ("power", "2", "2"),
    "cube": ("power", "3", "3"),
    "neg": ("neg", "-", "\u2212"),
    "mean": ("bigop", r"\operatorname{mean}_{ij}", "mean"),
    "sum": ("bigop", r"\sum_{ij}", "\u2211"),
    "max": ("bigop", r"\max_{ij}", "max"),
    "softmax": ("atom", r"\operatorname{softmax}_k", "softmax"),
    "minmax": ("atom", r"\operatorname{minmax}_k", "minmax"),
    "cam": ("atom", r"\operatorname{cam}", "cam"),
    "sharpen": ("param", r"\operatorname{sharpen}", "sharpen"),
    "thresh": ("param", r"\operatorname{thresh}", "thresh"),
    "blur": ("param", r"\operatorname{blur}", "blur"),
    "cmul": ("atom", r"\operatorname{cmul}", "cmul"),
    "cmean": ("atom", r"\operatorname{cmean}", "cmean"),
}
"""How each operator is typeset: ``(class, LaTeX head, MathML head)``. For infix operators the head is the operator
symbol; for functions the name (written before the bracketed argument); for big operators the symbol written above
its ``ij`` subscript."""

# context → the operand classes that need brackets there
_WRAP: dict[str, frozenset[str]] = {
    "top": frozenset(),
    "add-left": frozenset(),
    "add-right": frozenset({"sum", "neg"}),
    "mul-left": frozenset({"sum", "bigop"}),
    "mul-right": frozenset({"sum", "product", "neg", "bigop"}),
    "base": frozenset({"sum", "product", "neg", "bigop", "frac", "power"}),
    "bigop": frozenset({"sum", "product", "neg", "bigop"}),
    "free": frozenset(),
}


def _number(value: float) -> tuple[str, str, int | None]:
    """``(sign, mantissa, exponent)`` of a constant's shortest round-trip text (``exponent`` None when
    plain): ``-1.5e-07`` → ``("-", "1.5", -7)``."""
    v = float(value)
    text = str(int(v)) if v.is_integer() and abs(v) < 1e15 else repr(v)
    sign = ""
    if text.startswith("-"):
        sign, text = "-", text[1:]
    if "e" in text:
        mantissa, exp = text.split("e")
        return sign, mantissa, int(exp)
    return sign, text, None


def node_class(node: Node) -> str:
    """The typesetting class of ``node`` (see the module docs)."""
    if isinstance(node, Terminal):
        return "atom"
    if isinstance(node, Const):
        if not math.isfinite(node.value):
            return "neg" if node.value < 0 else "atom"
        sign, _, exp = _number(node.value)
        return "neg" if sign else ("product" if exp is not None else "atom")
    if isinstance(node, Call):
        return LATEX_OPS[node.op][0]
    raise TypeError(f"not an expression node: {node!r}")


def _child_context(node: Call, i: int) -> str:
    cls = LATEX_OPS[node.op][0]
    if cls == "sum":
        return "add-left" if i == 0 else "add-right"
    if cls == "product":
        return "mul-left" if i == 0 else "mul-right"
    if cls == "power":
        return "base"
    if cls == "bigop":
        return "bigop"
    return "free"


def _wrapped(node: Node, context: str) -> bool:
    return node_class(node) in _WRAP[context]


# ------------------------------------------------------------------------------------------------ LaTeX


def _paren(text: str) -> str:
    return rf"\left({text}\right)"


def _latex(node: Node, context: str) -> str:
    text = _latex_bare(node)
    return _paren(text) if _wrapped(node, context) else text


def _terminal_latex(name: str) -> str:
    base, _, layer = name.partition("@")
    if not layer:
        return base
    return base + r"_{\mathtt{" + layer.replace("_", r"\_") + "}}"


def _latex_bare(node: Node) -> str:
    if isinstance(node, Terminal):
        return _terminal_latex(node.name)
    if isinstance(node, Const):
        if not math.isfinite(node.value):
            return r"\mathrm{NaN}" if math.isnan(node.value) else ("-" if node.value < 0 else "") + r"\infty"
        sign, mantissa, exp = _number(node.value)
        return sign + mantissa + (rf" \times 10^{{{exp}}}" if exp is not None else "")
    assert isinstance(node, Call)
    cls, head, _ = LATEX_OPS[node.op]
    args = [_latex(a, _child_context(node, i)) for i, a in enumerate(node.args)]
    if cls in ("sum", "product"):
        return f"{args[0]} {head} {args[1]}"
    if cls == "frac":
        return rf"\frac{{{args[0]}}}{{{args[1]}}}"
    if cls == "power":
        return f"{args[0]}^{{{head}}}"
    if cls == "neg":
        return "-" + _paren(args[0])
    if cls == "bigop":
        arg = args[0]
        return head + (arg if arg.startswith(r"\left(") else " " + arg)
    if node.op == "abs":
        return rf"\left|{args[0]}\right|"
    if cls == "param":  # a final-map operator: its constant parameter as a subscript
        return head + "_{" + args[1] + "}" + _paren(args[0])
    return head + _paren(", ".join(args))


def to_latex(node: Node) -> str:
    r"""The expression as LaTeX (math mode, no delimiters), bracketed by the rules of this module.

    ``max(G - A)`` → ``\max_{ij}\left(G - A\right)``; ``sum(G - softmax(D))`` →
    ``\sum_{ij}\left(G - \operatorname{softmax}_k\left(D\right)\right)``.
    """
    return _latex(node, "top")


# ------------------------------------------------------------------------------------------------ MathML


def _mo(symbol: str, stretchy: bool = False) -> str:
    attrs = ' stretchy="true"' if stretchy else ' stretchy="false"'
    return f"<mo{attrs}>{escape(symbol)}</mo>"


def _fence(inner: str, left: str = "(", right: str = ")") -> str:
    return f"<mrow>{_mo(left, True)}{inner}{_mo(right, True)}</mrow>"


def _mml(node: Node, context: str) -> str:
    inner = _mml_bare(node)
    return _fence(inner) if _wrapped(node, context) else inner


def _mml_bare(node: Node) -> str:
    if isinstance(node, Terminal):
        base, _, layer = node.name.partition("@")
        if layer:
            return f'<msub><mi>{escape(base)}</mi><mtext mathvariant="monospace">{escape(layer)}</mtext></msub>'
        return f"<mi>{escape(node.name)}</mi>"
    if isinstance(node, Const):
        if not math.isfinite(node.value):
            body = "<mi>NaN</mi>" if math.isnan(node.value) else "<mi>\u221e</mi>"
            return f"<mrow><mo>\u2212</mo>{body}</mrow>" if node.value < 0 else body
        sign, mantissa, exp = _number(node.value)
        out = f"<mn>{mantissa}</mn>"
        if exp is not None:
            out += f"<mo>\u00d7</mo><msup><mn>10</mn><mn>{exp}</mn></msup>"
        return f"<mrow><mo form=\"prefix\">\u2212</mo>{out}</mrow>" if sign else f"<mrow>{out}</mrow>"
    assert isinstance(node, Call)
    cls, _, head = LATEX_OPS[node.op]
    args = [_mml(a, _child_context(node, i)) for i, a in enumerate(node.args)]
    if cls in ("sum", "product"):
        return f"<mrow>{args[0]}<mo>{head}</mo>{args[1]}</mrow>"
    if cls == "frac":
        return f"<mfrac><mrow>{args[0]}</mrow><mrow>{args[1]}</mrow></mfrac>"
    if cls == "power":
        return f"<msup><mrow>{args[0]}</mrow><mn>{head}</mn></msup>"
    if cls == "neg":
        return f"<mrow><mo form=\"prefix\">\u2212</mo>{_fence(args[0])}</mrow>"
    if cls == "bigop":
        below = "<mrow><mi>i</mi><mi>j</mi></mrow>"
        op = f'<mo largeop="true" movablelimits="false">{head}</mo>' if head == "\u2211" else f"<mi>{head}</mi>"
        return f"<mrow><munder>{op}{below}</munder><mspace width=\"0.17em\"/>{args[0]}</mrow>"
    if node.op == "abs":
        return f"<mrow>{_mo('|', True)}{args[0]}{_mo('|', True)}</mrow>"
    name = f"<mi>{head}</mi>"
    if node.op in ("softmax", "minmax"):
        name = f"<msub>{name}<mi>k</mi></msub>"
    if cls == "param":
        return f"<mrow><msub>{name}{args[1]}</msub>{_fence(args[0])}</mrow>"
    return f"<mrow>{name}{_fence('<mo>,</mo>'.join(args))}</mrow>"


def to_mathml(node: Node, display: bool = True, alttext: str | None = None) -> str:
    """The expression as a MathML ``<math>`` element (MathML Core: Chromium and Firefox render it
    natively, no script needed), bracketed exactly like :func:`to_latex`. ``alttext`` defaults to the
    LaTeX source, so it can be copied from the page."""
    alt = to_latex(node) if alttext is None else alttext
    mode = "block" if display else "inline"
    return f'<math display="{mode}" alttext="{escape(alt, quote=True)}"><mrow>{_mml(node, "top")}</mrow></math>'
