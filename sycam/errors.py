"""The one base class of every error sycam raises for a user to read.

Each layer raises its own subclass (``DataError``, ``MetricError``, ``ExpressionError``, ...); the CLI catches
:class:`SycamError` alone and prints its message on one line. Subclasses also derive from ``ValueError``
where they did before, so existing ``except ValueError`` code keeps working. :class:`ModelError` is defined
here because several modules raise it: :mod:`sycam.models` (layers, weights) and :mod:`sycam.transforms`
(reshapes, whose :class:`~sycam.transforms.ReshapeError` derives from it), which the models module reads.

Example::

    try:
        sycam.CAM(model, method="mean(")
    except sycam.SycamError as e:
        print(e)            # one line, with the column of the problem
"""

from __future__ import annotations


class SycamError(Exception):
    """Base of all user-facing sycam errors: the message is complete and fits on one line."""


class ModelError(SycamError, ValueError):
    """A model, layer or weights problem, with a message fit for one line of output."""
