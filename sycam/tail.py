"""Running only the network after the target layer: a ``torch.fx`` split of a model into the part up to a layer
(the head) and the rest (the tail), which the Ablation-CAM terminal ``D`` reruns once per ablated channel."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, fx, nn

from .errors import ModelError

# --------------------------------------------------------------------------------------------------
# Running only the network after the target layer
# --------------------------------------------------------------------------------------------------


TRACE_ERRORS: tuple[type[Exception], ...] = (fx.proxy.TraceError, TypeError, NotImplementedError)
"""What ``torch.fx`` raises on a model it cannot trace symbolically (data-dependent control flow, unsupported
calls); any other error is a bug and propagates."""


class _CutTracer(fx.Tracer):
    """Traces through the target layer's ancestors only; every other module stays one opaque call."""

    def __init__(self, ancestors: set[str]) -> None:
        super().__init__()
        self.ancestors = ancestors

    def is_leaf_module(self, m: nn.Module, module_qualified_name: str) -> bool:
        return module_qualified_name not in self.ancestors


@dataclass
class TailSplit:
    """The model split at the target layer: ``head(x) -> cut values``, ``tail(*cut values) -> outputs``.

    ``cut[0]`` is the target layer's output; the other cut values are earlier tensors that the tail
    still reads (e.g. a skip connection crossing the layer).
    """

    head: fx.GraphModule
    tail: fx.GraphModule
    n_cut: int

    @classmethod
    def build(cls, model: nn.Module, layer_name: str) -> TailSplit:
        """Trace ``model`` (opening only the layer's ancestors) and cut it at ``layer_name`` into the head and
        the tail that reads the layer's output plus the skip tensors crossing it; raises one of
        :data:`TRACE_ERRORS` when the model cannot be traced."""
        parts = layer_name.split(".")
        ancestors = {".".join(parts[:i]) for i in range(1, len(parts))}
        graph = _CutTracer(ancestors).trace(model)
        gm = fx.GraphModule(model, graph)
        targets = [n for n in graph.nodes if n.op == "call_module" and n.target == layer_name]
        if len(targets) != 1:
            raise ModelError(f"layer {layer_name!r} is called {len(targets)} times in the traced graph")
        target = targets[0]
        tail_nodes: set[fx.Node] = set()
        frontier = [target]
        while frontier:
            for user in frontier.pop().users:
                if user not in tail_nodes:
                    tail_nodes.add(user)
                    frontier.append(user)
        ordered = list(graph.nodes)
        head_nodes = [n for n in ordered if n not in tail_nodes and n.op != "output"]
        cut = [target] + [n for n in head_nodes if n is not target and any(u in tail_nodes for u in n.users)]

        head_graph = fx.Graph()
        env: dict[fx.Node, fx.Node] = {}
        for node in head_nodes:
            env[node] = head_graph.node_copy(node, lambda n: env[n])
        head_graph.output(tuple(env[n] for n in cut))

        tail_graph = fx.Graph()
        env = {n: tail_graph.placeholder(f"cut_{i}") for i, n in enumerate(cut)}
        for node in ordered:
            if node in tail_nodes:
                env[node] = tail_graph.node_copy(node, lambda n: env[n])
        return cls(fx.GraphModule(gm, head_graph), fx.GraphModule(gm, tail_graph), len(cut))

    def batched(self, images: Tensor) -> bool:
        """Whether every cut value is a per-image tensor (leading axis = the batch) on ``images``: a tail that reads
        sizes or shared tensors traced for one batch could not run on the ablated copies."""
        with torch.no_grad():
            cut = self.head(images)
        return all(isinstance(v, Tensor) and v.dim() > 0 and v.shape[0] == images.shape[0] for v in cut)

