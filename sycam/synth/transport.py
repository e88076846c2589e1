"""The transport of the shard plane: an :class:`Executor` runs :class:`~sycam.synth.shard.Shard` objects somewhere
and calls one method on several of them at once; :func:`plan_shards` cuts a split's images into shards.

This module is the base both executors build on (:mod:`sycam.synth.executors` in this process,
:mod:`sycam.synth.ray_executor` on Ray actors); it imports neither, so neither imports the other.

>>> plan_shards(18, 2, 9)
[range(0, 9), range(9, 18)]
>>> plan_shards(18, 2, 64)  # one batch: one shard (lower the batch to use both workers)
[range(0, 18)]
>>> plan_shards(10, 3, 2)
[range(0, 4), range(4, 8), range(8, 10)]
"""

from __future__ import annotations

import math
import pickle
from collections.abc import Sequence
from typing import Any

from torch import nn

from ..errors import SycamError
from ..terminals import ExtractOptions


class ExecutorError(SycamError, RuntimeError):
    """An executor could not start, or a shard failed for good."""


def plan_shards(n: int, workers: int, batch: int) -> list[range]:
    """Contiguous shards of ``n`` images for up to ``workers`` workers, each a whole number of extraction batches
    of ``batch`` images (the last one may be short), as even as those allow; empty shards are left out."""
    if n < 1 or workers < 1 or batch < 1:
        raise ExecutorError(f"cannot shard {n} images over {workers} workers in batches of {batch}")
    batches = math.ceil(n / batch)
    per, extra = divmod(batches, workers)
    out, start = [], 0
    for i in range(workers):
        k = per + (1 if i < extra else 0)
        if k == 0:
            continue
        stop = min(n, start + k * batch)
        out.append(range(start, stop))
        start = stop
    return out


def balanced_batch(n: int, workers: int, batch: int) -> int:
    """The extraction batch to shard ``n`` images over ``workers``: ``batch``, or, when ``n`` holds fewer than
    ``workers`` batches of it, the largest smaller batch that gives each of ``min(workers, n)`` workers images.

    >>> balanced_batch(18, 2, 64), balanced_batch(5, 4, 64), balanced_batch(100, 2, 8)
    (9, 1, 8)
    """
    if math.ceil(n / batch) >= workers:
        return batch
    b = math.ceil(n / workers)
    return b if math.ceil(n / b) >= workers else max(1, n // workers)


def _pickled_size(obj: Any) -> int:
    """Bytes of ``obj`` pickled (0 for what plain pickle refuses, such as a Ray object reference: a few bytes)."""
    try:
        return len(pickle.dumps(obj, protocol=5))
    except Exception:
        return 0


class Executor:
    """Runs shards; subclasses say where. Use as a context manager (or call :meth:`close`).

    Args:
        workers: the number of shards (each one worker).
        threads: torch threads per worker.
    """

    name = "abstract"

    def __init__(self, workers: int = 2, threads: int | None = 1) -> None:
        if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
            raise ExecutorError(f"workers must be a positive integer, got {workers!r}")
        self.workers = workers
        self.threads = threads
        self.log: list[list[tuple[str, tuple[Any, ...]]]] = []
        self.keep_log = True
        """whether ``log=True`` calls are recorded for replay (off for a run with one in-process shard, which is
        never rebuilt)"""
        self.measure = False
        """count the bytes each call moves (pickled arguments and replies) in :attr:`traffic`; off by default,
        as pickling large arguments twice costs time"""
        self.traffic: dict[str, list[int]] = {}
        """method → [calls, bytes sent to the shards, bytes received from them] since :meth:`start` (with
        :attr:`measure`)"""

    def start(self, model: nn.Module, layer: str | nn.Module, options: ExtractOptions) -> None:
        """Start the workers, each holding the model."""
        self.log = [[] for _ in range(self.workers)]
        self.traffic = {}
        self._start(model, layer, options)

    def _start(self, model: nn.Module, layer: str | nn.Module, options: ExtractOptions) -> None:
        raise NotImplementedError

    def call(self, method: str, args: Sequence[tuple[Any, ...]], shards: Sequence[int] | None = None,
             log: bool = False) -> list[Any]:
        """Call ``method`` on the shards ``shards`` (default: the first ``len(args)``), shard ``shards[i]`` with
        ``args[i]``, at once; the replies in that order. ``log``: the call changes the shard's state and is
        replayed when the shard is rebuilt."""
        index = list(range(len(args))) if shards is None else list(shards)
        if len(index) != len(args):
            raise ExecutorError(f"{method}: {len(args)} argument tuples for {len(index)} shards")
        replies = self._call(method, args, index)
        if self.measure:
            t = self.traffic.setdefault(method, [0, 0, 0])
            t[0] += 1
            t[1] += sum(_pickled_size(a) for a in args)
            t[2] += sum(_pickled_size(r) for r in replies)
        if log and self.keep_log:
            for i, a in zip(index, args, strict=True):
                self.log[i].append((method, a))
        return replies

    def _call(self, method: str, args: Sequence[tuple[Any, ...]], index: list[int]) -> list[Any]:
        raise NotImplementedError

    def close(self) -> None:
        """Stop the workers (and what the executor started for them)."""

    def __enter__(self) -> Executor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def describe(self) -> dict[str, Any]:
        """``settings.executor`` in the results."""
        return {"name": self.name, "workers": self.workers, "threads": self.threads}
