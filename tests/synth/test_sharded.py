"""The sharded search: the same winner, scores and counters as one process, in-process shards and Ray actors;
a lost shard rebuilt mid-search; bytes per candidate that do not grow with the images."""

from __future__ import annotations

import math
import os
import shutil
import signal
import socket
import subprocess
import sys
from dataclasses import replace
from typing import Any

import engine_helpers
import pytest
import torch
from engine_helpers import tiny_net, tiny_samples
from hypothesis import given, settings
from hypothesis import strategies as st

from sycam.data.samples import Samples
from sycam.exactsum import ExactSum, exact_means, partial_sums
from sycam.expr import parse
from sycam.metrics import get_metric
from sycam.synth import Grammar, SynthesisConfig, SynthesisError, synthesize
from sycam.synth.executors import ExecutorError, InProcessExecutor, balanced_batch, make_executor, plan_shards
from sycam.synth.learner import Signature
from sycam.synth.sharded import evaluate_sharded
from sycam.terminals import ExtractOptions
from sycam.workspace import evaluate_methods

LAYER = "body"
OPTIONS = ExtractOptions(batch_size=2)
"""shards are cut at multiples of 2 images; the local runs use the same extraction batch"""


def splits(n: int = 16) -> tuple[Samples, Samples, Samples]:
    s = tiny_samples(n)
    q = n // 4
    return s.subset(slice(0, 2 * q)), s.subset(slice(2 * q, 3 * q)), s.subset(slice(3 * q, n))


def comparable(result: Any) -> dict[str, Any]:
    """results.json without what may differ between executors: timings, the executor's description."""
    d = dict(result.to_dict())
    d.pop("timings")
    d.pop("seconds")
    d["settings"] = {k: v for k, v in d["settings"].items() if k != "executor"}
    return d


def run(metrics: list[Any], config: SynthesisConfig, executor: Any = None, on_progress: Any = None) -> Any:
    syn, val, test = splits()
    return synthesize(tiny_net(), LAYER, syn, test, metrics, config=config, options=OPTIONS, on_progress=on_progress,
                      validation=val, executor=executor)


CASES = {
    # guarded localization objective, heatmap equivalence, budget stop mid-enumeration (the read-ahead rewinds)
    "iou+guard": ([get_metric("iou")], dict(constraints=("pointing_game >= gradcam",), max_candidates=150)),
    # exact low-resolution metric
    "epg": ([get_metric("energy_pointing_game")], dict(max_candidates=60)),
    # model-cost metric with exact equivalence keys (deletion step bins)
    # (no default guard: insertion_auc's blur baseline differs by ~4e-9 between one process and shards)
    "deletion": ([get_metric("deletion_auc", steps=5)], dict(max_candidates=40, guards=False)),
    # metric views (noise drawn for the whole split) and metric-value equivalence
    "views": ([get_metric("max_sensitivity", n=2)], dict(max_candidates=50, equivalence="metric")),
    # two objectives (Pareto front), no equivalence pruning
    "pareto": ([get_metric("iou"), get_metric("mask_auc")], dict(max_candidates=50, equivalence="none")),
}


def config_for(case: str) -> tuple[list[Any], SynthesisConfig]:
    metrics, kw = CASES[case]
    return metrics, SynthesisConfig(grammar=Grammar(terminals=("A", "G", "D"), max_size=4), **kw)


# -- the rules that combine over shards -------------------------------------------------------------------


@given(st.lists(st.floats(allow_nan=False, allow_infinity=False, width=32), min_size=1, max_size=40),
       st.integers(0, 40))
@settings(max_examples=200, deadline=None)
def test_exact_sums_of_any_partition_give_the_same_mean(values: list[float], cut: int) -> None:
    x = torch.tensor([values], dtype=torch.float32)
    cut = min(cut, len(values))
    a, b = partial_sums(x[:, :cut])[0], partial_sums(x[:, cut:])[0]
    reordered = exact_means(x.flip(-1))
    assert (a + b).mean() == exact_means(x).item() == reordered.item()
    assert (a + b).count == len(values)


