"""A winning expression as the report shows it: typeset (MathML), as text, and as LaTeX source."""

from __future__ import annotations

from ..expr import parse
from ..expr.latex import to_latex, to_mathml
from .format import esc

__all__ = ["formula_html", "latex_of"]


def latex_of(expression: str, fallback: str | None = None) -> str | None:
    """The LaTeX of ``expression`` from the printer (correct by construction), or ``fallback`` when the
    text does not parse (e.g. a results file written by another version)."""
    try:
        return to_latex(parse(expression))
    except ValueError:
        return fallback


def formula_html(expression: str, fallback_latex: str | None = None) -> str:
    """The expression typeset as MathML (rendered natively by the browser, no script), then its text
    form, then its LaTeX source in a ``<details>`` box to copy from."""
    try:
        node = parse(expression)
    except ValueError:
        node = None
    parts = []
    if node is not None:
        parts.append(f'<div class="formula" title="{esc(to_latex(node))}">{to_mathml(node)}</div>')
    parts.append(f'<pre class="expr"><code>{esc(expression)}</code></pre>')
    latex = to_latex(node) if node is not None else fallback_latex
    if latex:
        parts.append(
            '<details class="latex"><summary>LaTeX source</summary>'
            f'<pre><code class="latex-source">{esc(latex)}</code></pre></details>'
        )
    return "".join(parts)
