"""Property-based tests of the expression language (hypothesis): the parser never crashes, printing and
parsing are inverse on well-typed trees, and a tree renders to a finite map in [0, 1] or a clean error."""

from __future__ import annotations

import math

import pytest
import torch
from engine_helpers import tiny_net
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from sycam.errors import SycamError
from sycam.expr import OPS, TERMINALS, Call, Const, ExpressionError, Kind, Node, Terminal, kind_of, parse
from sycam.expr.parser import MAX_DEPTH
from sycam.methods import resolve_method

GRAMMAR_CHARS = "AGSDx+-*/(),. 0123456789eE_" + "relumeansqcubnegmaxsoftabs"
WORDS = ["relu(", "mean(", "sum(", "max(", "softmax(", "minmax(", "abs(", "sq(", "cube(", "neg(", "A", "G", "S",
         "D", "+", "-", "*", "/", "(", ")", ",", " ", "1", "0.5", "1e308", "1e309", "-", ".", "e5", "nan", "inf"]


def _check_parse(text: str) -> None:
    try:
        node = parse(text)
    except ExpressionError as exc:
        line = exc.one_line()
        assert "\n" not in line and line
        return
    # whatever parses prints to text that parses back to the same tree
    assert parse(str(node)) == node


@settings(max_examples=150, deadline=None)
@given(st.text(max_size=60))
def test_random_text_never_crashes_the_parser(text: str) -> None:
    _check_parse(text)


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=GRAMMAR_CHARS, max_size=80))
def test_random_grammar_like_text_never_crashes_the_parser(text: str) -> None:
    _check_parse(text)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(WORDS), max_size=60))
def test_random_token_soup_never_crashes_the_parser(words: list[str]) -> None:
    _check_parse("".join(words))


@settings(max_examples=40, deadline=None)
@given(st.sampled_from(["relu(", "(", "-", "mean(relu(", "abs(-"]), st.integers(0, 3000),
       st.sampled_from(["+", "*", "-", "/"]), st.integers(0, 3000))
def test_deep_nesting_and_long_chains_are_clean_errors(opener: str, depth: int, op: str, terms: int) -> None:
    """No RecursionError is reachable from text: nesting and chains past MAX_DEPTH are ExpressionErrors."""
    closer = ")" * opener.count("(")
    for text in (opener * depth + "G" + closer * depth, op.join(["G"] * max(terms, 1))):
        try:
            node = resolve_method(text)[1]
        except ExpressionError as exc:
            assert "too deep" in exc.reason or "too long" in exc.reason or "nested too deeply" in exc.reason \
                or "type error" in exc.reason
            continue
        assert _depth(node) <= MAX_DEPTH
        str(node), node.latex()  # printers recurse: they must not hit the limit


def _depth(node: Node) -> int:
    return 1 + max((_depth(a) for a in getattr(node, "args", ())), default=0)


def _kind(node: Node) -> Kind | None:
    try:
        return kind_of(node)
    except ValueError:
        return None


finite_consts = st.one_of(
    st.integers(-5, 5).map(float),
    st.floats(allow_nan=False, allow_infinity=False, min_value=-1e6, max_value=1e6),
    st.sampled_from([0.5, 1e-06, 2.5e-3, 1e15, -0.0]),
).map(Const)
leaves = st.one_of(st.sampled_from([Terminal(n) for n in TERMINALS]), finite_consts)


def _extend(children: st.SearchStrategy[Node]) -> st.SearchStrategy[Node]:
    unary = st.builds(lambda op, a: Call(op, (a,)), st.sampled_from([o for o in OPS if OPS[o].arity == 1]), children)
    binary = st.builds(lambda op, a, b: Call(op, (a, b)), st.sampled_from([o for o in OPS if OPS[o].arity == 2]),
                       children, children)
    return st.one_of(unary, binary)


def _as_written(node: Node) -> bool:
    """Whether ``node`` is a tree the parser gives back as it is: a final-map operator's parameter is a number it
    accepts, and its map operands are heatmaps already (the parser lifts weights into ``cam(...)`` itself)."""
    if not isinstance(node, Call):
        return True
    spec = OPS[node.op]
    if spec.form == "final":
        param = node.args[1]
        if not (isinstance(param, Const) and spec.accepts(param.value)) or _kind(node.args[0]) != Kind.HEATMAP:
            return False
    if spec.form == "fuse" and any(_kind(a) != Kind.HEATMAP for a in node.args):
        return False
    return all(_as_written(a) for a in node.args)


trees = st.recursive(leaves, _extend, max_leaves=10).filter(lambda n: _kind(n) is not None and _as_written(n))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.filter_too_much, HealthCheck.too_slow])
@given(trees)
def test_well_typed_trees_print_and_parse_back_equal(tree: Node) -> None:
    text = str(tree)
    back = parse(text)
    assert back == tree, text
    assert str(back) == text
    assert "\n" not in tree.latex()


@pytest.fixture(scope="module")
def cam_setup():
    torch.manual_seed(0)
    return tiny_net(), torch.randn(2, 3, 16, 16)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.filter_too_much, HealthCheck.too_slow,
                                                                 HealthCheck.function_scoped_fixture])
@given(tree=trees)
def test_trees_render_finite_maps_in_unit_range_or_a_clean_error(cam_setup, tree: Node) -> None:
    from sycam.heatmap import CAM

    net, images = cam_setup
    assume(not ({"S", "D"} & tree.terminals()) or tree.size <= 6)  # keep the K-forward terminals cheap
    try:
        maps = CAM(net, "body", tree)(images, targets=[0, 1])
    except SycamError as exc:
        assert "\n" not in str(exc)
        return
    assert maps.shape == (2, 16, 16)
    assert bool(torch.isfinite(maps).all())
    assert float(maps.min()) >= 0.0 and float(maps.max()) <= 1.0 + 1e-6


def test_printing_a_negative_constant_operand() -> None:
    """A case the generator found worth pinning: negative literals as operands print bracketed."""
    tree = Call("-", (Terminal("G"), Const(-1.5)))
    assert str(tree) == "G - (-1.5)" and parse(str(tree)) == tree
    assert math.isfinite(parse("1e308").value)  # type: ignore[attr-defined]
    with pytest.raises(ExpressionError, match="number out of range"):
        parse("1e309")
