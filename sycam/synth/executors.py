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

from collections.abc import Sequence
from typing import Any

from torch import nn

from ..terminals import ExtractOptions
from .ray_executor import RayExecutor
from .shard import Shard
from .transport import Executor, ExecutorError, balanced_batch, plan_shards

__all__ = ["EXECUTORS", "Executor", "ExecutorError", "InProcessExecutor", "RayExecutor", "balanced_batch",
           "make_executor", "plan_shards"]

EXECUTORS = ("local", "ray")
"""The executors ``--executor`` accepts: ``local`` (this process, no shards) and ``ray``."""


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
        return RayExecutor(workers=workers, address=address, threads=threads, num_gpus=num_gpus)
    raise ExecutorError(f"unknown executor {kind!r}; choose from {', '.join(EXECUTORS)}")
