r"""sycam CAMs where people already work: as a pytorch-grad-cam ``BaseCAM`` subclass, and as a Quantus
``explain_func``. Both libraries stay optional: each is imported only when asked for, with a one-line
:class:`ExportError` when it is not installed.

- :func:`export` ``(expression, "pytorch_grad_cam")`` → a ``BaseCAM`` subclass whose ``get_cam_image``
  evaluates the expression on pytorch-grad-cam's activations ``A`` and gradients ``G`` (after its
  ``reshape_transform``) and returns the raw saliency :math:`\sum_k E_k` of :func:`~sycam.heatmap.saliency`;
  pytorch-grad-cam's own relu → normalize → resize → (multi-layer mean) → normalize then gives sycam's map.
  Only gradient-family expressions export (terminals ``A`` and ``G``: Grad-CAM, Grad-CAM++, XGrad-CAM,
  HiResCAM, LayerCAM and any synthesized expression over them); ``S`` and ``D`` need forwards that
  ``BaseCAM`` does not run, and are refused.
- :func:`quantus_explain` ``(model, inputs, targets, method=..., target_layer=...)`` → attributions
  ``(N, 1, H, W)`` (numpy), sycam's :class:`~sycam.heatmap.CAM` maps, for any Quantus metric's
  ``explain_func`` / ``explain_func_kwargs``.

Example::

    SynthCAM = sycam.export("mean(G) * relu(A)", "pytorch_grad_cam")
    with SynthCAM(model=net, target_layers=[net.layer4[-1]]) as cam:
        maps = cam(input_tensor=x, targets=[ClassifierOutputTarget(281)])     # = sycam's map to ~1e-7

    metric = quantus.MaxSensitivity(nr_samples=5, disable_warnings=True)
    metric(model=net, x_batch=x, y_batch=y, explain_func=sycam.quantus_explain,
           explain_func_kwargs={"method": "gradcam", "target_layer": "layer4"})
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from .errors import SycamError
from .expr import Node, evaluate
from .heatmap import CAM, saliency
from .methods import resolve_method
from .models import LoadedModel
from .transforms import ReshapeTransform

FORMATS = ("pytorch_grad_cam",)
"""What :func:`export` can export to."""
EXPORTABLE_TERMINALS = frozenset({"A", "G"})
"""The terminals pytorch-grad-cam's ``BaseCAM`` hands a CAM: activations and gradients."""


class ExportError(SycamError, ValueError):
    """An expression or format that cannot be exported, or a missing optional library (one line)."""


def _import(module: str, package: str) -> Any:
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ExportError(f"{module} is not installed: pip install {package}") from exc


def export(expression: str | Node, to: str = "pytorch_grad_cam") -> type:
    """A ``pytorch_grad_cam.base_cam.BaseCAM`` subclass computing ``expression`` (a method name, text or tree).

    The class takes pytorch-grad-cam's usual ``(model, target_layers, reshape_transform=None)`` and keeps the
    expression in ``.expression``; its maps equal sycam's for the same model, layers, transform and targets.

    Example::

        LayerCAM = export("layercam")                      # = pytorch-grad-cam's LayerCAM
        export("softmax(S)")                               # ExportError: cannot export 'softmax(S)' ...: it uses S
    """
    if to not in FORMATS:
        raise ExportError(f"unknown export format {to!r}; valid: {', '.join(FORMATS)}")
    label, node = resolve_method(expression)
    other = sorted(node.terminals() - EXPORTABLE_TERMINALS)
    if other:
        raise ExportError(f"cannot export {label!r} to pytorch_grad_cam: it uses {', '.join(other)}; BaseCAM gives "
                          "a CAM only activations and gradients (A, G), so Score-CAM and Ablation-CAM forms do not "
                          "export")
    base_cam = _import("pytorch_grad_cam.base_cam", "grad-cam").BaseCAM

    def __init__(self: Any, model: nn.Module, target_layers: Sequence[nn.Module],
                 reshape_transform: ReshapeTransform | None = None) -> None:
        base_cam.__init__(self, model, list(target_layers), reshape_transform)

    def get_cam_image(self: Any, input_tensor: Tensor, target_layer: nn.Module, targets: Any,
                      activations: Any, grads: Any, eigen_smooth: bool = False) -> np.ndarray:
        if eigen_smooth:
            raise ExportError("a sycam expression has no eigen_smooth variant")
        acts = torch.as_tensor(np.asarray(activations), dtype=torch.float32)
        values = {"A": acts, "G": torch.as_tensor(np.asarray(grads), dtype=torch.float32)}
        return saliency(evaluate(node, values), acts).numpy()

    name = "SycamCAM_" + (re.sub(r"\W+", "_", label).strip("_") or "expression")[:40]
    doc = f"pytorch-grad-cam CAM of the sycam expression ``{node}`` (exported by :func:`sycam.export`)."
    return type(name, (base_cam,), {"__init__": __init__, "get_cam_image": get_cam_image, "expression": node,
                                    "__doc__": doc, "__module__": __name__})


def quantus_explain(model: nn.Module | LoadedModel, inputs: Any, targets: Any, *, method: str | Node = "gradcam",
                    target_layer: str | nn.Module | None = None,
                    reshape_transform: str | ReshapeTransform | None = None,
                    layers: Sequence[str | nn.Module] | None = None, batch_size: int = 32,
                    device: Any = None, **_quantus: Any) -> np.ndarray:
    """A Quantus ``explain_func``: sycam's :class:`~sycam.heatmap.CAM` maps of ``inputs`` ``(N, C, H, W)`` for
    ``targets`` (class indices), as float32 attributions ``(N, 1, H, W)`` in [0, 1].

    ``method``, ``target_layer``, ``reshape_transform`` and ``layers`` are as for :class:`~sycam.heatmap.CAM`,
    passed through Quantus's ``explain_func_kwargs``; other keywords Quantus adds (``device``, ...) are ignored
    (the maps are computed on the model's device).

    Example::

        quantus.Sparseness(disable_warnings=True)(model=net, x_batch=x, y_batch=y, a_batch=None,
            explain_func=sycam.quantus_explain, explain_func_kwargs={"method": "mean(G)", "target_layer": "layer4"})
    """
    cam = CAM(model, target_layer, method, batch_size=batch_size, reshape_transform=reshape_transform, layers=layers)
    param = next(cam.model.parameters(), None)
    where = param.device if param is not None else torch.device("cpu")
    x = torch.as_tensor(np.asarray(inputs) if not isinstance(inputs, Tensor) else inputs).to(where, torch.float32)
    labels = [int(t) for t in np.asarray(targets.cpu() if isinstance(targets, Tensor) else targets).reshape(-1)]
    if len(labels) == 1 and x.shape[0] > 1:
        labels = labels * x.shape[0]
    maps = cam(x, labels)
    return maps.detach().cpu().numpy().astype(np.float32)[:, None]
