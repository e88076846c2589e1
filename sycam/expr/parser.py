"""A safe recursive-descent parser and type checker for CAM expressions (never ``eval``).

Grammar (whitespace is ignored)::

    expr    := term (("+" | "-") term)*
    term    := unary (("*" | "/") unary)*
    unary   := "-" unary | atom
    atom    := NUMBER | TERMINAL ["@" LAYER] | FUNCTION "(" expr ("," expr)* ")" | "(" expr ")"

``LAYER`` is a module path (``blocks.5``, ``layer3[-1]``; only ``A`` and ``G`` take one). Operators that take a
heatmap (``sharpen``, ``thresh``, ``blur``, ``cmul``, ``cmean``) lift channel or pixel weights to their heatmap
themselves: ``sharpen(mean(G), 2)`` reads as ``sharpen(cam(mean(G)), 2)`` (and prints so). An operator may not
mix two layers' channels: their heatmaps meet in ``cmean`` / ``cmul`` instead.

A unary minus before a number is part of the literal (``-1`` is the constant −1); before anything else
it is the ``neg`` operator. Errors are :class:`ExpressionError` with the 0-based column of the fault
and a caret line pointing at it.

Limits: an expression is at most :data:`MAX_LENGTH` characters and its tree at most :data:`MAX_DEPTH`
levels deep (brackets, function calls, unary minus and chained operators all count), so no input can
reach Python's recursion limit here or in the printers and the evaluator, which recurse over the tree.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from ..errors import SycamError
from .ast import LAYER_PATH, LAYERED, TERMINALS, Call, Const, Node, Terminal, layer_of, terminal_kind
from .ops import FUNCTIONS, INFIX, OPS, Kind

MAX_LENGTH = 4000
"""The longest expression text accepted (characters)."""
MAX_DEPTH = 64
"""The deepest expression tree accepted (levels); the search's grammars stay far below it."""


class ExpressionError(SycamError, ValueError):
    """A syntax or type error in an expression, with the position it was found at."""

    def __init__(self, message: str, text: str, position: int) -> None:
        self.text = text
        """The expression text that was parsed."""
        self.position = position
        """The 0-based column of the fault in :attr:`text`."""
        self.reason = message
        """What is wrong, without the position (e.g. ``"unexpected character '$'"``)."""
        caret = " " * position + "^"
        super().__init__(f"{message} at position {position}\n  {text}\n  {caret}")

    def one_line(self) -> str:
        """The message on one line: ``reason at position N in 'text'`` (a long text shows 60 characters
        around the position)."""
        text = self.text
        if len(text) > 80:
            start = max(0, min(self.position - 30, len(text) - 60))
            text = ("…" if start else "") + text[start:start + 60] + ("…" if start + 60 < len(text) else "")
        return f"{self.reason} at position {self.position} in {text!r}"


_TOKEN = re.compile((
    r"\s*(?:(?P<num>(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)|(?P<name>[A-Za-z_][A-Za-z_0-9]*(?:@{LAYER})?)|(?P<sym>[-+*/(),]))"
).replace("{LAYER}", LAYER_PATH))


@dataclass(frozen=True)
class _Tok:
    kind: str  # num | name | sym | end
    text: str
    pos: int


def _tokenize(text: str) -> list[_Tok]:
    toks: list[_Tok] = []
    i = 0
    while i < len(text):
        if text[i].isspace():
            i += 1
            continue
        m = _TOKEN.match(text, i)
        if m is None or m.lastgroup is None:
            raise ExpressionError(f"unexpected character {text[i]!r}", text, i)
        toks.append(_Tok(m.lastgroup, m.group(m.lastgroup), m.start(m.lastgroup)))
        i = m.end()
    toks.append(_Tok("end", "", len(text)))
    return toks


