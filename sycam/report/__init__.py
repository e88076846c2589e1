"""Reports: self-contained HTML pages (no scripts, no external resources) and PNG figures.

* :func:`write_report` — the ``sycam synthesize`` page, from ``results.json``
  (:class:`sycam.results.SynthesisResults`) and a gallery of :class:`GalleryItem`.
* :func:`write_evaluation_report` — the ``sycam evaluate`` page (methods × metrics and a gallery).
* :func:`write_figures` — one comparison PNG per gallery sample.

Modules: :mod:`~sycam.report.format` (numbers and names), :mod:`~sycam.report.tables`,
:mod:`~sycam.report.charts` (SVG with nice ticks), :mod:`~sycam.report.formula` (MathML),
:mod:`~sycam.report.gallery`, :mod:`~sycam.report.page` with ``style.css``, and one module per page.
"""

from .evaluation import EvaluationResults, render_evaluation_report, write_evaluation_report
from .format import SYNTHESIZED
from .gallery import GalleryItem, attach_scores, write_figures
from .synthesis import render_report, write_report

__all__ = [
    "SYNTHESIZED",
    "EvaluationResults",
    "GalleryItem",
    "attach_scores",
    "render_evaluation_report",
    "render_report",
    "write_evaluation_report",
    "write_figures",
    "write_report",
]
