"""Faithfulness metrics: does the model's output follow what the heatmap says matters? All are
``cost="model"``: each candidate needs forward passes on inputs built from its own maps. Those passes are
batched across candidates, images and curve steps into chunked ``ctx.logits`` calls; the passes that do not
depend on the candidate (the clean input, a curve's all-baseline end) are memoized per context.

Common options:

- ``output``: the model score compared, ``"prob"`` (default; the target class's softmax probability, as in
  the Grad-CAM++ paper, RISE and ADCC) or ``"logit"`` (the raw target logit).
- ``space`` (masking metrics): ``"input"`` (default) multiplies the *model input* by the map, ``x ⊙ L``, as
  torchcam, pytorch-grad-cam and the ADCC reference code do (so a zero map gives the all-zero input, i.e. the
  data set's mean colour); ``"pixels"`` multiplies the RGB pixels and normalizes again (a zero map gives a
  black image).
"""

from __future__ import annotations

import hashlib
import math
import weakref
from typing import Any, ClassVar

import numpy as np
import torch
from torch import Tensor

from ._util import (
    Memo,
    check_choice,
    check_maps,
    check_number,
    chunked_target_scores,
    gaussian_blur,
    pearson,
    safe_div,
    sample_index,
)
from .base import Metric, MetricContext, MetricError, degenerate

FAMILY = "faithfulness"
"""The :attr:`~sycam.metrics.base.Metric.family` of the metrics of this module."""
OUTPUTS = ("prob", "logit")
"""The values of the ``output`` option (see the module docstring)."""
SPACES = ("input", "pixels")
"""The values of the ``space`` option of the masking metrics (see the module docstring)."""
BASELINES = ("zero", "black", "blur", "mean")
"""The values of the ``baseline`` option of the deletion/insertion curves (see ``baseline_images``)."""
CURVE_CHUNK = 64
"""Perturbed inputs built and handed to ``ctx.logits`` at once by the deletion/insertion curves."""
MAX_CACHED_FORWARDS = 1_000_000
"""Scored perturbed inputs remembered per context (about 100 bytes each); the memory is cleared beyond this."""
_MASKED_BY_MODEL: weakref.WeakKeyDictionary[Any, dict[tuple[str, str], dict[bytes, float]]] = (
    weakref.WeakKeyDictionary())
"""Target scores of masked inputs per model (held weakly) and ``(output, space)``, keyed by a digest of (image
content, label, map): shared by every masked-confidence metric object (average drop, increase in confidence,
ADCC's drop does not use it) and every workspace of that model (a race's blocks, the full synthesis split)."""


def relative_drop(clean: Tensor, masked: Tensor, output: str) -> Tensor:
    r"""Relative confidence drop :math:`\max(0, y - o) / y` (``|y|`` for logits; 0 where ``y = 0``)."""
    den = clean if output == "prob" else clean.abs()
    return safe_div(torch.relu(clean - masked), den.expand_as(masked), 0.0)


def harmonic3(a: Tensor, b: Tensor, c: Tensor) -> Tensor:
    r"""Harmonic mean :math:`3 / (1/a + 1/b + 1/c)` of values in [0, 1]; 0 when any of them is <= 0."""
    ok = (a > 0) & (b > 0) & (c > 0)
    one = torch.ones_like(a)
    inv = 1 / torch.where(ok, a, one) + 1 / torch.where(ok, b, one) + 1 / torch.where(ok, c, one)
    return torch.where(ok, 3 / inv, torch.zeros_like(a))


def forget_shared_forwards() -> None:
    """Empty the per-model store of masked-input scores (:data:`_MASKED_BY_MODEL`), e.g. so that a benchmark's
    second run starts as cold as its first."""
    _MASKED_BY_MODEL.clear()


def image_salts(samples: Any) -> list[bytes]:
    """Per sample a 128-bit BLAKE2 digest of its model input's bytes (dtype and shape included) and its label:
    the salt that names an image in the masked-input digests shared across workspaces."""
    x = samples.images.detach().contiguous().cpu()
    labels = samples.labels.detach().contiguous().cpu()
    head = f"{x.dtype}{tuple(x.shape[1:])}".encode()
    out = []
    for i in range(len(x)):
        h = hashlib.blake2b(head, digest_size=16)
        h.update(x[i].numpy().tobytes())
        h.update(labels[i].numpy().tobytes())
        out.append(h.digest())
    return out


