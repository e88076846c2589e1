"""The CLI's "where to run" options: --executor, --ray-address, --workers, --worker-threads, --worker-gpus.

Refusals are one line with exit status 2, before any work; a sharded run through the CLI writes the results of a
local run with the same extraction batch and threads (in-process shards for evaluate; Ray actors for
synthesize); the ray extra is what the README's and CI's test command install."""

from __future__ import annotations

import argparse
import json
import re
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

from sycam.cli import build_parser, main
from sycam.synth.executors import InProcessExecutor

ROOT = Path(__file__).resolve().parents[2]
SYN = ["synthesize", "--random-weights", "--data", "demo", "--limit", "6", "--metric", "energy_pointing_game",
       "--gallery", "0", "--quiet"]
EVAL = ["evaluate", "--random-weights", "--data", "demo", "--limit", "6", "--metrics", "energy_pointing_game",
        "--gallery", "0", "--quiet"]


def run(capsys: Any, argv: list[str]) -> tuple[int, str]:
    """``sycam argv`` in this process: (exit status, stderr); the parser's exit is an exit status too."""
    try:
        code = main([str(a) for a in argv])
    except SystemExit as exc:
        code = int(exc.code or 0)
    return code, capsys.readouterr().err


@pytest.mark.parametrize("command", [SYN, EVAL], ids=["synthesize", "evaluate"])
@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--workers", "2"], "sycam: error: --workers needs --executor ray"),
        (["--executor", "local", "--ray-address", "auto"], "sycam: error: --ray-address needs --executor ray"),
        (["--worker-threads", "2", "--worker-gpus", "0"],
         "sycam: error: --worker-threads and --worker-gpus need --executor ray"),
        (["--workers", "0"], "error: argument --workers: must be a positive integer, got '0'"),
        (["--executor", "ray", "--worker-threads", "-1"],
         "error: argument --worker-threads: must be a positive integer, got '-1'"),
        (["--executor", "ray", "--worker-gpus", "nan"],
         "error: argument --worker-gpus: must be a finite number ≥ 0, got 'nan'"),
        (["--executor", "ray", "--ray-address", " "], "error: argument --ray-address: must be a Ray address, got an "
                                                      "empty string"),
        (["--executor", "spark"], "error: argument --executor: invalid choice: 'spark' (choose from 'local', 'ray')"),
    ],
)
def test_bad_where_to_run_options_are_one_line_before_any_work(command: list[str], flags: list[str], message: str,
                                                              tmp_path: Path, capsys: Any) -> None:
    code, err = run(capsys, [*command, *flags, "--out", tmp_path / "o"])
    assert code == 2 and message in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not (tmp_path / "o").exists()


def test_racing_is_refused_on_ray_before_ray_starts(tmp_path: Path, capsys: Any) -> None:
    code, err = run(capsys, [*SYN, "--executor", "ray", "--racing", "--out", tmp_path / "o"])
    assert code == 2
    assert err.strip() == ("sycam: error: --racing needs every synthesis image in one process: drop --racing to use "
                           "--executor ray")
    assert not (tmp_path / "o").exists()


def test_device_is_the_local_executors() -> None:
    from sycam.cli._common import CLIError, check_executor_args

    args = build_parser().parse_args([*SYN, "--executor", "ray", "--out", "o"])
    args.device = "cuda"  # the parser refuses cuda where there is none; the check comes after it
    with pytest.raises(CLIError, match=r"^--device cuda applies to --executor local: the Ray workers run the model "
                                       r"on the CPU, or on CUDA with --worker-gpus$"):
        check_executor_args(args)
    args.device = "auto"
    check_executor_args(args)  # auto: the driver keeps the model on the CPU


@pytest.mark.parametrize("command", [SYN, EVAL], ids=["synthesize", "evaluate"])
def test_ray_missing_gives_the_pip_hint(command: list[str], tmp_path: Path, capsys: Any, monkeypatch: Any) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray raises ImportError
    code, err = run(capsys, [*command, "--executor", "ray", "--workers", "2", "--out", tmp_path / "o"])
    assert code == 2 and err.strip() == 'sycam: error: the ray executor needs Ray: pip install "sycam[ray]"'
    assert not (tmp_path / "o").exists()


