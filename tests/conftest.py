"""Test-session settings: one torch thread per xdist worker, so that `-n 2` on two cores does not
oversubscribe the CPU (torch's default would start two threads in each worker)."""

from __future__ import annotations

import os

import torch

if os.environ.get("PYTEST_XDIST_WORKER"):
    torch.set_num_threads(1)
