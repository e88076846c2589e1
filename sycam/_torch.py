"""Small torch helpers that several layers share (one place for each rule)."""

from __future__ import annotations

import torch
from torch import nn


def module_device(module: nn.Module, default: torch.device | str = "cpu") -> torch.device:
    """The device of ``module``'s first parameter, or ``default`` for a module without parameters.

    Example::

        module_device(nn.Linear(2, 2))            # device(type='cpu')
        module_device(nn.ReLU(), images.device)   # no parameters: the images' device
    """
    param = next(module.parameters(), None)
    return param.device if param is not None else torch.device(default)
