"""Data: manifests, VOC/ImageNet XML annotations, the embedded demo set, splits."""
