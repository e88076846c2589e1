"""The grammar: which terminals, constants and operators the search may combine, in which form, up to
which size.

Grammar files are plain text, one ``key: values`` line each, ``#`` starts a comment::

    # the paper's channel-weight form over gradients and activations only
    form: channel            # channel | pixel | channel, pixel
    terminals: A G
    constants: 1 2 0.5
    operators: + - * / relu abs sq mean sum max softmax minmax
    max_size: 7
    layers: blocks.5 blocks.3   # also A@LAYER and G@LAYER of these layers

Missing keys keep their defaults. The default operators are the channel-weight ones (:data:`CLASSIC_OPERATORS`);
the final-map operators (``sharpen thresh blur cmul cmean``, which bring ``cam`` with them) are added by naming
them. Candidates of the heatmap kind (a final-map operator at the root) are always in the search's form.
``str(grammar)`` prints the same format, so a printed grammar is a valid grammar file.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from ..errors import SycamError
from ..expr import (
    HEATMAP_OPS,
    LAYERED,
    OPS,
    TERMINAL_DOCS,
    TERMINALS,
    Call,
    Const,
    Kind,
    Node,
    Terminal,
    kind_of,
    split_terminal,
    terminal_kind,
)

FORMS = ("channel", "pixel")
"""The heatmap forms a grammar may allow."""
DEFAULT_CONSTANTS = (1.0, 2.0, 3.0, 0.5)
"""The constants a grammar offers when it names none."""
CLASSIC_OPERATORS = tuple(n for n in OPS if n not in HEATMAP_OPS)
"""The default operators: those of channel and pixel weights (the final-map operators are opt-in)."""
FINAL_OPERATORS = ("cam", "sharpen", "thresh", "blur", "cmul", "cmean")
"""The final-map operators (with ``cam``, which any of them brings into a grammar)."""


class GrammarError(SycamError, ValueError):
    """A malformed grammar or grammar file."""


@dataclass(frozen=True)
class Grammar:
    """A search space of CAM expressions.

    ``form`` "channel": candidates are channel vectors α (and constants), heatmap Σ_k α_k A_k — the paper's
    form. "pixel": candidates are maps α, heatmap Σ_k α_k ⊙ A_k (covers HiResCAM, LayerCAM).
    Invalid fields raise :class:`GrammarError`.

    >>> g = Grammar(terminals=("A", "G"), operators=("+", "*", "mean", "relu"), max_size=5)
    >>> from sycam.expr import parse
    >>> g.admits(parse("mean(relu(G))")), g.admits(parse("softmax(S)"))
    (True, False)
    """

    terminals: tuple[str, ...] = ("A", "G", "S", "D")
    constants: tuple[float, ...] = DEFAULT_CONSTANTS
    operators: tuple[str, ...] = CLASSIC_OPERATORS
    forms: tuple[str, ...] = ("channel",)
    max_size: int = 7

    def __post_init__(self) -> None:
        bad = [t for t in self.terminals if not _known(t)]
        if bad:
            raise GrammarError(f"unknown terminal(s) {bad}; known: {' '.join(TERMINALS)} and "
                               f"{', '.join(f'{t}@LAYER' for t in LAYERED)}")
        bad = [o for o in self.operators if o not in OPS]
        if bad:
            raise GrammarError(f"unknown operator(s) {bad}; known: {' '.join(OPS)}")
        if any(o in HEATMAP_OPS for o in self.operators) and "cam" not in self.operators:
            object.__setattr__(self, "operators", (*self.operators, "cam"))
        bad = [f for f in self.forms if f not in FORMS]
        if bad or not self.forms:
            raise GrammarError(f"form must be one or both of {', '.join(FORMS)}, got {list(self.forms)}")
        if not self.terminals:
            raise GrammarError("a grammar needs at least one terminal")
        if self.max_size < 1:
            raise GrammarError(f"max_size must be ≥ 1, got {self.max_size}")

    # -- parsing and printing -------------------------------------------------------------------

    @classmethod
    def parse(cls, text: str, base: Grammar | None = None, source: str = "grammar") -> Grammar:
        """Read the ``key: values`` format (see the module docstring) on top of ``base``."""
        g = base or cls()
        fields: dict[str, object] = {}
        for lineno, raw in enumerate(text.splitlines(), 1):
            line = raw.split("#", 1)[0].strip()
            if not line:
                continue
            key, sep, value = line.partition(":")
            key = key.strip().lower().replace("-", "_")
            items = value.replace(",", " ").split()
            if not sep:
                raise GrammarError(f"{source}:{lineno}: expected 'key: values', got {raw.strip()!r}")
            try:
                if key == "terminals":
                    fields["terminals"] = tuple(items)
                elif key == "layers":
                    fields["terminals"] = with_layers(tuple(fields.get("terminals", g.terminals)), items)  # type: ignore[arg-type]
                elif key == "constants":
                    fields["constants"] = tuple(float(x) for x in items)
                elif key == "operators":
                    fields["operators"] = tuple(items)
                elif key in ("form", "forms"):
                    fields["forms"] = tuple(items)
                elif key == "max_size":
                    if len(items) != 1:
                        raise ValueError("max_size takes one integer")
                    fields["max_size"] = int(items[0])
                else:
                    raise GrammarError(f"{source}:{lineno}: unknown key {key!r} "
                                       "(terminals, constants, operators, form, max_size, layers)")
            except ValueError as exc:
                if isinstance(exc, GrammarError):
                    raise
                raise GrammarError(f"{source}:{lineno}: {exc}") from None
        try:
            return replace(g, **fields)  # type: ignore[arg-type]
        except GrammarError as exc:
            raise GrammarError(f"{source}: {exc}") from None

    @classmethod
    def load(cls, path: str | Path, base: Grammar | None = None) -> Grammar:
        """Read a grammar file (see the module docstring) on top of ``base``; errors name the file and line."""
        path = Path(path)
        try:
            text = path.read_text()
        except OSError as exc:
            raise GrammarError(f"cannot read grammar file {path}: {exc.strerror}") from None
        return cls.parse(text, base, str(path))

    def __str__(self) -> str:
        consts = " ".join(str(Const(c)) for c in self.constants)
        return (f"form: {', '.join(self.forms)}\nterminals: {' '.join(self.terminals)}\nconstants: {consts}\n"
                f"operators: {' '.join(self.operators)}\nmax_size: {self.max_size}\n")

    def describe(self) -> str:
        """A human listing of the grammar, for ``sycam list grammar``."""
        lines = [str(self).rstrip(), "", "terminals:"]
        lines += [f"  {t:<3} {TERMINAL_DOCS[split_terminal(t)[0]]}" for t in self.terminals]
        lines += ["operators:"]
        for name in self.operators:
            op = OPS[name]
            sig = f"x {name} y" if op.infix else f"{name}({', '.join('xy'[:op.arity])})"
            lines.append(f"  {sig:<12} {op.doc}")
        return "\n".join(lines)

    def as_dict(self) -> dict[str, object]:
        """The fields as JSON-ready lists (as recorded in ``results.json``)."""
        return {"forms": list(self.forms), "terminals": list(self.terminals), "constants": list(self.constants),
                "operators": list(self.operators), "max_size": self.max_size}

    # -- membership ---------------------------------------------------------------------------------

    def layers(self) -> tuple[str, ...]:
        """The layers other than the target that the grammar's terminals name (``G@blocks.5`` → ``blocks.5``)."""
        return tuple(dict.fromkeys(la for la in (split_terminal(t)[1] for t in self.terminals) if la))

    def form_allows(self, kind: Kind) -> bool:
        """Whether an expression of ``kind`` is a candidate heatmap in this grammar's form(s) (a heatmap always)."""
        if kind == Kind.HEATMAP:
            return True
        if kind == Kind.MAP:
            return "pixel" in self.forms
        return "channel" in self.forms

    def uses_only(self, node: Node) -> bool:
        """Whether ``node`` uses only this grammar's terminals and operators (constants and size aside)."""
        if isinstance(node, Terminal):
            return node.name in self.terminals
        if isinstance(node, Const):
            return True
        assert isinstance(node, Call)
        return node.op in self.operators and all(self.uses_only(a) for a in node.args)

    def admits(self, node: Node) -> bool:
        """Whether ``node`` is in the search space: terminals, operators, constants, size and form."""

        def consts_ok(n: Node) -> bool:
            if isinstance(n, Const):
                return n.value in self.constants
            return all(consts_ok(a) for a in n.args) if isinstance(n, Call) else True

        return (node.size <= self.max_size and self.uses_only(node) and consts_ok(node)
                and self.form_allows(kind_of(node)))


def _known(name: str) -> bool:
    try:
        terminal_kind(name)
    except KeyError:
        return False
    return True


def with_layers(terminals: tuple[str, ...], layers: list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """``terminals`` plus ``A@LAYER`` and ``G@LAYER`` for each of ``layers`` (for ``--layers`` and ``layers:``).

    >>> with_layers(("A", "G"), ["blocks.5"])
    ('A', 'G', 'A@blocks.5', 'G@blocks.5')
    """
    extra = [f"{t}@{la}" for la in layers for t in ("A", "G")]
    return tuple(dict.fromkeys((*terminals, *extra)))
