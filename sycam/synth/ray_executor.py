"""Shards on Ray actors: one actor per shard holds the model and its images' terminals, on its own CPU (or GPU).

Install with ``pip install "sycam[ray]"``. ``address=None`` starts a local Ray instance (stopped again by
:meth:`RayExecutor.close`); ``"auto"`` joins the cluster running on this machine; ``"HOST:PORT"`` joins that
head node (docs/cluster.md says how to start one and join workers).

Faults: an actor is created with ``max_restarts=-1``, so Ray restarts a worker process that dies; the restart
re-creates the :class:`~sycam.synth.shard.Shard` with the model, and the executor then replays the shard's log
(its images' extraction, the bank's entries, the heatmap classes) before retrying the call that failed. The
search goes on with the same state, and so the same result, as if the worker had not died; the recomputation is
the price (:attr:`RayExecutor.restarts` counts them).
"""

from __future__ import annotations

import os
import re
import socket
import sys
import time
from collections.abc import Iterator, Sequence
from typing import Any

from torch import nn

from ..metrics.base import Metric
from ..terminals import ExtractOptions
from ..workspace import reduce_allocation_churn
from .shard import Shard
from .transport import Executor, ExecutorError

CONNECT_TIMEOUT = 5.0
"""seconds to wait for the head of a ``HOST:PORT`` address to accept a connection before Ray is asked to join it
(Ray itself retries for minutes when nothing listens there)"""
_HOST_PORT = re.compile(r"(?P<host>\[[^\]]+\]|[^:/\s]+):(?P<port>\d{1,5})")


def probe_address(address: str, timeout: float = CONNECT_TIMEOUT) -> None:
    """Refuse, in one line within ``timeout`` seconds, a ``HOST:PORT`` Ray address where nothing accepts a TCP
    connection (``auto``, ``ray://`` and other forms are left to Ray).

    Example: ``probe_address("127.0.0.1:1")`` raises :class:`ExecutorError` at once (connection refused).
    """
    m = _HOST_PORT.fullmatch(address.strip())
    if m is None:
        return
    host, port = m["host"].strip("[]"), int(m["port"])
    if not 0 < port < 65536:
        raise ExecutorError(f"cannot join the Ray cluster at {address!r}: port {port} is not in 1…65535")
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return
    except TimeoutError:
        why = f"no answer within {timeout:g} s"
    except OSError as exc:
        why = exc.strerror or type(exc).__name__
    raise ExecutorError(f"cannot join the Ray cluster at {address!r}: {why}; is a Ray head running there "
                        f"(ray start --head --port {port})?")


RESTART_WAIT = 120.0
"""seconds to wait for Ray to bring a dead worker back before giving up"""


def _ray() -> Any:
    try:
        import ray
    except ImportError:
        raise ExecutorError('the ray executor needs Ray: pip install "sycam[ray]"') from None
    return ray


def _importable(module: str) -> bool:
    """Whether a fresh process finds ``module`` (not just this process's ``sys.modules``): on its path, or
    through an import hook such as the finder of an editable install (``pip install -e``), which puts no folder
    on ``sys.path``."""
    top = module.partition(".")[0]
    if top in sys.builtin_module_names:
        return True
    for finder in sys.meta_path:
        find = getattr(finder, "find_spec", None)
        if find is not None and find(top, None) is not None:
            return True
    return False


def _flat(obj: Any, depth: int = 3) -> Iterator[Any]:
    """``obj`` and, a few levels down, what its tuples, lists, dicts and (metric) attributes hold."""
    yield obj
    if not depth:
        return
    if isinstance(obj, tuple | list):
        items: Any = obj
    elif isinstance(obj, dict):
        items = obj.values()
    elif isinstance(obj, Metric):
        items = vars(obj).values()
    else:
        return
    for x in items:
        yield from _flat(x, depth - 1)


def _module_of(obj: Any) -> str:
    """The module a pickle of ``obj`` refers to: a function's or class's own, else its class's."""
    if isinstance(obj, type) or (callable(obj) and hasattr(obj, "__qualname__")):
        return str(getattr(obj, "__module__", "") or "")
    return type(obj).__module__


