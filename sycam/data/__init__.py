"""Data: manifests, VOC/ImageNet XML annotations, the embedded demo set, splits."""

from .errors import DataError, DataWarning
from .labels import LabelResolver
from .samples import Samples

__all__ = ["DataError", "DataWarning", "LabelResolver", "Samples"]
