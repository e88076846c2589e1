"""Expression trees: immutable, hashable nodes with a canonical text form.

``str(node)`` prints the canonical text; :func:`sycam.expr.parse` reads it back to an equal tree
(parse ∘ print is the identity). Canonical printing writes numbers in their shortest round-trip form,
binary operators with single spaces, and parentheses only where precedence requires them; the right
operand of a binary operator is parenthesised when it binds no tighter, so ``a - (b - c)`` and
``a + (b + c)`` keep their shape.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .ops import OPS, Kind

TERMINALS: dict[str, Kind] = {
    "A": Kind.MAP,
    "G": Kind.MAP,
    "S": Kind.VECTOR,
    "D": Kind.VECTOR,
}
"""The terminals of the language and their kinds (spec §3). Values come from a terminal cache."""

TERMINAL_DOCS: dict[str, str] = {
    "A": "activations of the target layer, K×h×w (1 forward)",
    "G": "gradient ∂y_c/∂A of the target score, K×h×w (1 backward)",
    "S": "Score-CAM channel scores y_c(x ⊙ minmax(upsample(A_k))), K (K forwards)",
    "D": "Ablation-CAM drops (y_c − y_c[A_k := ablated]) / y_c, K (K tail forwards)",
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
        """Union of the arguments' terminals."""
        out: frozenset[str] = frozenset()
        for a in self.args:
            out |= a.terminals()
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
