"""Vision transformers and several target layers: reshape_transform for every terminal, the layer-output check,
timm defaults, multi-layer fusion — parity with pytorch-grad-cam (≤ 1e-4) on seeded tiny timm ViT and Swin."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

timm = pytest.importorskip("timm")
pgc = pytest.importorskip("pytorch_grad_cam")
from pytorch_grad_cam.ablation_layer import AblationLayerVit  # noqa: E402
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget  # noqa: E402

from sycam.heatmap import CAM, InputError, explain, fuse_layers  # noqa: E402
from sycam.methods import METHODS  # noqa: E402
from sycam.models import ModelError, transformer_layer  # noqa: E402
from sycam.terminals import ExtractOptions, TerminalCache  # noqa: E402
from sycam.transforms import ChannelsLastToMap, RawAblation, ReshapeError, TokensToMap, reshape_preset  # noqa: E402

REFERENCE = {
    "gradcam": pgc.GradCAM, "gradcam++": pgc.GradCAMPlusPlus, "xgradcam": pgc.XGradCAM, "scorecam": pgc.ScoreCAM,
    "ablationcam": pgc.AblationCAM, "hirescam": pgc.HiResCAM, "layercam": pgc.LayerCAM, "eigencam": pgc.EigenCAM,
    "eigengradcam": pgc.EigenGradCAM,
}
TARGETS = [3, 7]


def tiny_vit() -> nn.Module:
    torch.manual_seed(0)
    return timm.create_model("vit_tiny_patch16_224", pretrained=False, img_size=32, patch_size=8, depth=2,
                             embed_dim=32, num_heads=2, num_classes=10).eval()


def tiny_swin() -> nn.Module:
    torch.manual_seed(0)
    return timm.create_model("swin_tiny_patch4_window7_224", pretrained=False, img_size=32, window_size=4,
                             embed_dim=16, depths=(1, 1), num_heads=(1, 2), num_classes=10).eval()


def vit_reshape(tensor: torch.Tensor, height: int = 4, width: int = 4) -> torch.Tensor:
    """pytorch-grad-cam's ViT example transform (class token dropped, 4×4 patches)."""
    result = tensor[:, 1:, :].reshape(tensor.size(0), height, width, tensor.size(2))
    return result.transpose(2, 3).transpose(1, 2)


def swin_reshape(tensor: torch.Tensor) -> torch.Tensor:
    """timm ≥ 0.9 Swin blocks are channels-last (N, h, w, C)."""
    return tensor.permute(0, 3, 1, 2)


def images(n: int = 2) -> torch.Tensor:
    return torch.randn(n, 3, 32, 32, generator=torch.Generator().manual_seed(1))


def reference(method: str, model: nn.Module, layers: list[nn.Module], reshape, x: torch.Tensor) -> np.ndarray:
    extra = {"ablation_layer": AblationLayerVit()} if method == "ablationcam" else {}
    with REFERENCE[method](model=model, target_layers=layers, reshape_transform=reshape, **extra) as cam:
        cam.batch_size = 64
        return cam(input_tensor=x, targets=[ClassifierOutputTarget(c) for c in TARGETS])


@pytest.fixture(scope="module", params=["vit", "swin"])
def setup(request: pytest.FixtureRequest):
    model = tiny_vit() if request.param == "vit" else tiny_swin()
    layer_name, preset = transformer_layer(model)
    ours = explain(model, images(), list(METHODS), targets=TARGETS, target_layer=layer_name,
                   reshape_transform=preset)
    return request.param, model, layer_name, ours


def test_reference_covers_every_method() -> None:
    assert set(REFERENCE) == set(METHODS)


@pytest.mark.parametrize("method", list(REFERENCE))
def test_transformer_parity_with_pytorch_grad_cam(setup, method: str) -> None:
    kind, model, layer_name, ours = setup
    layer = model.get_submodule(layer_name)
    ref = reference(method, model, [layer], vit_reshape if kind == "vit" else swin_reshape, images())
    assert float(ref.max()) > 0.99
    np.testing.assert_allclose(ours[method].numpy(), ref, atol=1e-4, rtol=0)


