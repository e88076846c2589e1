r"""More terminal families, computed from the model like A and G and cached by :class:`~sycam.terminals.TerminalCache`.

Each takes ``@LAYER`` like ``A`` and ``G`` (``SG@blocks.5``); every family's cost is announced before it runs.

- ``E`` — EigenCAM's heatmap: the projection of the centred activations on their first principal component,
  :math:`E = \mathrm{norm}(\mathrm{relu}(\tilde A\, v_1))` with :math:`\tilde A \in \mathbb{R}^{hw\times K}` the
  activations minus their spatial mean per channel and :math:`v_1` its first right singular vector (the sign
  LAPACK's ``gesdd`` returns through ``numpy.linalg.svd``, as pytorch-grad-cam). A heatmap terminal: no
  extra pass.
- ``EG`` — the same of :math:`A \odot G` (EigenGradCAM).
- ``SG`` — SmoothGrad: :math:`\frac1n \sum_{i=1}^{n} \partial y_c / \partial A\,(x + \varepsilon_i)`,
  :math:`\varepsilon_i \sim \mathcal N(0, (\sigma\,(\max x - \min x))^2)` with seeded noise (``n`` forwards and
  backwards per image).
- ``IG`` — the gradient averaged along the straight path from the zero input to ``x`` (integrated gradients'
  path integral, at the layer): :math:`\frac1m \sum_{j=1}^{m} \partial y_c / \partial A\,(\tfrac{j}{m} x)`
  (``m`` forwards and backwards per image); ``IG * A`` is then the layer's integrated-gradient attribution
  with a zero baseline at the layer.
- ``Ap``, ``Gp`` — pre-activation variants: activations and gradient at the input of the last activation
  module of a layer that ends in one (``bn2`` of EfficientNet-Lite0 is BatchNorm + ReLU6): where the
  post-activation gradient is constant, the pre-activation one still carries the activation's mask
  (one more forward and backward).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn

from .expr.ops import normalize
from .models import ModelError

ACTIVATIONS = (nn.ReLU, nn.ReLU6, nn.SiLU, nn.GELU, nn.Hardswish, nn.LeakyReLU, nn.ELU, nn.Mish, nn.Sigmoid,
               nn.Hardsigmoid, nn.Tanh)
"""Modules that count as a layer's closing activation (for ``Ap``, ``Gp``)."""


FULL_SVD_POSITIONS = 4096
"""Up to this many positions (64×64) E and EG take the full SVD, as pytorch-grad-cam; above, the thin one (U of
hw × hw would not fit: 630 MB at 112×112)."""


@dataclass(frozen=True)
class FamilyOptions:
    """Knobs of the sampled families: SmoothGrad's copies and noise, the integrated path's steps, the seed."""

    smooth_samples: int = 8
    smooth_noise: float = 0.15
    path_steps: int = 8
    seed: int = 0


def first_component(x: Tensor) -> Tensor:
    r"""Per image, the heatmap :math:`\mathrm{norm}(\mathrm{relu}(\tilde X v_1))` ``(N, h, w)`` of ``x``
    ``(N, K, h, w)`` (see the module docstring; NaN read as 0).

    >>> x = torch.zeros(1, 2, 1, 3); x[0, 0, 0] = torch.tensor([0., 1., 2.])
    >>> first_component(x)[0, 0].tolist() in ([0.0, 0.0, 0.9999999403953552], [0.9999999403953552, 0.0, 0.0])
    True
    """
    out = []
    for a in torch.nan_to_num(x.detach(), nan=0.0).cpu():
        flat = a.reshape(a.shape[0], -1).T.numpy()  # (hw, K)
        flat = flat - flat.mean(axis=0)
        # full matrices as pytorch-grad-cam (the sign of v1 may depend on LAPACK's job), unless U would be huge
        _, _, vt = np.linalg.svd(flat, full_matrices=flat.shape[0] <= FULL_SVD_POSITIONS)
        out.append(torch.from_numpy(flat @ vt[0, :]).reshape(a.shape[1:]))
    proj = torch.stack(out).to(x.device, x.dtype)
    return normalize(torch.relu(proj))


def pre_activation(layer: nn.Module, name: str) -> nn.Module:
    """The last activation module of ``layer`` (itself when it is one), whose input is the pre-activation."""
    acts = [m for m in layer.modules() if isinstance(m, ACTIVATIONS)]
    last = list(layer.modules())[-1]
    if not acts or (acts[-1] is not last and not isinstance(layer, ACTIVATIONS)):
        raise ModelError(f"layer {name!r} does not end in an activation module: it has no pre-activation terminals "
                         "Ap, Gp")
    return acts[-1]


def capture_input(module: nn.Module) -> tuple[list[Tensor], Callable[[], None]]:
    """Record the input of every call of ``module`` (the last call's is the pre-activation); returns the list and
    the hook's remover. The module gets a copy, so an in-place activation (``ReLU6(inplace=True)``) leaves the
    recorded input as it was."""
    seen: list[Tensor] = []

    def hook(_m: nn.Module, inputs: tuple[object, ...]) -> tuple[object, ...] | None:
        if inputs and isinstance(inputs[0], Tensor):
            seen.append(inputs[0])
            return (inputs[0].clone(), *inputs[1:])
        return None

    handle = module.register_forward_pre_hook(hook)
    return seen, handle.remove


def noisy_copies(images: Tensor, opts: FamilyOptions) -> Iterator[Tensor]:
    """SmoothGrad's inputs: ``n`` copies of ``images`` with seeded Gaussian noise of σ·(max − min) per image (made
    one at a time)."""
    gen = torch.Generator().manual_seed(opts.seed)
    span = (images.flatten(1).amax(1) - images.flatten(1).amin(1)).view(-1, 1, 1, 1)
    for _ in range(opts.smooth_samples):
        noise = torch.randn(images.shape, generator=gen).to(images.device, images.dtype)
        yield images + noise * (opts.smooth_noise * span)


def path_inputs(images: Tensor, opts: FamilyOptions) -> Iterator[Tensor]:
    """Integrated gradients' inputs along the path from zero: ``(j / m) x`` for ``j = 1 … m``."""
    m = opts.path_steps
    for j in range(1, m + 1):
        yield images * (j / m)


def averaged_gradients(inputs: Iterable[Tensor], run: Callable[[Tensor], list[Tensor]]) -> list[Tensor]:
    """The mean over ``inputs`` of the per-layer gradients ``run(x)`` returns."""
    total: list[Tensor] | None = None
    count = 0
    for x in inputs:
        grads = run(x)
        total = grads if total is None else [t + g for t, g in zip(total, grads, strict=True)]
        count += 1
    assert total is not None
    return [t / count for t in total]
