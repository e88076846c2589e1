"""Targets: which scalar of the model output each sample's heatmap explains.

A target is a class index (the logit ``y_c``) or, as in pytorch-grad-cam, a callable applied to one
sample's output row (e.g. ``ClassifierOutputSoftmaxTarget``). ``None`` means the predicted class.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from .errors import SycamError


class TargetError(SycamError, ValueError):
    """Targets that cannot be resolved: a bool, a fraction or a huge number as a class, the wrong count, a mix."""


INT64_MAX = 2**63 - 1


def _class_index(t: object, where: str) -> int:
    """One class index: an int (or a one-element integer tensor) in the int64 range; bools and fractions refused."""
    if isinstance(t, Tensor):
        if t.numel() != 1 or t.dtype == torch.bool or t.is_floating_point() or t.is_complex():
            raise TargetError(f"{where}: a target tensor must hold integer class indices, got dtype "
                              f"{str(t.dtype).replace('torch.', '')} and {t.numel()} value(s)")
        t = int(t.item())
    if isinstance(t, bool) or not isinstance(t, numbers.Integral):
        raise TargetError(f"{where}: {t!r} is not a class index (an integer) nor a callable")
    value = int(t)
    if not -INT64_MAX - 1 <= value <= INT64_MAX:
        raise TargetError(f"{where}: class index {value} is out of range (a class index is a 64-bit integer)")
    return value

TargetSpec = None | int | Sequence[int] | Tensor | Callable[[Tensor], Tensor] | Sequence[Callable[[Tensor], Tensor]]
"""What a caller may pass as ``targets``: ``None`` (predicted class), one class index for all samples, one index per
sample (list or tensor), one callable for all samples, or one callable per sample."""


class Targets:
    """Per-sample targets, resolved for ``n`` samples.

    Class-index targets are gathered from the logits in one tensor op; callable targets are applied
    row by row (they are arbitrary user code).
    """

    def __init__(self, classes: Tensor | None = None, fns: Sequence[Callable[[Tensor], Tensor]] | None = None):
        if (classes is None) == (fns is None):
            raise TargetError("give either class indices or callables")
        self.classes = classes
        self.fns = list(fns) if fns is not None else None

    @classmethod
    def resolve(cls, spec: TargetSpec, n: int, logits: Tensor | None = None) -> Targets:
        """Targets for ``n`` samples from a spec; ``None`` takes the argmax of ``logits``."""
        if spec is None:
            if logits is None:
                raise TargetError("targets=None needs the model outputs to take the predicted class")
            return cls(classes=logits.argmax(dim=-1).long())
        if isinstance(spec, Tensor):
            spec = spec.flatten()
            if spec.dtype == torch.bool or spec.is_floating_point() or spec.is_complex():
                raise TargetError(f"targets: a target tensor must hold integer class indices, got dtype "
                                  f"{str(spec.dtype).replace('torch.', '')}")
            if spec.numel() == 1:
                spec = spec.expand(n)
            if spec.numel() != n:
                raise TargetError(f"got {spec.numel()} targets for {n} images")
            return cls(classes=spec.long())
        if isinstance(spec, numbers.Number) and not callable(spec):
            return cls(classes=torch.full((n,), _class_index(spec, "targets"), dtype=torch.long))
        if callable(spec):
            return cls(fns=[spec] * n)
        if isinstance(spec, str | bytes):
            raise TargetError(f"targets: {spec!r} is not a class index (an integer) nor a callable")
        items = list(spec)
        if len(items) != n:
            raise TargetError(f"got {len(items)} targets for {n} images; give one per image")
        if items and all(callable(t) and not isinstance(t, Tensor) for t in items):
            return cls(fns=items)
        if any(callable(t) and not isinstance(t, Tensor) for t in items) and \
                all(callable(t) or isinstance(t, numbers.Integral | Tensor) for t in items):
            raise TargetError("targets must be class indices or callables on a sample's output, not a mix")
        return cls(classes=torch.tensor([_class_index(t, f"targets[{i}]") for i, t in enumerate(items)],
                                        dtype=torch.long))

    def check(self, num_outputs: int) -> None:
        """Raise if a class index is outside the model's outputs."""
        if self.classes is not None and self.classes.numel():
            lo, hi = int(self.classes.min()), int(self.classes.max())
            if lo < 0 or hi >= num_outputs:
                bad = lo if lo < 0 else hi
                raise TargetError(f"target class {bad} is outside the model's {num_outputs} outputs")

    def scores(self, outputs: Tensor, index: Tensor | None = None) -> Tensor:
        """Target score of each output row; ``index[m]`` is the sample that row ``m`` belongs to."""
        if index is None:
            index = torch.arange(outputs.shape[0], device=outputs.device)
        if self.classes is not None:
            cls = self.classes.to(outputs.device)[index]
            return outputs.gather(-1, cls.unsqueeze(-1)).squeeze(-1)
        assert self.fns is not None
        return torch.stack([self.fns[int(i)](row) for row, i in zip(outputs, index.tolist(), strict=True)])

    def subset(self, index: Sequence[int]) -> Targets:
        """The targets of the samples at ``index``, in that order."""
        if self.classes is not None:
            return Targets(classes=self.classes[list(index)])
        assert self.fns is not None
        return Targets(fns=[self.fns[i] for i in index])

    def __len__(self) -> int:
        return len(self.classes) if self.classes is not None else len(self.fns or [])
