"""The terminal families (SG, IG, Ap, Gp, E, EG) against values computed by hand, the multi-layer grammar and
search, and the informative default grammar on a degenerate layer."""

from __future__ import annotations

import pytest
import torch
from engine_helpers import tiny_net, tiny_samples
from torch import nn

from sycam.diagnostics import diagnose_layer
from sycam.expr import layer_of
from sycam.models import ModelError
from sycam.synth import Grammar, SynthesisConfig, synthesize
from sycam.synth.learner import Learner
from sycam.targets import Targets
from sycam.terminal_families import FamilyOptions, first_component, noisy_copies
from sycam.terminals import TerminalCache


class Square(nn.Module):
    """y_c = Σ_kij w_ck A_kij² with A = x (an identity layer): G = 2 w A exactly."""

    def __init__(self) -> None:
        super().__init__()
        self.layer = nn.Identity()
        self.w = nn.Parameter(torch.tensor([[1.0, -2.0, 0.5], [0.0, 1.0, 3.0]]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.layer(x)
        return torch.einsum("ck,nkij->nc", self.w, a * a)


def square_cache() -> tuple[Square, torch.Tensor, TerminalCache]:
    net = Square().eval()
    x = torch.randn(2, 3, 4, 4, generator=torch.Generator().manual_seed(3))
    return net, x, TerminalCache(net, "layer", x, Targets(classes=torch.tensor([0, 1])))


def test_gradient_families_by_hand() -> None:
    net, x, cache = square_cache()
    w = net.w.detach()[[0, 1]][:, :, None, None]
    v = cache.get(["G", "IG", "SG"])
    torch.testing.assert_close(v["G"], 2 * w * x)
    # the path 0 → x in 8 steps: mean of 2 w (j/8) x over j = 1..8 = 2 w x · 9/16
    torch.testing.assert_close(v["IG"], 2 * w * x * 9 / 16)
    copies = list(noisy_copies(x, FamilyOptions()))
    torch.testing.assert_close(v["SG"], 2 * w * torch.stack(copies).mean(0))
    span = x.flatten(1).amax(1) - x.flatten(1).amin(1)
    noise = torch.stack(copies) - x
    assert len(copies) == 8 and torch.allclose(noise.std(dim=(0, 2, 3, 4)), 0.15 * span, rtol=0.1)


def test_pre_activation_is_the_input_of_the_closing_relu() -> None:
    net, x = tiny_net(), tiny_samples(3).images
    cache = TerminalCache(net, "body", x, Targets(classes=torch.tensor([0, 1, 2])))
    v = cache.get(["A", "G", "Ap", "Gp"])
    assert torch.equal(torch.relu(v["Ap"]), v["A"]) and bool((v["Ap"] < 0).any())
    torch.testing.assert_close(v["Gp"], v["G"] * (v["Ap"] > 0))
    with pytest.raises(ModelError, match=r"layer 'stem\.0' does not end in an activation module"):
        TerminalCache(net, "body", x).get(["Ap@stem.0"])


def test_first_component_of_a_rank_one_map() -> None:
    s = torch.tensor([0.0, 1.0, 2.0, 3.0])
    a = torch.tensor([1.0, -2.0, 0.5])[None, :, None, None] * s.view(1, 1, 1, 4)  # A_k = u_k · s
    got = first_component(a)[0, 0]
    # centred: ±|u| (s − 1.5) → relu → (0, 0, .5, 1.5) → norm (0, 0, 1/3, 1), or the mirror for the other sign
    want = torch.tensor([0.0, 0.0, 1 / 3, 1.0])
    assert torch.allclose(got, want, atol=1e-6) or torch.allclose(got, want.flip(0), atol=1e-6)


def test_eigen_terminals_at_another_layer_equal_the_layers_own() -> None:
    net, x = tiny_net(), tiny_samples(3).images
    t = Targets(classes=torch.tensor([0, 1, 2]))
    there = TerminalCache(net, "body", x, t).get(["E@stem", "EG@stem"])
    own = TerminalCache(net, "stem", x, t).get(["E", "EG"])
    assert torch.equal(there["E@stem"], own["E"]) and torch.equal(there["EG@stem"], own["EG"])
    assert own["E"].shape == (3, 8, 8) and layer_of(__import__("sycam").expr.parse("E@stem")) is None


def test_grammar_layers_and_the_learner_never_mixes_layers() -> None:
    g = Grammar.parse("terminals: A G\nlayers: stem\noperators: + * relu mean sharpen cmean\nmax_size: 5")
    assert g.terminals == ("A", "G", "A@stem", "G@stem") and g.layers() == ("stem",) and "cam" in g.operators
    net, s = tiny_net(), tiny_samples(4)
    cache = TerminalCache(net, "body", s.images, Targets(classes=s.labels))
    vals = cache.values(["A", "G", "A@stem", "G@stem"])
    learner = Learner(g, {k: (v,) for k, v in vals.items()})
    texts = []
    for e in learner.entries():
        layer_of(e.node)  # raises if an operator mixed two layers' channels
        texts.append(str(e.node))
    assert "cam(mean(G@stem))" in texts and "sharpen(cam(mean(G)), 2)" in texts
    assert not any("sharpen" in t and t.endswith(", 0)") for t in texts)


def test_a_search_over_two_layers_runs_end_to_end() -> None:
    s = tiny_samples(8)
    g = Grammar(terminals=("A", "G", "A@stem", "G@stem"), operators=("*", "relu", "mean", "cmean"), max_size=4)
    r = synthesize(tiny_net(), "body", s.subset(slice(0, 4)), s.subset(slice(4, 8)),
                   __import__("sycam").metrics.get_metric("energy_pointing_game"),
                   config=SynthesisConfig(grammar=g, max_candidates=60, baselines=("gradcam",)))
    d = r.to_dict()
    assert d["candidates_scored"] > 0 and any("@stem" in row["expression"] for row in d["leaderboard"])
    assert d["diagnostics"]["gradient_constant"] is False and d["diagnostics"]["sentence"] is None


def test_informative_default_on_a_degenerate_layer() -> None:
    from test_diagnostics import PoolHead

    from sycam.cli.synthesize import informative_grammar

    net = PoolHead().eval()
    d = diagnose_layer(net, "last", torch.randn(2, 3, 6, 6))
    g = informative_grammar(Grammar(), d, net.last)
    assert g is not None and g.terminals == ("A", "G", "S", "D", "Ap", "Gp", "A@last.0", "G@last.0")
    assert {"sharpen", "cmul", "cmean", "cam"} <= set(g.operators)
    assert informative_grammar(Grammar(), diagnose_layer(net, "first", torch.randn(2, 3, 6, 6)), net.first) is None


def test_a_sharded_search_over_two_layers_equals_the_local_one() -> None:
    from sycam.metrics import get_metric
    from sycam.synth.executors import InProcessExecutor
    from sycam.terminals import ExtractOptions

    s = tiny_samples(8)
    g = Grammar(terminals=("A", "G", "G@stem", "E@stem"), operators=("*", "mean", "sharpen", "cmean"), max_size=4)
    config = SynthesisConfig(grammar=g, max_candidates=40, baselines=("gradcam", "eigencam"))
    opts = ExtractOptions(batch_size=2)

    def run(executor: object = None) -> dict:
        r = synthesize(tiny_net(), "body", s.subset(slice(0, 4)), s.subset(slice(4, 8)),
                       get_metric("energy_pointing_game"), config=config, options=opts, executor=executor)
        d = dict(r.to_dict())
        for k in ("timings", "seconds"):
            d.pop(k)
        d["settings"] = {k: v for k, v in d["settings"].items() if k != "executor"}
        return d

    local = run()
    with InProcessExecutor(workers=2) as ex:
        sharded = run(ex)
    assert sharded == local and local["candidates_scored"] > 0


def test_a_search_over_another_layer_compares_with_the_classic_methods_there() -> None:
    """A classic method at another layer the search may use is a baseline, never a synthesized win: Grad-CAM at
    ``stem`` (``mean(G@stem)``) is scored and compared with like the classic methods at the target layer; when it
    is the best, the winner is that classic method, compared with itself (difference 0)."""
    from sycam.expr import parse
    from sycam.methods import method_at_layer, method_title
    from sycam.metrics import get_metric

    assert method_at_layer("gradcam", "stem") == ("gradcam at stem", parse("mean(G@stem)"))
    assert method_at_layer("scorecam", "stem") is None and method_at_layer("ablationcam", "stem") is None
    assert method_title("gradcam at stem") == "Grad-CAM at stem" and method_title("gradcam") == "Grad-CAM"
    samples = tiny_samples(12)
    syn, val, test = samples.subset(slice(0, 6)), samples.subset(slice(6, 9)), samples.subset(slice(9, 12))
    config = SynthesisConfig(grammar=Grammar(terminals=("A", "G", "A@stem", "G@stem"), max_size=3),
                             max_candidates=30, baselines=("gradcam", "layercam", "ablationcam"), guards=False)
    d = synthesize(tiny_net(), "body", syn, test, get_metric("energy_pointing_game"), config=config,
                   validation=val).to_dict()
    at = {"gradcam at stem": "mean(G@stem)", "layercam at stem": "relu(G@stem)"}
    assert {k: d["baselines"][k]["expression"] for k in at} == at and "ablationcam at stem" not in d["baselines"]
    assert d["baselines"]["gradcam at stem"]["title"] == "Grad-CAM at stem"
    assert set(at) <= set(d["comparison"]["methods"])
    # here no candidate beats the best classic method on synthesis, so the winner is that method itself (Grad-CAM
    # at stem), compared with itself: difference 0, never "better"
    assert d["best"]["expression"] == "mean(G@stem)" and d["comparison"]["verdict"] != "better"
    assert d["comparison"]["methods"]["gradcam at stem"]["diff"] == 0