def test_timm_defaults_are_the_last_blocks_first_norm() -> None:
    assert transformer_layer(tiny_vit()) == ("blocks.1.norm1", TokensToMap(1, (4, 4)))
    assert transformer_layer(tiny_swin()) == ("layers.1.blocks.0.norm1", ChannelsLastToMap())
    torch.manual_seed(0)
    deit = timm.create_model("deit_tiny_distilled_patch16_224", pretrained=False, img_size=32, patch_size=8,
                             depth=1, embed_dim=32, num_heads=2, num_classes=10)
    assert transformer_layer(deit) == ("blocks.0.norm1", TokensToMap(2, (4, 4)))
    assert transformer_layer(nn.Sequential(nn.Conv2d(3, 4, 3))) == (None, None)


def test_presets() -> None:
    tokens = torch.arange(2 * 17 * 3, dtype=torch.float32).view(2, 17, 3)
    torch.testing.assert_close(TokensToMap()(tokens), vit_reshape(tokens, 4, 4))
    assert TokensToMap()(torch.zeros(1, 198, 8)).shape == (1, 8, 14, 14)  # DeiT distilled: 2 prefix tokens
    assert ChannelsLastToMap()(torch.zeros(1, 16, 5)).shape == (1, 5, 4, 4)
    with pytest.raises(ReshapeError, match=r"^reshape 'vit' expects tokens \(N, tokens, dim\), got \(1, 2, 3, 4\)$"):
        TokensToMap()(torch.zeros(1, 2, 3, 4))
    with pytest.raises(ReshapeError, match=r"^unknown reshape 'deit'; valid: vit, swin \(or a callable\)$"):
        reshape_preset("deit")


def test_four_d_and_channels_last_outputs_without_a_transform_are_refused() -> None:
    """The shapes of the issue, at 224×224: timm's ViT attention (N, heads, tokens, dim) and Swin's channels-last
    (N, 7, 7, 768) are refused in one line, never read as K×h×w (one block per stage keeps the models small)."""
    torch.manual_seed(0)
    vit = timm.create_model("vit_tiny_patch16_224", pretrained=False, depth=1, num_classes=10).eval()
    swin = timm.create_model("swin_tiny_patch4_window7_224", pretrained=False, depths=(1, 1, 1, 1),
                             num_classes=10).eval()
    x = torch.randn(1, 3, 224, 224)
    hint = (r"; channels-last or attention output\? pass reshape_transform= \('swin' for channels-last\) or pick "
            r"another layer$")
    def refused(shape: str, grid: str) -> str:
        return (rf"^the target layer's output \({shape}\) \(without a reshape_transform\) is not a \(N, K, h, w\) "
                rf"map of 224x224 inputs: its grid {grid} does not follow the image" + hint)

    with pytest.raises(ModelError, match=refused("1, 3, 197, 64", "197x64")):
        CAM(vit, "blocks[-1].attn.k_norm", "gradcam")(x)
    with pytest.raises(ModelError, match=refused("1, 7, 7, 768", "7x768")):
        CAM(swin, "layers[-1].blocks[-1].norm1", "gradcam")(x)
    with pytest.raises(ModelError, match=r"^the target layer must output a \(N, K, h, w\) tensor \(without a "
                                         r"reshape_transform\), got \(1, 197, 192\); tokens\? pass "
                                         r"reshape_transform='vit' \(ViT/DeiT\) or 'swin'$"):
        CAM(vit, "blocks[-1].norm1", "gradcam")(x)
    with pytest.raises(ModelError, match=r"\(1, 7, 7, 768\) after reshape_transform is not a \(N, K, h, w\) map"):
        CAM(swin, "layers[-1].blocks[-1].norm1", "gradcam", reshape_transform=lambda t: t)(x)
    maps = CAM(swin, "layers[-1].blocks[-1].norm1", "gradcam", reshape_transform="swin")(x)
    assert maps.shape == (1, 224, 224)


