"""Expression trees: immutable, hashable nodes with a canonical text form.

``str(node)`` prints the canonical text; :func:`sycam.expr.parse` reads it back to an equal tree
(parse ∘ print is the identity). Canonical printing writes numbers in their shortest round-trip form,
binary operators with single spaces, and parentheses only where precedence requires them; the right
operand of a binary operator is parenthesised when it binds no tighter, so ``a - (b - c)`` and
``a + (b + c)`` keep their shape.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

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
        from .latex import to_latex

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
