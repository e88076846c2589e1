"""The workspace's one scoring path: exact low-resolution metrics give the scores of the full heatmaps."""

from __future__ import annotations

import pytest
import torch
from engine_helpers import tiny_net, tiny_samples

from sycam.expr import parse
from sycam.metrics import get_metric
from sycam.terminals import ExtractOptions
from sycam.workspace import Workspace

EXPRS = ["mean(G)", "sum(G * A) / sum(A)", "relu(G) * A", "mean(G) - softmax(D)", "D", "G"]


@pytest.mark.parametrize("name", ["energy_pointing_game", "pointing_game", "complexity", "max_sensitivity"])
def test_workspace_scores_equal_full_resolution_scores(name: str) -> None:
    torch.manual_seed(0)
    metric = get_metric(name)
    samples = tiny_samples(n=6, size=24)
    ws = Workspace.build(tiny_net(), "body", samples, [metric], ExtractOptions(batch_size=8))
    nodes = [parse(e) for e in EXPRS]
    fast = ws.score(nodes, metric, chunk=4)  # layer-resolution where the metric allows it
    full = ws.evaluate(metric, ws.heatmaps(nodes), nodes)  # finished 24x24 heatmaps
    assert fast.shape == (len(EXPRS), 6)
    assert torch.allclose(fast, full, atol=1e-5, rtol=0), (fast - full).abs().max()
