"""The LaTeX and MathML printers: brackets by precedence, checked by reading the LaTeX back.

The reader below is written for this test only, from the grammar the printer documents (not from the
printer's code): if the printer drops a bracket the reader builds another tree and the round trip fails.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sycam.expr import OPS, Call, Const, Node, Terminal, parse
from sycam.expr.latex import LATEX_OPS, to_latex, to_mathml

# ------------------------------------------------------------------------------------------------ reader

_TOKENS = re.compile(
    r"\s*(?:"
    r"(?P<num>\d+(?:\.\d+)?(?:\s*\\times\s*10\^\{-?\d+\})?)"
    r"|(?P<cmd>\\left\(|\\right\)|\\left\||\\right\||\\frac|\\cdot|\\sum_\{ij\}|\\max_\{ij\}"
    r"|\\operatorname\{mean\}_\{ij\}|\\mathrm\{relu\}|\\operatorname\{softmax\}_k|\\operatorname\{minmax\}_k"
    r"|\\operatorname\{(?:cam|sharpen|thresh|blur|cmul|cmean)\})"
    r"|(?P<sym>[-+{}^_,])|(?P<name>[AGSD]))"
)
_BIGOPS = {r"\sum_{ij}": "sum", r"\max_{ij}": "max", r"\operatorname{mean}_{ij}": "mean"}
_FUNCS = {r"\mathrm{relu}": "relu", r"\operatorname{softmax}_k": "softmax", r"\operatorname{minmax}_k": "minmax",
          **{rf"\operatorname{{{n}}}": n for n in ("cam", "cmul", "cmean")}}
_PARAM = {rf"\operatorname{{{n}}}": n for n in ("sharpen", "thresh", "blur")}


def _tokens(text: str) -> list[str]:
    out, i = [], 0
    text = text.rstrip()
    while i < len(text):
        m = _TOKENS.match(text, i)
        assert m is not None and m.end() > i, f"cannot read {text[i:]!r}"
        out.append(m.group(m.lastgroup))
        i = m.end()
    return out


class Reader:
    """expr := term (("+"|"-") term)*; term := unary ("\\cdot" unary)*;
    unary := "-" NUMBER | "-" "\\left(" expr "\\right)" | BIGOP postfix ("\\cdot" unary)* | postfix;
    postfix := atom ("^" "{" ("2"|"3") "}")?;
    atom := NUMBER | TERMINAL | "\\left(" expr "\\right)" | "\\left|" expr "\\right|" | "\\frac" "{" expr "}" "{"
    expr "}" | FUNC "\\left(" expr "\\right)"."""

    def __init__(self, text: str) -> None:
        self.toks = _tokens(text)
        self.i = 0

    def peek(self) -> str | None:
        return self.toks[self.i] if self.i < len(self.toks) else None

    def take(self, expected: str | None = None) -> str:
        tok = self.peek()
        assert tok is not None, "unexpected end"
        assert expected is None or tok == expected, f"expected {expected!r}, got {tok!r}"
        self.i += 1
        return tok

    def read(self) -> Node:
        node = self.expr()
        assert self.peek() is None, f"trailing {self.toks[self.i:]}"
        return node

    def expr(self) -> Node:
        node = self.term()
        while self.peek() in ("+", "-"):
            op = self.take()
            node = Call(op, (node, self.term()))
        return node

    def term(self) -> Node:
        node = self.unary()
        while self.peek() == r"\cdot":
            self.take()
            node = Call("*", (node, self.unary()))
        return node

    def unary(self) -> Node:
        tok = self.peek()
        if tok == "-":
            self.take()
            if self.peek() == r"\left(":
                self.take()
                inner = self.expr()
                self.take(r"\right)")
                return Call("neg", (inner,))
            return Const(-self.number(self.take()))
        if tok in _BIGOPS:
            # as a reader of mathematics would: a big operator runs over the product that follows it
            self.take()
            arg = self.postfix()
            while self.peek() == r"\cdot":
                self.take()
                arg = Call("*", (arg, self.unary()))
            return Call(_BIGOPS[tok], (arg,))
        return self.postfix()

    def postfix(self) -> Node:
        node = self.atom()
        if self.peek() == "^":
            self.take()
            self.take("{")
            power = self.take()
            self.take("}")
            node = Call({"2": "sq", "3": "cube"}[power], (node,))
        return node

    @staticmethod
    def number(tok: str) -> float:
        m = re.fullmatch(r"(\d+(?:\.\d+)?)(?:\s*\\times\s*10\^\{(-?\d+)\})?", tok)
        assert m is not None, f"not a number: {tok!r}"
        return float(m.group(1) + (f"e{m.group(2)}" if m.group(2) else ""))

    def atom(self) -> Node:
        tok = self.take()
        if tok[0].isdigit():
            return Const(self.number(tok))
        if tok in "AGSD":
            return Terminal(tok)
        if tok == r"\left(":
            inner = self.expr()
            self.take(r"\right)")
            return inner
        if tok == r"\left|":
            inner = self.expr()
            self.take(r"\right|")
            return Call("abs", (inner,))
        if tok == r"\frac":
            self.take("{")
            num = self.expr()
            self.take("}")
            self.take("{")
            den = self.expr()
            self.take("}")
            return Call("/", (num, den))
        if tok in _FUNCS:
            self.take(r"\left(")
            args = [self.expr()]
            while self.peek() == ",":
                self.take()
                args.append(self.expr())
            self.take(r"\right)")
            return Call(_FUNCS[tok], tuple(args))
        if tok in _PARAM:  # head_{param}(heatmap)
            self.take("_")
            self.take("{")
            param = self.expr()
            self.take("}")
            self.take(r"\left(")
            inner = self.expr()
            self.take(r"\right)")
            return Call(_PARAM[tok], (inner, param))
        raise AssertionError(f"unexpected token {tok!r}")


def read_latex(text: str) -> Node:
    return Reader(text).read()


# ------------------------------------------------------------------------------------------------ trees

_numbers = st.floats(allow_nan=False, allow_infinity=False, width=64) | st.integers(-1000, 1000).map(float)
_leaves = st.sampled_from([Terminal(t) for t in "AGSD"]) | _numbers.map(Const)


def _extend(children: st.SearchStrategy[Node]) -> st.SearchStrategy[Node]:
    unary = [n for n, op in OPS.items() if op.arity == 1]
    binary = [n for n, op in OPS.items() if op.arity == 2]
    return st.one_of(
        st.builds(lambda op, a: Call(op, (a,)), st.sampled_from(unary), children),
        st.builds(lambda op, a, b: Call(op, (a, b)), st.sampled_from(binary), children, children),
    )


trees = st.recursive(_leaves, _extend, max_leaves=12)


@settings(max_examples=400, deadline=None)
@given(trees)
def test_latex_reads_back_as_the_same_tree(node: Node) -> None:
    text = to_latex(node)
    assert read_latex(text) == node, text


@settings(max_examples=150, deadline=None)
@given(trees)
def test_mathml_is_well_formed_and_carries_the_latex(node: Node) -> None:
    math = to_mathml(node)
    root = ET.fromstring(math)
    assert root.tag == "math" and root.get("alttext") == to_latex(node)
    # brackets: every stretchy "(" has its ")" and the MathML has as many as the LaTeX has \left(
    fences = [el.text for el in root.iter("mo") if el.get("stretchy") == "true"]
    assert fences.count("(") == fences.count(")") == to_latex(node).count(r"\left(")


def test_every_operator_has_a_typesetting() -> None:
    assert set(LATEX_OPS) == set(OPS)


@pytest.mark.parametrize(
    ("text", "latex"),
    [
        ("max(G - A)", r"\max_{ij}\left(G - A\right)"),
        ("sum(A - G) * D", r"\left(\sum_{ij}\left(A - G\right)\right) \cdot D"),
        ("sum(G - softmax(D))", r"\sum_{ij}\left(G - \operatorname{softmax}_k\left(D\right)\right)"),
        ("mean(G)", r"\operatorname{mean}_{ij} G"),
        ("G - (A - D)", r"G - \left(A - D\right)"),
        ("(G - A) - D", r"G - A - D"),
        ("G * (A * D)", r"G \cdot \left(A \cdot D\right)"),
        ("sq(G + A)", r"\left(G + A\right)^{2}"),
        ("sq(relu(G))", r"\mathrm{relu}\left(G\right)^{2}"),
        ("G / (A + D)", r"\frac{G}{A + D}"),
        ("neg(G) * A", r"-\left(G\right) \cdot A"),
        ("A - -2", r"A - \left(-2\right)"),
        ("sum(A) * 1e-05", r"\left(\sum_{ij} A\right) \cdot \left(1 \times 10^{-5}\right)"),
        ("abs(G - A)", r"\left|G - A\right|"),
    ],
)
def test_known_formulas(text: str, latex: str) -> None:
    node = parse(text)
    assert node.latex() == latex
    assert read_latex(latex) == node


def test_reader_rejects_what_the_old_printer_wrote() -> None:
    # The old printer's ``\max_{ij} G - A`` reads as (max G) - A, and ``\sum_{ij} A - G \cdot D`` as
    # sum(A) - G * D: other formulas.
    assert read_latex(r"\max_{ij} G - A") == parse("max(G) - A")
    assert read_latex(r"\sum_{ij} A - G \cdot D") == parse("sum(A) - G * D")
    assert read_latex(r"\sum_{ij} A \cdot D") == parse("sum(A * D)")
