"""Expression trees: immutable, hashable nodes with a canonical text form.

``str(node)`` prints the canonical text; :func:`sycam.expr.parse` reads it back to an equal tree
(parse ∘ print is the identity). Canonical printing writes numbers in their shortest round-trip form,
binary operators with single spaces, and parentheses only where precedence requires them; the right
operand of a binary operator is parenthesised when it binds no tighter, so ``a - (b - c)`` and
``a + (b + c)`` keep their shape.

The tree's typeset forms, :func:`to_latex` (``node.latex()``) and :func:`to_mathml`, are printed here too, beside
the text form, by the bracket rules documented in :mod:`sycam.expr.latex` (the public home of the two printers).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from html import escape

from .ops import HEATMAP_OPS, OPS, Kind

TERMINALS: dict[str, Kind] = {
    "A": Kind.MAP,
    "G": Kind.MAP,
    "S": Kind.VECTOR,
    "D": Kind.VECTOR,
    "SG": Kind.MAP,
    "IG": Kind.MAP,
    "Ap": Kind.MAP,
    "Gp": Kind.MAP,
    "E": Kind.HEATMAP,
    "EG": Kind.HEATMAP,
}
"""The terminals of the language and their kinds (spec §3). Values come from a terminal cache."""

LAYERED = ("A", "G", "SG", "IG", "Ap", "Gp", "E", "EG")
"""The terminals that may name another layer than the target: ``A@blocks.5``, ``G@layer3[-1]`` (all but S, D)."""
LAYER_PATH = r"(?:[A-Za-z_0-9]+|\[-?\d+\])(?:\.[A-Za-z_0-9]+|\[-?\d+\])*"
"""A module path after ``@``: names and indices, ``blocks.5``, ``layer3[-1]``, ``features.29``."""
TARGET = ""
"""The layer of the plain terminals (``A``, ``G``, ``S``, ``D``): the target layer."""


def split_terminal(name: str) -> tuple[str, str]:
    """``(base, layer)`` of a terminal name: ``("G", "blocks.5")`` for ``G@blocks.5``, ``("G", TARGET)`` for ``G``."""
    base, _, layer = name.partition("@")
    return base, layer


def terminal_kind(name: str, terminals: dict[str, Kind] | None = None) -> Kind:
    """The kind of terminal ``name`` (its base's kind: ``A@blocks.5`` is a map like ``A``); KeyError if unknown."""
    base, layer = split_terminal(name)
    if layer and (base not in LAYERED or not re.fullmatch(LAYER_PATH, layer)):
        raise KeyError(name)
    return (TERMINALS if terminals is None else terminals)[base]


def acts_key(node: Node) -> str:
    """The activations terminal that renders weights ``node``: ``A`` at the target layer, ``A@LAYER`` when the
    node's terminals are at ``LAYER``."""
    layer = layer_of(node)
    return "A" if not layer else f"A@{layer}"


def layer_of(node: Node) -> str | None:
    """The layer whose channels ``node``'s value is indexed by: :data:`TARGET` (``""``) for the target layer, a
    module path, or None for a constant or a heatmap (which has no channels). Raises ``ValueError`` when an
    operator mixes two layers' channels."""
    if isinstance(node, Terminal):
        base, layer = split_terminal(node.name)
        return None if TERMINALS.get(base) == Kind.HEATMAP else layer
    if isinstance(node, Call):
        if node.op in HEATMAP_OPS:
            return None
        layers = {la for la in (layer_of(a) for a in node.args) if la is not None}
        if len(layers) > 1:
            names = " and ".join(sorted(repr(la or "the target layer") for la in layers))
            raise ValueError(f"{node.op} mixes the channels of layers {names}; combine their heatmaps instead "
                             "(cmean, cmul)")
        return layers.pop() if layers else None
    return None

TERMINAL_DOCS: dict[str, str] = {
    "A": "activations of the target layer, K×h×w (1 forward); A@LAYER: of another layer (same forward)",
    "G": "gradient ∂y_c/∂A of the target score, K×h×w (1 backward); G@LAYER: at another layer (same backward)",
    "S": "Score-CAM channel scores y_c(x ⊙ minmax(upsample(A_k))), K (K forwards)",
    "D": "Ablation-CAM drops (y_c − y_c[A_k := ablated]) / y_c, K (K tail forwards)",
    "SG": "SmoothGrad: G averaged over 8 noisy copies (σ = 0.15 of the input range), K×h×w (8 fwd + bwd)",
    "IG": "G averaged along the path 0 → x (8 steps; IG * A: integrated gradients), K×h×w (8 fwd + bwd)",
    "Ap": "pre-activation A: input of the layer's closing activation, K×h×w (1 fwd + bwd)",
    "Gp": "gradient at the pre-activation, K×h×w (with Ap)",
    "E": "EigenCAM heatmap: centred A projected on its first principal component, h×w (an SVD per image)",
    "EG": "EigenGradCAM heatmap: the same of A ⊙ G, h×w",
}
"""One-line description of each terminal: what it holds, its shape, and what computing it costs."""


class Node:
    """Base class of expression nodes: :class:`Terminal`, :class:`Const` and :class:`Call`.

    Nodes are frozen dataclasses, so equal trees compare and hash equal and can key caches::

        >>> from sycam.expr import parse
        >>> e = parse("mean(G) * 2")
        >>> e.size, sorted(e.terminals()), str(e)
        (4, ['G'], 'mean(G) * 2')
    """

    __slots__ = ()

    @property
    def size(self) -> int:
        """Number of nodes in the tree (terminals, constants and operator calls each count 1)."""
        raise NotImplementedError

    def terminals(self) -> frozenset[str]:
        """Names of the terminals this expression reads."""
        raise NotImplementedError

    def latex(self) -> str:
        r"""The expression as LaTeX, bracketed by precedence (see :func:`sycam.expr.latex.to_latex`):
        ``parse("max(G - A)").latex() == r"\max_{ij}\left(G - A\right)"``."""
        return to_latex(self)


@dataclass(frozen=True, slots=True)
class Terminal(Node):
    """A leaf that reads a terminal (``A``, ``G``, ``S`` or ``D``; see :data:`TERMINALS`)."""

    name: str

    @property
    def size(self) -> int:
        """Always 1."""
        return 1

    def terminals(self) -> frozenset[str]:
        """``{name}``."""
        return frozenset({self.name})

    def __str__(self) -> str:
        return self.name


@dataclass(frozen=True, slots=True)
class Const(Node):
    """A numeric literal; printed as an integer when it is one (``2``, not ``2.0``)."""

    value: float

    @property
    def size(self) -> int:
        """Always 1."""
        return 1

    def terminals(self) -> frozenset[str]:
        """The empty set."""
        return frozenset()

    def __str__(self) -> str:
        v = float(self.value)
        return str(int(v)) if v.is_integer() and abs(v) < 1e15 else repr(v)


@dataclass(frozen=True, slots=True)
class Call(Node):
    """An operator applied to its arguments: ``Call("mean", (Terminal("G"),))`` is ``mean(G)``.

    ``op`` names an entry of :data:`sycam.expr.ops.OPS`; infix operators (``+ - * /``) print in infix form.
    """

    op: str
    args: tuple[Node, ...]
    _size: int = field(default=0, compare=False, hash=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_size", 1 + sum(a.size for a in self.args))

    @property
    def size(self) -> int:
        """``1 +`` the sizes of the arguments (computed once, at construction)."""
        return self._size

    def terminals(self) -> frozenset[str]:
        """Union of the arguments' terminals (``cam(α)`` also reads the activations of α's layer)."""
        out: frozenset[str] = frozenset()
        for a in self.args:
            out |= a.terminals()
        if self.op == "cam":
            out |= {acts_key(self.args[0])}
        return out

    def __str__(self) -> str:
        spec = OPS[self.op]
        if spec.infix is None:
            return f"{self.op}({', '.join(str(a) for a in self.args)})"
        left, right = self.args
        ls, rs = str(left), str(right)
        if _precedence(left) < spec.precedence:
            ls = f"({ls})"
        if _precedence(right) <= spec.precedence:
            rs = f"({rs})"
        return f"{ls} {spec.infix} {rs}"



def _precedence(node: Node) -> int:
    if isinstance(node, Call):
        infix = OPS[node.op].infix
        if infix is not None:
            return OPS[node.op].precedence
    if isinstance(node, Const) and node.value < 0:
        return 0  # a negative literal must be parenthesised as an operand
    return 100


# ------------------------------------------------------------------------------------------------ typesetting
# the rules: sycam.expr.latex's docstring

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
