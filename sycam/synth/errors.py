"""The synthesis error type (its own module so that the checkpoint and constraint modules can raise it)."""

from __future__ import annotations

from ..errors import SycamError


class SynthesisError(SycamError, ValueError):
    """Bad synthesis settings, a bad constraint, or a checkpoint that is corrupt or does not match them."""