def _where_to_run(command: str) -> dict[str, argparse.Action]:
    parser = build_parser([command])
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    group = next(g for g in sub.choices[command]._action_groups if g.title == "where to run")
    return {a.dest: a for a in group._group_actions}


@pytest.mark.parametrize("command", ["synthesize", "demo", "evaluate"])
def test_where_to_run_group_and_its_defaults(command: str, capsys: Any) -> None:
    from sycam.cli._common import EXECUTORS
    from sycam.synth import executors

    actions = _where_to_run(command)
    assert list(actions) == ["executor", "ray_address", "workers", "worker_threads", "worker_gpus"]
    assert tuple(actions["executor"].choices) == EXECUTORS == executors.EXECUTORS
    args = build_parser([command]).parse_args([command, "--metrics" if command == "evaluate" else "--metric", "iou",
                                               "--data", "demo", "--out", "o"])
    assert (args.executor, args.ray_address, args.workers, args.worker_threads, args.worker_gpus) == \
        ("local", None, None, None, None)
    with pytest.raises(SystemExit):
        main([command, "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for shown in ("(default: local)", "(default: none: start a local Ray instance)",
                  "(default: one per CPU of the Ray cluster)", "per Ray worker (default: 1)",
                  "on CUDA) (default: 0)"):
        assert shown in text, shown


class Recording(InProcessExecutor):
    """In-process shards standing in for Ray actors (the CLI's sharded path without a cluster); counts closes."""

    closed = 0

    def close(self) -> None:
        Recording.closed += 1


def test_evaluate_on_shards_equals_the_local_evaluation(tmp_path: Path, capsys: Any, monkeypatch: Any) -> None:
    import sycam.synth.executors

    made: list[tuple[Any, ...]] = []

    def make_executor(kind: str, address: str | None, workers: int | None, threads: int, gpus: float) -> Any:
        made.append((kind, address, workers, threads, gpus))
        return Recording(workers=workers or 2)

    argv = [*EVAL, "--methods", "gradcam,mean(G) * relu(D)", "--batch-size", "2"]
    code, err = run(capsys, [*argv, "--out", tmp_path / "local"])
    assert code == 0, err
    monkeypatch.setattr(sycam.synth.executors, "make_executor", make_executor)
    Recording.closed = 0
    code, err = run(capsys, [*argv, "--executor", "ray", "--workers", "3", "--out", tmp_path / "sharded"])
    assert code == 0, err
    assert made == [("ray", None, 3, 1, 0.0)] and Recording.closed == 1
    local, sharded = (json.loads((tmp_path / d / "evaluation.json").read_text()) for d in ("local", "sharded"))
    # the report's schema (per_image[all][method][metric], degenerate[method][all]); a degenerate map on random
    # weights once crashed the report
    assert len(local["ids"]["all"]) == 6 and len(local["per_image"]["all"]["gradcam"]["energy_pointing_game"]) == 6
    assert local["degenerate"]["mean(G) * relu(D)"]["all"] >= 1
    for key in ("results", "per_image", "ids", "degenerate"):
        assert sharded[key] == local[key], key


def test_the_executor_is_closed_when_the_run_fails(tmp_path: Path, capsys: Any, monkeypatch: Any) -> None:
    import sycam.synth.executors

    monkeypatch.setattr(sycam.synth.executors, "make_executor", lambda *a: Recording(workers=2))
    Recording.closed = 0
    code, err = run(capsys, [*EVAL, "--data", tmp_path / "missing.csv", "--executor", "ray", "--out", tmp_path / "o"])
    assert code == 2 and "missing.csv" in err and Recording.closed == 1
    assert not (tmp_path / "o").exists()


# -- Ray, end to end ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def local_ray() -> Iterator[Any]:
    """A Ray instance of this test's own (2 CPUs, no GPU), which the executor uses instead of starting one."""
    ray = pytest.importorskip("ray", reason='Ray is not installed (pip install "sycam[ray]")')
    ray.init(address="local", num_cpus=2, num_gpus=0, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


RAY_SYN = ["synthesize", "--random-weights", "--data", "demo", "--limit", "12", "--metric", "energy_pointing_game",
           "--terminals", "A,G", "--max-size", "3", "--max-candidates", "30", "--baselines", "gradcam",
           "--gallery", "1", "--batch-size", "2"]
"""4 synthesis and 8 test images in extraction batches of 2: two whole shards each for 2 workers, so the
executor keeps the batch and a local run with --batch-size 2 sees every image in the same batch"""


def _comparable(results: dict[str, Any]) -> dict[str, Any]:
    keys = ("best", "leaderboard", "baselines", "per_image", "comparison", "candidates_enumerated",
            "candidates_scored", "equivalent_pruned", "rejected", "rejected_total", "subexpressions_pruned",
            "scored_by_key", "bank_size", "stopped_because")
    return {k: results[k] for k in keys}


def test_synthesize_on_ray_equals_the_local_run(local_ray: Any, tmp_path: Path, capsys: Any) -> None:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as each Ray worker (--worker-threads 1): the same floating-point sums
    try:
        code, err = run(capsys, [*RAY_SYN, "--quiet", "--out", tmp_path / "local"])
    finally:
        torch.set_num_threads(threads)
    assert code == 0, err
    code = main([*RAY_SYN, "--executor", "ray", "--workers", "2", "--out", str(tmp_path / "ray")])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "executor: ray, 2 workers (1 CPU each) on a local Ray instance" in captured.err
    assert "best expression:" in captured.out
    local, sharded = (json.loads((tmp_path / d / "results.json").read_text()) for d in ("local", "ray"))
    assert sharded["settings"]["executor"] == {"name": "ray", "workers": 2, "threads": 1, "address": None,
                                              "num_gpus": 0.0}
    assert "executor" not in local["settings"]
    assert (local["n_synthesis"], local["n_test"]) == (4, 8)
    assert local["candidates_scored"] >= 10 and local["per_image"]
    assert _comparable(sharded) == _comparable(local)
    assert (tmp_path / "ray" / "report.html").exists()
    assert not any("batch lowered" in n for n in sharded["notes"]) and sharded["notes"] == local["notes"]
    assert local_ray.is_initialized()  # the executor closed its workers, and left the Ray it did not start


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--worker-threads", "3"], "the Ray workers need 3 CPUs (1 × 3), but the Ray cluster has 2: lower --workers "
                                    "or --worker-threads"),
        (["--workers", "3"], "the Ray workers need 3 CPUs (3 × 1), but the Ray cluster has 2: lower --workers or "
                             "--worker-threads"),
        (["--workers", "2", "--worker-gpus", "0.5"], "the Ray workers need 1 GPUs (2 × 0.5), but the Ray cluster has "
                                                     "0: lower --workers or --worker-gpus"),
    ],
)
def test_workers_that_do_not_fit_the_cluster_are_refused(local_ray: Any, flags: list[str], message: str,
                                                         tmp_path: Path, capsys: Any) -> None:
    code, err = run(capsys, [*SYN, "--executor", "ray", *flags, "--out", tmp_path / "o"])
    assert code == 2 and err.strip() == f"sycam: error: {message}"
    assert not (tmp_path / "o").exists()


