r"""Exact metric values from layer-resolution maps, without rendering the full-resolution heatmap.

The engine's heatmap (``sycam.heatmap.finish``) of a layer map ``m = norm(relu(raw))`` ``(h, w)`` at input
size ``(H, W)`` is

.. math:: L = \frac{u - \min u}{\max u - \min u + \varepsilon},\qquad u = U_h\, m\, U_w^\top,

with :math:`U_h` ``(H, h)`` and :math:`U_w` ``(W, w)`` the bilinear resize matrices (``align_corners=False``,
half-pixel centres; PyTorch's weights, read off by resizing the identity) and :math:`\varepsilon = 10^{-7}`.
``m >= 0`` and the weights are >= 0, so the ``relu`` between the resize and the normalization is the identity.

Two facts make metrics exact at layer resolution:

1. **Linearity.** :math:`\langle u, M\rangle = \langle m, U_h^\top M U_w\rangle`: a mask-weighted sum of the
   upsampled map is a weighted sum of the layer map with the *projected* mask :math:`U_h^\top M U_w`
   ``(h, w)``, which does not depend on the candidate (computed once per samples). Quadratic forms follow the
   same way with the Gram matrices :math:`G = U^\top U`:
   :math:`\|U_h X U_w^\top\|_F^2 = \langle X, G_h X G_w\rangle`.
2. **Extremes on a subgrid.** Output row ``i`` reads the input rows ``a`` and ``a + 1`` with weights
   ``1 - λ_i`` and ``λ_i`` (clamped at the borders). For a fixed column, ``u`` is linear in ``λ_i`` among the
   rows that read the same pair ``a, a + 1``, so its minimum and maximum over those rows are attained at the
   smallest or the largest ``λ_i``: the first and the last output row of each input cell. The same holds for
   the columns, and ``u`` is separable, so ``min u`` and ``max u`` over the whole ``H × W`` grid are attained
   on the subgrid of at most ``2h × 2w`` such rows and columns (:attr:`Resize.rows`, :attr:`Resize.cols`).

Everything here is computed in float64; the result matches the float32 full-resolution path within its own
rounding (tested at 1e-5 on 7×7, 14×14 and odd sizes up to 224×224).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from ._util import Memo
from .errors import MetricError


def full_maps(layer_maps: Tensor, size: tuple[int, int]) -> Tensor:
    """The full-resolution heatmaps ``(*B, N, H, W)`` of layer maps ``(*B, N, h, w)`` (already
    ``norm(relu(raw))``): bilinear resize to ``size`` (skipped at equal size), relu, min-max normalize; the
    second half of ``sycam.heatmap.finish``."""
    from ..heatmap import normalize  # imported on use: sycam.heatmap pulls in the model zoo

    lead = layer_maps.shape[:-2]
    m = layer_maps.reshape(-1, 1, *layer_maps.shape[-2:])
    if tuple(m.shape[-2:]) != tuple(size):
        m = F.interpolate(m, size=tuple(size), mode="bilinear", align_corners=False)
    return normalize(torch.relu(m)).reshape(*lead, *size)


@functools.lru_cache(maxsize=64)
def resize_matrix(n_in: int, n_out: int, device: str = "cpu") -> Tensor:
    """``U`` ``(n_out, n_in)`` float64: PyTorch's 1-D bilinear resize (``align_corners=False``) as a matrix,
    read off by resizing the identity, so that ``resize(v) = U v``."""
    eye = torch.eye(n_in, dtype=torch.float64, device=device).view(n_in, 1, n_in, 1)
    if n_in == n_out:
        return torch.eye(n_in, dtype=torch.float64, device=device)
    out = F.interpolate(eye, size=(n_out, 1), mode="bilinear", align_corners=False)
    return out[:, 0, :, 0].T.contiguous()


def extreme_rows(u: Tensor) -> Tensor:
    """Indices of the output rows of resize matrix ``U`` ``(n_out, n_in)`` on which any function linear in each
    row's weights attains its extremes: for each input cell ``a`` (rows reading inputs ``a`` and ``a + 1``),
    the rows with the smallest and the largest weight on ``a + 1``."""
    n_in = u.shape[1]
    first = (u > 0).to(torch.int64).argmax(1)  # the lower input index each row reads
    nxt = (first + 1).clamp_max(n_in - 1)
    lam = u.gather(1, nxt[:, None])[:, 0].masked_fill(first + 1 >= n_in, 0.0)
    keep: set[int] = set()
    for a in first.unique().tolist():
        rows = (first == a).nonzero()[:, 0]
        keep.add(int(rows[lam[rows].argmin()]))
        keep.add(int(rows[lam[rows].argmax()]))
    return torch.tensor(sorted(keep), dtype=torch.int64, device=u.device)


@dataclass(frozen=True)
class Clones:
    """Output rows (or columns) with identical resize weights, for one axis of a :class:`Resize`.

    ``start[c]:stop[c]`` is the contiguous range of output rows of class ``c``; ``exact[c]`` says whether
    float32 resizing gives all of them bitwise the same value (one row, or weights exactly ``(1, 0)``, as
    for the rows clamped at the top; the rows clamped at the bottom compute ``(1 - λ) x + λ x`` with
    varying ``λ`` and may differ in the last bit). For subgrid row ``j``: ``cls[j]`` its class and
    ``adjacent[j]`` the nearest output row that reads the same input pair with other weights (-1 if none)."""

    start: Tensor
    stop: Tensor
    exact: Tensor
    cls: Tensor
    adjacent: Tensor


def clones(u: Tensor, sub: Tensor) -> Clones | None:
    """The :class:`Clones` of resize matrix ``u`` for subgrid rows ``sub``; None if a class is not contiguous."""
    n_out, n_in = u.shape
    _, inverse = torch.unique(u.cpu(), dim=0, return_inverse=True)
    inverse = inverse.tolist()
    order: list[int] = []  # classes in order of first appearance
    start: dict[int, int] = {}
    stop: dict[int, int] = {}
    for i, c in enumerate(inverse):
        if c not in start:
            start[c] = i
            order.append(c)
        elif stop[c] != i:
            return None
        stop[c] = i + 1
    first = (u > 0).to(torch.int64).argmax(1).cpu().tolist()
    renumber = {c: k for k, c in enumerate(order)}
    size = {c: stop[c] - start[c] for c in order}
    exact = [size[c] == 1 or first[start[c]] < n_in - 1 or n_in == n_out for c in order]
    cls, adjacent = [], []
    for j in sub.tolist():
        cls.append(renumber[inverse[j]])
        same_pair = [i for i in range(n_out) if first[i] == first[j] and inverse[i] != inverse[j]]
        adjacent.append(min(same_pair, key=lambda i: abs(i - j)) if same_pair else -1)
    dev = u.device

    def t(v: list[int] | list[bool]) -> Tensor:
        return torch.tensor(v, device=dev)

    return Clones(t([start[c] for c in order]), t([stop[c] for c in order]), t(exact), t(cls), t(adjacent))


@dataclass(frozen=True)
class Resize:
    """The bilinear resize ``(h, w) -> (H, W)`` as matrices, with the subgrid that carries its extremes."""

    uh: Tensor
    """:math:`U_h` ``(H, h)``: the row resize matrix (float64)."""
    uw: Tensor
    """:math:`U_w` ``(W, w)``: the column resize matrix (float64)."""
    rows: Tensor
    """The subgrid rows of the output (indices into ``H``; see :func:`extreme_rows`)."""
    cols: Tensor
    """The subgrid columns of the output (indices into ``W``)."""

    @property
    def size(self) -> tuple[int, int]:
        """``(H, W)``: the output size."""
        return int(self.uh.shape[0]), int(self.uw.shape[0])

    @property
    def pixels(self) -> int:
        """``H · W``: the number of output pixels."""
        return self.size[0] * self.size[1]

    @functools.cached_property
    def column_sums(self) -> Tensor:
        """``(h, w)``: the projected all-ones mask, :math:`U_h^\\top 1 1^\\top U_w`, so ``<m, S> = sum(u)``."""
        return torch.outer(self.uh.sum(0), self.uw.sum(0))

    @functools.cached_property
    def grams(self) -> tuple[Tensor, Tensor]:
        """:math:`(U_h^\\top U_h, U_w^\\top U_w)`."""
        return self.uh.T @ self.uh, self.uw.T @ self.uw

    def project(self, masks: Tensor) -> Tensor:
        """Projected masks :math:`U_h^\\top M U_w` ``(..., h, w)`` of masks ``(..., H, W)``, so that
        ``<u, M> = <m, project(M)>``."""
        return self.uh.T @ masks.to(torch.float64) @ self.uw

    def extremes(self, m: Tensor) -> tuple[Tensor, Tensor]:
        """``(min u, max u)`` ``(...)`` of the upsampled maps of layer maps ``m`` ``(..., h, w)`` (float64)."""
        sub = self.uh[self.rows] @ m @ self.uw[self.cols].T
        flat = sub.flatten(-2)
        return flat.amin(-1), flat.amax(-1)

    @functools.cached_property
    def clones(self) -> tuple[Clones, Clones] | None:
        """The :class:`Clones` of the rows and of the columns (None if some class is not contiguous)."""
        rows, cols = clones(self.uh, self.rows), clones(self.uw, self.cols)
        return None if rows is None or cols is None else (rows, cols)

    def quadratic(self, x: Tensor, y: Tensor) -> Tensor:
        """:math:`\\langle U_h x U_w^\\top, U_h y U_w^\\top\\rangle` ``(...)`` for layer maps ``x``, ``y``."""
        gh, gw = self.grams
        return (x * (gh @ y @ gw)).sum((-2, -1))


@functools.lru_cache(maxsize=64)
def _resize(h: int, w: int, height: int, width: int, device: str) -> Resize:
    uh, uw = resize_matrix(h, height, device), resize_matrix(w, width, device)
    return Resize(uh, uw, extreme_rows(uh), extreme_rows(uw))


def resize_for(layer_maps: Tensor, size: tuple[int, int]) -> Resize:
    """The :class:`Resize` from the resolution of ``layer_maps`` to ``size`` on their device (cached)."""
    h, w = (int(s) for s in layer_maps.shape[-2:])
    return _resize(h, w, int(size[0]), int(size[1]), str(layer_maps.device))


@dataclass(frozen=True)
class Affine:
    """The normalized heatmap as an affine map of the upsampled map: ``L = scale · u + shift`` ``(...)``,
    plus ``mean_u`` (the mean of ``u``), all float64."""

    scale: Tensor
    shift: Tensor
    mean_u: Tensor


def affine(m: Tensor, rz: Resize) -> Affine:
    """``L = (u - min u) / (max u - min u + eps)`` of float64 layer maps ``m`` as :class:`Affine`."""
    from ..heatmap import NORM_EPS

    lo, hi = rz.extremes(m)
    scale = 1.0 / (hi - lo + NORM_EPS)
    mean_u = (m * rz.column_sums).sum((-2, -1)) / rz.pixels
    return Affine(scale, -lo * scale, mean_u)


def projected_masks(memo: Memo, ctx: Any, masks: Tensor, rz: Resize) -> tuple[Tensor, Tensor]:
    """``(U_h^T M U_w, |M|)``: the projected ground-truth masks ``(N, h, w)`` and their areas ``(N,)``, float64;
    candidate-independent, so memoized per context (its ``memo_key``), masks and resolution."""
    key = (*rz.size, int(rz.uh.shape[1]), int(rz.uw.shape[1]), str(rz.uh.device))

    def compute() -> tuple[Tensor, Tensor]:
        m = masks.to(rz.uh.device)
        return rz.project(m), m.flatten(-2).sum(-1).to(torch.float64)

    return memo.get(ctx, (masks,), key, compute)


def check_lowres(layer_maps: Tensor, size: tuple[int, int], samples_size: tuple[int, int], metric: str) -> None:
    """Validate layer maps ``(*B, N, h, w)`` and the target ``size`` (the samples' input size)."""
    if not isinstance(layer_maps, Tensor) or not layer_maps.is_floating_point() or layer_maps.dim() < 3:
        got = tuple(layer_maps.shape) if isinstance(layer_maps, Tensor) else type(layer_maps).__name__
        raise MetricError(f"{metric}: layer maps must be a floating tensor (*B, N, h, w), got {got}")
    if tuple(int(s) for s in size) != tuple(samples_size):
        raise MetricError(f"{metric}: size {tuple(size)} differs from the samples' input size {tuple(samples_size)}")
