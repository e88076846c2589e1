"""Running a CNN with hooks on its layers: eval mode, output capture (optionally replaced or reshaped), and the
chunked forward (and backward) passes that read the activations ``A``, gradients ``G`` and target scores of a batch.

The primitives of terminal extraction (:mod:`sycam.terminals`): each is a pure function of (model, layer, images,
targets), removes its hooks and restores the model's mode, also on errors and under ``torch.no_grad()``.
"""

from __future__ import annotations

import itertools
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import ExitStack, contextmanager

import torch
from torch import Tensor, nn

from . import _progress
from ._progress import progress
from .errors import ModelError
from .targets import Targets
from .transforms import ReshapeTransform, check_map


@contextmanager
def eval_mode(model: nn.Module) -> Iterator[None]:
    """Put ``model`` in eval mode and restore its previous mode afterwards (also on errors)."""
    was_training = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(was_training)


class Captured(list[Tensor]):
    """The maps ``(N, K, h, w)`` a layer produced inside :func:`capture_output` (after the reshape transform), with
    the layer's raw outputs in ``raw`` (what the rest of the network reads; the same tensors without a transform)."""

    def __init__(self) -> None:
        super().__init__()
        self.raw: list[Tensor] = []


@contextmanager
def capture_output(layer: nn.Module, replace: Callable[[Tensor], Tensor] | None = None,
                   reshape: ReshapeTransform | None = None,
                   input_size: tuple[int, int] | None = None) -> Iterator[Captured]:
    """Record (and optionally replace) ``layer``'s output during the forward passes inside the block.

    ``replace`` acts on the raw output (what the network reads on); the recorded map is ``reshape(output)``
    (pytorch-grad-cam's ``reshape_transform``), checked to be ``(N, K, h, w)`` for inputs of ``input_size``
    (:func:`~sycam.transforms.check_map`: never a silent reading of other axes)."""
    seen = Captured()

    def hook(_module: nn.Module, _inputs: object, output: object) -> Tensor | None:
        if not isinstance(output, Tensor):
            raise ModelError(f"the target layer must output a (N, K, h, w) tensor, got {type(output).__name__}")
        if replace is not None:
            output = replace(output)
        seen.append(check_map(output if reshape is None else reshape(output), input_size, reshape is not None))
        seen.raw.append(output)
        return output

    handle = layer.register_forward_hook(hook)
    try:
        yield seen
    finally:
        handle.remove()


def chunks(n: int, size: int) -> Iterable[slice]:
    """Consecutive slices of ``range(n)`` of at most ``size`` items.

    >>> list(chunks(5, 2))
    [slice(0, 2, None), slice(2, 4, None), slice(4, 5, None)]
    """
    for start in range(0, n, size):
        yield slice(start, min(start + size, n))


def announce(message: str) -> None:
    """One line on the progress stream (only when progress output is on, as in the CLI)."""
    if _progress.enabled():
        print(message, file=_progress._state["stream"] or sys.stderr, flush=True)


def image_aligned_chunks(pairs_n: Tensor, n: int, image_batch: int, batch: int) -> list[slice]:
    """Runs of at most ``batch`` generated inputs (sorted by their image ``pairs_n``) that never span two batches
    of ``image_batch`` images: a batch of images then meets the model in the same chunks whether it is the
    first batch of a shard or the fifth of the whole split, so a sharded run's terminals equal the local ones.

    >>> image_aligned_chunks(torch.tensor([0, 0, 0, 1, 1, 2, 2, 2]), 3, 2, 4)
    [slice(0, 4, None), slice(4, 5, None), slice(5, 8, None)]
    """
    edges = [int(torch.searchsorted(pairs_n, i)) for i in range(0, n, image_batch)] + [pairs_n.numel()]
    out = []
    for a, b in itertools.pairwise(edges):
        out += [slice(s, min(s + batch, b)) for s in range(a, b, batch)]
    return out


