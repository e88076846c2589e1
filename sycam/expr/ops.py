"""The operator table of the CAM expression language.

Every value an expression computes has one of four *kinds*:

- ``scalar`` — a constant number (shape ``()``),
- ``vector`` — one number per image and channel, stored as ``(N, K, 1, 1)``,
- ``map``    — one number per image, channel and layer position, stored as ``(N, K, h, w)``,
- ``heatmap`` — a finished channel sum, one number per image and position, stored as ``(N, h, w)``: the value of
  ``cam(α) = norm(relu(Σ_k α_k A_k))`` and of the final-map operators over it (``sharpen``, ``thresh``,
  ``blur``, ``cmul``, ``cmean``), which run after the channel sum and before the last normalization.

Storing vectors with two trailing singleton axes makes broadcasting between a channel vector and a map
plain tensor broadcasting. Each operator declares its arity, the kinds it accepts and returns, whether
it is commutative (so that the enumerator does not build ``a + b`` and ``b + a``), its torch
implementation and its LaTeX rendering.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import IntEnum

import torch
from torch import Tensor


class Kind(IntEnum):
    """Kind of a value; the order is the broadcasting order (scalar < vector < map)."""

    SCALAR = 0
    VECTOR = 1
    MAP = 2
    HEATMAP = 3  #: a finished channel sum (N, h, w); never broadcast with the others

    def __str__(self) -> str:
        return {0: "scalar", 1: "channel vector", 2: "map", 3: "heatmap"}[int(self)]


def safe_div(x: Tensor, y: Tensor) -> Tensor:
    r"""Safe division: :math:`x / y` where that is finite, and 0 where it is not (``y == 0``, or an overflow).

    Never produces ``inf`` or ``NaN`` from finite inputs, and equals plain division everywhere else
    (Grad-CAM++'s denominators are ~1e-6, so no ε is added: pytorch-grad-cam's own ε is part of the
    Grad-CAM++ expression instead).
    """
    return torch.nan_to_num(torch.as_tensor(x) / torch.as_tensor(y), nan=0.0, posinf=0.0, neginf=0.0)


NORM_EPS = 1e-7
"""ε of the heatmap normalization (pytorch-grad-cam's)."""


def normalize(maps: Tensor) -> Tensor:
    """Min-max normalize each map over its last two axes: ``(m - min) / (max - min + 1e-7)``."""
    flat = maps.flatten(-2)
    lo = flat.amin(-1, keepdim=True).unsqueeze(-1)
    hi = flat.amax(-1, keepdim=True).unsqueeze(-1)
    return (maps - lo) / (hi - lo + NORM_EPS)


CHANNEL_ROWS = 16
"""Candidates per matrix product of :func:`channel_sum`: every product has this shape, whatever the batch."""


def channel_sum(weights: Tensor, acts: Tensor) -> Tensor:
    r"""The channel form :math:`\sum_k \alpha_{b,n,k} A_{n,k}` of a batch of candidates: weights ``(B, N, K)``,
    activations ``(N, K, h, w)`` → ``(B, N, h, w)``.

    One matrix product per image and :data:`CHANNEL_ROWS` candidates, ``W_n (CHANNEL_ROWS, K) @ A_n (K, h·w)``,
    the last block padded with zero rows, both operands starting on a 64-byte boundary. Every product has the
    same shape and sees one image only, so a candidate's map does not depend on the batch it is scored in (its
    position in a block, the batch size) nor on the images beside it. The last point is why the products are
    not batched over the images (``bmm``/``einsum``): on CPUs where MKL takes its SSE/AVX2 paths, one image's
    result then changes in the last bit with the number of images in the call, which made a search sharded over
    workers (each holding some of the images) differ from the local one in the ninth digit (issue 22;
    tests/synth/test_batch_invariance.py reproduces it with ``MKL_ENABLE_INSTRUCTIONS=SSE4_2``). One candidate alone
    costs what a block of them does.

    >>> a = torch.rand(2, 3, 4, 4); w = torch.rand(5, 2, 3)
    >>> torch.equal(channel_sum(w, a)[3], channel_sum(w[3:4], a)[0])
    True
    """
    b, n, k = weights.shape
    flat = acts.reshape(n, k, -1)
    if flat.dtype != weights.dtype:
        weights = weights.to(flat.dtype)
    rows = CHANNEL_ROWS
    pad = (-b) % rows
    w = weights.permute(1, 0, 2)  # (N, B, K)
    if pad:
        w = torch.cat([w, w.new_zeros(n, pad, k)], 1)
    images = [_aligned(flat[i]) for i in range(n)]
    out = torch.stack([
        torch.cat([_aligned(w[i, j:j + rows].contiguous()) @ images[i] for j in range(0, b + pad, rows)])
        for i in range(n)
    ])[:, :b]  # (N, B, h·w)
    return out.permute(1, 0, 2).reshape(b, n, *acts.shape[-2:])


def _aligned(t: Tensor) -> Tensor:
    """``t``, or a copy of it when its data do not start on a 64-byte boundary (the CPU allocator's alignment):
    BLAS kernels may take another code path, with other rounding, for an operand that starts elsewhere."""
    return t if t.device.type != "cpu" or t.data_ptr() % 64 == 0 else t.clone()


def saliency(weights: Tensor, acts: Tensor) -> Tensor:
    r"""Raw layer-resolution saliency :math:`\sum_k w_k A_k` for weights ``(*B, N, K, 1|h, 1|w)`` or a
    0-d constant, and activations ``(N, K, h, w)``; returns ``(*B, N, h, w)``. Channel vectors go through
    :func:`channel_sum` (one candidate or many: the same numbers)."""
    if weights.dim() == 0:
        return weights * acts.sum(1)
    if weights.shape[-2:] == (1, 1):
        n, k = acts.shape[:2]
        lead = weights.shape[:-4]
        w = torch.broadcast_to(weights[..., 0, 0], (*lead, n, k)).reshape(-1, n, k)
        return channel_sum(w, acts).reshape(*lead, n, *acts.shape[-2:])
    return (weights * acts).sum(-3)


def cam(weights: Tensor, acts: Tensor) -> Tensor:
    r"""The heatmap of channel or pixel weights: :math:`\mathrm{norm}(\mathrm{relu}(\sum_k w_k A_k))`
    ``(*B, N, h, w)`` (the first half of every render, :func:`sycam.heatmap.layer_maps`)."""
    return _finished(saliency(weights, acts))


def on_grid(maps: Tensor, size: tuple[int, int]) -> Tensor:
    """Heatmaps ``(*B, N, h, w)`` resized to ``size`` bilinearly with half-pixel centres (``align_corners=False``),
    the rule of the final resize; unchanged when already of that size."""
    if tuple(maps.shape[-2:]) == tuple(size):
        return maps
    lead = maps.shape[:-2]
    m = torch.nn.functional.interpolate(maps.reshape(-1, 1, *maps.shape[-2:]), size=tuple(size), mode="bilinear",
                                        align_corners=False)
    return m.reshape(*lead, *size)


def meet(x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
    """Two heatmaps on one grid: the one with fewer positions is resized (:func:`on_grid`) to the other's."""
    hx, wx = x.shape[-2:]
    hy, wy = y.shape[-2:]
    if (hx, wx) == (hy, wy):
        return x, y
    if hx * wx >= hy * wy:
        return x, on_grid(y, (int(hx), int(wx)))
    return on_grid(x, (int(hy), int(wy))), y


def _finished(x: Tensor) -> Tensor:
    return normalize(torch.relu(x))


def _sharpen(c: Tensor, p: Tensor) -> Tensor:
    return _finished(c ** p)


def _thresh(c: Tensor, q: Tensor) -> Tensor:
    flat = c.flatten(-2)
    cut = torch.quantile(flat, float(q), dim=-1, keepdim=True).unsqueeze(-1)
    return _finished(torch.where(c >= cut, c, torch.zeros_like(c)))


def gaussian_kernel(sigma: float) -> Tensor:
    r"""The normalized 1-d Gaussian :math:`g_t \propto e^{-t^2 / 2\sigma^2}`, :math:`|t| \le \lceil 3\sigma \rceil`."""
    radius = max(1, int(torch.ceil(torch.tensor(3.0 * sigma))))
    t = torch.arange(-radius, radius + 1, dtype=torch.float64)
    g = torch.exp(-(t * t) / (2 * sigma * sigma))
    return g / g.sum()


def _blur(c: Tensor, sigma: Tensor) -> Tensor:
    g = gaussian_kernel(float(sigma)).to(c.dtype).to(c.device)
    r = (g.numel() - 1) // 2
    lead = c.shape[:-2]
    x = c.reshape(-1, 1, *c.shape[-2:])
    pad_h, pad_w = min(r, x.shape[-2] - 1), min(r, x.shape[-1] - 1)
    x = torch.nn.functional.pad(x, (pad_w, pad_w, pad_h, pad_h), mode="replicate") if pad_h or pad_w else x
    if r > pad_w or r > pad_h:  # a map narrower than the kernel: replicate more
        x = torch.nn.functional.pad(x, (r - pad_w, r - pad_w, r - pad_h, r - pad_h), mode="replicate")
    x = torch.nn.functional.conv2d(x, g.view(1, 1, 1, -1))
    x = torch.nn.functional.conv2d(x, g.view(1, 1, -1, 1))
    return _finished(x.reshape(*lead, *c.shape[-2:]))


def _cmul(x: Tensor, y: Tensor) -> Tensor:
    a, b = meet(x, y)
    return _finished(a * b)


def _cmean(x: Tensor, y: Tensor) -> Tensor:
    a, b = meet(x, y)
    return _finished((a + b) / 2)


def _spatial_max(x: Tensor) -> Tensor:
    return x.amax(dim=(-2, -1), keepdim=True)


def _minmax_channels(x: Tensor) -> Tensor:
    lo = x.amin(dim=-3, keepdim=True)
    hi = x.amax(dim=-3, keepdim=True)
    return safe_div(x - lo, hi - lo)


@dataclass(frozen=True)
class Op:
    """One operator of the language: its name, arity, torch implementation, LaTeX template and typing form.

    >>> from sycam.expr import OPS
    >>> OPS["mean"].arity, OPS["mean"].form, OPS["+"].infix, OPS["+"].commutative
    (1, 'reduce', '+', True)
    """

    name: str
    arity: int
    fn: Callable[..., Tensor]
    latex: str  # format string with {0}, {1} for the operands
    form: str
    """``"elementwise"`` (result kind = broadcast of the operands), ``"reduce"`` (map → vector),
    ``"channel"`` (vector → vector), ``"lift"`` (``cam``: weights → heatmap), ``"final"`` (heatmap and a constant
    parameter → heatmap), ``"fuse"`` (two heatmaps → heatmap, met on the finer grid)."""
    commutative: bool = False
    infix: str | None = None
    precedence: int = 100  # infix binding strength; functions bind tightest
    doc: str = ""
    param: Callable[[float], bool] | None = None
    """``final`` operators: which constant parameters are valid (e.g. a quantile in [0, 1))"""
    param_doc: str = ""

    def result_kind(self, kinds: tuple[Kind, ...]) -> Kind | None:
        """Kind of the result for operand kinds ``kinds``, or ``None`` if they are not accepted."""
        if self.form in ("lift", "final", "fuse"):
            return _heatmap_kind(self.form, kinds)
        if Kind.HEATMAP in kinds:
            return None
        if self.form == "elementwise":
            return max(kinds)
        if self.form == "reduce":
            return Kind.VECTOR if kinds[0] == Kind.MAP else None
        if self.form == "channel":
            return Kind.VECTOR if kinds[0] == Kind.VECTOR else None
        raise AssertionError(self.form)

    def expects(self) -> str:
        """Human description of the operand kinds, for error messages."""
        return {"elementwise": "numbers, channel vectors or maps", "reduce": "a map",
                "channel": "a channel vector", "lift": "channel weights (a number, channel vector or map)",
                "final": f"a heatmap and a constant {self.param_doc}", "fuse": "two heatmaps"}[self.form]

    def accepts(self, value: float) -> bool:
        """Whether ``value`` is a valid constant parameter of this (``final``) operator."""
        return self.param is None or bool(self.param(float(value)))


def _heatmap_kind(form: str, kinds: tuple[Kind, ...]) -> Kind | None:
    if form == "lift":
        return Kind.HEATMAP if kinds[0] != Kind.HEATMAP else None
    if form == "final":
        return Kind.HEATMAP if kinds == (Kind.HEATMAP, Kind.SCALAR) else None
    return Kind.HEATMAP if kinds == (Kind.HEATMAP, Kind.HEATMAP) else None


def _positive(x: float) -> bool:
    return x > 0


def _fraction(x: float) -> bool:
    return 0 <= x < 1


OPS: dict[str, Op] = {
    op.name: op
    for op in [
        Op("+", 2, torch.add, r"{0} + {1}", "elementwise", True, "+", 1, "sum"),
        Op("-", 2, torch.sub, r"{0} - {1}", "elementwise", False, "-", 1, "difference"),
        Op("*", 2, torch.mul, r"{0} \cdot {1}", "elementwise", True, "*", 2, "product"),
        Op("/", 2, safe_div, r"\frac{{{0}}}{{{1}}}", "elementwise", False, "/", 2,
           "safe division: x / y, 0 where that is not finite (y = 0)"),
        Op("relu", 1, torch.relu, r"\mathrm{{relu}}\left({0}\right)", "elementwise", doc="max(x, 0)"),
        Op("abs", 1, torch.abs, r"\left|{0}\right|", "elementwise", doc="|x|"),
        Op("sq", 1, torch.square, r"\left({0}\right)^{{2}}", "elementwise", doc="x²"),
        Op("cube", 1, lambda x: x * x * x, r"\left({0}\right)^{{3}}", "elementwise", doc="x³"),
        Op("neg", 1, torch.neg, r"-\left({0}\right)", "elementwise", doc="−x"),
        Op("mean", 1, lambda x: x.mean(dim=(-2, -1), keepdim=True), r"\operatorname{{mean}}_{{ij}}\,{0}",
           "reduce", doc="spatial mean of each channel: (1/hw) Σ_ij x_kij"),
        Op("sum", 1, lambda x: x.sum(dim=(-2, -1), keepdim=True), r"\sum_{{ij}} {0}", "reduce",
           doc="spatial sum of each channel: Σ_ij x_kij"),
        Op("max", 1, _spatial_max, r"\max_{{ij}} {0}", "reduce", doc="spatial maximum of each channel"),
        Op("softmax", 1, lambda x: torch.softmax(x, dim=-3), r"\operatorname{{softmax}}_k\left({0}\right)",
           "channel", doc="softmax over channels: exp(x_k) / Σ_j exp(x_j)"),
        Op("minmax", 1, _minmax_channels, r"\operatorname{{minmax}}_k\left({0}\right)", "channel",
           doc="(x_k − min_j x_j) / (max_j x_j − min_j x_j) over channels"),
        # final-map operators: on heatmaps H (N, h, w) ≥ 0, after the channel sum; each result is norm(relu(·))
        Op("cam", 1, cam, r"\operatorname{{cam}}\left({0}\right)", "lift",
           doc="the heatmap of weights α: norm(relu(Σ_k α_k A_k)) at α's layer"),
        Op("sharpen", 2, _sharpen, r"\left({0}\right)^{{{1}}}", "final", doc="norm(H^p): power p > 0 of the heatmap",
           param=_positive, param_doc="p > 0"),
        Op("thresh", 2, _thresh, r"\operatorname{{thresh}}_{{{1}}}\left({0}\right)", "final",
           doc="norm(H · [H ≥ quantile_q(H)]): keeps the positions at or above the q-quantile", param=_fraction,
           param_doc="q in [0, 1)"),
        Op("blur", 2, _blur, r"\operatorname{{blur}}_{{{1}}}\left({0}\right)", "final",
           doc="norm(g_σ ∗ H): separable Gaussian of σ grid cells (radius ⌈3σ⌉, edges replicated)",
           param=_positive, param_doc="σ > 0"),
        Op("cmul", 2, _cmul, r"{0} \odot {1}", "fuse", True,
           doc="norm(H₁ ⊙ H₂), met on the finer grid (bilinear, half-pixel centres)"),
        Op("cmean", 2, _cmean, r"\tfrac{{1}}{{2}}\left({0} + {1}\right)", "fuse", True,
           doc="norm((H₁ + H₂) / 2), met on the finer grid (multi-layer fusion)"),
    ]
}
"""Every operator by name. ``cam`` needs the activations of its argument's layer, so :func:`sycam.expr.evaluate`
calls it as ``cam(α, A)``."""

HEATMAP_OPS = frozenset(n for n, op in OPS.items() if op.form in ("lift", "final", "fuse"))
"""The operators that make or transform heatmaps (the final-map operators and ``cam``)."""

FUNCTIONS = {name for name, op in OPS.items() if op.infix is None}
INFIX = {op.infix: op for op in OPS.values() if op.infix is not None}