def test_load_model_vit_defaults_to_a_map() -> None:
    from sycam.models import load_model

    model = load_model("vit_tiny_patch16_224", weights=None)
    assert model.layer == "blocks.11.norm1" and model.reshape_transform == TokensToMap(1, (14, 14))
    assert load_model("test_vit", weights=None, reshape_transform="swin").reshape_transform == ChannelsLastToMap()
    maps = CAM(model, method="gradcam")(torch.randn(1, 3, 224, 224), [1])
    assert maps.shape == (1, 224, 224) and float(maps.max()) > 0.99


def test_ablation_needs_a_selecting_transform() -> None:
    raw = torch.randn(1, 17, 4)
    with pytest.raises(ReshapeError, match=r"^Ablation-CAM \(D\) needs a reshape_transform that only selects"):
        RawAblation(lambda t: vit_reshape(t) * 2, raw)
    where = RawAblation(vit_reshape, raw)  # the feature axis: every token of channel k, the class token too
    assert where.axis == 2 and where.coords.tolist() == [0, 1, 2, 3]
    copy = raw.repeat(2, 1, 1)
    where.apply(copy, torch.tensor([1, 3]), torch.tensor([-5.0, -6.0]))
    assert bool((copy[0, :, 1] == -5).all()) and bool((copy[1, :, 3] == -6).all())
    assert torch.equal(copy[0, :, [0, 2, 3]], raw[0, :, [0, 2, 3]])


def test_loaded_model_brings_its_transform(monkeypatch) -> None:
    from sycam.models import LoadedModel

    vit = tiny_vit()
    layer, preset = transformer_layer(vit)
    loaded = LoadedModel("vit", vit, layer, None, [], "random", preset)  # type: ignore[arg-type]
    torch.testing.assert_close(CAM(loaded, method="gradcam")(images(), TARGETS),
                               CAM(vit, layer, "gradcam", reshape_transform=vit_reshape)(images(), TARGETS))


# --------------------------------------------------------------------------------------------------
# Several target layers
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["gradcam", "layercam", "scorecam"])
def test_several_layers_match_pytorch_grad_cam(method: str) -> None:
    vit = tiny_vit()
    names = ["blocks.0.norm1", "blocks.1.norm1"]
    got = CAM(vit, method=method, layers=names, reshape_transform="vit")(images(), TARGETS)
    ref = reference(method, vit, [vit.get_submodule(n) for n in names], vit_reshape, images())
    assert float(ref.max()) > 0.99
    np.testing.assert_allclose(got.numpy(), ref, atol=1e-4, rtol=0)
    single = CAM(vit, names[1], method, reshape_transform="vit")(images(), TARGETS)
    assert float((got - single).abs().max()) > 1e-3  # the first layer changes the map


def test_fusion_rule_by_hand() -> None:
    a = torch.tensor([[[0.0, 1.0], [0.5, 0.0]]])
    b = torch.tensor([[[1.0, 0.0], [0.0, 0.0]]])
    torch.testing.assert_close(fuse_layers([a, b], (2, 2)), torch.tensor([[[0.5, 0.5], [0.25, 0.0]]]) / (0.5 + 1e-7))
    with pytest.raises(InputError, match=r"^layers must be a non-empty list of target layers"):
        CAM(tiny_vit(), method="gradcam", layers=[])
    with pytest.raises(InputError, match=r"^give target_layer or layers=\[\.\.\.\], not both$"):
        CAM(tiny_vit(), "blocks.0.norm1", "gradcam", layers=["blocks.1.norm1"])


def test_options_reshape_reaches_every_terminal() -> None:
    swin = tiny_swin()
    options = ExtractOptions(reshape=ChannelsLastToMap())
    cache = TerminalCache(swin, "layers.1.blocks.0.norm1", images(), TARGETS, options)
    values = cache.get(["A", "G", "S", "D"])
    assert values["A"].shape == values["G"].shape == (2, 32, 4, 4)
    assert values["S"].shape == values["D"].shape == (2, 32)


