"""Parity with pytorch-grad-cam on vision transformers and through sycam.export: the largest absolute
difference per method (the tests assert ≤ 1e-4 and ≤ 1e-5; this prints the measured values).

- every built-in method on a seeded tiny timm ViT (blocks[-1].norm1, pytorch-grad-cam's ViT reshape example)
  and Swin (layers[-1].blocks[-1].norm1, channels last), 2 images of 32×32, targets [3, 7]; Ablation-CAM uses
  pytorch-grad-cam's ``AblationLayerVit``;
- several layers (blocks.0.norm1 + blocks.1.norm1 of the ViT) for Grad-CAM, LayerCAM and Score-CAM;
- ``sycam.export`` run inside pytorch-grad-cam against sycam's own map, on the ViT.

Usage: ``python benchmarks/transformer_parity.py``. The last line of the output is one JSON object.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from test_transformers import TARGETS, images, reference, tiny_swin, tiny_vit, vit_reshape

import sycam
from sycam.methods import METHODS
from sycam.models import transformer_layer


def main() -> dict[str, dict[str, float]]:
    torch.set_num_threads(1)
    out: dict[str, dict[str, float]] = {}
    for kind, model in (("vit", tiny_vit()), ("swin", tiny_swin())):
        layer, preset = transformer_layer(model)
        ours = sycam.explain(model, images(), list(METHODS), targets=TARGETS, target_layer=layer,
                             reshape_transform=preset)
        theirs = vit_reshape if kind == "vit" else (lambda t: t.permute(0, 3, 1, 2))
        out[kind] = {m: float(np.abs(ours[m].numpy() - reference(m, model, [model.get_submodule(layer)], theirs,
                                                                 images())).max()) for m in METHODS}
    vit = tiny_vit()
    names = ["blocks.0.norm1", "blocks.1.norm1"]
    out["vit, two layers"] = {}
    out["export (vit)"] = {}
    for m in ("gradcam", "layercam", "scorecam"):
        got = sycam.CAM(vit, method=m, layers=names, reshape_transform="vit")(images(), TARGETS).numpy()
        ref = reference(m, vit, [vit.get_submodule(n) for n in names], vit_reshape, images())
        out["vit, two layers"][m] = float(np.abs(got - ref).max())
    for e in ("gradcam", "layercam", "cube(cube(sum(G)))"):
        with sycam.export(e, "pytorch_grad_cam")(model=vit, target_layers=[vit.blocks[-1].norm1],
                                                  reshape_transform=vit_reshape) as cam:
            from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

            got = cam(input_tensor=images(), targets=[ClassifierOutputTarget(c) for c in TARGETS])
        ours = sycam.CAM(vit, "blocks[-1].norm1", e, reshape_transform="vit")(images(), TARGETS).numpy()
        out["export (vit)"][e] = float(np.abs(got - ours).max())
    for group, values in out.items():
        print(f"{group:18s} " + "  ".join(f"{k} {v:.1e}" for k, v in values.items()))
    print(json.dumps(out))
    return out


if __name__ == "__main__":
    main()
