"""The one base class of every error sycam raises for a user to read.

Each layer raises its own subclass (``DataError``, ``MetricError``, ``ExpressionError``, ...); the CLI catches
:class:`SycamError` alone and prints its message on one line. Subclasses also derive from ``ValueError``
where they did before, so existing ``except ValueError`` code keeps working.

Example::

    try:
        sycam.CAM(model, method="mean(")
    except sycam.SycamError as e:
        print(e)            # one line, with the column of the problem
"""

from __future__ import annotations


class SycamError(Exception):
    """Base of all user-facing sycam errors: the message is complete and fits on one line."""