class _ModelMetric(Metric):
    """Shared plumbing: the clean target scores (memoized per context and samples) and masked inputs."""

    cost = "model"
    family = FAMILY

    def __init__(self, output: str = "prob") -> None:
        self.output = check_choice(self.name, "output", output, OUTPUTS)
        self._clean = Memo()

    def clean_scores(self, ctx: MetricContext) -> Tensor:
        """Target scores ``(N,)`` of the unperturbed inputs (one forward per image, memoized)."""
        s = ctx.samples

        def compute() -> Tensor:
            return chunked_target_scores(ctx, len(s), lambda a, b: (s.images[a:b], s.labels[a:b]), self.output)

        return self._clean.get(ctx, (s.images, s.labels), self.output, compute)


class _MaskedConfidence(_ModelMetric):
    def __init__(self, output: str = "prob", space: str = "input") -> None:
        super().__init__(output)
        self.space = check_choice(self.name, "space", space, SPACES)
        self._forwards = Memo()
        self._salts = Memo()
        #: Masked inputs forwarded so far by this metric object (the clean inputs not included).
        self._forwarded = 0
        #: Masked (image, map) pairs asked for that took the score of a pair already forwarded (no forward).
        self._reused = 0

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_forwarded"] = state["_reused"] = 0  # copies and pickles count their own forwards
        return state

    def _masked_cache(self, ctx: MetricContext) -> tuple[dict[bytes, float], list[bytes] | None]:
        """Target scores of masked inputs already scored, by a digest of (image, map), and the salt of each
        image in that digest.

        When the context's ``memo_key`` (a :class:`~sycam.workspace.Workspace`) names its ``model``, the store is
        the model's (:data:`_MASKED_BY_MODEL`) and an image is salted by a digest of its content and label: every
        metric object of this kind (average drop and increase in confidence ask for the same masked inputs) and
        every workspace of the model share it. Otherwise (salt None: the image's index) it is shared by every
        candidate scored under the same context key and samples."""
        s = ctx.samples
        model = getattr(getattr(ctx, "memo_key", None), "model", None)
        shared = None
        if model is not None:
            try:
                shared = _MASKED_BY_MODEL.setdefault(model, {})
            except TypeError:  # not weakly referable: per context
                shared = None
        if shared is not None:
            cache = shared.setdefault((self.output, self.space), {})
            salts: list[bytes] | None = self._salts.get(ctx, (s.images, s.labels), None, lambda: image_salts(s))
        else:
            cache = self._forwards.get(ctx, (s.images, s.labels), (self.output, self.space), dict)
            salts = None
        if len(cache) > MAX_CACHED_FORWARDS:
            cache.clear()
        return cache, salts

    def masked_images(self, maps: Tensor, ctx: MetricContext) -> Tensor:
        """``x ⊙ L`` for every candidate and image: ``(*B, N, 3, H, W)`` in model-input space."""
        s = ctx.samples
        maps = maps.to(s.images.device, s.images.dtype)
        if self.space == "input":
            return s.images * maps.unsqueeze(-3)
        return s.normalize(s.pixels * maps.unsqueeze(-3))

    def masked_scores(self, maps: Tensor, ctx: MetricContext) -> Tensor:
        """Target scores ``(*B, N)`` of the masked inputs, built and scored chunk by chunk. A masked input is a
        function of (image, map) alone, so each distinct pair is forwarded once: rows are keyed by a 128-bit
        BLAKE2 digest of the map's bytes salted with the image index, and a pair already scored (by another
        candidate of this batch or an earlier one under the same context key) takes its score without a forward
        (exact: :meth:`sycam.workspace.WorkspaceContext.logits` gives an input the same output whatever is
        forwarded beside it)."""
        s = ctx.samples
        lead, n = maps.shape[:-3], len(s)
        rows = maps.reshape(-1, *maps.shape[-2:]).to(s.images.device, s.images.dtype)
        idx = sample_index(tuple(lead), n, rows.device)
        base = s.images if self.space == "input" else s.pixels
        cache, salts = self._masked_cache(ctx)
        rows_np = rows.detach().contiguous().cpu().numpy()
        salt = salts or [int(i).to_bytes(16, "little") for i in range(n)]
        keys = [hashlib.blake2b(rows_np[r].tobytes(), digest_size=16, salt=salt[i]).digest()
                for r, i in enumerate(idx.tolist())]
        todo: dict[bytes, int] = {}
        for r, key in enumerate(keys):
            if key not in cache and key not in todo:
                todo[key] = r
        picked = torch.tensor(list(todo.values()), dtype=torch.long, device=rows.device)

        def build(a: int, b: int) -> tuple[Tensor, Tensor]:
            sel = picked[a:b]
            ii = idx[sel]
            x = base[ii] * rows[sel].unsqueeze(1)
            return (x if self.space == "input" else s.normalize(x)), s.labels[ii]

        self._reused += len(keys) - len(todo)
        if todo:
            got = chunked_target_scores(ctx, len(todo), build, self.output).tolist()
            self._forwarded += len(todo)
            for key, v in zip(todo, got, strict=True):
                cache[key] = v
        out = torch.tensor([cache[k] for k in keys], dtype=torch.float32, device=rows.device)
        return out.reshape(*lead, n)