class _Parser:
    def __init__(self, text: str, terminals: dict[str, Kind]) -> None:
        self.text = text
        self.toks = _tokenize(text)
        self.i = 0
        self.terminals = terminals
        self.positions: dict[int, int] = {}  # id(node) -> column, for type errors
        self.depth: dict[int, int] = {}  # id(node) -> tree depth, to refuse over-deep trees early
        self.nesting = 0  # brackets, calls and unary minus open at the current token

    def peek(self) -> _Tok:
        return self.toks[self.i]

    def take(self) -> _Tok:
        tok = self.toks[self.i]
        self.i += 1
        return tok

    def error(self, message: str, tok: _Tok | None = None) -> ExpressionError:
        tok = tok or self.peek()
        return ExpressionError(message, self.text, tok.pos)

    def expect(self, sym: str, what: str) -> None:
        tok = self.peek()
        if tok.kind != "sym" or tok.text != sym:
            found = "end of expression" if tok.kind == "end" else repr(tok.text)
            raise self.error(f"expected {what}, found {found}")
        self.take()

    def mark(self, node: Node, pos: int) -> Node:
        self.positions.setdefault(id(node), pos)
        depth = 1 + max((self.depth.get(id(a), 1) for a in getattr(node, "args", ())), default=0)
        if depth > MAX_DEPTH:
            raise ExpressionError(f"expression too deep (more than {MAX_DEPTH} levels of operators)", self.text, pos)
        self.depth[id(node)] = depth
        return node

    def enter(self, tok: _Tok) -> None:
        """One more open bracket, call or unary minus; refused beyond :data:`MAX_DEPTH`."""
        self.nesting += 1
        if self.nesting > MAX_DEPTH:
            raise self.error(f"expression nested too deeply (more than {MAX_DEPTH} levels)", tok)

    def parse(self) -> Node:
        if self.peek().kind == "end":
            raise self.error("empty expression")
        node = self.expr()
        tok = self.peek()
        if tok.kind != "end":
            raise self.error(f"expected an operator or end of expression, found {tok.text!r}")
        return node

    def expr(self) -> Node:
        node = self.term()
        while self.peek().kind == "sym" and self.peek().text in "+-":
            tok = self.take()
            node = self.mark(Call(INFIX[tok.text].name, (node, self.term())), tok.pos)
        return node

    def term(self) -> Node:
        node = self.unary()
        while self.peek().kind == "sym" and self.peek().text in "*/":
            tok = self.take()
            node = self.mark(Call(INFIX[tok.text].name, (node, self.unary())), tok.pos)
        return node

    def unary(self) -> Node:
        tok = self.peek()
        if tok.kind == "sym" and tok.text == "-":
            self.take()
            nxt = self.peek()
            if nxt.kind == "num":
                self.take()
                return self.atom_number(nxt, negative=True, pos=tok.pos)
            self.enter(tok)
            node = self.mark(Call("neg", (self.unary(),)), tok.pos)
            self.nesting -= 1
            return node
        return self.atom()

    def atom(self) -> Node:
        tok = self.take()
        if tok.kind == "num":
            return self.atom_number(tok)
        if tok.kind == "name":
            if "@" in tok.text:
                base = tok.text.partition("@")[0]
                if base not in LAYERED or base not in self.terminals:
                    raise self.error(f"{base} has no @LAYER form (only {', '.join(LAYERED)} name another layer)", tok)
                return self.mark(Terminal(tok.text), tok.pos)
            if tok.text in self.terminals:
                return self.mark(Terminal(tok.text), tok.pos)
            if tok.text in FUNCTIONS:
                self.expect("(", f"'(' after {tok.text}")
                self.enter(tok)
                args = [self.expr()]
                while self.peek().kind == "sym" and self.peek().text == ",":
                    self.take()
                    args.append(self.expr())
                self.expect(")", "')' or ','")
                self.nesting -= 1
                arity = OPS[tok.text].arity
                if len(args) != arity:
                    raise self.error(f"{tok.text} takes {arity} argument(s), got {len(args)}", tok)
                return self.mark(Call(tok.text, tuple(args)), tok.pos)
            known = ", ".join(sorted(self.terminals)) + "; functions " + ", ".join(sorted(FUNCTIONS))
            raise self.error(f"unknown name {tok.text!r} (terminals {known})", tok)
        if tok.kind == "sym" and tok.text == "(":
            self.enter(tok)
            node = self.expr()
            self.expect(")", "')'")
            self.nesting -= 1
            return node
        found = "end of expression" if tok.kind == "end" else repr(tok.text)
        raise self.error(f"expected a number, terminal, function or '(', found {found}", tok)

    def atom_number(self, tok: _Tok, negative: bool = False, pos: int | None = None) -> Node:
        value = float(tok.text)
        if not math.isfinite(value):
            raise self.error("number out of range", tok)
        return self.mark(Const(-value if negative else value), tok.pos if pos is None else pos)


