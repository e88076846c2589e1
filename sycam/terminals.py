r"""Terminal extraction: what a CNN computed at the target layer, cached per image batch.

For images :math:`x_n`, target scores :math:`y_n = y_{c_n}(x_n)` and target-layer activations
:math:`A_n \in \mathbb{R}^{K\times h\times w}`:

- ``A`` — activations, one forward pass;
- ``G`` — :math:`\partial y_n / \partial A_n`, one backward pass (``torch.autograd.grad``, so parameter
  ``.grad`` is never touched);
- ``S`` — Score-CAM channel scores :math:`S_{nk} = y_{c_n}(x_n \odot M_{nk})` with
  :math:`M_{nk} = \mathrm{minmax}(\mathrm{up}(A_{nk}))`, upsampled bilinearly with ``align_corners=True``
  and normalized as :math:`(M - \min M) / (\max M - \min M + 10^{-8})` (as pytorch-grad-cam). With
  ``score_top_k`` only the k channels of highest mean activation are scored per image; every other
  channel gets the score of the fully masked input :math:`y_{c_n}(x_n \odot 0)`, i.e. it is treated as a
  channel whose mask is empty (which is exactly what a constant channel's mask is, so those are
  never run one by one);
- ``D`` — Ablation-CAM drops :math:`D_{nk} = (y_n - y_{c_n}[A_{nk} := a_n]) / y_n`, where the ablation value
  :math:`a_n` is 0 when :math:`\min A_n = 0` and :math:`\min A_n - 10^7` otherwise (as pytorch-grad-cam),
  computed by running **only the part of the network after the target layer** (the graph is split with
  ``torch.fx``; if the model cannot be traced, the whole network is rerun with the layer's output
  replaced).

The no-grad forwards of S and D (thousands of them) run, on the CPU, through an inference-optimized copy of
the network (:func:`inference_forward`: traced, frozen, BatchNorm folded into the convolutions, oneDNN
layouts), used only after it was checked to agree with the plain network to within 1e-5 of the output's
scale on the first batch; otherwise the plain network runs. Every long extraction shows progress with an
ETA, and S announces its cost (forwards) before it starts.

With ``ExtractOptions.reshape`` (pytorch-grad-cam's ``reshape_transform``, :mod:`sycam.transforms`) the layer's
output is mapped to ``(N, K, h, w)`` in the capture hook: ``A`` is the reshaped output, ``G`` the reshaped gradient
with respect to the raw output, ``S`` masks with the reshaped maps, and ``D`` ablates the raw output where each map
channel comes from. Every captured map is checked to be ``(N, K, h, w)`` (:func:`~sycam.transforms.check_map`).

Extraction is a pure function of (model, layer, images, targets) → tensors, so it can be sharded by image.
Hooks are always removed and the model's mode restored, also on errors and under ``torch.no_grad()``.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ._progress import progress
from ._torch import module_device
from .capture import (
    Captured,
    announce,
    capture_output,
    chunks,
    eval_mode,
    forward_backward,
    forward_backward_layers,
    image_aligned_chunks,
    target_scores,
)
from .errors import SycamError
from .expr.ast import LAYER_PATH, LAYERED, split_terminal
from .expr.ops import safe_div
from .models import resolve_layer
from .tail import TRACE_ERRORS, TailSplit
from .targets import Targets, TargetSpec
from .transforms import RawAblation, ReshapeTransform

MAP_TERMINALS = ("A", "G")
VECTOR_TERMINALS = ("S", "D")
FAMILY_TERMINALS = ("SG", "IG", "Ap", "Gp", "E", "EG")
"""computed by :mod:`sycam.terminal_families` (each takes @LAYER)"""


__all__ = [
    "FAMILY_TERMINALS",
    "MAP_TERMINALS",
    "OPTIMIZE_MIN_FORWARDS",
    "OPTIMIZE_TOLERANCE",
    "TRACE_ERRORS",
    "VECTOR_TERMINALS",
    "Captured",
    "ExtractOptions",
    "OptionsError",
    "TailSplit",
    "TerminalCache",
    "ablation_drops",
    "announce",
    "capture_output",
    "eval_mode",
    "forward_backward",
    "forward_backward_layers",
    "image_aligned_chunks",
    "inference_forward",
    "known_terminal",
    "score_cam_scores",
]


# --------------------------------------------------------------------------------------------------
# Extraction
# --------------------------------------------------------------------------------------------------


class OptionsError(SycamError, ValueError):
    """Extraction options out of range (a zero, negative, bool or 2^64 batch size)."""


@dataclass
class ExtractOptions:
    """Knobs of terminal extraction."""

    batch_size: int = 32  #: images per forward/backward for A, G; masked inputs per forward for S and D
    score_top_k: int | None = None  #: cap of the Score-CAM terminal S to the top-k channels per image
    ablation_batch: int = 256  #: ablated copies per tail forward for D
    #: run S's and D's no-grad forwards through a verified inference-optimized copy (CPU; see inference_forward)
    optimize: bool = True
    #: the images whose forwards decide whether that copy pays off (None: the images of the call); a shard of a
    #: split sets the split's size, so that it decides as one process holding the whole split does
    plan_images: int | None = None
    #: the layer output → (N, K, h, w) map (pytorch-grad-cam's reshape_transform; :mod:`sycam.transforms`)
    reshape: ReshapeTransform | None = None

    def __post_init__(self) -> None:
        for name in ("batch_size", "score_top_k", "ablation_batch", "plan_images"):
            value = getattr(self, name)
            if value is None and name in ("score_top_k", "plan_images"):
                continue
            if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 2**63 - 1:
                raise OptionsError(f"ExtractOptions.{name} must be a positive integer, got {value!r}")

#: fewest forwards for which building an inference-optimized copy pays off (it costs about one batch)
OPTIMIZE_MIN_FORWARDS = 256
#: agreement required of the optimized copy, relative to the largest output magnitude
OPTIMIZE_TOLERANCE = 1e-5


def inference_forward(module: nn.Module, example: tuple[Tensor, ...],
                      tolerance: float = OPTIMIZE_TOLERANCE) -> Callable[..., Tensor] | None:
    """An inference-optimized forward of ``module`` (in eval mode), or ``None`` where it cannot be built
    or does not agree with the plain module.

    The copy is ``torch.jit.trace`` → ``torch.jit.freeze`` (BatchNorm folded into the preceding
    convolution, constants propagated) → ``torch.jit.optimize_for_inference`` (oneDNN convolutions and
    fused ops). It is kept only if, on ``example``, ``max |optimized - plain| <= tolerance · max |plain|``
    (folding reorders float arithmetic, so bit equality is not expected). Only for no-grad forwards.

    Example::

        fast = inference_forward(model.eval(), (images[:32],)) or model
        with torch.no_grad():
            logits = fast(images)
    """
    if module.training:
        return None
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            traced = torch.jit.trace(module, example, check_trace=False)
            fast = torch.jit.optimize_for_inference(torch.jit.freeze(traced))
            want = module(*example)
            got = fast(*example)
        if not isinstance(want, Tensor) or not isinstance(got, Tensor) or got.shape != want.shape:
            return None
        scale = float(want.abs().max()) if want.numel() else 0.0
        if not bool(torch.isfinite(got).all()) or float((got - want).abs().max()) > tolerance * max(scale, 1e-30):
            return None
    except Exception:  # untraceable or unsupported: the plain module runs
        return None
    return fast


def _fast_forward(module: nn.Module, example: Callable[[], tuple[Tensor, ...]], forwards: int,
                  options: ExtractOptions | None, device: torch.device) -> Callable[..., Tensor] | None:
    """The optimized forward when it is enabled and pays off (CPU, at least OPTIMIZE_MIN_FORWARDS). ``forwards`` is
    the most a call could run (per image, times :func:`_planned` images), not what the data make of it, so a
    shard of a split decides as the whole split does."""
    if options is not None and not options.optimize:
        return None
    if device.type != "cpu" or forwards < OPTIMIZE_MIN_FORWARDS:
        return None
    return inference_forward(module, example())


def _planned(options: ExtractOptions | None, n: int) -> int:
    """The images a call's forwards are planned for: ``options.plan_images`` (a shard's split) or its own ``n``."""
    return n if options is None or options.plan_images is None else options.plan_images



def score_cam_scores(
    model: nn.Module, images: Tensor, acts: Tensor, targets: Targets, batch_size: int = 32, top_k: int | None = None,
    options: ExtractOptions | None = None,
) -> Tensor:
    """The Score-CAM terminal ``S`` of shape ``(N, K)`` (see the module docstring).

    A channel that is constant over space has an all-zero mask, so its masked input is the zero image:
    one forward of the zero image per image scores every such channel (exactly what a forward per
    channel would give), and only the other channels cost a forward each. The cost (forwards) is
    announced before the first one runs, and a progress bar with an ETA follows them.
    """
    n, k = acts.shape[:2]
    size = images.shape[-2:]
    flat_acts = acts.flatten(2)
    selected = flat_acts.amax(2) > flat_acts.amin(2)  # (N, K): channels whose mask is not all zero
    if top_k is not None and top_k < k:
        top = acts.mean(dim=(2, 3)).topk(top_k, dim=1).indices  # (N, top_k)
        selected &= torch.zeros_like(selected).scatter_(1, top, True)
    pairs_n, pairs_k = selected.nonzero(as_tuple=True)
    total = pairs_n.numel() + n

    def inputs(sl: slice) -> tuple[Tensor, Tensor]:
        ni, ki = pairs_n[sl], pairs_k[sl]
        up = F.interpolate(acts[ni, ki][:, None], size=size, mode="bilinear", align_corners=True)
        flat = up.flatten(1)
        lo, hi = flat.min(1).values.view(-1, 1, 1, 1), flat.max(1).values.view(-1, 1, 1, 1)
        mask = (up - lo) / (hi - lo + 1e-8)
        return images[ni] * mask, ni

    def zeros(sl: slice) -> tuple[Tensor, Tensor]:
        return torch.zeros_like(images[sl]), torch.arange(sl.start, sl.stop, device=images.device)

    capped = "" if top_k is None or top_k >= k else f", capped to the top-{top_k} channels"
    announce(f"Score-CAM terminal S: {total} forwards of {tuple(size)} inputs ({n} images x {k} channels, "
             f"{n * k - pairs_n.numel()} constant or skipped channels share one forward per image{capped})")
    with eval_mode(model), progress(total, "Score-CAM S", "fwd") as bar:
        first = min(batch_size, 4, max(pairs_n.numel(), 1))  # a small batch keeps tracing and the check cheap
        per_image = (k if top_k is None else min(top_k, k)) + 1  # at most: decided alike on any shard
        fast = _fast_forward(model, lambda: (inputs(slice(0, first))[0] if pairs_n.numel() else images[:first],),
                             per_image * _planned(options, n), options, images.device)
        slices = image_aligned_chunks(pairs_n, n, batch_size, batch_size)
        scores = target_scores(model, inputs, pairs_n.numel(), targets, batch_size, fast, bar, slices).to(acts.dtype)
        empty = target_scores(model, zeros, n, targets, batch_size, fast, bar).to(acts.dtype)
    out = empty[:, None].expand(n, k).clone()
    out[pairs_n, pairs_k] = scores
    return out


def ablation_drops(
    model: nn.Module,
    layer: nn.Module,
    images: Tensor,
    acts: Tensor,
    base_scores: Tensor,
    targets: Targets,
    batch_size: int = 256,
    split: TailSplit | None = None,
    options: ExtractOptions | None = None,
    image_batch: int = 32,
    raw: Tensor | None = None,
) -> Tensor:
    """The Ablation-CAM terminal ``D`` of shape ``(N, K)`` (see the module docstring). Ablated copies are
    forwarded in chunks of ``batch_size`` that never span two batches of ``image_batch`` images.

    ``raw`` is the layer's raw output when ``options.reshape`` turned it into ``acts``: the copies ablate it,
    channel by channel as :class:`~sycam.transforms.RawAblation` maps them (default: ``acts`` itself).

    With a tail split whose only cut value is the layer's output, the cached activations are the tail's
    input (no head forward at all).
    """
    n, k = acts.shape[:2]
    mins = acts.flatten(1).min(1).values
    ablate_to = torch.where(mins == 0, torch.zeros_like(mins), mins - 1e7)
    pairs_n = torch.arange(n, device=acts.device).repeat_interleave(k)
    pairs_k = torch.arange(k, device=acts.device).repeat(n)
    reshape = None if options is None else options.reshape
    raw = acts if raw is None or reshape is None else raw
    where = RawAblation(reshape if raw is not acts else None, raw)

    def ablated(sl: slice) -> tuple[Tensor, Tensor]:
        ni, ki = pairs_n[sl], pairs_k[sl]
        a = raw[ni]  # advanced indexing: already a copy
        where.apply(a, ki, ablate_to[ni])
        return a, ni

    total = pairs_n.numel()
    slices = image_aligned_chunks(pairs_n, n, image_batch, batch_size)
    with eval_mode(model), progress(total, "Ablation-CAM D", "fwd") as bar:
        if split is not None:
            if split.n_cut == 1:
                cut_values = [raw]
            else:
                with torch.no_grad():
                    cut = [split.head(images[sl]) for sl in chunks(n, image_batch)]
                cut_values = [torch.cat([c[i] for c in cut]) for i in range(split.n_cut)]

            def example() -> tuple[Tensor, ...]:
                a, ni = ablated(slice(0, min(batch_size, 4, total)))
                return (a, *[v[ni] for v in cut_values[1:]])

            # only a tail with convolutions or BatchNorm has something to fold: a pooling + linear head
            # (the usual last-layer tail) runs as fast plain, and tracing it would only cost time
            foldable = any(isinstance(mod, (nn.Conv2d, nn.BatchNorm2d)) for mod in split.tail.modules())
            planned = k * _planned(options, n)
            fast = _fast_forward(split.tail, example, planned, options, acts.device) if foldable else None
            tail = fast or split.tail
            scores = []
            with torch.no_grad():
                for sl in slices:
                    a, ni = ablated(sl)
                    rest = [v[ni] for v in cut_values[1:]]
                    scores.append(targets.scores(tail(a, *rest), ni))
                    bar.update(sl.stop - sl.start)
            abl = torch.cat(scores)
        else:
            state: dict[str, Tensor] = {}

            def swap(_out: Tensor) -> Tensor:
                return state["a"]

            def run(sl: slice) -> tuple[Tensor, Tensor]:
                a, ni = ablated(sl)
                state["a"] = a
                return images[ni], ni

            with capture_output(layer, swap, None if options is None else options.reshape):
                abl = target_scores(model, run, total, targets, batch_size, None, bar, slices)
    base = base_scores[pairs_n].to(abl.dtype)
    return safe_div(base - abl, base).view(n, k).to(acts.dtype)


def known_terminal(name: str) -> bool:
    """Whether the cache can compute terminal ``name`` (``A``, ``G``, ``S``, ``D``, ``A@LAYER``, ``G@LAYER``)."""
    base, layer = split_terminal(name)
    if layer:
        return base in LAYERED and re.fullmatch(LAYER_PATH, layer) is not None
    return base in MAP_TERMINALS + VECTOR_TERMINALS + FAMILY_TERMINALS


def _key(base: str, layer: str) -> str:
    return base + (f"@{layer}" if layer else "")


class TerminalCache:
    """Lazily computed, cached terminals of one model layer on one batch of images.

    Args:
        model: the classifier (any ``nn.Module`` returning ``(N, classes)``).
        layer: the target layer, as a module or a path such as ``"layer4[-1]"``.
        images: ``(N, 3, H, W)`` model inputs; moved to the model's device.
        targets: ``None`` (predicted class), class indices, or callables on a sample's output.
        options: batch sizes and the Score-CAM top-k cap.
    """

    def __init__(
        self,
        model: nn.Module,
        layer: str | nn.Module,
        images: Tensor,
        targets: TargetSpec | Targets = None,
        options: ExtractOptions | None = None,
    ) -> None:
        if not isinstance(images, Tensor) or images.dim() != 4:
            shape = tuple(images.shape) if isinstance(images, Tensor) else type(images).__name__
            raise ValueError(f"images must be a (N, C, H, W) tensor, got {shape}")
        if images.shape[0] == 0:
            raise ValueError("no images given")
        self.model = model
        self.layer_name, self.layer = resolve_layer(model, layer)
        self.device = module_device(model, images.device)
        self.images = images.to(self.device, torch.float32)
        self.options = options or ExtractOptions()
        self._target_spec = targets
        self._targets: Targets | None = targets if isinstance(targets, Targets) else None
        self._values: dict[str, Tensor] = {}
        self._logits: Tensor | None = None
        self._split: TailSplit | bool | None = None  # False: tracing failed
        self._raw: Tensor | None = None  # the layer's raw output, kept when options.reshape maps it
        self.timings: dict[str, float] = {}
        """Seconds spent per stage (``forward_backward``, ``S``, ``D``)."""
        self.notes: list[str] = []
        """What was done differently from the fast path, and why (one line each)."""
        from .terminal_families import FamilyOptions

        self.family_options = FamilyOptions()
        """SmoothGrad's copies and noise, the integrated path's steps (:mod:`sycam.terminal_families`)"""

    def __len__(self) -> int:
        return int(self.images.shape[0])

    @property
    def targets(self) -> Targets:
        """The resolved targets (class per image), after the first forward."""
        self._ensure_forward()
        assert self._targets is not None
        return self._targets

    @property
    def logits(self) -> Tensor:
        """The model's outputs ``(N, classes)`` on the images (from the same forward as A and G)."""
        self._ensure_forward()
        assert self._logits is not None
        return self._logits

    @property
    def target_scores(self) -> Tensor:
        """``(N,)`` target score of each original image."""
        return self.targets.scores(self.logits)

    def _ensure_forward(self, layers: Iterable[str] = ()) -> None:
        """One forward and one backward for A, G and the logits (G is nearly always needed next, and a
        second pass for it would cost more than the backward), with A@LAYER and G@LAYER of every one of ``layers``
        from the same passes; layers asked for later cost one more forward and backward."""
        extra = [la for la in dict.fromkeys(layers) if f"A@{la}" not in self._values]
        if "A" in self._values:
            if extra:
                self._layers_pass(extra)
            return
        import time

        t0 = time.perf_counter()
        if self._targets is None:
            if self._target_spec is None:
                with torch.no_grad(), eval_mode(self.model):
                    logits = torch.cat([self.model(self.images[sl]) for sl in chunks(len(self), 32)])
                self._targets = Targets.resolve(None, len(self), logits)
            else:
                self._targets = Targets.resolve(self._target_spec, len(self))
        raw: list[Tensor] = []
        modules = [self.layer, *self._resolve_layers(extra)]
        acts, grads, logits = forward_backward_layers(
            self.model, modules, self.images, self._targets, self.options.batch_size,
            reshape=self.options.reshape, raw_out=raw if self.options.reshape is not None else None,
        )
        self._raw = raw[0] if raw else None
        self._targets.check(logits.shape[-1])
        for name, a, g in zip(["", *extra], acts, grads or [None] * len(acts), strict=True):
            self._values["A" + (f"@{name}" if name else "")] = a
            if g is not None:
                self._values["G" + (f"@{name}" if name else "")] = g
        self._logits = logits
        self.timings["forward_backward"] = time.perf_counter() - t0

    def _resolve_layers(self, names: Sequence[str]) -> list[nn.Module]:
        return [resolve_layer(self.model, name)[1] for name in names]

    def _layers_pass(self, names: list[str]) -> None:
        """A@LAYER, G@LAYER of layers asked for after the first pass: one more forward and backward for all."""
        import time

        t0 = time.perf_counter()
        acts, grads, _ = forward_backward_layers(self.model, self._resolve_layers(names), self.images, self.targets,
                                                 self.options.batch_size, desc="terminals A@LAYER, G@LAYER",
                                                 reshape=self.options.reshape)
        for name, a, g in zip(names, acts, grads or [], strict=True):
            self._values[f"A@{name}"], self._values[f"G@{name}"] = a, g
        self.notes.append(f"terminals at {', '.join(names)} were asked for after the first pass: one more forward "
                          "and backward")
        self.timings["forward_backward"] = self.timings.get("forward_backward", 0.0) + time.perf_counter() - t0

    def get(self, names: Iterable[str]) -> dict[str, Tensor]:
        """The requested terminals (computing the missing ones): maps ``(N,K,h,w)``, vectors ``(N,K)``."""
        import time

        names = list(dict.fromkeys(names))
        unknown = [n for n in names if not known_terminal(n)]
        if unknown:
            raise ValueError(f"unknown terminal(s) {unknown}; known: {', '.join(MAP_TERMINALS + VECTOR_TERMINALS)}"
                             f" and {', '.join(f'{t}@LAYER' for t in LAYERED)}")
        self._check_layers(names)
        self._ensure_forward([split_terminal(n)[1] for n in names if split_terminal(n)[1]])
        self._families([n for n in names if n not in self._values])
        if "S" in names and "S" not in self._values:
            t0 = time.perf_counter()
            self._values["S"] = score_cam_scores(
                self.model,
                self.images,
                self._values["A"],
                self.targets,
                self.options.batch_size,
                self.options.score_top_k,
                self.options,
            )
            self.timings["S"] = time.perf_counter() - t0
        if "D" in names and "D" not in self._values:
            t0 = time.perf_counter()
            self._values["D"] = ablation_drops(
                self.model,
                self.layer,
                self.images,
                self._values["A"],
                self.target_scores,
                self.targets,
                self.options.ablation_batch,
                self._tail_split(),
                self.options,
                self.options.batch_size,
                self._raw,
            )
            self.timings["D"] = time.perf_counter() - t0
        return {n: self._values[n] for n in names}

    def _check_layers(self, names: Sequence[str]) -> None:
        """Every layer ``names`` read exists (and closes with an activation, for Ap and Gp): refused before any pass."""
        from .terminal_families import pre_activation

        for n in names:
            base, layer = split_terminal(n)
            if n in self._values or not (layer or base in ("Ap", "Gp")):
                continue
            name, module = (self.layer_name, self.layer) if not layer else resolve_layer(self.model, layer)
            if base in ("Ap", "Gp"):
                pre_activation(module, name)

    def _families(self, names: Sequence[str]) -> None:
        """The :mod:`~sycam.terminal_families` terminals among ``names``, each family's passes shared by its layers
        and announced before they run."""
        import time

        from . import terminal_families as fam

        want: dict[str, list[str]] = {}
        for n in names:
            base, layer = split_terminal(n)
            if base in FAMILY_TERMINALS:
                want.setdefault(base, []).append(layer)
        if not want:
            return
        t0 = time.perf_counter()
        opts = self.family_options
        eig = [f"{b}@{la}" if la else b for b in ("E", "EG") for la in want.get(b, [])]
        if eig:
            announce(f"terminals {', '.join(eig)}: one SVD of an (h·w)×K matrix per image ({len(self)} images)")
        for layer in want.get("E", []):
            self._values[_key("E", layer)] = fam.first_component(self._values[_key("A", layer)])
        for layer in want.get("EG", []):
            self._values[_key("EG", layer)] = fam.first_component(self._values[_key("A", layer)]
                                                                  * self._values[_key("G", layer)])
        for base, make, what in (("SG", fam.noisy_copies, f"{opts.smooth_samples} noisy copies"),
                                 ("IG", fam.path_inputs, f"{opts.path_steps} steps of the path 0 → x")):
            layers = list(dict.fromkeys(want.get(base, [])))
            if not layers:
                continue
            announce(f"terminal {base} at {', '.join(la or self.layer_name for la in layers)}: {len(self)} images x "
                     f"{what} = {len(self) * (opts.smooth_samples if base == 'SG' else opts.path_steps)} forwards "
                     "and backwards")
            modules = [self.layer if not la else resolve_layer(self.model, la)[1] for la in layers]

            def run(x: Tensor, modules: list[nn.Module] = modules, base: str = base) -> list[Tensor]:
                grads = forward_backward_layers(self.model, modules, x, self.targets, self.options.batch_size,
                                                desc=f"terminal {base}")[1]
                assert grads is not None
                return grads

            for la, g in zip(layers, fam.averaged_gradients(make(self.images, opts), run), strict=True):
                self._values[_key(base, la)] = g
        pre = list(dict.fromkeys(want.get("Ap", []) + want.get("Gp", [])))
        if pre:
            announce(f"pre-activation terminals Ap, Gp at {', '.join(la or self.layer_name for la in pre)}: "
                     f"{len(self)} forwards and backwards")
            self._pre_activation(pre)
        self.timings["families"] = self.timings.get("families", 0.0) + time.perf_counter() - t0

    def _pre_activation(self, layers: list[str]) -> None:
        """Ap and Gp at ``layers``: the input of each one's closing activation, and its gradient (one pass)."""
        from .terminal_families import capture_input, pre_activation

        named = [(la, *((self.layer_name, self.layer) if not la else resolve_layer(self.model, la))) for la in layers]
        acts: list[list[Tensor]] = [[] for _ in layers]
        grads: list[list[Tensor]] = [[] for _ in layers]
        with eval_mode(self.model):
            for sl in chunks(len(self), self.options.batch_size):
                hooks = [capture_input(pre_activation(mod, name)) for _, name, mod in named]
                try:
                    with torch.enable_grad():
                        x = self.images[sl].detach().requires_grad_(True)
                        score = self.targets.scores(self.model(x), torch.arange(sl.start, sl.stop,
                                                                                device=x.device))
                        got = [seen[-1] for seen, _ in hooks]
                        for i, g in enumerate(torch.autograd.grad(score.sum(), got)):
                            acts[i].append(got[i].detach())
                            grads[i].append(g.detach())
                finally:
                    for _, remove in hooks:
                        remove()
        for i, la in enumerate(layers):
            self._values[_key("Ap", la)], self._values[_key("Gp", la)] = torch.cat(acts[i]), torch.cat(grads[i])

    def _tail_split(self) -> TailSplit | None:
        if self._split is None:
            try:
                self._split = TailSplit.build(self.model, self.layer_name)
            except TRACE_ERRORS as exc:  # untraceable model: full forwards with the layer output replaced
                self._split = False
                self.notes.append(f"Ablation-CAM reruns the whole network: torch.fx could not split it at "
                                  f"{self.layer_name} ({type(exc).__name__}: {str(exc).splitlines()[0][:120]})")
            else:
                if not self._split.batched(self.images[:2]):
                    self._split = False
                    self.notes.append(f"Ablation-CAM reruns the whole network: the network after {self.layer_name} "
                                      "reads values other than per-image tensors (e.g. the batch size)")
        return self._split or None

    def values(self, names: Iterable[str]) -> dict[str, Tensor]:
        """Terminals shaped for expression evaluation: vectors as ``(N, K, 1, 1)``, heatmaps ``(N, h, w)``."""
        return {n: (v[:, :, None, None] if v.dim() == 2 else v) for n, v in self.get(names).items()}