class AverageDrop(_MaskedConfidence):
    r"""Average Drop (Chattopadhay et al. 2018, Grad-CAM++), the relative form: per image

    .. math:: \mathrm{AD} = \frac{\max(0,\, y - o)}{y},

    with ``y`` the target-class score of the input ``x`` and ``o`` that of ``x ⊙ L``. In [0, 1] for
    probabilities (the paper reports it ×100); lower is better. Same as torchcam's ``ClassificationMetric``
    (``avg_drop``, with ``logits_fn=softmax``); pytorch-grad-cam's ``DropInConfidence`` is the *absolute* drop
    ``max(0, y - o)``. With ``output="logit"`` the drop is divided by ``|y|``. Cost: one forward per image
    and candidate (the clean pass is memoized).

    Reference: Chattopadhay et al., Grad-CAM++, WACV 2018,
    https://arxiv.org/abs/1710.11063
    """

    reference = (
        "Chattopadhay et al., Grad-CAM++, WACV 2018 — "
        "https://arxiv.org/abs/1710.11063"
    )

    name = "average_drop"
    summary = "relative drop of the target probability when the input is masked by the map"
    higher_is_better = False

    def worst(self) -> float:
        """1 (the whole probability lost) for ``output="prob"``; ``+inf`` for logits (unbounded)."""
        return 1.0 if self.output == "prob" else math.inf

    @property
    def score_range(self) -> tuple[float, float] | None:
        """``(0, 1)`` per image for ``output="prob"`` (:mod:`sycam.synth.racing` races it); None for logits."""
        return (0.0, 1.0) if self.output == "prob" else None

    def score(self, maps: Tensor, ctx: MetricContext) -> Tensor:
        r"""Per image :math:`\max(0, y - o) / y` (``|y|`` for logits; 0 where ``y = 0``), ``(*B, N)``; lower is
        better."""
        maps = check_maps(maps, ctx, self.name)
        clean = self.clean_scores(ctx)
        return relative_drop(clean, self.masked_scores(maps, ctx), self.output).to(maps.device)


class IncreaseInConfidence(_MaskedConfidence):
    r"""Increase in Confidence (Chattopadhay et al. 2018, Grad-CAM++): per image the indicator

    .. math:: \mathrm{IC} = \mathbb{1}[\,o > y\,],

    with ``y``, ``o`` as in :class:`AverageDrop` (strictly greater); its mean over images is the paper's
    rate. Higher is better. Same as torchcam's ``conf_increase`` and pytorch-grad-cam's
    ``IncreaseInConfidence``.

    Reference: Chattopadhay et al., Grad-CAM++, WACV 2018,
    https://arxiv.org/abs/1710.11063
    """

    reference = (
        "Chattopadhay et al., Grad-CAM++, WACV 2018 — "
        "https://arxiv.org/abs/1710.11063"
    )

    name = "increase_in_confidence"
    summary = "whether masking the input by the map raises the target probability"
    higher_is_better = True

    def worst(self) -> float:
        """0: no increase."""
        return 0.0

    @property
    def score_range(self) -> tuple[float, float]:
        """``(0, 1)``: each image scores 0 or 1 (:mod:`sycam.synth.racing` races it)."""
        return (0.0, 1.0)

    def score(self, maps: Tensor, ctx: MetricContext) -> Tensor:
        r"""Per image :math:`\mathbb{1}[o > y]` (1.0 or 0.0), ``(*B, N)``; higher is better."""
        maps = check_maps(maps, ctx, self.name)
        clean = self.clean_scores(ctx)
        return (self.masked_scores(maps, ctx) > clean).to(maps.dtype).to(maps.device)


