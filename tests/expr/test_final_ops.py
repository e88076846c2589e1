"""Terminals at other layers (A@LAYER, G@LAYER) and the final-map operators (cam, sharpen, thresh, blur, cmul,
cmean), each against values computed by hand; the classic methods render exactly as the plain formula."""

from __future__ import annotations

import math
import re

import pytest
import torch
import torch.nn.functional as F
from engine_helpers import tiny_net, tiny_samples

from sycam.expr import OPS, Kind, kind_of, parse
from sycam.expr.ops import NORM_EPS
from sycam.heatmap import explain, render
from sycam.methods import METHODS
from sycam.targets import Targets
from sycam.terminals import TerminalCache


def t(rows: list[list[float]]) -> torch.Tensor:
    return torch.tensor(rows, dtype=torch.float32)[None]  # one image (1, h, w)


def test_sharpen_squares_then_normalizes() -> None:
    h = t([[0.0, 0.5], [1.0, 0.25]])
    got = OPS["sharpen"].fn(h, torch.tensor(2.0))
    torch.testing.assert_close(got, t([[0.0, 0.25], [1.0, 0.0625]]) / (1 + NORM_EPS))


def test_thresh_keeps_the_top_half() -> None:
    h = t([[0.0, 0.5], [1.0, 0.25]])  # median of {0, .25, .5, 1} (linear interpolation) = 0.375
    got = OPS["thresh"].fn(h, torch.tensor(0.5))
    torch.testing.assert_close(got, t([[0.0, 0.5], [1.0, 0.0]]) / (1 + NORM_EPS))


def test_blur_of_a_point_is_the_gaussian() -> None:
    h = torch.zeros(1, 7, 7)
    h[0, 3, 3] = 1.0
    got = OPS["blur"].fn(h, torch.tensor(1.0))
    g = [math.exp(-(d * d) / 2) for d in range(4)]  # σ = 1, radius 3; normalized so the centre is 1
    want = torch.tensor([[g[abs(i - 3)] * g[abs(j - 3)] for j in range(7)] for i in range(7)])
    want = (want - want.min()) / (want.max() - want.min() + NORM_EPS)
    torch.testing.assert_close(got[0], want, atol=1e-6, rtol=0)


def test_cmul_and_cmean_meet_on_the_finer_grid() -> None:
    coarse = torch.ones(1, 2, 2)  # bilinear with half-pixel centres: a constant stays constant on 4×4
    fine = torch.arange(16.0).reshape(1, 4, 4) / 15
    torch.testing.assert_close(OPS["cmul"].fn(coarse, fine), fine / (1 + NORM_EPS))
    torch.testing.assert_close(OPS["cmean"].fn(fine, coarse), ((fine + 1) / 2 - 0.5) / (0.5 + NORM_EPS))
    # a 1×2 ramp met on a 1×4 grid: half-pixel centres give 0, 0.25, 0.75, 1
    ramp = torch.tensor([[[0.0, 1.0]]])
    torch.testing.assert_close(OPS["cmean"].fn(ramp, torch.zeros(1, 1, 4)), torch.tensor([[[0.0, 0.25, 0.75, 1.0]]])
                               / (1 + NORM_EPS))


def test_cam_lifts_weights_with_the_layers_activations() -> None:
    a = torch.tensor([[[[1.0, 2.0]], [[3.0, -1.0]]]])  # (1, K=2, 1, 2)
    g = torch.tensor([[[[2.0, 2.0]], [[-1.0, -1.0]]]])
    # mean(G) = (2, -1): Σ_k = (2·1 − 3, 2·2 + 1) = (−1, 5) → relu (0, 5) → norm (0, 1)
    got = render(parse("sharpen(mean(G), 1)"), {"A": a, "G": g}, (1, 2))
    torch.testing.assert_close(got, torch.tensor([[[0.0, 1.0]]]), atol=1e-6, rtol=0)
    assert kind_of(parse("cam(mean(G))")) == Kind.HEATMAP


@pytest.mark.parametrize(("text", "message"), [
    ("mean(G@body) * mean(G)", "mixes the channels of layers 'body' and 'the target layer'"),
    ("thresh(mean(G), 2)", "thresh takes q in [0, 1), got 2"),
    ("blur(mean(G), 0)", "blur takes σ > 0, got 0"),
    ("S@body", "S has no @LAYER form"),
    ("cam(G) + 1", "+ expects numbers, channel vectors or maps, got heatmap, scalar"),
    ("mean(cam(G))", "mean expects a map, got heatmap"),
])
def test_type_errors(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        parse(text)


def test_printing_lifts_and_reads_back() -> None:
    node = parse("cmean(relu(G), relu(G@layer3[-1]))")
    assert str(node) == "cmean(cam(relu(G)), cam(relu(G@layer3[-1])))" and parse(str(node)) == node
    assert node.terminals() == {"A", "G", "A@layer3[-1]", "G@layer3[-1]"}


def test_terminals_at_another_layer_equal_that_layers_own_in_one_pass() -> None:
    net, x = tiny_net(), tiny_samples(4).images
    targets = Targets(classes=torch.tensor([0, 1, 2, 3]))
    calls = []
    handle = net.register_forward_hook(lambda *_: calls.append(1))
    try:
        both = TerminalCache(net, "body", x, targets).get(["A", "G", "A@stem", "G@stem"])
    finally:
        handle.remove()
    assert len(calls) == 1  # one forward (and one backward) for both layers
    own = TerminalCache(net, "stem", x, targets).get(["A", "G"])
    assert torch.equal(both["A@stem"], own["A"]) and torch.equal(both["G@stem"], own["G"])
    maps = explain(net, x, ["mean(G@stem)", "mean(G)"], targets=[0, 1, 2, 3], target_layer="body")
    at_stem = explain(net, x, ["mean(G)"], targets=[0, 1, 2, 3], target_layer="stem")["mean(G)"]
    assert torch.equal(maps["mean(G@stem)"], at_stem) and not torch.equal(maps["mean(G@stem)"], maps["mean(G)"])


def test_classic_methods_render_as_the_plain_formula_bit_for_bit() -> None:
    net, x = tiny_net(), tiny_samples(3).images
    cache = TerminalCache(net, "body", x, Targets(classes=torch.tensor([0, 1, 2])))
    values = cache.values(["A", "G", "S", "D", "E", "EG"])
    a = values["A"]

    def norm(m: torch.Tensor) -> torch.Tensor:
        lo = m.flatten(-2).amin(-1)[..., None, None]
        hi = m.flatten(-2).amax(-1)[..., None, None]
        return (m - lo) / (hi - lo + 1e-7)

    from sycam.expr import evaluate
    from sycam.heatmap import channel_sum

    for name, method in METHODS.items():
        w = evaluate(method.node, values)
        if w.dim() == 3:  # EigenCAM, EigenGradCAM: the heatmap itself, then the final resize and normalization
            low = w
        else:
            if w.shape[-1] != 1:
                raw = (w * a).sum(1)
            else:  # the channel sum in the search's fixed-shape products; the einsum of the formula to rounding
                raw = channel_sum(w[None, ..., 0, 0], a)[0]
                torch.testing.assert_close(raw, torch.einsum("nk,nkhw->nhw", w[..., 0, 0], a), rtol=1e-5, atol=1e-6)
            low = norm(torch.relu(raw))
        want = norm(torch.relu(F.interpolate(low[:, None], size=(16, 16), mode="bilinear", align_corners=False)[:, 0]))
        assert torch.equal(render(method.node, values, (16, 16)), want), name
