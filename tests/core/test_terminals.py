"""Terminal extraction: values, hooks, model state, the tail-only ablation and the Score-CAM cap."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from sycam.heatmap import CAM, explain, finish, normalize
from sycam.models import ModelError
from sycam.terminals import ExtractOptions, TailSplit, TerminalCache, ablation_drops


class SkipNet(nn.Module):
    """A tiny CNN whose head reads a tensor from before the target layer (a skip across it)."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 6, 3, padding=1), nn.ReLU())
        self.body = nn.Sequential(nn.Conv2d(6, 8, 3, stride=2, padding=1), nn.ReLU())
        self.skip = nn.Conv2d(6, 8, 1, stride=2)
        self.fc = nn.Linear(8, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = self.stem(x)
        a = self.body(s)
        y = a + self.skip(s)
        return self.fc(y.mean((2, 3)))


@pytest.fixture
def net() -> SkipNet:
    torch.manual_seed(0)
    return SkipNet().eval()


def images(n: int = 3, size: int = 16) -> torch.Tensor:
    return torch.randn(n, 3, size, size, generator=torch.Generator().manual_seed(2))


def test_gradients_match_autograd(net: SkipNet) -> None:
    x = images()
    cache = TerminalCache(net, "body", x, [0, 1, 4])
    a, g = cache.get(["A", "G"]).values()
    a_ref = net.body(net.stem(x)).detach().requires_grad_(True)
    logits = net.fc((a_ref + net.skip(net.stem(x))).mean((2, 3)))
    (g_ref,) = torch.autograd.grad(logits[torch.arange(3), torch.tensor([0, 1, 4])].sum(), a_ref)
    torch.testing.assert_close(a, a_ref.detach())
    torch.testing.assert_close(g, g_ref)


def test_hooks_removed_mode_restored_and_grads_untouched(net: SkipNet) -> None:
    net.train()
    with torch.no_grad():  # the caller's no_grad must not break gradient terminals
        TerminalCache(net, "body", images(), None).get(["A", "G", "S", "D"])
    assert net.training
    for module in net.modules():
        assert not module._forward_hooks and not module._backward_hooks
    assert all(p.grad is None for p in net.parameters())


def test_state_restored_on_error(net: SkipNet) -> None:
    net.train()
    with pytest.raises(ValueError, match="target class 9 is outside the model's 5 outputs"):
        TerminalCache(net, "body", images(), 9).get(["A", "G"])
    assert net.training and not net.body._forward_hooks


def test_frozen_parameters_still_give_gradients(net: SkipNet) -> None:
    for p in net.parameters():
        p.requires_grad_(False)
    g = TerminalCache(net, "body", images(), 1).get(["G"])["G"]
    assert g.abs().sum() > 0
    assert not any(p.requires_grad for p in net.parameters())


def test_ablation_drops_by_hand(net: SkipNet) -> None:
    x = images(2)
    cache = TerminalCache(net, "body", x, [2, 3])
    d = cache.get(["D"])["D"]
    a = cache.get(["A"])["A"]
    s = net.stem(x)
    base = cache.target_scores
    for n in range(2):
        for k in range(8):
            abl = a[n : n + 1].clone()
            abl[0, k] = 0.0  # ReLU output: min is 0, so the ablation value is 0
            y = net.fc((abl + net.skip(s[n : n + 1])).mean((2, 3)))[0, [2, 3][n]]
            assert d[n, k].item() == pytest.approx(((base[n] - y) / base[n]).item(), rel=1e-4, abs=1e-6)


def test_tail_split_reads_the_skip_and_equals_full_reruns(net: SkipNet) -> None:
    split = TailSplit.build(net, "body")
    assert split.n_cut == 2  # the target output and the stem output used by the skip
    x = images(2)
    cache = TerminalCache(net, "body", x, [2, 3])
    a = cache.get(["A"])["A"]
    args = (net, cache.layer, cache.images, a, cache.target_scores, cache.targets)
    torch.testing.assert_close(ablation_drops(*args, split=split), ablation_drops(*args, split=None))


def test_score_cam_top_k_cap(net: SkipNet) -> None:
    x = images(2)
    full = TerminalCache(net, "body", x, [0, 1]).get(["S", "A"])
    capped = TerminalCache(net, "body", x, [0, 1], ExtractOptions(score_top_k=3)).get(["S"])["S"]
    top = full["A"].mean((2, 3)).topk(3, dim=1).indices
    torch.testing.assert_close(capped.gather(1, top), full["S"].gather(1, top))
    with torch.no_grad():
        empty = net(torch.zeros_like(x))[[0, 1], [0, 1]]
    others = torch.ones_like(capped, dtype=torch.bool).scatter_(1, top, False)
    for n in range(2):
        torch.testing.assert_close(capped[n][others[n]], empty[n].expand(5))


def test_callable_targets_equal_index_targets(net: SkipNet) -> None:
    x = images(2)
    by_index = explain(net, x, ["gradcam", "scorecam"], targets=[1, 3], target_layer="body")
    by_fn = explain(net, x, ["gradcam", "scorecam"], targets=[lambda o: o[1], lambda o: o[3]], target_layer="body")
    for k in by_index:
        torch.testing.assert_close(by_index[k], by_fn[k])


def test_predicted_class_is_the_default_target(net: SkipNet) -> None:
    x = images(2)
    pred = net(x).argmax(1).tolist()
    torch.testing.assert_close(CAM(net, "body", "gradcam")(x), CAM(net, "body", "gradcam")(x, pred))


def test_bad_inputs_give_clear_errors(net: SkipNet) -> None:
    with pytest.raises(ModelError, match="has no child 'nope'"):
        CAM(net, "nope", "gradcam")(images())
    with pytest.raises(ValueError, match="unknown method 'gradcm'"):
        CAM(net, "body", "gradcm")
    with pytest.raises(ValueError, match=r"images must be a \(N, C, H, W\) tensor"):
        CAM(net, "body", "gradcam")(torch.zeros(3, 16, 16))
    with pytest.raises(ValueError, match="got 2 targets for 3 images"):
        CAM(net, "body", "gradcam")(images(), [1, 2])
    with pytest.raises(ModelError, match="must output a"):
        CAM(net, "fc", "gradcam")(images())


def test_heatmap_post_processing() -> None:
    raw = torch.tensor([[[[-1.0, 1.0], [3.0, 1.0]]]])
    out = finish(raw[0], (4, 4))
    assert out.shape == (1, 4, 4)
    assert out.min() == 0 and out.max() == pytest.approx(1.0, abs=1e-6)
    constant = finish(torch.full((2, 3, 3), 5.0), (6, 6))
    assert torch.equal(constant, torch.zeros(2, 6, 6))  # a constant map is zeros, not NaN
    assert torch.isfinite(normalize(torch.zeros(1, 2, 2))).all()


def test_layer_paths(net: SkipNet) -> None:
    from sycam.models import resolve_layer

    assert resolve_layer(net, "stem[0]")[0] == "stem.0"
    assert resolve_layer(net, "stem.-1")[0] == "stem.1"
    assert resolve_layer(net, net.body)[0] == "body"
    with pytest.raises(ModelError, match="index 5 out of range"):
        resolve_layer(net, "stem[5]")


# -- inference-optimized forwards, progress ---------------------------------------------------------------


@pytest.mark.parametrize(("name", "layer", "size"), [
    ("resnet50", "layer3", 64),  # tail: layer4 (convs + BatchNorm) and fc
    ("vgg16", "features.23", 64),  # tail: the last conv block and the classifier
    ("efficientnet_lite0", "blocks.5", 96),  # tail: the last block, conv_head + bn2, classifier
])
def test_optimized_tails_equal_the_plain_tails(name: str, layer: str, size: int) -> None:
    """The folded, frozen copy of a seeded network's tail agrees with the plain tail within 1e-5 of the
    output's scale (or is refused, and the plain tail runs)."""
    from sycam.models import load_model
    from sycam.terminals import OPTIMIZE_TOLERANCE, inference_forward

    model = load_model(name, weights=None, seed=0).module.eval()
    split = TailSplit.build(model, layer)
    x = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        cut = split.head(x)
        want = split.tail(*cut)
    fast = inference_forward(split.tail, tuple(cut))
    if name != "vgg16":  # VGG's adaptive pooling of a small map is not supported by oneDNN: refused
        assert fast is not None
    if fast is not None:  # also on inputs other than the one it was checked on
        other = tuple(c * (1 + torch.rand(c.shape, generator=torch.Generator().manual_seed(1))) for c in cut)
        with torch.no_grad():
            for args, ref in ((cut, want), (other, split.tail(*other))):
                assert float((fast(*args) - ref).abs().max()) <= OPTIMIZE_TOLERANCE * float(ref.abs().max())


def test_optimized_score_cam_and_ablation_equal_plain(net: SkipNet, monkeypatch: pytest.MonkeyPatch) -> None:
    import sycam.terminals as terminals

    monkeypatch.setattr(terminals, "OPTIMIZE_MIN_FORWARDS", 0)
    x = images(2)
    plain = TerminalCache(net, "body", x, [0, 1], ExtractOptions(optimize=False)).get(["S", "D"])
    fast = TerminalCache(net, "body", x, [0, 1], ExtractOptions(optimize=True)).get(["S", "D"])
    for k in ("S", "D"):
        assert float((fast[k] - plain[k]).abs().max()) <= 1e-5 * float(plain[k].abs().max()), k


def test_inference_forward_refuses_what_it_cannot_check(net: SkipNet) -> None:
    from sycam.terminals import inference_forward

    net.train()
    assert inference_forward(net, (images(),)) is None  # training mode: BatchNorm would not fold
    net.eval()

    class Broken(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            raise RuntimeError("no")

    assert inference_forward(Broken(), (images(),)) is None


def test_score_cam_announces_its_cost_and_shows_progress(net: SkipNet) -> None:
    import io

    from sycam import _progress

    stream = io.StringIO()
    _progress.configure(True, stream)
    try:
        TerminalCache(net, "body", images(2), [0, 1]).get(["S", "D"])
    finally:
        _progress.configure(False)
    text = stream.getvalue()
    assert "Score-CAM terminal S: " in text and "forwards" in text
    assert "Score-CAM S: " in text and "Ablation-CAM D: " in text


# -- targets: class indices are 64-bit integers, never bools or fractions (issue 22 §8) -----------------------


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(-(2**80), 2**80) | st.booleans() | st.floats(allow_nan=True) | st.just("3"),
                min_size=2, max_size=2))
