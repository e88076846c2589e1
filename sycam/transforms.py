r"""Reshape transforms: a target layer's output → the ``(N, K, h, w)`` map every terminal reads.

The convention is pytorch-grad-cam's ``reshape_transform``: a function applied to the layer's output (and, as
there, to the gradient of the target score with respect to that output) that returns ``(N, K, h, w)``:

- :class:`TokensToMap` (preset ``"vit"``) — ViT / DeiT tokens ``(N, P + h·w, C)`` → drop the ``P`` prefix
  (class / distillation) tokens → ``(N, C, h, w)``;
- :class:`ChannelsLastToMap` (preset ``"swin"``) — Swin's channels-last ``(N, h, w, C)`` (or tokens
  ``(N, h·w, C)`` on a square grid) → ``(N, C, h, w)``.

Every layer output is checked after the transform (:func:`check_map`): anything but a 4-D tensor whose grid
follows the input's aspect ratio is refused in one line — a (N, heads, tokens, dim) attention output or a
channels-last (N, 7, 7, 768) is never silently read as K×h×w.

The Ablation-CAM terminal ``D`` ablates the layer's *raw* output (the network after the layer reads it):
:class:`RawAblation` finds, by passing index probes through the transform, which raw elements feed each map
channel. Where one raw axis carries the channel (tokens' feature axis, Swin's last axis), channel ``k`` is
ablated along that whole axis — prefix tokens included, as pytorch-grad-cam's ``AblationLayerVit``; otherwise
exactly the raw elements gathered into channel ``k`` are ablated. A transform that computes rather than
selects (anything but indexing, reshaping and permuting) cannot be ablated and is refused for ``D``.

Example::

    cam = sycam.CAM(vit, "blocks[-1].norm1", "gradcam", reshape_transform="vit")
    maps = cam(images)                                           # (N, H, W)
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from .errors import ModelError

ReshapeTransform = Callable[[Tensor], Tensor]
"""A layer output → ``(N, K, h, w)`` (pytorch-grad-cam's ``reshape_transform`` convention)."""


class ReshapeError(ModelError):
    """A target layer's output that is not — or is not turned into — a ``(N, K, h, w)`` map (one line)."""


def _shape(x: object) -> str:
    return str(tuple(x.shape)) if isinstance(x, Tensor) else type(x).__name__


@dataclass(frozen=True)
class TokensToMap:
    """ViT / DeiT tokens ``(N, P + h·w, C)`` → ``(N, C, h, w)``, dropping the ``P`` prefix tokens.

    ``prefix_tokens`` (default: what is left over above the largest square, 1 for ViT's 197 tokens, 2 for
    distilled DeiT's 198) and ``grid`` ``(h, w)`` (default: square) may be given; the preset ``"vit"`` reads
    both from a timm model (``num_prefix_tokens``, ``patch_embed.grid_size``).

    >>> TokensToMap()(torch.zeros(2, 197, 192)).shape
    torch.Size([2, 192, 14, 14])
    """

    prefix_tokens: int | None = None
    grid: tuple[int, int] | None = None

    def __call__(self, tokens: Tensor) -> Tensor:
        if not isinstance(tokens, Tensor) or tokens.dim() != 3:
            raise ReshapeError(f"reshape 'vit' expects tokens (N, tokens, dim), got {_shape(tokens)}")
        n, t, c = tokens.shape
        prefix = self.prefix_tokens
        if self.grid is not None and (prefix is None or t - prefix != self.grid[0] * self.grid[1]):
            h, w = self.grid
            prefix = t - h * w if prefix is None else prefix
        else:
            if prefix is None:
                side = math.isqrt(t)
                prefix = t - side * side
            side = math.isqrt(max(t - prefix, 0))
            h = w = side
        if prefix < 0 or h * w != t - prefix or h * w == 0:
            raise ReshapeError(f"reshape 'vit': {t} tokens are not {prefix} prefix token(s) plus a square grid "
                               "of patches; give TokensToMap(prefix_tokens=..., grid=(h, w))")
        return tokens[:, prefix:].reshape(n, h, w, c).permute(0, 3, 1, 2)


@dataclass(frozen=True)
class ChannelsLastToMap:
    """Swin's channels-last ``(N, h, w, C)``, or tokens ``(N, h·w, C)`` on a square grid → ``(N, C, h, w)``.

    >>> ChannelsLastToMap()(torch.zeros(2, 7, 7, 768)).shape
    torch.Size([2, 768, 7, 7])
    """

    def __call__(self, x: Tensor) -> Tensor:
        if isinstance(x, Tensor) and x.dim() == 4:
            return x.permute(0, 3, 1, 2)
        if isinstance(x, Tensor) and x.dim() == 3 and math.isqrt(x.shape[1]) ** 2 == x.shape[1]:
            side = math.isqrt(x.shape[1])
            return x.reshape(x.shape[0], side, side, x.shape[2]).permute(0, 3, 1, 2)
        raise ReshapeError(f"reshape 'swin' expects channels-last (N, h, w, C) or square tokens (N, h*w, C), "
                           f"got {_shape(x)}")


PRESETS = ("vit", "swin")
"""The named reshape transforms (``--reshape`` in the CLI)."""


def reshape_preset(name: str, module: nn.Module | None = None) -> ReshapeTransform:
    """The transform named ``name`` (``"vit"`` or ``"swin"``), fitted to a timm ``module`` when given.

    >>> reshape_preset("swin")
    ChannelsLastToMap()
    """
    if name == "vit":
        prefix = getattr(module, "num_prefix_tokens", None)
        grid = getattr(getattr(module, "patch_embed", None), "grid_size", None)
        return TokensToMap(None if prefix is None else int(prefix),
                           None if grid is None else (int(grid[0]), int(grid[1])))
    if name == "swin":
        return ChannelsLastToMap()
    raise ReshapeError(f"unknown reshape {name!r}; valid: {', '.join(PRESETS)} (or a callable)")


def resolve_reshape(reshape: str | ReshapeTransform | None, module: nn.Module | None = None
                    ) -> ReshapeTransform | None:
    """A preset name, a callable or ``None`` → the callable (or ``None``)."""
    if reshape is None or callable(reshape):
        return reshape
    if isinstance(reshape, str):
        return reshape_preset(reshape, module)
    raise ReshapeError(f"reshape_transform must be a callable or one of {', '.join(PRESETS)}, "
                       f"got {type(reshape).__name__}")


def check_map(value: object, input_size: tuple[int, int] | None, reshaped: bool) -> Tensor:
    """``value`` if it is a ``(N, K, h, w)`` map, else :class:`ReshapeError`.

    A 4-D tensor is a map when its grid follows the input's aspect ratio, up to rounding: with ``w' = h·W/H``,
    ``|w - w'| <= max(1, w'/2)``. Convolutional maps always do (they are the image downsampled); an attention
    output (N, heads, tokens, dim) or a channels-last (N, 7, 7, 768) does not.
    """
    how = "after reshape_transform" if reshaped else "(without a reshape_transform)"
    if not isinstance(value, Tensor) or value.dim() != 4:
        hint = "" if reshaped or not isinstance(value, Tensor) or value.dim() != 3 else \
            "; tokens? pass reshape_transform='vit' (ViT/DeiT) or 'swin'"
        raise ReshapeError(f"the target layer must output a (N, K, h, w) tensor {how}, got {_shape(value)}{hint}")
    if input_size is not None:
        big_h, big_w = input_size
        h, w = value.shape[-2:]
        expect = h * big_w / big_h
        if abs(w - expect) > max(1.0, expect / 2):
            hint = "" if reshaped else "; channels-last or attention output? pass reshape_transform= " \
                "('swin' for channels-last) or pick another layer"
            raise ReshapeError(f"the target layer's output {_shape(value)} {how} is not a (N, K, h, w) map of "
                               f"{big_h}x{big_w} inputs: its grid {h}x{w} does not follow the image{hint}")
    return value


class RawAblation:
    """Where each map channel ``k`` lives in the layer's raw output, for the Ablation-CAM terminal ``D``.

    Built from the transform and one raw sample (``(1, ...)``); :meth:`apply` sets channel ``ki[r]`` of raw copy
    ``r`` to ``value[r]`` in place (see the module docstring for the rule).
    """

    def __init__(self, reshape: ReshapeTransform | None, raw: Tensor) -> None:
        self.axis: int | None = None
        self.coords: Tensor | None = None
        self.index: Tensor | None = None
        if reshape is None:
            self.axis, self.coords = 1, torch.arange(raw.shape[1], device=raw.device)
            return
        sample = raw[:1].detach()
        probe = torch.arange(sample.numel(), dtype=torch.float64, device=raw.device).view(sample.shape)
        try:
            index = reshape(probe)
        except Exception as exc:
            raise ReshapeError(f"Ablation-CAM (D) cannot run through this reshape_transform: "
                               f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}") from exc
        selects = isinstance(index, Tensor) and index.dim() == 4 and bool((index == index.round()).all()) \
            and bool(((index >= 0) & (index < sample.numel())).all())
        if not selects or not bool(torch.equal(reshape(sample).double(), sample.flatten().double()[index.long()])):
            raise ReshapeError("Ablation-CAM (D) needs a reshape_transform that only selects, reshapes and "
                               "permutes the layer's output")
        index = index.long()[0].flatten(1)  # (K, h*w) flat raw positions
        for axis in range(1, sample.dim()):
            stride = math.prod(sample.shape[axis + 1:])
            coord = (index // stride) % sample.shape[axis]
            if bool((coord == coord[:, :1]).all()) and coord[:, 0].unique().numel() == coord.shape[0]:
                self.axis, self.coords = axis, coord[:, 0]
                return
        self.index = index

    def apply(self, raw: Tensor, ki: Tensor, value: Tensor) -> None:
        """Ablate map channel ``ki[r]`` of each raw copy ``raw[r]`` to ``value[r]`` (in place)."""
        rows = torch.arange(raw.shape[0], device=raw.device)
        if self.axis is not None:
            assert self.coords is not None
            moved = raw.movedim(self.axis, 1)
            shape = (-1,) + (1,) * (moved.dim() - 2)
            moved[rows, self.coords[ki]] = value.view(shape).to(raw.dtype)
        else:
            assert self.index is not None
            flat = raw.view(raw.shape[0], -1)
            flat[rows[:, None], self.index[ki]] = value.view(-1, 1).to(raw.dtype)
