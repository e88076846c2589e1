"""Data: manifests, VOC/ImageNet XML annotations, the embedded demo set, splits."""

from .errors import DataError, DataWarning
from .geometry import rasterize
from .labels import LabelResolver
from .load import load_data
from .samples import Samples

__all__ = ["DataError", "DataWarning", "LabelResolver", "Samples", "load_data", "rasterize"]
