"""Reports: HTML page and PNG figures."""

from sycam.report.html import (
    SYNTHESIZED,
    GalleryItem,
    render_evaluation_report,
    render_report,
    write_evaluation_report,
    write_figures,
    write_report,
)

__all__ = [
    "SYNTHESIZED",
    "GalleryItem",
    "render_evaluation_report",
    "render_report",
    "write_evaluation_report",
    "write_figures",
    "write_report",
]
