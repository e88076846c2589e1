"""``Samples``: N model-ready inputs with their targets and ground truth — what flows from data to
terminals and metrics."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from functools import cached_property

import torch
from torch import Tensor

from .preprocess import IMAGENET_MEAN, IMAGENET_STD, denormalize, normalize


@dataclass(frozen=True)
class Samples:
    """A batch of samples, all tensors on one device.

    Attributes:
        images: ``(N, 3, H, W)`` model inputs (after the model's preprocessing and normalization).
        labels: ``(N,)`` long, the target class of each sample.
        masks: ``(N, H, W)`` bool ground-truth region in input pixels (the union of a sample's boxes, or
            its mask), or ``None`` when the data set has no ground truth.
        boxes: per sample a ``(M_i, 4)`` float tensor of ``x1, y1, x2, y2`` boxes in input pixels
            (empty when the ground truth is a mask only), or ``None``.
        ids: a readable id per sample (e.g. ``"cat_on_bricks_03#285"``).
        mean, std: the normalization of ``images`` (so ``pixels = images * std + mean``).
        sources: per sample, the sources it was made from as ``"kind:name"`` strings (``"image:cat.jpg"``,
            and in the demo ``"photo:skimage/chelsea"``, ``"texture:skimage/brick"``), or ``()``: then each
            sample's source is its image (the id up to the last ``#``). :func:`sycam.data.split` never puts
            one source on both sides.
    """

    images: Tensor
    labels: Tensor
    masks: Tensor | None = None
    boxes: tuple[Tensor, ...] | None = None
    ids: tuple[str, ...] = ()
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    sources: tuple[tuple[str, ...], ...] = ()

    def __post_init__(self) -> None:
        n = self.images.shape[0]
        if self.images.dim() != 4 or self.images.shape[1] != 3:
            raise ValueError(f"images must be (N, 3, H, W), got {tuple(self.images.shape)}")
        if self.labels.shape != (n,):
            raise ValueError(f"labels must be ({n},), got {tuple(self.labels.shape)}")
        if self.masks is not None and tuple(self.masks.shape) != (n, *self.images.shape[-2:]):
            raise ValueError(f"masks must be {(n, *self.images.shape[-2:])}, got {tuple(self.masks.shape)}")
        if self.boxes is not None and len(self.boxes) != n:
            raise ValueError(f"boxes must hold one tensor per sample ({n}), got {len(self.boxes)}")
        if self.ids and len(self.ids) != n:
            raise ValueError(f"ids must hold one id per sample ({n}), got {len(self.ids)}")
        if self.sources and len(self.sources) != n:
            raise ValueError(f"sources must hold one tuple per sample ({n}), got {len(self.sources)}")

    def __len__(self) -> int:
        return int(self.images.shape[0])

    @property
    def device(self) -> torch.device:
        """The device of the tensors."""
        return self.images.device

    @property
    def pixels(self) -> Tensor:
        """``(N, 3, H, W)`` RGB in [0, 1] (the images before normalization)."""
        return denormalize(self.images, self.mean, self.std)

    def normalize(self, pixels: Tensor) -> Tensor:
        """RGB in [0, 1] → model input space of these samples."""
        return normalize(pixels, self.mean, self.std)

    def subset(self, index: Tensor | list[int] | slice) -> Samples:
        """The samples at ``index`` (a slice, a list of positions or a long/bool tensor)."""
        if isinstance(index, slice):
            pos = list(range(len(self)))[index]
        elif isinstance(index, Tensor) and index.dtype == torch.bool:
            pos = index.nonzero().flatten().tolist()
        else:
            pos = [int(i) for i in index]
        sel = torch.tensor(pos, dtype=torch.long, device=self.device)
        return replace(
            self,
            images=self.images.index_select(0, sel),
            labels=self.labels.index_select(0, sel),
            masks=None if self.masks is None else self.masks.index_select(0, sel),
            boxes=None if self.boxes is None else tuple(self.boxes[i] for i in pos),
            ids=tuple(self.ids[i] for i in pos) if self.ids else (),
            sources=tuple(self.sources[i] for i in pos) if self.sources else (),
        )

    @cached_property
    def _fingerprint(self) -> str:
        h = hashlib.sha256()

        def add(tag: str, t: Tensor | None) -> None:
            h.update(f"\x00{tag}".encode())
            if t is not None:
                t = t.detach().to("cpu").contiguous()
                h.update(f"{t.dtype}{tuple(t.shape)}".encode())
                h.update(t.numpy().tobytes())

        add("images", self.images)
        add("labels", self.labels)
        add("masks", self.masks)
        for b in self.boxes or ():
            add("box", b)
        h.update(repr((self.ids, self.mean, self.std, self.sources, self.boxes is None)).encode())
        return h.hexdigest()[:32]

    def fingerprint(self) -> str:
        """A hash of everything a score can depend on: the input pixels, labels, masks, boxes, ids, sources
        and normalization (what a resumed search checks against its checkpoint).

        Example: changing one box of a manifest changes the fingerprint of the samples loaded from it.
        """
        return self._fingerprint

    def to(self, device: str | torch.device) -> Samples:
        """The same samples with every tensor on ``device``."""
        return replace(
            self,
            images=self.images.to(device),
            labels=self.labels.to(device),
            masks=None if self.masks is None else self.masks.to(device),
            boxes=None if self.boxes is None else tuple(b.to(device) for b in self.boxes),
        )