def test_targets_take_int64_class_indices_and_refuse_the_rest_in_one_line(items: list) -> None:
    from sycam.errors import SycamError
    from sycam.targets import TargetError, Targets

    good = all(isinstance(t, int) and not isinstance(t, bool) and -(2**63) <= t < 2**63 for t in items)
    try:
        resolved = Targets.resolve(items, 2)
    except TargetError as exc:
        assert not good and isinstance(exc, SycamError) and "\n" not in str(exc)
        assert str(exc).startswith("targets[")
        return
    assert good and resolved.classes.tolist() == items


def test_target_spellings_that_were_silently_wrong() -> None:
    from sycam.targets import TargetError, Targets

    with pytest.raises(TargetError, match=r"^targets\[0\]: True is not a class index"):
        Targets.resolve([True, True], 2)  # explained class 1
    with pytest.raises(TargetError, match=r"^targets\[0\]: 1\.5 is not a class index"):
        Targets.resolve([1.5, 0], 2)  # said "not a mix"
    with pytest.raises(TargetError, match=r"^targets: a target tensor must hold integer class indices, got dtype "
                                          r"bool"):
        Targets.resolve(torch.tensor([True, False]), 2)
    with pytest.raises(TargetError, match="not a mix"):
        Targets.resolve([0, lambda row: row[0]], 2)
    with pytest.raises(TargetError, match="got 3 targets for 2 images"):
        Targets.resolve([0, 1, 2], 2)
    assert Targets.resolve(torch.tensor([3]), 2).classes.tolist() == [3, 3]
    assert Targets.resolve(7, 2).classes.tolist() == [7, 7]


@pytest.mark.parametrize("kw", [{"batch_size": 0}, {"batch_size": True}, {"batch_size": 2.5},
                                {"score_top_k": 2**64}, {"ablation_batch": -1}])
def test_extract_options_are_range_checked(kw: dict) -> None:
    from sycam.terminals import OptionsError

    name = next(iter(kw))
    with pytest.raises(OptionsError, match=rf"^ExtractOptions\.{name} must be a positive integer, got "):
        ExtractOptions(**kw)
    assert ExtractOptions(score_top_k=None, plan_images=None).batch_size == 32