def _check(node: Node, parser: _Parser) -> tuple[Node, Kind]:
    """The typed node (weights lifted to their heatmap where an operator takes a heatmap) and its kind."""
    if isinstance(node, Const):
        return node, Kind.SCALAR
    if isinstance(node, Terminal):
        return node, terminal_kind(node.name, parser.terminals)
    assert isinstance(node, Call)
    spec = OPS[node.op]
    pos = parser.positions.get(id(node), 0)
    typed = [_check(a, parser) for a in node.args]
    if spec.form in ("final", "fuse"):
        lifted = []
        for i, (arg, kind) in enumerate(typed):
            if kind in (Kind.VECTOR, Kind.MAP) and (i == 0 or spec.form == "fuse"):
                arg, kind = Call("cam", (arg,)), Kind.HEATMAP
            lifted.append((arg, kind))
        typed = lifted
    args = tuple(a for a, _ in typed)
    kinds = tuple(k for _, k in typed)
    out = spec.result_kind(kinds)
    if out is None:
        got = ", ".join(str(k) for k in kinds)
        raise ExpressionError(f"type error: {node.op} expects {spec.expects()}, got {got}", parser.text, pos)
    if spec.form == "final" and isinstance(args[1], Const) and not spec.accepts(args[1].value):
        raise ExpressionError(f"type error: {node.op} takes {spec.param_doc}, got {args[1]}", parser.text, pos)
    if spec.form == "final" and not isinstance(args[1], Const):
        raise ExpressionError(f"type error: {node.op}'s parameter must be a number, got {args[1]}", parser.text, pos)
    rebuilt = node if args == node.args else Call(node.op, args)
    try:
        layer_of(rebuilt)
    except ValueError as exc:
        raise ExpressionError(f"type error: {exc}", parser.text, pos) from None
    return rebuilt, out


def parse(text: str, terminals: dict[str, Kind] | None = None) -> Node:
    """Parse and type-check ``text``; raise :class:`ExpressionError` pointing at the fault."""
    if not isinstance(text, str):
        raise TypeError(f"expression must be a string, got {type(text).__name__}")
    if len(text) > MAX_LENGTH:
        raise ExpressionError(f"expression too long ({len(text)} characters; the limit is {MAX_LENGTH})",
                              text[:40] + "…", 0)
    parser = _Parser(text, TERMINALS if terminals is None else terminals)
    node, _ = _check(parser.parse(), parser)
    return node


def kind_of(node: Node, terminals: dict[str, Kind] | None = None) -> Kind:
    """Kind of an already-built expression; raises ``ValueError`` if it is ill-typed."""
    terms = TERMINALS if terminals is None else terminals
    if isinstance(node, Const):
        return Kind.SCALAR
    if isinstance(node, Terminal):
        return terminal_kind(node.name, terms)
    assert isinstance(node, Call)
    kinds = tuple(kind_of(a, terms) for a in node.args)
    out = OPS[node.op].result_kind(kinds)
    if out is None:
        raise ValueError(f"type error: {node.op} expects {OPS[node.op].expects()} in {node}")
    layer_of(node)  # ValueError when it mixes layers
    return out
