"""The API validates what it is given (CAM / explain inputs, layer paths, expressions) with one-line
SycamErrors, never returns NaN maps, and holds memory flat over repeated calls and searches."""

from __future__ import annotations

import gc
import os

import pytest
import torch
from engine_helpers import tiny_net, tiny_samples

from sycam.errors import SycamError
from sycam.heatmap import CAM, InputError, explain


@pytest.fixture(scope="module")
def net():
    return tiny_net()


@pytest.mark.parametrize(
    ("images", "message"),
    [
        (torch.zeros(2, 3, 16, 16, dtype=torch.uint8), "images have dtype uint8: CAM takes float model inputs"),
        (torch.zeros(2, 3, 16, 16, dtype=torch.int64), "images have dtype int64"),
        (torch.zeros(16, 16, 3), "got shape (16, 16, 3) (one image, channels last?"),
        (torch.zeros(2, 16, 16, 3), "got shape (2, 16, 16, 3) (channels last? use images.permute(0, 3, 1, 2))"),
        (torch.zeros(2, 1, 16, 16), "images must be a (N, C, H, W) tensor with C = 3, got shape (2, 1, 16, 16)"),
        (torch.zeros(3, 16, 16), "got shape (3, 16, 16) (one image? use images[None])"),
        (torch.zeros(0, 3, 16, 16), "images must not be empty"),
        (torch.full((1, 3, 16, 16), float("nan")), "images hold 768 NaN or infinite value(s) of 768"),
        (torch.full((1, 3, 16, 16), float("inf")), "NaN or infinite value(s)"),
        ([[0.0]], "images must be a torch.Tensor of shape (N, 3, H, W), got list"),
        (torch.zeros(1, 3, 1, 1), "the model cannot run on images of shape (1, 3, 1, 1)"),
    ],
)
def test_cam_refuses_bad_images_in_one_line(net, images, message) -> None:
    for call in (lambda: CAM(net, "body", "gradcam")(images), lambda: explain(net, images, ["gradcam"],
                                                                               target_layer="body")):
        with pytest.raises(InputError) as info:
            call()
        assert message in str(info.value) and "\n" not in str(info.value)
        assert isinstance(info.value, SycamError) and isinstance(info.value, ValueError)


@pytest.mark.parametrize("size", [2, 4, 8])
@pytest.mark.parametrize("method", ["gradcam", "gradcam++", "scorecam", "ablationcam", "mean(G) * relu(D)"])
def test_tiny_inputs_give_finite_maps_in_unit_range(net, size, method) -> None:
    """8×8 (and smaller) inputs: a 1×1 or 2×2 target layer; the map is finite, in [0, 1], all zeros when constant."""
    maps = CAM(net, "body", method)(torch.randn(2, 3, size, size), targets=[0, 1])
    assert maps.shape == (2, size, size) and bool(torch.isfinite(maps).all())
    assert float(maps.min()) >= 0 and float(maps.max()) <= 1 + 1e-6
    if size == 2:  # the target layer is 1×1: every map is constant, hence all zeros (documented)
        assert float(maps.abs().max()) == 0.0


def test_other_float_dtypes_are_cast_to_the_model_dtype(net) -> None:
    x = torch.randn(2, 3, 16, 16)
    a = CAM(net, "body", "gradcam")(x.double(), targets=[0, 1])
    b = CAM(net, "body", "gradcam")(x, targets=[0, 1])
    assert a.dtype == torch.float32 and torch.allclose(a, b, atol=1e-5)


def test_overflowing_expression_is_an_error_not_nan(net) -> None:
    huge = "cube(cube(cube(sum(G) * 1e+15)))"
    with pytest.raises(InputError, match="is not finite"):
        CAM(net, "body", huge)(torch.randn(2, 3, 16, 16), targets=[0, 1])


