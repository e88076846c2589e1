"""Layer diagnostics: a constant gradient before a pooling head is found (and said in one sentence); a layer
whose gradient varies gets no sentence; probe_layers lists shapes and whether G varies."""

from __future__ import annotations

import torch
from torch import nn

from sycam.diagnostics import diagnose, diagnose_layer, gradient_constant, probe_layers, proportional
from sycam.targets import Targets
from sycam.terminals import TerminalCache


class PoolHead(nn.Module):
    """conv → relu → conv → relu (the 'last' layer) → GAP → fc: at ``last`` G = w_c / (h·w) exactly, and with
A ≥ 0 ablated to 0, D_k = w_ck · mean(A_k) / y_c; before the relu (``last.0``) G = w_c / (h·w) · 1[A > 0] varies."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.first = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU())
        self.last = nn.Sequential(nn.Conv2d(4, 5, 3, padding=1), nn.ReLU())
        self.fc = nn.Linear(5, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.last(self.first(x)).mean((2, 3)))


def test_gradient_before_pooling_is_w_over_hw_and_said_constant() -> None:
    net = PoolHead().eval()
    x = torch.randn(2, 3, 6, 6, generator=torch.Generator().manual_seed(1))
    cache = TerminalCache(net, "last", x, Targets(classes=torch.tensor([2, 0])))
    g = cache.get(["G"])["G"]
    want = net.fc.weight[[2, 0]].detach()[:, :, None, None].expand(2, 5, 6, 6) / 36  # w_c / (h·w), by hand
    torch.testing.assert_close(g, want)
    cache.get(["D"])
    d = diagnose(cache)
    assert d.gradient_constant and d.ablation_proportional is True
    assert d.varying_layers == ["last.0", "first.1", "first.0"]
    assert "constant" in d.sentence and "G varies at last.0, first.1, first.0" in d.sentence
    assert d.as_dict()["sentence"] == d.sentence


def test_no_sentence_where_the_gradient_varies() -> None:
    net = PoolHead().eval()
    x = torch.randn(2, 3, 6, 6, generator=torch.Generator().manual_seed(1))
    d = diagnose_layer(net, "first", x)
    assert not d.gradient_constant and d.sentence is None and d.as_dict()["varying_layers"] == []


def test_probe_layers_shapes_and_variation() -> None:
    infos = probe_layers(PoolHead().eval(), torch.randn(1, 3, 6, 6))
    got = {i.name: (i.shape, i.gradient_varies, i.same_as) for i in infos}
    assert got == {"first": ((4, 6, 6), True, "first.1"), "first.0": ((4, 6, 6), True, None),
                   "first.1": ((4, 6, 6), True, None), "last": ((5, 6, 6), False, "last.1"),
                   "last.0": ((5, 6, 6), True, None), "last.1": ((5, 6, 6), False, None)}


def test_helpers_by_hand() -> None:
    assert gradient_constant(torch.full((1, 2, 3, 3), 0.5))
    assert not gradient_constant(torch.tensor([[[[1.0, 1.0], [1.0, 1.001]]]]))
    assert proportional(torch.tensor([[1.0, 2.0]]), torch.tensor([[2.0, 4.0]]))
    assert not proportional(torch.tensor([[1.0, 2.0]]), torch.tensor([[2.0, 1.0]]))


def test_the_report_says_the_sentence_only_when_there_is_one() -> None:
    from report_helpers import make_full_results

    from sycam.report import render_report

    results = make_full_results()
    assert 'id="diagnostics"' not in render_report(results)
    sentence = "At bn2 the gradient G is spatially constant on every image (the network pools right after this layer)."
    results["diagnostics"] = {"layer": "bn2", "gradient_constant": True, "ablation_proportional": None,
                              "varying_layers": ["conv_head"], "sentence": sentence}
    html = render_report(results)
    assert 'id="diagnostics"' in html and "spatially constant on every image" in html


def test_list_layers_prints_shapes_and_the_gradient(capsys) -> None:
    from sycam.cli import main

    assert main(["list", "layers", "--model", "efficientnet_lite0", "--random-weights"]) == 0
    out = capsys.readouterr().out
    assert "bn2 (default)     1280×7×7      no (constant)" in out and "blocks.5          192×7×7       yes" in out
