"""Where the shards of a sharded search run: in this process, or on Ray actors.

An :class:`Executor` starts ``workers`` :class:`~sycam.synth.shard.Shard` objects and calls one method on several
of them at once (:meth:`Executor.call`: one argument tuple per shard, the replies in shard order). Calls that
change a shard's state are logged per shard (``log=True``), so a shard that is lost can be rebuilt by replaying
its log: :class:`~sycam.synth.ray_executor.RayExecutor` does that when Ray restarts a dead actor.

Shards are contiguous runs of a split's images, cut at multiples of the extraction batch
(:func:`plan_shards`): every image then meets the model in the same batch as on one machine, its terminals are
bit-for-bit those of a local run with the same ``batch_size`` (and as many torch threads as a worker), and so are
the search's decisions.

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
from .shard import Shard

EXECUTORS = ("local", "ray")
"""The executors ``--executor`` accepts: ``local`` (this process, no shards) and ``ray``."""


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
        if log:
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


class InProcessExecutor(Executor):
    """Shards as plain objects in this process, called one after the other: the sharded search's logic with no
    cluster (tests, and a check that sharding changes nothing). :meth:`rebuild` replays a shard's log into a
    fresh :class:`~sycam.synth.shard.Shard`, as a restarted Ray actor is rebuilt.

    >>> ex = InProcessExecutor(workers=2)
    >>> ex.name, ex.workers
    ('inprocess', 2)
    """

    name = "inprocess"

    def _start(self, model: nn.Module, layer: str | nn.Module, options: ExtractOptions) -> None:
        self._args = (model, layer, options, self.threads)
        self.shards = [Shard(model, layer, options, None) for _ in range(self.workers)]

    def _call(self, method: str, args: Sequence[tuple[Any, ...]], index: list[int]) -> list[Any]:
        return [getattr(self.shards[i], method)(*a) for i, a in zip(index, args, strict=True)]

    def rebuild(self, i: int) -> None:
        """Replace shard ``i`` by a fresh one and replay its log (what a lost worker costs)."""
        model, layer, options, _ = self._args
        self.shards[i] = Shard(model, layer, options, None)
        for method, a in self.log[i]:
            getattr(self.shards[i], method)(*a)


def make_executor(kind: str = "local", address: str | None = None, workers: int | None = None,
                  threads: int | None = 1, num_gpus: float = 0.0) -> Executor | None:
    """The executor ``--executor`` names: None for ``"local"`` (the search runs in this process, unsharded), a
    :class:`~sycam.synth.ray_executor.RayExecutor` for ``"ray"`` (``address``: None starts a local Ray instance,
    ``"auto"`` joins the running cluster, ``"HOST:PORT"`` joins that one; ``workers``: None uses one per CPU
    of the cluster, each with ``threads`` torch threads and ``num_gpus`` GPUs)."""
    if kind == "local":
        if address is not None:
            raise ExecutorError("--ray-address needs --executor ray")
        return None
    if kind == "ray":
        from .ray_executor import RayExecutor

        return RayExecutor(workers=workers, address=address, threads=threads, num_gpus=num_gpus)
    raise ExecutorError(f"unknown executor {kind!r}; choose from {', '.join(EXECUTORS)}")
