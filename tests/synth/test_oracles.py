"""The correctness oracle's validity checks on layer maps: faint maps count as degenerate."""

from __future__ import annotations

import torch

from sycam.heatmap import faint, layer_maps
from sycam.metrics import get_metric
from sycam.synth.oracles import CorrectnessOracle


def test_a_map_whose_raw_range_is_below_the_normalization_eps_is_faint() -> None:
    acts = torch.rand(3, 4, 5, 5, generator=torch.Generator().manual_seed(1))
    weights = torch.rand(3, 4, 1, 1, generator=torch.Generator().manual_seed(0)) + 0.1  # positive: no relu blanks
    normal = layer_maps(weights, acts)
    tiny = layer_maps(weights * 1e-12, acts)  # what mean(cube(cube(G))) does to gradients of ~1e-2
    assert not bool(faint(normal).any())
    assert bool(faint(tiny).all()) and float(tiny.amax()) < 1e-3  # renders as an almost black map
    assert not bool(faint(layer_maps(weights * 1e-5, acts)).any())  # small but well above ε renders fully


def test_oracle_rejects_faint_maps_like_degenerate_ones() -> None:
    acts = torch.rand(3, 4, 5, 5, generator=torch.Generator().manual_seed(1))
    weights = torch.rand(3, 4, 1, 1, generator=torch.Generator().manual_seed(0)) + 0.1  # positive: no relu blanks
    scale = torch.tensor([1.0, 1e-12, 1.0]).view(3, 1, 1, 1)  # faint on the second image only
    maps = layer_maps(weights * scale, acts)
    strict = CorrectnessOracle([get_metric("energy_pointing_game")], [0.5], (), max_degenerate=0)
    lenient = CorrectnessOracle([get_metric("energy_pointing_game")], [0.5], (), max_degenerate=1)
    assert strict.reject([maps]) == "degenerate heatmap"
    assert lenient.reject([maps]) is None
    assert strict.reject([layer_maps(weights, acts)]) is None