def test_exact_mean_is_correctly_rounded() -> None:
    from fractions import Fraction

    x = torch.tensor([[1e-8, 1.0, -1.0, 3e-8, 0.1]], dtype=torch.float32)
    exact = sum(Fraction(float(v)) for v in x[0].tolist()) / 5
    assert exact_means(x).item() == float(exact)
    assert ExactSum().count == 0 and torch.isnan(exact_means(torch.tensor([[float("nan"), 1.0]])))[0]


@given(st.integers(1, 200), st.integers(1, 8), st.integers(1, 64))
@settings(max_examples=200, deadline=None)
def test_plan_shards_cuts_contiguous_whole_batches(n: int, workers: int, batch: int) -> None:
    plan = plan_shards(n, workers, batch)
    assert 1 <= len(plan) <= workers
    assert [i for r in plan for i in r] == list(range(n))  # contiguous, in order, covering
    assert all(r.start % batch == 0 for r in plan) and all(len(r) > 0 for r in plan)
    b = balanced_batch(n, workers, batch)
    if math.ceil(n / batch) < workers:  # too few batches: lowered until every worker (or image) has a shard
        assert b <= batch and len(plan_shards(n, workers, b)) == min(workers, n)
    else:
        assert b == batch


def test_signatures_combine_like_the_whole_value() -> None:
    whole = Signature.of((torch.tensor([0.0, 0.0, 2.0, -1.0]),))
    parts = Signature.of((torch.tensor([0.0, 0.0]),)) & Signature.of((torch.tensor([2.0, -1.0]),))
    assert whole == parts == Signature(finite=True, nonzero=True, nonneg=False)
    assert not (Signature.of((torch.tensor([1.0]),)) & Signature.of((torch.tensor([float("inf")]),))).finite


def bn_net() -> torch.nn.Module:
    """TinyNet with BatchNorm after the head's convolution: the inference-optimized copy folds it, so its outputs
    differ from the plain forward's in the last bits (what makes the copy's use visible)."""
    net = tiny_net()
    bn = torch.nn.BatchNorm2d(12)
    with torch.no_grad():
        bn.running_mean.uniform_(-0.3, 0.3)
        bn.running_var.uniform_(0.5, 2.0)
        bn.weight.uniform_(0.5, 1.5)
        bn.bias.uniform_(-0.2, 0.2)
    net.head = torch.nn.Sequential(net.head[0], bn, torch.nn.ReLU())
    return net.eval()


@pytest.mark.parametrize(("batch", "top_k"), [(32, None), (32, 4), (6, None)])
def test_terminals_of_a_shard_are_the_rows_of_the_whole(batch: int, top_k: int | None) -> None:
    """A, G, S and D of each shard equal (bit for bit) the rows of the whole set: chunks of generated inputs never
    span two image batches, and whether the inference-optimized copy runs is decided for the whole split
    (``plan_images``), as one process holding it decides (64 images: it runs for S and D; top-4 S: 5 × 64 too)."""
    from sycam.targets import Targets
    from sycam.terminals import TerminalCache

    net, s = bn_net(), tiny_samples(64)
    options = ExtractOptions(batch_size=batch, score_top_k=top_k, ablation_batch=40)
    names = ["A", "G", "S", "D"]
    whole = TerminalCache(net, LAYER, s.images, Targets(classes=s.labels), options).values(names)
    for r in plan_shards(64, 8, batch):
        part = s.subset(slice(r.start, r.stop))
        planned = replace(options, plan_images=64)  # what a shard of a 64-image split is told
        got = TerminalCache(net, LAYER, part.images, Targets(classes=part.labels), planned).values(names)
        for t in names:
            assert torch.equal(got[t], whole[t][r.start:r.stop]), t


# -- the same result as one process ---------------------------------------------------------------------


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("workers", [2, 3])
def test_sharded_search_equals_the_local_search(case: str, workers: int) -> None:
    metrics, config = config_for(case)
    local = run(metrics, config)
    with InProcessExecutor(workers=workers) as ex:
        sharded = run(metrics, config, ex)
    assert comparable(sharded) == comparable(local)  # winner, every score, every counter, per-image evidence
    assert sharded.to_dict()["settings"]["executor"] == {"name": "inprocess", "workers": workers, "threads": 1}


