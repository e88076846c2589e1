"""A tiny CNN and synthetic samples with ground truth, for fast engine and synthesis tests."""

from __future__ import annotations

import torch
from torch import nn

from sycam.data.samples import Samples


class TinyNet(nn.Module):
    """stem → body (the target layer) → a non-linear 3×3 head → GAP → fc: gradients vary in space."""

    def __init__(self, classes: int = 4) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2))
        self.body = nn.Sequential(nn.Conv2d(8, 12, 3, padding=1), nn.ReLU())
        self.head = nn.Sequential(nn.Conv2d(12, 12, 3, padding=1), nn.ReLU())
        self.fc = nn.Linear(12, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.head(self.body(self.stem(x))).mean((2, 3)))


def tiny_net(seed: int = 0) -> TinyNet:
    torch.manual_seed(seed)
    return TinyNet().eval()


def tiny_samples(n: int = 8, size: int = 16, seed: int = 0) -> Samples:
    """Random images with a bright square (the ground truth) at a seeded position."""
    gen = torch.Generator().manual_seed(seed)
    images = torch.randn(n, 3, size, size, generator=gen) * 0.3
    masks = torch.zeros(n, size, size, dtype=torch.bool)
    boxes = []
    for i in range(n):
        x, y = (int(v) for v in torch.randint(0, size // 2, (2,), generator=gen))
        w = size // 2
        images[i, :, y : y + w, x : x + w] += 1.5
        masks[i, y : y + w, x : x + w] = True
        boxes.append(torch.tensor([[x, y, x + w, y + w]], dtype=torch.float32))
    labels = torch.arange(n) % 4
    return Samples(images, labels, masks, tuple(boxes), tuple(f"img{i}#{int(labels[i])}" for i in range(n)),
                   mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))