# -- the ray extra ------------------------------------------------------------------------------------------------


def test_ray_is_an_extra_that_the_test_command_installs() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["optional-dependencies"]["ray"] == ["ray>=2.40"]
    assert not any(re.match(r"ray\b", d) for d in project["dependencies"])  # the base install needs no Ray
    quick_start = (ROOT / "README.md").read_text().split("## Quick start", 1)[1].split("```bash\n", 1)[1]
    commands = quick_start.split("```", 1)[0].strip().splitlines()
    assert commands == ["pip install . && sycam demo",
                        'pip install ".[test,ray]" && python -m pytest -n 2 --dist loadscope -q']
    ci = (ROOT / ".ci" / "run").read_text().strip().splitlines()
    assert ci[-1] == commands[1]  # CI runs exactly the README's test command


def test_an_error_raised_in_a_ray_worker_is_its_one_line(monkeypatch: Any, capsys: Any) -> None:
    ray = pytest.importorskip("ray", reason='Ray is not installed (pip install "sycam[ray]")')
    from sycam.metrics.base import MetricError

    raised = MetricError("metric broken (from my_metric.py) raised TypeError: no good")
    wrapped = ray.exceptions.RayTaskError("_ShardActor.call", "Traceback (most recent call last): ...",
                                          raised).as_instanceof_cause()  # what ray.get raises on the driver

    def fail(args: argparse.Namespace) -> int:
        raise wrapped

    args = build_parser(["list"]).parse_args(["list", "metrics"])
    args.func = fail
    monkeypatch.setattr("sycam.cli.build_parser", lambda argv=None: _Parsed(args))
    assert main(["list", "metrics"]) == 2
    assert capsys.readouterr().err == f"sycam: error: {raised}\n"


