"""docs/targets.md runs as written, and its segmentation and box targets give pytorch-grad-cam's maps."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch

DOC = Path(__file__).resolve().parents[2] / "docs" / "targets.md"


@pytest.fixture(scope="module")
def page() -> dict:
    namespace: dict = {"__name__": "targets_doc"}
    for block in re.findall(r"```python\n(.*?)```", DOC.read_text(), re.S):
        exec(compile(block, str(DOC), "exec"), namespace)
    return namespace


def test_doc_example_gives_maps(page: dict) -> None:
    assert page["seg_maps"].shape == (2, 32, 32) and set(page["box_maps"]) == {"gradcam", "scorecam",
                                                                               "ablationcam"}
    for maps in [page["seg_maps"], *page["box_maps"].values()]:
        assert float(maps.amin()) >= 0 and float(maps.amax()) > 0.99
    # the box explains another scalar than the whole image (LayerCAM shows it: with a linear head Grad-CAM's
    # channel weights, spatial means of G, are proportional for any region, so its map is the same)
    cam = page["sycam"].CAM(page["net"], "encoder", "layercam")
    whole = cam(page["images"], targets=lambda out: out[1].sum())
    assert float((whole - cam(page["images"], targets=page["box_targets"])).abs().max()) > 1e-2


def test_doc_targets_match_pytorch_grad_cam(page: dict) -> None:
    pgc = pytest.importorskip("pytorch_grad_cam")
    from pytorch_grad_cam.utils.model_targets import SemanticSegmentationTarget

    net, images, labels = page["net"], page["images"], page["labels"]
    theirs = [SemanticSegmentationTarget(2, (labels[i] == 2).float().numpy()) for i in range(2)]
    with pgc.GradCAM(model=net, target_layers=[net.encoder]) as cam:
        ref = cam(input_tensor=images, targets=theirs)
    np.testing.assert_allclose(page["seg_maps"].numpy(), ref, atol=1e-4, rtol=0)
    with pgc.GradCAM(model=net, target_layers=[net.encoder]) as cam:
        ref = cam(input_tensor=images, targets=page["box_targets"])
    np.testing.assert_allclose(page["box_maps"]["gradcam"].numpy(), ref, atol=1e-4, rtol=0)
    ours = page["sycam"].CAM(net, "encoder", "gradcam")(images, targets=theirs)  # their target objects, as they are
    torch.testing.assert_close(ours, page["seg_maps"])
