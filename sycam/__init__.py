"""sycam — metric-guided synthesis of class activation maps (SyCAM).

The public API, imported lazily so that ``import sycam`` stays fast::

    sycam.load_model, sycam.LoadedModel                     # models
    sycam.Preprocess                                        # data (preprocessing)
    sycam.CAM, sycam.explain, sycam.METHODS                 # heatmaps from expressions
    sycam.parse                                             # the expression language
    sycam.load_data, sycam.split, sycam.split_three, sycam.shared_sources, sycam.Samples  # data
    sycam.get_metric, sycam.list_metrics                    # metrics
    sycam.synthesize, sycam.SynthesisConfig, sycam.Grammar, sycam.default_constraints  # the search
    sycam.export, sycam.quantus_explain                     # into pytorch-grad-cam and Quantus
    sycam.Heatmaps                                          # inline overlay grids in notebooks
    sycam.SycamError                                        # base of every user-facing error

A heatmap from a CAM expression, then a search for the expression that scores best under a metric::

    import sycam

    model = sycam.load_model("efficientnet_lite0")
    maps = sycam.CAM(model, method="mean(G)")(images, targets=[285, 967])   # (N, H, W) in [0, 1]

    samples = sycam.load_data("demo", model.preprocess, model.classes)
    synthesis, test = sycam.split(samples, test_fraction=0.5, seed=0)
    result = sycam.synthesize(model.module, model.layer, synthesis, test,
                              sycam.get_metric("energy_pointing_game"),
                              config=sycam.SynthesisConfig(grammar=sycam.Grammar(max_size=5), max_candidates=2000))
    result.best.expression, result.best.test_score

Related modules: :mod:`sycam.stats` (paired bootstrap CI and verdict), :mod:`sycam.results` (the
``results.json`` schema), :mod:`sycam.report` (HTML reports), :mod:`sycam.viz` (pictures).
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "load_model": "sycam.models",
    "LoadedModel": "sycam.models",
    "Preprocess": "sycam.data",
    "CAM": "sycam.heatmap",
    "explain": "sycam.heatmap",
    "METHODS": "sycam.methods",
    "parse": "sycam.expr",
    "load_data": "sycam.data",
    "split": "sycam.data",
    "split_three": "sycam.data",
    "shared_sources": "sycam.data",
    "Samples": "sycam.data",
    "get_metric": "sycam.metrics",
    "list_metrics": "sycam.metrics",
    "synthesize": "sycam.synth",
    "SynthesisConfig": "sycam.synth",
    "Grammar": "sycam.synth",
    "default_constraints": "sycam.synth",
    "SycamError": "sycam.errors",
    "export": "sycam.interop",
    "quantus_explain": "sycam.interop",
    "Heatmaps": "sycam.notebook",
}

__all__ = [*_EXPORTS, "__version__"]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'sycam' has no attribute {name!r}")
