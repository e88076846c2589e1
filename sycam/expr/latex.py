r"""Typeset an expression tree: LaTeX source and MathML, with brackets decided by one rule set.

The printers are defined in :mod:`sycam.expr.ast`, beside the tree and its text form (``Node.latex()`` is one of
them); this module is their public home and the statement of their rules.

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

from .ast import LATEX_OPS, to_latex, to_mathml

__all__ = ["LATEX_OPS", "to_latex", "to_mathml"]
