"""Targets: which scalar of the model output each sample's heatmap explains.

A target is a class index (the logit ``y_c``) or, as in pytorch-grad-cam, a callable applied to one
sample's output row (e.g. ``ClassifierOutputSoftmaxTarget``). ``None`` means the predicted class.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor

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
            raise ValueError("give either class indices or callables")
        self.classes = classes
        self.fns = list(fns) if fns is not None else None

    @classmethod
    def resolve(cls, spec: TargetSpec, n: int, logits: Tensor | None = None) -> Targets:
        """Targets for ``n`` samples from a spec; ``None`` takes the argmax of ``logits``."""
        if spec is None:
            if logits is None:
                raise ValueError("targets=None needs the model outputs to take the predicted class")
            return cls(classes=logits.argmax(dim=-1).long())
        if isinstance(spec, Tensor):
            spec = spec.flatten()
            if spec.numel() == 1:
                spec = spec.expand(n)
            if spec.numel() != n:
                raise ValueError(f"got {spec.numel()} targets for {n} images")
            return cls(classes=spec.long())
        if isinstance(spec, int):
            return cls(classes=torch.full((n,), spec, dtype=torch.long))
        if callable(spec):
            return cls(fns=[spec] * n)
        items = list(spec)
        if len(items) != n:
            raise ValueError(f"got {len(items)} targets for {n} images; give one per image")
        if all(isinstance(t, int) or (isinstance(t, Tensor) and t.numel() == 1) for t in items):
            return cls(classes=torch.tensor([int(t) for t in items], dtype=torch.long))
        if all(callable(t) for t in items):
            return cls(fns=items)
        raise ValueError("targets must be class indices or callables on a sample's output, not a mix")

    def check(self, num_outputs: int) -> None:
        """Raise if a class index is outside the model's outputs."""
        if self.classes is not None and self.classes.numel():
            lo, hi = int(self.classes.min()), int(self.classes.max())
            if lo < 0 or hi >= num_outputs:
                bad = lo if lo < 0 else hi
                raise ValueError(f"target class {bad} is outside the model's {num_outputs} outputs")

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
