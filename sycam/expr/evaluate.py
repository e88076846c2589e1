"""Evaluation of expression trees as batched tensor arithmetic over cached terminal values."""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor

from .ast import Call, Const, Node, Terminal, acts_key
from .ops import OPS


def evaluate(node: Node, values: Mapping[str, Tensor], memo: dict[Node, Tensor] | None = None) -> Tensor:
    """Value of ``node`` for all images at once.

    ``values`` maps terminal names to tensors: maps as ``(N, K, h, w)``, channel vectors as
    ``(N, K, 1, 1)``. Constants evaluate to 0-d tensors. ``memo`` (optional) caches sub-expression
    values across calls, keyed by the (hashable) node.

    >>> import torch
    >>> from sycam.expr import parse
    >>> G = torch.tensor([[1.0, 3.0], [-2.0, 0.0]]).reshape(1, 1, 2, 2)   # one image, one channel, 2×2
    >>> evaluate(parse("mean(G)"), {"G": G}).flatten().tolist()             # a channel vector (1, 1, 1, 1)
    [0.5]
    >>> evaluate(parse("relu(G) * 2"), {"G": G}).flatten().tolist()         # a map (1, 1, 2, 2)
    [2.0, 6.0, 0.0, 0.0]
    """
    if memo is not None:
        hit = memo.get(node)
        if hit is not None:
            return hit
    if isinstance(node, Terminal):
        try:
            out = values[node.name]
        except KeyError:
            raise KeyError(f"terminal {node.name!r} was not computed (have: {sorted(values)})") from None
    elif isinstance(node, Const):
        ref = next(iter(values.values()), None)
        out = torch.tensor(node.value, dtype=torch.float32 if ref is None else ref.dtype,
                           device=None if ref is None else ref.device)
    elif isinstance(node, Call):
        args = [evaluate(a, values, memo) for a in node.args]
        if node.op == "cam":  # the heatmap of weights: with the activations of their layer
            key = acts_key(node.args[0])
            if key not in values:
                raise KeyError(f"terminal {key!r} was not computed (have: {sorted(values)})")
            args.append(values[key])
        out = OPS[node.op].fn(*args)
    else:  # pragma: no cover - defensive
        raise TypeError(f"not an expression node: {node!r}")
    if memo is not None:
        memo[node] = out
    return out
