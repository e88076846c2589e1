"""Errors and warnings of the data layer."""

from __future__ import annotations

from ..errors import SycamError


class DataError(SycamError, ValueError):
    """Bad data input: the message is one line and names the file (and row) at fault."""


class DataWarning(UserWarning):
    """Something in the data was tolerated but changes what is loaded (samples dropped, empty ground truth)."""
