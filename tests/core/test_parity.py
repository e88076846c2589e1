"""Parity of every built-in method with pytorch-grad-cam (same model, layer, images, targets): ≤ 1e-4."""

from __future__ import annotations

import numpy as np
import pytest
import torch

pgc = pytest.importorskip("pytorch_grad_cam")
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget  # noqa: E402

from sycam.heatmap import explain  # noqa: E402
from sycam.methods import METHODS  # noqa: E402
from sycam.models import load_model, resolve_layer  # noqa: E402

REFERENCE = {
    "gradcam": pgc.GradCAM,
    "gradcam++": pgc.GradCAMPlusPlus,
    "xgradcam": pgc.XGradCAM,
    "scorecam": pgc.ScoreCAM,
    "ablationcam": pgc.AblationCAM,
    "hirescam": pgc.HiResCAM,
    "layercam": pgc.LayerCAM,
    "eigencam": pgc.EigenCAM,
    "eigengradcam": pgc.EigenGradCAM,
}
# (model, weights, input size, targets): small inputs keep Score-CAM and Ablation-CAM parity fast (each is K
# forwards per image, K = 2048 for ResNet50); the real EfficientNet-Lite0 runs a batch of two photos with
# different targets, the seeded models one image each.
SETUPS = {
    "resnet50": ("resnet50", None, 64, [4]),
    "vgg16": ("vgg16", None, 64, [1]),
    "efficientnet_lite0": ("efficientnet_lite0", "imagenet", 96, [967, 285]),
}


def test_reference_covers_every_method() -> None:
    assert set(REFERENCE) == set(METHODS)


@pytest.fixture(scope="module", params=list(SETUPS))
def setup(request: pytest.FixtureRequest):
    name, weights, size, targets = SETUPS[request.param]
    model = load_model(name, weights=weights, seed=0)
    gen = torch.Generator().manual_seed(1)
    if weights is None:
        images = torch.randn(len(targets), 3, size, size, generator=gen)
    else:  # real weights: real photos
        from PIL import Image
        from skimage import data

        from sycam.models import Preprocess

        pre = Preprocess(size=size, resize=size, mean=model.preprocess.mean, std=model.preprocess.std)
        images = torch.stack([pre(Image.fromarray(data.coffee())), pre(Image.fromarray(data.chelsea()))])
    ours = explain(model, images, list(METHODS), targets=targets)
    return model, images, targets, ours


@pytest.mark.parametrize("method", list(REFERENCE))
def test_matches_pytorch_grad_cam(setup, method: str) -> None:
    model, images, targets, ours = setup
    _, layer = resolve_layer(model.module, model.layer)
    with REFERENCE[method](model=model.module, target_layers=[layer]) as cam:
        cam.batch_size = 128
        ref = cam(input_tensor=images, targets=[ClassifierOutputTarget(c) for c in targets])
    got = ours[method].numpy()
    assert got.shape == ref.shape
    assert float(ref.max()) > 0.99  # the reference is a real, non-degenerate map
    np.testing.assert_allclose(got, ref, atol=1e-4, rtol=0)


def test_multi_layer_layercam_matches_pytorch_grad_cam() -> None:
    """LayerCAM over two layers of one grid (EfficientNet-Lite0's bn2 and blocks.5): pytorch-grad-cam averages the
    layers' normalized maps, as cmean does."""
    model = load_model("efficientnet_lite0", weights="imagenet")
    from PIL import Image
    from skimage import data

    from sycam.models import Preprocess

    pre = Preprocess(size=96, resize=96, mean=model.preprocess.mean, std=model.preprocess.std)
    images = torch.stack([pre(Image.fromarray(data.coffee())), pre(Image.fromarray(data.chelsea()))])
    targets = [967, 285]
    ours = explain(model, images, ["layercam@blocks.5"], targets=targets)["layercam@blocks.5"].numpy()
    layers = [resolve_layer(model.module, name)[1] for name in ("bn2", "blocks.5")]
    with pgc.LayerCAM(model=model.module, target_layers=layers) as cam:
        ref = cam(input_tensor=images, targets=[ClassifierOutputTarget(c) for c in targets])
    assert float(ref.max()) > 0.99
    np.testing.assert_allclose(ours, ref, atol=1e-4, rtol=0)
