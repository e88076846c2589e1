"""Evaluation metrics for heatmaps (registry in this package)."""
