"""Inline rendering in Jupyter: ``_repr_html_`` of heatmap batches, evaluations and synthesis results.

There is one rendering rule: what a notebook shows is the page the CLI writes — :mod:`sycam.report`'s
:func:`~sycam.report.page.page` around its gallery (:func:`~sycam.report.gallery.gallery_html`, overlays from
:func:`sycam.viz.overlay`), its evaluation table or its synthesis report — embedded in an ``<iframe srcdoc>``
so that the report's stylesheet never restyles the notebook. Nothing here draws or formats on its own.

- :class:`Heatmaps` — a batch of maps (one or several methods) with the images they explain; shows the overlay
  grid (one row per image, one column per method);
- ``Evaluation._repr_html_`` (:func:`sycam.workspace.evaluate_methods`) → :func:`evaluation_html`;
- ``SynthesisResult._repr_html_`` (:func:`sycam.synthesize`) → :func:`result_html`.

Example (a notebook cell)::

    maps = sycam.explain(model, x, ["gradcam", "mean(G) * relu(D)"])
    sycam.Heatmaps(maps, pixels)          # displays the overlay grid inline
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from torch import Tensor

from .errors import SycamError
from .report import GalleryItem, render_evaluation_report, render_report
from .report.gallery import gallery_html
from .report.page import page

#: height of the inline frame, CSS pixels (the frame scrolls beyond it)
FRAME_HEIGHT = 520


class NotebookError(SycamError, ValueError):
    """Heatmaps and images that do not fit together (one line)."""


def frame(document: str, height: int = FRAME_HEIGHT) -> str:
    """A complete HTML document as an isolated ``<iframe srcdoc>`` for a notebook cell."""
    return (f'<iframe srcdoc="{html.escape(document, quote=True)}" style="width: 100%; height: {int(height)}px; '
            'border: 1px solid #ddd" sandbox=""></iframe>')


@dataclass
class Heatmaps:
    """A batch of heatmaps and the images they explain, shown inline as an overlay grid.

    Args:
        maps: ``(N, H, W)`` maps of one method, or ``{method: (N, H, W)}`` (e.g. what :func:`sycam.explain`
            returns).
        pixels: ``(N, 3, H, W)`` RGB in [0, 1] (not the normalized model inputs: ``model.preprocess.pixels``).
        labels: a caption per image (default: its index).
        boxes, masks: optional ground truth per image, outlined on every picture.

    Example::

        sycam.Heatmaps(sycam.CAM(model, method="gradcam")(x), pixels)          # a notebook cell shows the grid
    """

    maps: Tensor | Mapping[str, Tensor]
    pixels: Tensor
    labels: Sequence[str] | None = None
    boxes: Sequence[Tensor | None] | None = None
    masks: Sequence[Tensor | None] | None = None
    thumb: int = 120
    by_method: dict[str, Tensor] = field(init=False)

    def __post_init__(self) -> None:
        self.by_method = {"map": self.maps} if isinstance(self.maps, Tensor) else dict(self.maps)
        n = int(self.pixels.shape[0]) if isinstance(self.pixels, Tensor) and self.pixels.dim() == 4 else -1
        if n < 0 or self.pixels.shape[1] != 3:
            raise NotebookError(f"pixels must be (N, 3, H, W) RGB in [0, 1], got "
                                f"{tuple(self.pixels.shape) if isinstance(self.pixels, Tensor) else self.pixels}")
        for name, m in self.by_method.items():
            if not isinstance(m, Tensor) or tuple(m.shape) != (n, *self.pixels.shape[-2:]):
                shape = tuple(m.shape) if isinstance(m, Tensor) else type(m).__name__
                raise NotebookError(f"heatmaps {name!r} have shape {shape}, the images {tuple(self.pixels.shape)}: "
                                    f"expected ({n}, {self.pixels.shape[-2]}, {self.pixels.shape[-1]})")

    def __len__(self) -> int:
        return int(self.pixels.shape[0])

    def items(self) -> list[GalleryItem]:
        """The batch as report gallery items (one per image)."""
        return [GalleryItem(id=str(i), label=str(self.labels[i]) if self.labels is not None else "",
                            pixels=self.pixels[i].detach().cpu(),
                            boxes=None if self.boxes is None or self.boxes[i] is None else self.boxes[i].cpu(),
                            mask=None if self.masks is None or self.masks[i] is None else self.masks[i].cpu(),
                            maps={k: v[i].detach().cpu() for k, v in self.by_method.items()})
                for i in range(len(self))]

    def html(self) -> str:
        """The overlay grid as a complete page (the report's gallery)."""
        return page("sycam — heatmaps", gallery_html(self.items(), self.thumb))

    def _repr_html_(self) -> str:
        return frame(self.html(), min(FRAME_HEIGHT, 140 + len(self) * (self.thumb + 60)))


def evaluation_html(evaluation: Any) -> str:
    """An :class:`~sycam.workspace.Evaluation` (methods × metrics) as the evaluation page, framed."""
    document = render_evaluation_report({
        "metrics": dict(getattr(evaluation, "metrics", {}) or {}),
        "results": {k: dict(v) for k, v in evaluation.items()},
        "degenerate": {k: {"all": int(v)} for k, v in (getattr(evaluation, "degenerate", {}) or {}).items()},
    })
    return frame(document, 360)


def result_html(result: Any) -> str:
    """A :class:`~sycam.synth.result.SynthesisResult` as the synthesis report (no gallery), framed."""
    return frame(render_report(result.to_dict()))
