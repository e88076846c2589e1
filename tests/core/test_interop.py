"""sycam inside other libraries: an expression exported as a pytorch-grad-cam BaseCAM subclass gives sycam's map
(≤ 1e-5), and Quantus scores sycam CAMs through sycam.quantus_explain."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch
from torch import nn

import sycam
from sycam.heatmap import CAM
from sycam.interop import ExportError, export, quantus_explain
from sycam.methods import resolve_method

pgc = pytest.importorskip("pytorch_grad_cam")
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget  # noqa: E402

TARGETS = [1, 4]
#: Grad-CAM, LayerCAM, a synthesized gradient expression (from a search over A, G) and a channel-vector form
EXPRESSIONS = ["gradcam", "layercam", "cube(cube(sum(G)))", "mean(G) * relu(A) - 0.5 * sq(G)", "gradcam++"]


class Net(nn.Module):
    """A tiny CNN: 32×32 inputs, target layers at 16×16 (``mid``) and 8×8 (``top``)."""

    def __init__(self) -> None:
        super().__init__()
        self.mid = nn.Sequential(nn.Conv2d(3, 6, 3, stride=2, padding=1), nn.ReLU())
        self.top = nn.Sequential(nn.Conv2d(6, 8, 3, stride=2, padding=1), nn.ReLU())
        self.fc = nn.Linear(8, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.top(self.mid(x)).mean((2, 3)))


@pytest.fixture(scope="module")
def net() -> Net:
    torch.manual_seed(0)
    return Net().eval()


def images(n: int = 2) -> torch.Tensor:
    return torch.randn(n, 3, 32, 32, generator=torch.Generator().manual_seed(3))


def run_exported(cls: type, model: nn.Module, layers: list[nn.Module], reshape=None) -> np.ndarray:
    with cls(model=model, target_layers=layers, reshape_transform=reshape) as cam:
        return cam(input_tensor=images(), targets=[ClassifierOutputTarget(c) for c in TARGETS])


@pytest.mark.parametrize("expression", EXPRESSIONS)
def test_exported_class_gives_sycams_map(net: Net, expression: str) -> None:
    cls = export(expression, "pytorch_grad_cam")
    assert issubclass(cls, pgc.base_cam.BaseCAM) and cls.expression == resolve_method(expression)[1]
    got = run_exported(cls, net, [net.top])
    ours = CAM(net, "top", expression)(images(), TARGETS).numpy()
    assert float(ours.max()) > 0.99
    np.testing.assert_allclose(got, ours, atol=1e-5, rtol=0)


def test_exported_gradcam_is_pytorch_grad_cams_gradcam(net: Net) -> None:
    ref = run_exported(pgc.GradCAM, net, [net.top])
    np.testing.assert_allclose(run_exported(export("mean(G)"), net, [net.top]), ref, atol=1e-5, rtol=0)


def test_exported_class_with_several_layers_and_a_transformer(net: Net) -> None:
    cls = export("relu(G)")
    got = run_exported(cls, net, [net.mid, net.top])
    ours = CAM(net, method="relu(G)", layers=["mid", "top"])(images(), TARGETS).numpy()
    np.testing.assert_allclose(got, ours, atol=1e-5, rtol=0)
    timm = pytest.importorskip("timm")
    torch.manual_seed(0)
    vit = timm.create_model("vit_tiny_patch16_224", pretrained=False, img_size=32, patch_size=8, depth=1,
                            embed_dim=32, num_heads=2, num_classes=5).eval()
    preset = sycam.transforms.reshape_preset("vit", vit)
    got = run_exported(cls, vit, [vit.blocks[-1].norm1], preset)
    ours = CAM(vit, "blocks[-1].norm1", "relu(G)", reshape_transform=preset)(images(), TARGETS).numpy()
    np.testing.assert_allclose(got, ours, atol=1e-5, rtol=0)


def test_what_does_not_export() -> None:
    with pytest.raises(ExportError, match=r"^cannot export 'scorecam' to pytorch_grad_cam: it uses S; BaseCAM gives "
                                          r"a CAM only activations and gradients \(A, G\), so Score-CAM and "
                                          r"Ablation-CAM forms do not export$"):
        export("scorecam")
    with pytest.raises(ExportError, match=r"^cannot export 'mean\(G\) \* D' to pytorch_grad_cam: it uses D;"):
        export("mean(G) * D")
    with pytest.raises(ExportError, match=r"^unknown export format 'captum'; valid: pytorch_grad_cam$"):
        export("gradcam", "captum")


def test_missing_optional_libraries_are_one_line_errors(monkeypatch, net: Net) -> None:
    monkeypatch.setitem(sys.modules, "pytorch_grad_cam.base_cam", None)  # import fails as if not installed
    with pytest.raises(ExportError, match=r"^pytorch_grad_cam.base_cam is not installed: pip install grad-cam$"):
        export("gradcam")


# --------------------------------------------------------------------------------------------------
# Quantus
# --------------------------------------------------------------------------------------------------


def test_quantus_explain_is_sycams_cam(net: Net) -> None:
    x, y = images().numpy(), np.array(TARGETS)
    a = quantus_explain(net, x, y, method="mean(G) * relu(A)", target_layer="top")
    assert a.shape == (2, 1, 32, 32) and a.dtype == np.float32
    np.testing.assert_array_equal(a[:, 0], CAM(net, "top", "mean(G) * relu(A)")(images(), TARGETS).numpy())


def test_quantus_scores_a_sycam_cam(net: Net) -> None:
    quantus = pytest.importorskip("quantus")
    x, y = images().numpy(), np.array(TARGETS)
    kwargs = {"method": "layercam", "target_layer": "top"}
    sparse = quantus.Sparseness(disable_warnings=True, display_progressbar=False)
    through = sparse(model=net, x_batch=x, y_batch=y, a_batch=None, explain_func=quantus_explain,
                     explain_func_kwargs=kwargs, device="cpu")
    given = sparse(model=net, x_batch=x, y_batch=y, a_batch=quantus_explain(net, x, y, **kwargs),
                   explain_func=quantus_explain, explain_func_kwargs=kwargs, device="cpu")
    assert len(through) == 2 and np.allclose(through, given) and all(0 < s < 1 for s in through)
    robust = quantus.MaxSensitivity(nr_samples=2, lower_bound=0.05, disable_warnings=True, display_progressbar=False)
    scores = robust(model=net, x_batch=x, y_batch=y, a_batch=None, explain_func=quantus_explain,
                    explain_func_kwargs=kwargs, device="cpu")
    assert len(scores) == 2 and all(np.isfinite(s) and s >= 0 for s in scores)