# --------------------------------------------------------------------------------------------------
# The CLI: --reshape and --layer repeated
# --------------------------------------------------------------------------------------------------


def _photo(tmp_path) -> str:
    from PIL import Image

    path = tmp_path / "photo.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (48, 48, 3), dtype=np.uint8)).save(path)
    return str(path)


def test_cli_explain_vit_with_its_preset_and_several_layers(tmp_path) -> None:
    import json

    from sycam.cli import main

    # timm's 0.4M-parameter test ViT (160×160)
    base = ["explain", "--model", "test_vit", "--random-weights", "--method", "gradcam",
            _photo(tmp_path)]
    assert main([*base, "--out", str(tmp_path / "a"), "--quiet"]) == 0
    assert main([*base, "--out", str(tmp_path / "b"), "--quiet", "--reshape", "vit",
                 "--layer", "blocks[-2].norm1", "--layer", "blocks[-1].norm1"]) == 0
    a = json.loads((tmp_path / "a" / "explain.json").read_text())
    b = json.loads((tmp_path / "b" / "explain.json").read_text())
    assert a["model"]["layer"] == "blocks.5.norm1" and a["model"]["reshape"] is None
    assert b["model"]["layers"] == ["blocks.4.norm1", "blocks.5.norm1"] and b["model"]["reshape"] == "vit"
    one = np.load(tmp_path / "a" / a["images"][0]["files"]["gradcam"]["map"])
    two = np.load(tmp_path / "b" / b["images"][0]["files"]["gradcam"]["map"])
    assert one.max() > 0.99 and two.max() > 0.99 and np.abs(one - two).max() > 1e-3


def test_cli_several_layers_only_in_explain(tmp_path, capsys) -> None:
    from sycam.cli import main

    code = main(["evaluate", "--data", "demo", "--random-weights", "--methods", "gradcam", "--metrics", "iou",
                 "--layer", "bn2", "--layer", "conv_head", "--out", str(tmp_path / "e")])
    assert code == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == ("sycam: error: several --layer are fused by sycam "
                                                                "explain only; evaluate and synthesize take one "
                                                                "target layer")


def test_synthesize_and_evaluate_on_a_vit_through_the_options() -> None:
    """The search and the evaluation read a transformer through ExtractOptions(reshape=...), every terminal."""
    from sycam.data.samples import Samples
    from sycam.expr import parse
    from sycam.metrics import get_metric
    from sycam.synth import Grammar, SynthesisConfig, synthesize
    from sycam.workspace import evaluate_methods

    vit = tiny_vit()
    x = images(4)
    masks = torch.zeros(4, 32, 32, dtype=torch.bool)
    masks[:, 8:24, 8:24] = True
    samples = Samples(x, torch.tensor([1, 2, 3, 4]), masks, None, tuple(f"i{i}" for i in range(4)),
                      mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))
    options = ExtractOptions(reshape=TokensToMap())
    metric = get_metric("energy_pointing_game")
    ev = evaluate_methods(vit, "blocks.1.norm1", samples, {"gradcam": parse("mean(G)")}, {"epg": metric}, options)
    want = CAM(vit, "blocks.1.norm1", "gradcam", reshape_transform="vit")(x, [1, 2, 3, 4])
    by_hand = ((want * masks).sum((1, 2)) / want.sum((1, 2))).mean()  # share of the map's energy in the mask
    assert ev["gradcam"]["epg"] == pytest.approx(float(by_hand), abs=1e-6)
    config = SynthesisConfig(grammar=Grammar(terminals=("A", "G", "S", "D"), max_size=2), max_candidates=8,
                             baselines=("gradcam",))
    result = synthesize(vit, "blocks.1.norm1", samples.subset(range(3)), samples.subset([3]), metric, config=config,
                        options=options)
    assert result.settings["extraction"]["reshape"] == "TokensToMap(prefix_tokens=None, grid=None)"
    assert np.isfinite(result.best.synthesis_score)