def test_stop_at_lambda_and_no_held_out_splits() -> None:
    syn, _, _ = splits()
    config = SynthesisConfig(grammar=Grammar(terminals=("A", "G"), max_size=4), stop_at_lambda=True)
    local = synthesize(tiny_net(), LAYER, syn, None, get_metric("iou"), config=config, options=OPTIONS)
    with InProcessExecutor(workers=2) as ex:
        sharded = synthesize(tiny_net(), LAYER, syn, None, get_metric("iou"), config=config, options=OPTIONS,
                             executor=ex)
    assert comparable(sharded) == comparable(local)


def test_extraction_batch_is_lowered_so_every_worker_gets_images() -> None:
    syn, _, _ = splits()  # 8 images, one batch of 64
    config = SynthesisConfig(grammar=Grammar(terminals=("A", "G"), max_size=3), max_candidates=20)
    with InProcessExecutor(workers=2) as ex:
        result = synthesize(tiny_net(), LAYER, syn, None, get_metric("iou"), config=config,
                            options=ExtractOptions(batch_size=64), executor=ex)
    local = synthesize(tiny_net(), LAYER, syn, None, get_metric("iou"), config=config,
                       options=ExtractOptions(batch_size=4))
    assert result.settings["extraction"]["batch_size"] == 4
    assert any("batch lowered to 4" in n for n in result.notes)
    assert result.best.expression == local.best.expression and result.counters == local.counters


def test_racing_is_refused_with_a_reason() -> None:
    with InProcessExecutor(workers=2) as ex, pytest.raises(SynthesisError, match="racing needs every synthesis"):
        run([get_metric("iou")], SynthesisConfig(racing=True, max_candidates=5), ex)


def test_sharded_evaluation_equals_the_local_one() -> None:
    s = tiny_samples(10)
    methods = {"gradcam": parse("mean(G)"), "ablation": parse("D")}
    metrics = {"iou": get_metric("iou"), "deletion_auc": get_metric("deletion_auc", steps=4)}
    local = evaluate_methods(tiny_net(), LAYER, s, methods, metrics, ExtractOptions(batch_size=4))
    with InProcessExecutor(workers=3) as ex:
        sharded = evaluate_sharded(tiny_net(), LAYER, s, methods, metrics, ExtractOptions(batch_size=4), ex)
    assert dict(sharded) == dict(local)
    assert sharded.per_image == local.per_image and sharded.degenerate == local.degenerate


def test_make_executor_errors() -> None:
    assert make_executor("local") is None
    with pytest.raises(ExecutorError, match="--ray-address needs --executor ray"):
        make_executor("local", address="auto")
    with pytest.raises(ExecutorError, match="unknown executor 'dask'"):
        make_executor("dask")
    with pytest.raises(ExecutorError, match="workers must be a positive integer"):
        InProcessExecutor(workers=0)


# -- faults -----------------------------------------------------------------------------------------------


class LosesAShard(InProcessExecutor):
    """Loses shard 1 (and rebuilds it from its log, as after a Ray restart) at the ``at``-th scoring call."""

    def __init__(self, at: int) -> None:
        super().__init__(workers=2)
        self.at, self.calls, self.rebuilt = at, 0, 0

    def _call(self, method: str, args: Any, index: list[int]) -> list[Any]:
        if method == "score":
            self.calls += 1
            if self.calls == self.at:
                self.rebuilt += 1
                self.rebuild(1)
        return super()._call(method, args, index)


def test_a_shard_rebuilt_mid_search_gives_the_same_result() -> None:
    metrics, config = config_for("iou+guard")
    local = run(metrics, config)
    with LosesAShard(at=20) as ex:
        sharded = run(metrics, config, ex)
    assert ex.rebuilt == 1
    assert comparable(sharded) == comparable(local)


# -- bytes per candidate ----------------------------------------------------------------------------------

SEARCH_CALLS = ("bank", "triage", "distances", "keys", "score")


