"""Data: manifests, VOC/ImageNet XML annotations, the embedded demo set, splits.

- :func:`load_data` turns ``"demo"`` (composited), ``"photos"`` (real photos with hand-drawn boxes), a
  manifest ``.csv``/``.json`` or an XML-annotated folder into model-ready :class:`Samples` (images, targets,
  boxes and masks in model-input pixels).
- :func:`split` / :func:`split_three` divide samples into synthesis (validation) and test sets with no image,
  object photo or texture on two sides; :func:`shared_sources` says what two sets share.
- :class:`Preprocess` is the model's preprocessing (resize, crop, normalize) for images, boxes and masks.
- Every bad input raises :class:`DataError` with a one-line message naming the file and row.

Formats and conventions: ``docs/data.md``.
"""

from .demo import build_demo, demo_scenes
from .errors import DataError, DataWarning
from .geometry import rasterize
from .images import read_image, to_rgb
from .labels import LabelResolver
from .load import load_data
from .photos import build_photos
from .preprocess import IMAGENET_MEAN, IMAGENET_STD, Preprocess
from .samples import Samples
from .split import shared_sources, split, split_three

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "DataError",
    "DataWarning",
    "LabelResolver",
    "Preprocess",
    "Samples",
    "build_demo",
    "build_photos",
    "demo_scenes",
    "load_data",
    "rasterize",
    "read_image",
    "shared_sources",
    "split",
    "split_three",
    "to_rgb",
]
