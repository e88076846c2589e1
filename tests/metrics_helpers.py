"""Fixtures shared by the metric tests: tiny samples, a tiny seeded CNN, hand-computable models."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from sycam.data.samples import Samples
from sycam.metrics import StaticContext


def make_samples(
    n: int = 2,
    h: int = 4,
    w: int = 4,
    masks: Tensor | None = None,
    images: Tensor | None = None,
    labels: Tensor | list[int] | None = None,
    seed: int = 0,
    mean: tuple[float, float, float] = (0.5, 0.5, 0.5),
    std: tuple[float, float, float] = (0.25, 0.25, 0.25),
) -> Samples:
    g = torch.Generator().manual_seed(seed)
    if images is None:
        images = (torch.rand(n, 3, h, w, generator=g) - mean[0]) / std[0]
    if labels is None:
        labels = torch.zeros(n, dtype=torch.long)
    labels = torch.as_tensor(labels, dtype=torch.long)
    return Samples(images=images, labels=labels, masks=masks, mean=mean, std=std)


def ctx_for(samples: Samples, **kw: object) -> StaticContext:
    return StaticContext(samples, **kw)  # type: ignore[arg-type]


class PoolNet(nn.Module):
    """conv3x3(3→4) → ReLU → global average pool → linear(4→3); seeded, eval mode."""

    def __init__(self, seed: int = 0, classes: int = 3) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.fc = nn.Linear(4, classes)
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.randn(p.shape, generator=g))
        self.eval()

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(torch.relu(self.conv(x)).mean((-2, -1)))


def mean_logit_model(x: Tensor) -> Tensor:
    """Two classes with logits ``(mean(x), -mean(x))`` over channels and pixels: hand-computable."""
    m = x.mean((1, 2, 3))
    return torch.stack([m, -m], 1)


def channel_mean_explainer(images: Tensor) -> Tensor:
    """A stand-in CAM: the channel mean of the input, min-max normalized per image (any leading axes)."""
    m = images.mean(-3)
    lo = m.amin((-2, -1), keepdim=True)
    hi = m.amax((-2, -1), keepdim=True)
    return torch.where(hi > lo, (m - lo) / (hi - lo).clamp_min(1e-12), torch.zeros_like(m))


def random_maps(*shape: int, seed: int = 0) -> Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(*shape, generator=g)


def three_samples() -> Samples:
    """Three 8×8 samples (labels 0, 1, 2) with hand-placed ground truth: a box, a corner, a band."""
    m = torch.zeros(3, 8, 8, dtype=torch.bool)
    m[0, 1:4, 2:6] = True
    m[1, 5:, 5:] = True
    m[2, :3, :] = True
    return make_samples(3, 8, 8, masks=m, labels=[0, 1, 2], seed=4)
