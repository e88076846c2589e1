"""From parsed annotations to :class:`~sycam.data.samples.Samples`: read images and masks, check the
ground truth against each image, map it through the model's preprocessing, apply the missing-ground-truth
policy. Nothing is returned (and nothing is written anywhere) unless every sample is good."""

from __future__ import annotations

import hashlib
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from .errors import DataError, DataWarning
from .geometry import Box, check_inside, nonempty, rasterize
from .images import read_image
from .preprocess import Preprocess
from .samples import Samples

MissingGT = Literal["error", "drop", "empty"]
MISSING_GT: tuple[str, ...] = ("error", "drop", "empty")


@dataclass
class Target:
    """One sample before its files are read: an image, a class, and the ground truth declared for it.

    Attributes:
        image: path of the image.
        label: class index.
        where: where the sample is declared first (``"data.csv line 3"``), for messages.
        sample_id: readable id (``"images/cat.png#285"``).
        boxes: boxes in original-image pixels, each with where it was declared.
        masks: mask image paths, each with where it was declared.
        tolerance: coordinates up to this many pixels outside the image are clipped instead of rejected
            (0 for manifests; 1 for XML files, whose 1-based coordinates are often written 0-based).
        group: the manifest's ``group`` cell (source photo, object, scene...): samples of one group are split
            together and resampled together by the clustered bootstrap (``None``: none given).
    """

    image: Path
    label: int
    where: str
    sample_id: str
    boxes: list[tuple[Box, str]] = field(default_factory=list)
    masks: list[tuple[Path, str]] = field(default_factory=list)
    tolerance: float = 0.0
    group: str | None = None


def add_target(
    targets: dict[tuple[Path, int], Target],
    image: Path,
    label: int,
    where: str,
    sample_id: str,
    box: Box | None = None,
    mask: Path | None = None,
    tolerance: float = 0.0,
    group: str | None = None,
) -> None:
    """Add one annotation row: rows with the same image and label form one sample (their boxes and masks
    are unioned); another label on the same image is another sample."""
    key = (image, label)
    target = targets.get(key)
    if target is None:
        target = targets[key] = Target(image, label, where, sample_id, tolerance=tolerance)
    if group and target.group is None:
        target.group = group
    elif group and group != target.group:
        raise DataError(f"{where}: sample {sample_id} is in group {target.group!r} ({target.where}) and here "
                        f"in group {group!r}; give one group per sample")
    if box is not None:
        target.boxes.append((box, where))
    if mask is not None:
        target.masks.append((mask, where))


def mask_array(image: Image.Image) -> np.ndarray:
    """``(H, W)`` bool: pixels that are non-zero in any colour channel (an alpha channel is ignored)."""
    arr = np.asarray(image)
    if arr.ndim == 3 and image.getbands()[-1] == "A":
        arr = arr[..., :-1]
    if arr.ndim == 3:
        return (arr != 0).any(axis=-1)
    return arr != 0


def _clip(box: Box, width: int, height: int, tolerance: float) -> Box:
    if tolerance <= 0:
        return box

    def fix(v: float, hi: int) -> float:
        return min(max(v, 0.0), float(hi)) if -tolerance <= v <= hi + tolerance else v

    x1, y1, x2, y2 = box
    return fix(x1, width), fix(y1, height), fix(x2, width), fix(y2, height)


def _gt_hint() -> str:
    return (
        "give every sample a box or mask, or none at all (missing_gt='drop' drops such samples, "
        "missing_gt='empty' keeps them with an empty mask)"
    )