class ADCC(_MaskedConfidence):
    r"""ADCC (Poppi, Cornia, Baraldi, Cucchiara 2021, "Revisiting the evaluation of class activation mapping
    for explainability"): per image the harmonic mean

    .. math:: \mathrm{ADCC} = 3 \left( \frac{1}{\mathrm{Coh}} + \frac{1}{1 - \mathrm{Com}}
              + \frac{1}{1 - \mathrm{AD}} \right)^{-1},

    - ``AD``: the relative Average Drop of ``x ⊙ L`` (as :class:`AverageDrop`, softmax probability);
    - ``Com``: the L1 complexity, the mean of ``|L|`` over pixels (as :class:`~.complexity.Complexity`);
    - ``Coh``: coherency, the Pearson correlation of ``L`` and the map of the *same* CAM recomputed on the
      masked input, ``L' = CAM(x ⊙ L)`` (via ``ctx.explain``), over all pixels, rescaled to [0, 1]:
      ``Coh = (ρ(L, L') + 1) / 2``.

    In [0, 1], higher is better; 0 when any term is 0. Where ``ρ`` is undefined (``L`` or ``L'`` constant)
    coherency is 0, as in the authors' reference code (pytorch-grad-cam's ``Coherency`` gives 0.5 there).
    The authors' repository computes ``3 * (1/Coh + ...)`` without the final inverse; we follow the paper.
    Cost: one forward per image and candidate plus one re-explanation (forward and backward) of ``x ⊙ L``.

    Reference: Poppi et al., Revisiting the Evaluation of Class Activation Mapping, CVPR Workshops 2021,
    https://arxiv.org/abs/2104.10252
    """

    reference = (
        "Poppi et al., Revisiting the Evaluation of Class Activation Mapping, CVPR Workshops 2021 — "
        "https://arxiv.org/abs/2104.10252"
    )

    name = "adcc"
    summary = "harmonic mean of coherency, 1 - complexity and 1 - average drop (Poppi et al. 2021)"
    higher_is_better = True

    def worst(self) -> float:
        """0: a term at its worst."""
        return 0.0

    def components(self, maps: Tensor, ctx: MetricContext) -> dict[str, Tensor]:
        """The three ADCC terms and ADCC itself, each ``(*B, N)``."""
        maps = check_maps(maps, ctx, self.name)
        masked = self.masked_images(maps, ctx)  # (*B, N, 3, H, W)
        clean = self.clean_scores(ctx)
        flat = masked.reshape(-1, *masked.shape[-3:])
        labels = ctx.samples.labels.repeat(flat.shape[0] // len(ctx.samples))
        scores = chunked_target_scores(ctx, flat.shape[0], lambda a, b: (flat[a:b], labels[a:b]), self.output)
        drop = relative_drop(clean, scores.reshape(maps.shape[:-2]), self.output).to(maps.device)
        again = ctx.explain(masked)
        if not isinstance(again, Tensor) or again.shape != maps.shape:
            got = tuple(again.shape) if isinstance(again, Tensor) else type(again).__name__
            raise MetricError(f"{self.name}: ctx.explain returned {got}, expected maps of shape {tuple(maps.shape)}")
        again = again.to(maps.device, maps.dtype)
        rho = pearson(maps.flatten(-2), again.flatten(-2), undefined=-1.0)
        coherency = (rho + 1) / 2
        complexity = maps.abs().mean((-2, -1))
        adcc = harmonic3(coherency, 1 - complexity, 1 - drop)
        return {"coherency": coherency, "complexity": complexity, "average_drop": drop, "adcc": adcc}

    def score(self, maps: Tensor, ctx: MetricContext) -> Tensor:
        r"""Per image :math:`3\,(1/\mathrm{Coh} + 1/(1 - \mathrm{Com}) + 1/(1 - \mathrm{AD}))^{-1}` (0 when a term
        is 0), ``(*B, N)`` in [0, 1]; higher is better. See :meth:`components`."""
        return self.components(maps, ctx)["adcc"]


class _PerturbationCurve(_ModelMetric):
    """RISE-style deletion/insertion curves; subclasses set ``_deletion``.

    Reference: Petsiuk et al., RISE: Randomized Input Sampling for Explanation, BMVC 2018,
    https://arxiv.org/abs/1806.07421
    """

    reference = (
        "Petsiuk et al., RISE: Randomized Input Sampling for Explanation, BMVC 2018 — "
        "https://arxiv.org/abs/1806.07421"
    )

    _deletion: ClassVar[bool]

    def __init__(self, steps: int = 20, baseline: str = "zero", output: str = "prob", blur_sigma: float = 5.0) -> None:
        self.steps = check_number(self.name, "steps", steps, low=1, integer=True)
        self.baseline = check_choice(self.name, "baseline", baseline, BASELINES)
        super().__init__(output)
        self.blur_sigma = float(check_number(self.name, "blur_sigma", blur_sigma, low=0.0, low_open=True))
        self._ends = Memo()
        self._forwards = Memo()
        self._buf: Tensor | None = None
        #: Perturbed inputs forwarded so far by this metric object (the end points not included).
        self._forwarded = 0

    def baseline_images(self, samples: Any) -> Tensor:
        """The baseline ``(N, 3, H, W)`` in model-input space: ``zero`` (model input 0, the data set's mean
        colour), ``black`` (RGB 0), ``mean`` (each image's per-channel mean) or ``blur`` (each image blurred
        by a Gaussian of ``blur_sigma`` px, kernel ``2⌈3σ⌉+1``, reflect padding)."""
        x = samples.images
        if self.baseline == "zero":
            return torch.zeros_like(x)
        if self.baseline == "black":
            return samples.normalize(torch.zeros_like(x)).expand_as(x).contiguous()
        if self.baseline == "mean":
            return x.mean((-2, -1), keepdim=True).expand_as(x).contiguous()
        return gaussian_blur(x, self.blur_sigma)

    def counts(self, pixels: int) -> list[int]:
        """Pixels perturbed at each of the ``steps + 1`` curve points: ``c_k = floor(k·P / steps)``."""
        return [k * pixels // self.steps for k in range(self.steps + 1)]

    def _endpoints(self, ctx: MetricContext) -> tuple[Tensor, Tensor, Tensor]:
        s = ctx.samples

        def compute() -> tuple[Tensor, Tensor, Tensor]:
            base = self.baseline_images(s)
            clean = self.clean_scores(ctx)
            on_base = chunked_target_scores(ctx, len(s), lambda a, b: (base[a:b], s.labels[a:b]), self.output)
            return base, clean, on_base

        return self._ends.get(ctx, (s.images, s.labels), (self.output, self.baseline, self.blur_sigma), compute)

    def step_bins(self, maps: Tensor) -> Tensor:
        """The curve step at which each pixel is perturbed, ``(*B, N, H*W)`` (uint8 when ``steps < 256``):
        ``k`` for the pixel of rank ``r`` (decreasing map value, ties in raster order) with
        ``c_{k-1} <= r < c_k``. The whole curve, hence the score, is a function of these bins."""
        h, w = maps.shape[-2:]
        p = h * w
        rows = maps.reshape(-1, p)
        order = torch.sort(rows, dim=-1, descending=True, stable=True).indices
        ranks = torch.empty_like(order).scatter_(-1, order, torch.arange(p, device=rows.device).expand_as(order))
        counts = torch.tensor(self.counts(p), device=rows.device)
        bins = torch.searchsorted(counts, ranks, right=True)
        dtype = torch.uint8 if self.steps < 256 else torch.int16
        return bins.to(dtype).reshape(*maps.shape[:-2], p)

    def equivalence_key(self, maps: Tensor) -> Tensor:
        """``(*B, N, H*W)``: candidates ``b`` and ``b'`` with equal ``key[b]`` and ``key[b']`` have equal
        per-image scores, exactly (see :meth:`Metric.equivalence_key`). The key is the per-pixel step bin of
        :meth:`step_bins`; a degenerate map's row is all zeros (it scores :meth:`worst`)."""
        bins = self.step_bins(maps.nan_to_num(0.0))
        return bins.masked_fill(degenerate(maps)[..., None], 0)

    def _perturbed_cache(self, ctx: MetricContext) -> dict[bytes, float]:
        """Target scores of perturbed inputs already scored, by a digest of (image, perturbed pixel set);
        shared by every candidate scored under the same context key and samples."""
        s = ctx.samples
        cache: dict[bytes, float] = self._forwards.get(
            ctx, (s.images, s.labels), (self.output, self.baseline, self.blur_sigma, self.steps), dict
        )
        if len(cache) > MAX_CACHED_FORWARDS:
            cache.clear()
        return cache

    def curves(self, maps: Tensor, ctx: MetricContext) -> tuple[Tensor, Tensor]:
        """The fractions ``(steps + 1,)`` of perturbed pixels and the target scores ``(*B, N, steps + 1)``
        along the curve. Pixels are ranked by decreasing map value; ties keep raster order (stable sort).

        Each inner point ``(image i, step k)`` is the model's score on image ``i`` with the pixel set
        ``{p : bin(p) <= k}`` perturbed. Points are keyed by a 128-bit BLAKE2 digest of ``i`` and that set; a point
        already scored (by another candidate, another image row or an earlier call under the same context
        key) is not forwarded again."""
        maps = check_maps(maps, ctx, self.name)
        s = ctx.samples
        h, w = maps.shape[-2:]
        p = h * w
        if self.steps > p:
            raise MetricError(f"{self.name}: steps ({self.steps}) exceeds the number of pixels ({p})")
        base, clean, on_base = self._endpoints(ctx)
        lead, n = maps.shape[:-3], len(s)
        bins = self.step_bins(maps.to(s.images.device)).reshape(-1, p)  # (R, P)
        rows = bins.shape[0]
        idx = sample_index(tuple(lead), n, bins.device)
        inner = self.steps - 1
        cache = self._perturbed_cache(ctx)
        # One digest per (row, inner step): the packed bits of the perturbed set.
        bins_np = bins.cpu().numpy()
        idx_np = idx.cpu().tolist()
        salts = [int(i).to_bytes(16, "little") for i in idx_np]  # the image index enters every digest
        keys: list[bytes] = []
        todo: dict[bytes, tuple[int, int]] = {}
        for r in range(rows):
            b = bins_np[r]
            for k in range(1, inner + 1):
                key = hashlib.blake2b(np.packbits(b <= k).tobytes(), digest_size=16, salt=salts[r]).digest()
                keys.append(key)
                if key not in cache and key not in todo:
                    todo[key] = (r, k)
        jobs = list(todo.items())
        shape = (min(len(jobs), CURVE_CHUNK), *s.images.shape[1:])
        buf = self._buffer(shape, s.images)

        def build(a: int, b: int) -> tuple[Tensor, Tensor]:
            out = buf[: b - a]
            labels = []
            for j, (_, (r, k)) in enumerate(jobs[a:b]):
                i = idx_np[r]
                top = (bins[r] <= k).view(1, h, w)
                x, z = s.images[i], base[i]
                if self._deletion:
                    torch.where(top, z, x, out=out[j])
                else:
                    torch.where(top, x, z, out=out[j])
                labels.append(i)
            return out, s.labels[torch.tensor(labels, device=s.labels.device)]

        if jobs:
            got = chunked_target_scores(ctx, len(jobs), build, self.output, chunk=CURVE_CHUNK).tolist()
            self._forwarded += len(jobs)
            for (key, _), v in zip(jobs, got, strict=True):
                cache[key] = v
        start, end = (clean, on_base) if self._deletion else (on_base, clean)
        mid = torch.tensor([cache[key] for key in keys], dtype=torch.float32).reshape(rows, inner)
        mid = mid.to(start.device)
        first = start.repeat(rows // n).unsqueeze(1)
        last = end.repeat(rows // n).unsqueeze(1)
        curve = torch.cat([first, mid, last], dim=1).reshape(*lead, n, self.steps + 1)
        counts = torch.tensor(self.counts(p), device=curve.device)
        fractions = counts.to(curve.dtype) / p
        return fractions.to(maps.device), curve.to(maps.device)

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_buf"] = None  # a scratch buffer; copies and pickles do not carry it
        return state

    def _buffer(self, shape: tuple[int, ...], like: Tensor) -> Tensor:
        """A reusable input buffer (allocating ~40 MB per chunk afresh cost more system than user time)."""
        buf = getattr(self, "_buf", None)
        if (
            buf is None
            or buf.dtype != like.dtype
            or buf.device != like.device
            or buf.shape[1:] != shape[1:]
            or (buf.shape[0] < shape[0])
        ):
            buf = torch.empty((max(1, shape[0]), *shape[1:]), dtype=like.dtype, device=like.device)
            self._buf = buf
        return buf

    def score(self, maps: Tensor, ctx: MetricContext) -> Tensor:
        """Per image the trapezoidal area under the target score over the perturbed fraction in [0, 1]
        (:meth:`curves`), ``(*B, N)``; lower is better for deletion, higher for insertion."""
        fractions, curve = self.curves(maps, ctx)
        return torch.trapezoid(curve, fractions, dim=-1).to(maps.dtype)


class DeletionAUC(_PerturbationCurve):
    r"""Deletion AUC (Petsiuk et al. 2018, RISE, https://arxiv.org/abs/1806.07421): replace the pixels in
    decreasing order of ``L`` by a baseline in ``steps`` equal steps (``c_k = ⌊kP/steps⌋`` pixels at step
    ``k``) and integrate the target-class score over the deleted fraction with the trapezoidal rule,

    .. math:: \mathrm{Del} = \int_0^1 f_c\big(x^{(t)}\big)\, dt, \quad x^{(t)} = \text{top-}tP
              \text{ pixels of } L \text{ replaced by the baseline}.

    Lower is better (the score should collapse quickly). Defaults: ``steps=20`` (as torchcam),
    ``baseline="zero"`` (model input 0, RISE's deletion substrate), ``output="prob"``. Ties in ``L`` keep
    raster order. Matches torchcam's ``DeletionInsertionMetric`` (``deletion_auc``) when ``P`` is a multiple of
    ``steps`` (torchcam uses ``⌈P/steps⌉``-pixel steps, so its last step is shorter otherwise). Cost: about
    ``steps - 1`` forwards per image and candidate."""

    name = "deletion_auc"
    summary = "area under the target probability as the top pixels are deleted (RISE)"
    higher_is_better = False
    _deletion = True

    def worst(self) -> float:
        """1 (the probability never drops) for ``output="prob"``; ``+inf`` for logits (unbounded)."""
        return 1.0 if self.output == "prob" else math.inf

    def __init__(self, steps: int = 20, baseline: str = "zero", output: str = "prob", blur_sigma: float = 5.0) -> None:
        super().__init__(steps=steps, baseline=baseline, output=output, blur_sigma=blur_sigma)


class InsertionAUC(_PerturbationCurve):
    r"""Insertion AUC (Petsiuk et al. 2018, RISE, https://arxiv.org/abs/1806.07421): start from the baseline
    and restore the input's pixels in decreasing order of ``L`` in ``steps`` equal steps; the area under the
    target-class score curve over the inserted fraction (trapezoidal rule),

    .. math:: \mathrm{Ins} = \int_0^1 f_c\big(x^{(t)}\big)\, dt, \quad x^{(t)} = \text{baseline with the top-}tP
              \text{ pixels of } L \text{ restored}.

    Higher is better. Defaults: ``steps=20``, ``baseline="blur"`` (RISE
    inserts into a blurred copy; we blur with a Gaussian of ``blur_sigma=5`` px, kernel ``2⌈3σ⌉+1`` with
    reflect padding, where RISE uses an 11-tap kernel), ``output="prob"``. Otherwise as
    :class:`DeletionAUC`."""

    name = "insertion_auc"
    summary = "area under the target probability as the top pixels are inserted into a blurred copy (RISE)"
    higher_is_better = True
    _deletion = False

    def worst(self) -> float:
        """0 (the probability never rises) for ``output="prob"``; ``-inf`` for logits (unbounded)."""
        return 0.0 if self.output == "prob" else -math.inf

    def __init__(self, steps: int = 20, baseline: str = "blur", output: str = "prob", blur_sigma: float = 5.0) -> None:
        super().__init__(steps=steps, baseline=baseline, output=output, blur_sigma=blur_sigma)
