"""Data: manifests, VOC/ImageNet XML annotations, the embedded demo set, splits.

- :func:`load_data` turns ``"demo"``, a manifest ``.csv``/``.json`` or an XML-annotated folder into
  model-ready :class:`Samples` (images, targets, boxes and masks in model-input pixels).
- :func:`split` divides samples into synthesis and test sets, keeping images whole.
- Every bad input raises :class:`DataError` with a one-line message naming the file and row.

Formats and conventions: ``docs/data.md``.
"""

from .demo import build_demo, demo_scenes
from .errors import DataError, DataWarning
from .geometry import rasterize
from .labels import LabelResolver
from .load import load_data
from .samples import Samples
from .split import split

__all__ = [
    "DataError",
    "DataWarning",
    "LabelResolver",
    "Samples",
    "build_demo",
    "demo_scenes",
    "load_data",
    "rasterize",
    "split",
]