def assemble(targets: list[Target], preprocess: Preprocess, source: str, missing_gt: MissingGT = "error") -> Samples:
    """Read every target's image and ground truth and build the samples.

    Args:
        targets: the samples to build, in order.
        preprocess: the model's preprocessing (geometry and normalization).
        source: the data set's name for messages (a path).
        missing_gt: what to do with samples that have no ground truth in input pixels (none declared, or all
            of it outside the centre crop or too small to cover a pixel centre) while other samples have some:
            ``"error"`` (default), ``"drop"`` (drop them, with a :class:`DataWarning`) or ``"empty"`` (keep
            them with an all-False mask and no boxes, with a warning). When *no* sample declares ground
            truth, ``masks`` and ``boxes`` are ``None`` and this policy does not apply.
    """
    if missing_gt not in MISSING_GT:
        raise DataError(f"missing_gt must be one of {', '.join(MISSING_GT)}, got {missing_gt!r}")
    if not targets:
        raise DataError(f"{source}: no samples")
    size = preprocess.size
    pixels_cache: dict[Path, tuple[Tensor, int, int]] = {}
    pixels: list[Tensor] = []
    boxes_out: list[Tensor] = []
    masks_out: list[Tensor] = []
    declared: list[bool] = []
    identity: dict[Path, tuple[str, ...]] = {}
    for t in targets:
        if t.image not in pixels_cache:
            identity[t.image] = image_identity(t.image)
            im = read_image(t.image, t.where)
            try:
                pixels_cache[t.image] = (preprocess.pixels(im), im.width, im.height)
            except ValueError as exc:
                raise DataError(f"{t.where}: cannot preprocess {t.image}: {exc}") from None
        pix, w, h = pixels_cache[t.image]
        raw: list[Box] = []
        for box, where in t.boxes:
            box = _clip(box, w, h, t.tolerance)
            check_inside(box, w, h, f"{where} ({t.image.name})")
            raw.append(box)
        mapped = (
            preprocess.boxes(torch.tensor(raw, dtype=torch.float32), w, h)
            if raw
            else torch.zeros(0, 4, dtype=torch.float32)
        )
        mapped = nonempty(mapped)
        gt = rasterize(mapped, size, size)
        for mask_path, where in t.masks:
            m = mask_array(read_image(mask_path, where, "mask"))
            if m.shape != (h, w):
                raise DataError(
                    f"{where}: mask {mask_path.name} is {m.shape[1]}×{m.shape[0]} but its image "
                    f"{t.image.name} is {w}×{h}"
                )
            if not m.any():
                raise DataError(f"{where}: mask {mask_path} has no non-zero pixel (no object)")
            gt |= preprocess.mask(m)
        pixels.append(pix)
        boxes_out.append(mapped)
        masks_out.append(gt)
        declared.append(bool(t.boxes or t.masks))

    has_gt = any(declared)
    keep = _apply_missing_gt(targets, declared, masks_out, missing_gt, source) if has_gt else list(range(len(targets)))
    images = preprocess.normalize(torch.stack([pixels[i] for i in keep]))
    return Samples(
        images=images,
        labels=torch.tensor([targets[i].label for i in keep], dtype=torch.long),
        masks=torch.stack([masks_out[i] for i in keep]) if has_gt else None,
        boxes=tuple(boxes_out[i] for i in keep) if has_gt else None,
        ids=tuple(targets[i].sample_id for i in keep),
        # a manifest's group first (the clustered bootstrap resamples it), then the image's identity (its
        # resolved path and content hash: the same file written two ways is one image for the split)
        sources=tuple(((f"group:{targets[i].group}",) if targets[i].group else ()) + tuple(identity[targets[i].image])
                      for i in keep),
        mean=tuple(preprocess.mean),  # type: ignore[arg-type]
        std=tuple(preprocess.std),  # type: ignore[arg-type]
    )


def _apply_missing_gt(targets: list[Target], declared: list[bool], masks: list[Tensor], missing_gt: MissingGT,
                      source: str) -> list[int]:
    """The indices of the samples kept under the ``missing_gt`` policy (see :func:`assemble`), when some sample
    declares ground truth: raises for ``"error"``, drops with a warning for ``"drop"``, warns for ``"empty"``."""
    keep = list(range(len(targets)))
    missing = [i for i in keep if not masks[i].any()]
    if missing:
        first = targets[missing[0]]
        why = (
            "its ground truth covers no input pixel (outside the model's centre crop, or too small)"
            if declared[missing[0]]
            else "it has no box or mask"
        )
        if missing_gt == "error":
            more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
            raise DataError(
                f"{first.where}: sample {first.sample_id} has no ground truth, {why}, while other "
                f"samples have some{more}; {_gt_hint()}"
            )
        names = ", ".join(targets[i].sample_id for i in missing[:3]) + (" …" if len(missing) > 3 else "")
        if missing_gt == "drop":
            dropped = set(missing)
            keep = [i for i in keep if i not in dropped]
            warnings.warn(
                f"{source}: dropped {len(missing)} sample(s) without ground truth: {names}",
                DataWarning,
                stacklevel=4,
            )
            if not keep:
                raise DataError(f"{source}: no samples left after dropping those without ground truth")
        else:
            warnings.warn(
                f"{source}: {len(missing)} sample(s) without ground truth keep an empty mask: {names}",
                DataWarning,
                stacklevel=4,
            )
    return keep


def image_identity(path: Path) -> tuple[str, ...]:
    """The canonical identity of an image file as split sources: its resolved path and the SHA-256 of its
    bytes, so that one image written two ways (``/abs/d/img0.png`` and ``../d/img0.png``, a symlink, a copy)
    is one image to :func:`sycam.data.split`, never on two sides.

    Example: ``image_identity(Path("a.png"))`` → ``("image:/abs/a.png", "image:sha256:9f86d081884c7d65…")``.
    """
    try:
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        digest = "unreadable"  # read_image says why, next
    return f"image:{path.resolve()}", f"image:sha256:{digest}"