def bytes_per_candidate(n: int) -> float:
    s = tiny_samples(n)
    config = SynthesisConfig(grammar=Grammar(terminals=("A", "G"), max_size=4), max_candidates=60,
                             baselines=("gradcam", "gradcam++", "xgradcam", "layercam", "hirescam"))
    with InProcessExecutor(workers=2) as ex:
        ex.measure = True
        result = synthesize(tiny_net(), LAYER, s, None, get_metric("iou"), config=config,
                            options=ExtractOptions(batch_size=8), executor=ex)
        moved = sum(t[1] + t[2] for m, t in ex.traffic.items() if m in SEARCH_CALLS)
    return moved / result.counters["candidates_enumerated"]


def test_bytes_per_candidate_do_not_grow_with_the_images() -> None:
    # 64 images × 8×8 layer maps already exceed the fingerprint's 4096 sampled pixels: beyond, nothing per
    # candidate depends on the number of images (exact sums grow by a few bits)
    small, large = bytes_per_candidate(64), bytes_per_candidate(128)
    assert large == pytest.approx(small, rel=0.05)


# -- Ray: a local instance, a killed worker, a cluster joined by address -------------------------------------

ray = pytest.importorskip("ray", reason="Ray is not installed (pip install 'sycam[ray]')")
ray.cloudpickle.register_pickle_by_value(engine_helpers)  # workers import sycam, not the tests' helpers


@pytest.fixture
def local_ray() -> Any:
    """A fresh 2-CPU Ray instance, and one torch thread here as in each worker (the local reference runs must
    sum in the same order)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()
    torch.set_num_threads(threads)


CUSTOM = """
import torch

def peak_in_box(maps, ctx):
    masks = ctx.samples.masks.to(maps.dtype)
    return (maps * masks).flatten(-2).amax(-1)
"""


def test_ray_search_with_a_custom_metric_from_a_file(local_ray: Any, tmp_path: Any) -> None:
    from sycam.metrics.custom import load_custom_metric
    from sycam.synth.ray_executor import RayExecutor

    path = tmp_path / "my_metric.py"
    path.write_text(CUSTOM)
    metric = load_custom_metric(f"{path}:peak_in_box")
    config = SynthesisConfig(grammar=Grammar(terminals=("A", "G"), max_size=3), max_candidates=20)
    local = run([metric], config)
    with RayExecutor(workers=2) as ex:  # the workers cannot import my_metric.py: it travels by value
        sharded = run([metric], config, ex)
    assert comparable(sharded) == comparable(local)


def test_ray_search_equals_the_local_search(local_ray: Any) -> None:
    from sycam.synth.ray_executor import RayExecutor

    metrics, config = config_for("deletion")
    local = run(metrics, config)
    with RayExecutor(workers=2) as ex:
        sharded = run(metrics, config, ex)
        assert len(set(ex.pids())) == 2 and os.getpid() not in ex.pids()
    assert comparable(sharded) == comparable(local)


def test_ray_worker_killed_mid_search_is_restarted_and_the_result_is_the_same(local_ray: Any) -> None:
    from sycam.synth.ray_executor import RayExecutor

    metrics, config = config_for("iou+guard")
    local = run(metrics, config)
    killed: list[int] = []
    with RayExecutor(workers=2) as ex:

        def kill_once(scored: int, best: float | None) -> None:
            if scored >= 60 and not killed:
                pid = ex.pids()[1]
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)

        sharded = run(metrics, config, ex, kill_once)
        assert killed and ex.restarts == 1 and killed[0] not in ex.pids()
    assert comparable(sharded) == comparable(local)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def two_node_cluster() -> Any:
    """``ray start --head`` on loopback with one CPU, and a second node process with one CPU joined by address.

    Both run in the foreground (``--block``) in process groups of their own, which the teardown stops: ``ray stop``
    would stop every Ray instance on the machine, other tests' included. The loopback cluster runs without Ray's
    token authentication (a cluster across machines keeps it: docs/cluster.md); only processes of its own join it
    (this one keeps its Ray settings for the other tests)."""
    exe = shutil.which("ray", path=os.path.dirname(sys.executable)) or shutil.which("ray")
    if exe is None:
        pytest.skip("the ray command is not on PATH")
    port = free_port()
    address = f"127.0.0.1:{port}"
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "disabled"}
    common = ["--num-cpus=1", "--disable-usage-stats", "--block"]
    nodes = []
    try:
        nodes.append(subprocess.Popen([exe, "start", "--head", "--node-ip-address=127.0.0.1", f"--port={port}",
                                       "--include-dashboard=false", *common], env=env, start_new_session=True,
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        nodes.append(subprocess.Popen([exe, "start", f"--address={address}", "--node-ip-address=127.0.0.1", *common],
                                      env=env, start_new_session=True, stdout=subprocess.DEVNULL,
                                      stderr=subprocess.DEVNULL))
        yield address
    finally:
        for node in reversed(nodes):
            stop_group(node)


def stop_group(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the process group (the node and the Ray processes it started), then SIGKILL if it lingers."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=5)
            return
        except subprocess.TimeoutExpired:
            continue


DRIVER = """
import json, sys, time
sys.path[:0] = [{tests!r}, {here!r}]
import ray, torch, engine_helpers
import test_sharded as t
ray.cloudpickle.register_pickle_by_value(engine_helpers)
ray.cloudpickle.register_pickle_by_value(t)
torch.set_num_threads(1)
from sycam.synth.ray_executor import RayExecutor
deadline = time.monotonic() + 90
while True:  # the nodes start in the background: wait for both, and for their CPUs
    try:
        if not ray.is_initialized():
            ray.init(address={address!r}, log_to_driver=False)
        if ray.cluster_resources().get("CPU", 0) >= 2 and sum(n["Alive"] for n in ray.nodes()) >= 2:
            break
    except ConnectionError:
        pass
    if time.monotonic() > deadline:
        raise SystemExit("the two-node cluster did not come up")
    time.sleep(1)