def forward_backward(
    model: nn.Module, layer: nn.Module, images: Tensor, targets: Targets, batch_size: int = 32, need_grad: bool = True,
    reshape: ReshapeTransform | None = None, raw_out: list[Tensor] | None = None,
) -> tuple[Tensor, Tensor | None, Tensor]:
    """``(A, G, logits)`` for ``images``: one forward (and one backward when ``need_grad``) per chunk.

    With ``reshape``, ``A = reshape(output)`` and ``G = reshape(∂y/∂output)`` (as pytorch-grad-cam), and the raw
    outputs are appended to ``raw_out`` when given (the Ablation-CAM terminal ablates them)."""
    acts, grads, logits = forward_backward_layers(model, [layer], images, targets, batch_size, need_grad,
                                                  reshape=reshape, raw_out=raw_out)
    return acts[0], (None if grads is None else grads[0]), logits


def forward_backward_layers(
    model: nn.Module, layers: Sequence[nn.Module], images: Tensor, targets: Targets, batch_size: int = 32,
    need_grad: bool = True, desc: str | None = None, reshape: ReshapeTransform | None = None,
    raw_out: list[Tensor] | None = None,
) -> tuple[list[Tensor], list[Tensor] | None, Tensor]:
    """``([A per layer], [G per layer], logits)`` for ``images``: hooks on every layer at once, so all layers cost
    one forward (and one backward when ``need_grad``) per chunk. ``reshape`` applies to every layer's output and
    gradient (a transformer's layers share a token layout); the first layer's raw outputs go to ``raw_out``."""
    acts: list[list[Tensor]] = [[] for _ in layers]
    grads: list[list[Tensor]] = [[] for _ in layers]
    outs, raws = [], []
    size = tuple(images.shape[-2:])
    desc = desc or ("terminals A, G" if need_grad else "terminal A")
    with eval_mode(model), progress(images.shape[0], desc, "img") as bar:
        for sl in chunks(images.shape[0], batch_size):
            x = images[sl]
            index = torch.arange(sl.start, sl.stop, device=x.device)

            def keep_graph(out: Tensor) -> Tensor:
                return out if out.requires_grad else out.detach().requires_grad_(True)

            ctx = torch.enable_grad() if need_grad else torch.no_grad()
            with ctx, ExitStack() as stack:
                seen = [stack.enter_context(capture_output(la, keep_graph if need_grad else None, reshape,
                                                           size))  # type: ignore[arg-type]
                        for la in layers]
                logits = model(x)
                if not all(seen):
                    raise ModelError("the target layer was not called during the forward pass" if len(layers) == 1
                                     else "a terminal's layer was not called during the forward pass")
                got = [s[0] for s in seen]
                raw = [s.raw[0] for s in seen]
                if need_grad:
                    targets.check(logits.shape[-1])
                    score = targets.scores(logits, index)
                    for i, g in enumerate(torch.autograd.grad(score.sum(), raw)):
                        grads[i].append((g if reshape is None else reshape(g)).detach())
            for i, a in enumerate(got):
                acts[i].append(a.detach())
            raws.append(raw[0].detach())
            outs.append(logits.detach())
            bar.update(sl.stop - sl.start)
    if raw_out is not None:
        raw_out.append(torch.cat(raws))
    return [torch.cat(a) for a in acts], ([torch.cat(g) for g in grads] if need_grad else None), torch.cat(outs)


def target_scores(
    model: nn.Module,
    inputs: Callable[[slice], tuple[Tensor, Tensor]],
    total: int,
    targets: Targets,
    batch_size: int,
    forward: Callable[[Tensor], Tensor] | None = None,
    bar: object | None = None,
    slices: Sequence[slice] | None = None,
) -> Tensor:
    """Target scores of ``total`` generated inputs, chunked (``slices``, default: runs of ``batch_size``);
    ``inputs(slice) -> (batch, sample index)``."""
    out = []
    run = forward or model
    with torch.no_grad():
        for sl in chunks(total, batch_size) if slices is None else slices:
            x, index = inputs(sl)
            out.append(targets.scores(run(x), index))
            if bar is not None:
                bar.update(sl.stop - sl.start)  # type: ignore[attr-defined]
    return torch.cat(out) if out else torch.zeros(0)