class _ShardActor:
    """The actor body: a process with torch and sycam imported, then (:meth:`setup`) a
    :class:`~sycam.synth.shard.Shard` and a way to call its methods."""

    def __init__(self) -> None:
        # large tensors come and go with every candidate: keep their blocks in the heap (Ray runs the calls on a
        # thread of its own, whose arena would otherwise map and unmap them each time; measured: the demo's
        # scoring took 19.3 s instead of 14.8 s on one worker)
        reduce_allocation_churn()
        self.shard: Shard | None = None

    def setup(self, model: nn.Module, layer: str | nn.Module, options: ExtractOptions, threads: int | None,
              device: str | None) -> None:
        if device is not None:
            model = model.to(device)
        self.shard = Shard(model, layer, options, threads)

    def call(self, method: str, *args: Any) -> Any:
        if method == "setup":
            return self.setup(*args)
        return getattr(self.shard, method)(*args)

    def pid(self) -> int:
        return os.getpid()


class RayExecutor(Executor):
    """Shards as Ray actors (see the module doc).

    Args:
        workers: actors (shards); None: one per ``threads`` CPUs of the cluster.
        address: None (start a local Ray instance), ``"auto"`` or ``"HOST:PORT"``.
        threads: CPUs (and torch threads) per actor.
        num_gpus: GPUs per actor (the model then runs on ``cuda``).

    Example::

        with RayExecutor(workers=2) as ex:
            result = synthesize(net, "layer4", syn, test, metric, config=config, executor=ex)
    """

    name = "ray"

    def __init__(self, workers: int | None = None, address: str | None = None, threads: int | None = 1,
                 num_gpus: float = 0.0) -> None:
        self._ray = _ray()
        self.address = address
        self.num_gpus = float(num_gpus)
        self.restarts = 0
        self._started_ray = False
        self._checked_modules: set[str] = set()
        self._local_cpus = None if workers is None else workers * max(1, threads or 1)
        if address is not None:
            probe_address(address)  # in seconds, where Ray would retry for minutes
        if not self._ray.is_initialized():
            self._connect()
        if workers is None:
            cpus = int(self._ray.cluster_resources().get("CPU", 1))
            workers = max(1, cpus // max(1, threads or 1))
        super().__init__(workers, threads)
        self.actors: list[Any] = []
        try:
            self._check_fits()
            self._spawn()
        except ExecutorError:
            self.close()
            raise

    def _check_fits(self) -> None:
        """Refuse workers whose CPUs or GPUs add up to more than the cluster has: Ray would wait for the ones
        that do not fit forever."""
        have = self._ray.cluster_resources()
        asked = {"CPU": (self.threads or 1, "--worker-threads"), "GPU": (self.num_gpus, "--worker-gpus")}
        for name, (each, option) in asked.items():
            need = self.workers * each
            if need > have.get(name, 0.0) + 1e-9:
                raise ExecutorError(f"the Ray workers need {need:g} {name}s ({self.workers} × {each:g}), but the "
                                    f"Ray cluster has {have.get(name, 0.0):g}: lower --workers or {option}")

    def _connect(self) -> None:
        ray = self._ray
        kwargs: dict[str, Any] = {"log_to_driver": False, "configure_logging": False}
        try:
            if self.address is None:  # "local": a new instance, never a cluster someone else started here
                ray.init(address="local", num_cpus=self._local_cpus, include_dashboard=False, **kwargs)
            else:
                ray.init(address=self.address, **kwargs)
        except Exception as exc:  # ConnectionError, a node that timed out starting, ...: one line, not Ray's trace
            where = ("start a local Ray instance" if self.address is None
                     else f"join the Ray cluster at {self.address!r}")
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ExecutorError(f"cannot {where}: {first}") from None
        self._started_ray = True

    def _spawn(self) -> None:
        """Start the worker processes now (they import torch and sycam while the caller loads its model and
        data); :meth:`start` hands them the model."""
        ray = self._ray
        actor = ray.remote(_ShardActor).options(num_cpus=self.threads or 1, num_gpus=self.num_gpus,
                                                max_restarts=-1, max_task_retries=0)
        self.actors = [actor.remote() for _ in range(self.workers)]

    def _start(self, model: nn.Module, layer: str | nn.Module, options: ExtractOptions) -> None:
        """Give every worker the model (one object in Ray's store, held here: a restarted worker reads it again)
        and a fresh shard; the call is the first of each shard's log, so a restart replays it first."""
        ray = self._ray
        if not self.actors:
            self._spawn()
        device = "cuda" if self.num_gpus > 0 else None
        self._model_ref = ray.put(model)
        try:
            ray.get([a.pid.remote() for a in self.actors])
        except ray.exceptions.RayActorError as exc:  # the constructor failed: a restart would fail the same way
            self.close_actors()
            raise ExecutorError(f"a Ray worker could not start: {exc}") from None
        args = (self._model_ref, layer, options, self.threads, device)
        self.call("setup", [args] * self.workers, log=True)

    def ready(self) -> float:
        """Wait until every worker process is up; the seconds waited (a benchmark's clock starts after)."""
        t0 = time.perf_counter()
        self._ray.get([a.pid.remote() for a in self.actors])
        return time.perf_counter() - t0

    def _call(self, method: str, args: Sequence[tuple[Any, ...]], index: list[int]) -> list[Any]:
        ray = self._ray
        for a in args:
            self._by_value(a)
        refs = [self.actors[i].call.remote(method, *a) for i, a in zip(index, args, strict=True)]
        out = []
        for i, a, ref in zip(index, args, refs, strict=True):
            try:
                out.append(ray.get(ref))
            except (ray.exceptions.RayActorError, ray.exceptions.ActorUnavailableError):
                self._recover(i)
                out.append(ray.get(self.actors[i].call.remote(method, *a)))
        return out

    def _by_value(self, args: tuple[Any, ...]) -> None:
        """Send the classes of arguments whose module a worker cannot import (a custom metric loaded from a file:
        :mod:`sycam.metrics.custom`) by value rather than by reference."""
        for obj in _flat(args):
            name = _module_of(obj)
            if name not in self._checked_modules:
                self._checked_modules.add(name)
                module = sys.modules.get(name)
                if module is not None and name != "__main__" and not _importable(name):  # __main__: by value anyway
                    self._ray.cloudpickle.register_pickle_by_value(module)

    def _recover(self, i: int) -> None:
        """Wait for Ray to restart actor ``i`` (its constructor rebuilds the shard with the model), then replay
        the shard's log; a worker that dies again during the replay is waited for again."""
        ray = self._ray
        lost = (ray.exceptions.RayActorError, ray.exceptions.ActorUnavailableError)
        deadline = time.monotonic() + RESTART_WAIT
        while True:
            try:
                ray.get(self.actors[i].pid.remote(), timeout=10)
                for method, a in self.log[i]:
                    ray.get(self.actors[i].call.remote(method, *a))
                self.restarts += 1
                return
            except (*lost, ray.exceptions.GetTimeoutError) as exc:
                dead = self._dead_local_ray()
                if dead:
                    raise ExecutorError(f"the local Ray instance that sycam started has died ({dead} exited), so "
                                        f"worker {i} cannot come back; rerun, with --resume to keep the scores "
                                        "checkpointed so far") from None
                if time.monotonic() > deadline:
                    raise ExecutorError(f"worker {i} died and did not come back within {RESTART_WAIT:.0f} s: "
                                        f"{exc}") from None
                time.sleep(0.5)

    def _dead_local_ray(self) -> str:
        """The processes of the local Ray instance this executor started that have exited (raylet, GCS, the
        dashboard agent, ...), comma-separated; ``""`` when they are alive or Ray is someone else's."""
        if not self._started_ray or self.address is not None:
            return ""
        try:
            node = self._ray._private.worker._global_node
            dead = node.dead_processes() if node is not None else []
        except Exception:  # Ray internals vary between versions: no verdict
            return ""
        return ", ".join(sorted({str(kind) for kind, _ in dead}))

    def pids(self) -> list[int]:
        """The worker processes' ids (to watch them, or to kill one in a test)."""
        return [self._ray.get(a.pid.remote()) for a in self.actors]

    def close_actors(self) -> None:
        """Stop the workers (Ray stays up)."""
        for a in self.actors:
            self._ray.kill(a)
        self.actors = []

    def close(self) -> None:
        """Stop the workers, and the Ray instance if this executor started it."""
        self.close_actors()
        if self._started_ray:
            self._ray.shutdown()
            self._started_ray = False

    def describe(self) -> dict[str, Any]:
        """``settings.executor``: name, workers, threads, address, GPUs per worker."""
        return {**super().describe(), "address": self.address, "num_gpus": self.num_gpus}
