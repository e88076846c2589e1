"""The expression language: parsing, printing, typing, errors and evaluation."""

from __future__ import annotations

import math

import pytest
import torch

from sycam.expr import Call, Const, ExpressionError, Kind, Terminal, evaluate, kind_of, parse, safe_div
from sycam.methods import METHODS


@pytest.mark.parametrize(
    "text",
    [
        "mean(G)",
        "sum(relu(G) * sq(G) / (2 * sq(G) + sum(A) * cube(G) + 1e-06))",
        "sum(G * A) / sum(A)",
        "softmax(S)",
        "D",
        "a - (b - c)".replace("a", "A").replace("b", "G").replace("c", "A"),
        "A + (G + A)",
        "(A + G) * A",
        "-1",
        "(-1) * A",
        "A - (-2.5)",
        "neg(A) / (G - A)",
        "minmax(mean(G)) * relu(S - mean(A))",
        "0.5 * mean(G) + 3",
    ],
)
def test_print_parse_roundtrip(text: str) -> None:
    node = parse(text)
    assert str(node) == text
    assert parse(str(node)) == node


def test_canonical_printing_normalizes_spacing_and_parentheses() -> None:
    assert str(parse("  mean ( G )*2")) == "mean(G) * 2"
    assert str(parse("((A))+(G)")) == "A + G"
    assert str(parse("A*G+A")) == "A * G + A"
    assert str(parse("A*(G+A)")) == "A * (G + A)"
    assert str(parse("-A")) == "neg(A)"
    assert str(parse("2.50")) == "2.5"


def test_precedence_and_associativity() -> None:
    assert parse("A - G - A") == Call("-", (Call("-", (Terminal("A"), Terminal("G"))), Terminal("A")))
    assert parse("A + G * A") == Call("+", (Terminal("A"), Call("*", (Terminal("G"), Terminal("A")))))
    assert parse("A / G / A") == Call("/", (Call("/", (Terminal("A"), Terminal("G"))), Terminal("A")))
    assert parse("-2") == Const(-2.0)


def test_size_and_terminals() -> None:
    node = parse(METHODS["gradcam++"].expression)
    assert node.terminals() == {"A", "G"}
    assert parse("mean(G)").size == 2
    assert parse("sum(G * A) / sum(A)").size == 7


@pytest.mark.parametrize(
    ("text", "position", "fragment"),
    [
        ("mean(G", 6, "expected ')'"),
        ("mean G", 5, "expected '(' after mean"),
        ("G +", 3, "expected a number"),
        ("foo(G)", 0, "unknown name 'foo'"),
        ("G $ A", 2, "unexpected character '$'"),
        ("", 0, "empty expression"),
        ("G A", 2, "expected an operator"),
        ("mean(G, A)", 0, "mean takes 1 argument"),
        ("softmax(G)", 0, "type error: softmax expects a channel vector, got map"),
        ("mean(S)", 0, "type error: mean expects a map, got channel vector"),
        ("A + mean(mean(G))", 4, "type error: mean expects a map"),
    ],
)
def test_errors_point_at_the_fault(text: str, position: int, fragment: str) -> None:
    with pytest.raises(ExpressionError) as info:
        parse(text)
    assert info.value.position == position
    assert fragment in str(info.value)
    assert "^" in str(info.value).splitlines()[-1]
    assert fragment in info.value.one_line() and "\n" not in info.value.one_line()


def test_never_evaluates_python() -> None:
    for text in ["__import__('os')", "A.__class__", "lambda: 1", "G[0]", "1; 2"]:
        with pytest.raises(ExpressionError):
            parse(text)


def test_kinds() -> None:
    assert kind_of(parse("mean(G)")) == Kind.VECTOR
    assert kind_of(parse("G * mean(A)")) == Kind.MAP
    assert kind_of(parse("2 * 3")) == Kind.SCALAR
    assert kind_of(parse("softmax(S) + 1")) == Kind.VECTOR


def _values(n: int = 2, k: int = 3, h: int = 2, w: int = 2) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    return {
        "A": torch.rand(n, k, h, w, generator=gen),
        "G": torch.randn(n, k, h, w, generator=gen),
        "S": torch.randn(n, k, 1, 1, generator=gen),
        "D": torch.randn(n, k, 1, 1, generator=gen),
    }


def test_evaluation_matches_hand_formulas() -> None:
    v = _values()
    a, g, s = v["A"], v["G"], v["S"]
    torch.testing.assert_close(evaluate(parse("mean(G)"), v), g.mean((2, 3), keepdim=True))
    torch.testing.assert_close(evaluate(parse("sum(G * A) / sum(A)"), v),
                               (g * a).sum((2, 3), keepdim=True) / a.sum((2, 3), keepdim=True))
    torch.testing.assert_close(evaluate(parse("softmax(S)"), v), torch.softmax(s, dim=1))
    torch.testing.assert_close(evaluate(parse("max(relu(G))"), v), g.relu().amax((2, 3), keepdim=True))
    mm = evaluate(parse("minmax(S)"), v)
    assert torch.allclose(mm.amin(1), torch.zeros(2, 1, 1)) and torch.allclose(mm.amax(1), torch.ones(2, 1, 1))
    # broadcasting a channel vector over a map
    torch.testing.assert_close(evaluate(parse("S * A"), v), s * a)
    assert evaluate(parse("2 + 1"), v).item() == 3.0


def test_memo_reuses_subexpressions() -> None:
    v = _values()
    memo: dict = {}
    evaluate(parse("mean(G) + mean(G) * 2"), v, memo)
    assert parse("mean(G)") in memo and parse("mean(G) * 2") in memo


def test_safe_division_is_finite() -> None:
    x = torch.tensor([1.0, -1.0, 0.0, 5.0, 1.0])
    y = torch.tensor([0.0, 0.0, 0.0, 2.0, -4.0])
    out = safe_div(x, y)
    assert torch.isfinite(out).all()
    assert out.tolist() == pytest.approx([0.0, 0.0, 0.0, 2.5, -0.25])
    assert not math.isnan(evaluate(parse("A / (A - A)"), _values()).sum().item())


def test_latex() -> None:
    assert parse("sum(G * A) / sum(A)").latex() == r"\frac{\sum_{ij}\left(G \cdot A\right)}{\sum_{ij} A}"
    assert parse("(A + G) * A").latex() == r"\left(A + G\right) \cdot A"


def test_terminal_set_is_configurable() -> None:
    with pytest.raises(ExpressionError, match="unknown name 'S'"):
        parse("softmax(S)", terminals={"A": Kind.MAP, "G": Kind.MAP})