class _Parsed:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args

    def parse_args(self, argv: Any) -> argparse.Namespace:
        return self.args


def test_a_ray_address_where_nothing_listens_is_refused_in_seconds(tmp_path: Path, capsys: Any) -> None:
    """Ray retries a dead HOST:PORT for minutes; the probe answers in one line, here on a closed loopback port."""
    import socket
    import time

    pytest.importorskip("ray", reason='Ray is not installed (pip install "sycam[ray]")')
    with socket.socket() as s:  # a port that was just free: nothing listens there now
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    t0 = time.monotonic()
    code, err = run(capsys, [*SYN, "--executor", "ray", "--ray-address", f"127.0.0.1:{port}", "--out",
                             tmp_path / "o"])
    assert time.monotonic() - t0 < 10
    assert code == 2 and err == (f"sycam: error: cannot join the Ray cluster at '127.0.0.1:{port}': Connection "
                                 f"refused; is a Ray head running there (ray start --head --port {port})?\n")
    assert not (tmp_path / "o").exists()


def test_a_timeout_of_the_probe_is_one_line(monkeypatch: Any) -> None:
    from sycam.synth import ray_executor
    from sycam.synth.executors import ExecutorError

    def silent(address: Any, timeout: float) -> None:
        raise TimeoutError

    monkeypatch.setattr(ray_executor.socket, "create_connection", silent)
    with pytest.raises(ExecutorError, match=r"^cannot join the Ray cluster at '10\.0\.0\.9:6379': no answer within "
                                            r"0\.5 s; is a Ray head running there"):
        ray_executor.probe_address("10.0.0.9:6379", timeout=0.5)
    ray_executor.probe_address("auto")  # left to Ray
    ray_executor.probe_address("ray://head:10001")


def test_a_dying_local_ray_ends_the_run_with_one_line_at_once() -> None:
    """When the local Ray instance sycam started dies (its dashboard agent killed takes the raylet with it), a
    lost worker cannot come back: the executor says so at once instead of waiting for a restart."""
    import types

    from sycam.synth.executors import ExecutorError
    from sycam.synth.ray_executor import RayExecutor

    class Lost(Exception):
        pass

    class Node:
        def dead_processes(self) -> list[tuple[str, Any]]:
            return [("raylet", None), ("dashboard_agent", None)]

    def get(*args: Any, **kwargs: Any) -> Any:
        raise Lost("The actor is dead because its owner has died.")

    exceptions = types.SimpleNamespace(RayActorError=Lost, ActorUnavailableError=Lost, GetTimeoutError=TimeoutError)
    fake = types.SimpleNamespace(exceptions=exceptions, get=get,
                                 _private=types.SimpleNamespace(worker=types.SimpleNamespace(_global_node=Node())))
    actor = types.SimpleNamespace(pid=types.SimpleNamespace(remote=lambda: None))
    ex = object.__new__(RayExecutor)
    ex._ray, ex._started_ray, ex.address, ex.actors, ex.log = fake, True, None, [actor], [[]]
    with pytest.raises(ExecutorError) as info:
        ex._recover(0)
    assert str(info.value) == ("the local Ray instance that sycam started has died (dashboard_agent, raylet "
                               "exited), so worker 0 cannot come back; rerun, with --resume to keep the scores "
                               "checkpointed so far")
    ex._started_ray = False  # a cluster someone else runs: no verdict from here
    assert ex._dead_local_ray() == ""