@pytest.mark.parametrize(
    ("layer", "message"),
    [
        ("blocks[[", "malformed layer path 'blocks[['"),
        ("body[0", "malformed layer path 'body[0'"),
        ("body..0", "malformed layer path 'body..0'"),
        ("nope", "unknown layer 'nope'"),
        ("body[7]", "index 7 out of range"),
    ],
)
def test_layer_paths(net, layer, message) -> None:
    with pytest.raises(SycamError, match=message.replace("[", r"\[").replace(".", r"\.")):
        CAM(net, layer, "gradcam")(torch.randn(1, 3, 16, 16))


@pytest.mark.parametrize(
    ("method", "message"),
    [
        ("", "empty method"),
        ("   ", "empty method"),
        ("relu(" * 300 + "G" + ")" * 300, "nested too deeply (more than 64 levels)"),
        ("+".join(["G"] * 500), "too deep (more than 64 levels of operators)"),
        ("-" * 500 + "G", "nested too deeply"),
        ("G" * 5000, "too long (5000 characters; the limit is 4000)"),
        ("mean(G", "expected ')'"),
        ("mean(S)", "type error: mean expects a map"),
    ],
)
def test_bad_expressions_are_one_line_errors(net, method, message) -> None:
    with pytest.raises(SycamError) as info:
        CAM(net, "body", method)
    assert message in info.value.one_line()  # type: ignore[attr-defined]
    assert "\n" not in info.value.one_line()  # type: ignore[attr-defined]


# ------------------------------------------------------------------------------------------------ memory


def _rss_mb() -> float:
    """Resident set size of this process, from /proc/self/statm (no psutil needed)."""
    with open("/proc/self/statm") as f:
        resident_pages = int(f.read().split()[1])
    return resident_pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def _hooks(module: torch.nn.Module) -> int:
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) + len(m._backward_hooks)
               + len(getattr(m, "_full_backward_hooks", None) or ()) for m in module.modules())


@pytest.mark.skipif(not os.path.exists("/proc/self/statm"), reason="needs Linux /proc")
def test_repeated_cam_calls_hold_memory_flat() -> None:
    """Sensitivity: keeping each call's terminal cache alive grows RSS by about 1.2 MiB per pair of calls here,
    30 MiB over this loop, so a leak of caches, hooks or graphs fails the 15 MiB bound."""
    net = tiny_net()
    images = torch.randn(4, 3, 64, 64)
    cams = [CAM(net, "body", "gradcam++"), CAM(net, "body", "mean(G) * relu(D) + S")]
    for _ in range(4):  # warm up allocator pools
        for cam in cams:
            cam(images)
    gc.collect()
    before = _rss_mb()
    for _ in range(25):
        for cam in cams:
            cam(images)
    gc.collect()
    grown = _rss_mb() - before
    assert _hooks(net) == 0, "hooks left on the model"
    assert not any(p.grad is not None for p in net.parameters()), "gradients accumulate in the model"
    assert grown < 15, f"RSS grew by {grown:.1f} MiB over 50 CAM calls"


@pytest.mark.skipif(not os.path.exists("/proc/self/statm"), reason="needs Linux /proc")
def test_repeated_small_searches_hold_memory_flat() -> None:
    from sycam.metrics import get_metric
    from sycam.synth import Grammar, SynthesisConfig, synthesize

    net = tiny_net()
    samples = tiny_samples(6)
    metric = get_metric("energy_pointing_game")
    config = SynthesisConfig(grammar=Grammar(terminals=("A", "G"), max_size=3), max_candidates=20,
                             baselines=("gradcam",))

    def search() -> None:
        synthesize(net, "body", samples, None, metric, config=config)

    for _ in range(3):
        search()
    gc.collect()
    before = _rss_mb()
    for _ in range(12):
        search()
    gc.collect()
    grown = _rss_mb() - before
    assert _hooks(net) == 0
    assert grown < 25, f"RSS grew by {grown:.1f} MiB over 12 searches"