metrics, config = t.config_for("epg")
with RayExecutor(address={address!r}) as ex:
    nodes = sum(1 for n in ray.nodes() if n["Alive"])
    result = t.run(metrics, config, ex)
    print(json.dumps({{"workers": ex.workers, "nodes": nodes, "result": t.comparable(result)}}))
"""


def test_ray_cluster_joined_by_address(two_node_cluster: str, tmp_path: Any) -> None:
    """A driver process of its own joins the two-node cluster by address (one worker per node) and finds what a
    local run finds."""
    import json

    script = tmp_path / "driver.py"
    script.write_text(DRIVER.format(tests=os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                    here=os.path.dirname(os.path.abspath(__file__)), address=two_node_cluster))
    env = {**os.environ, "RAY_AUTH_MODE": "disabled"}
    proc = subprocess.run([sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        metrics, config = config_for("epg")
        local = json.loads(json.dumps(comparable(run(metrics, config))))
    finally:
        torch.set_num_threads(threads)
    assert got["workers"] == 2 and got["nodes"] == 2  # one worker per CPU of the cluster: one on each node
    assert got["result"] == local


def test_a_module_found_only_through_an_import_hook_is_importable_by_the_workers(monkeypatch: Any) -> None:
    """An editable install (``pip install -e``) finds sycam through a finder on ``sys.meta_path``, with no folder
    on ``sys.path``: its classes must still travel by reference (sent by value, a class with a
    ``functools.cached_property`` cannot be pickled on Python 3.11), while a module loaded from a file is not
    importable there."""
    import importlib.machinery
    import types

    from sycam.synth.ray_executor import _importable

    class EditableFinder:
        @staticmethod
        def find_spec(name: str, path: Any, target: Any = None) -> Any:
            return importlib.machinery.ModuleSpec(name, None) if name == "only_by_hook" else None

    assert not _importable("only_by_hook.sub")
    monkeypatch.setattr(sys, "meta_path", [*sys.meta_path, EditableFinder()])
    assert _importable("only_by_hook.sub") and _importable("sycam.data.samples") and _importable("math")
    monkeypatch.setitem(sys.modules, "loaded_from_a_file", types.ModuleType("loaded_from_a_file"))
    assert not _importable("loaded_from_a_file")
