"""The CLI's options: help that teaches, demo = synthesize with DEMO's defaults, the new synthesize flags
wired to the search API, SIGINT and failures handled with what was kept."""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from sycam.cli import build_parser, main
from sycam.errors import SycamError

COMMANDS = ("synthesize", "demo", "evaluate", "explain", "list")


def _subparser(name: str) -> argparse.ArgumentParser:
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return sub.choices[name]


@pytest.mark.parametrize("command", COMMANDS)
def test_help_teaches(command: str, capsys) -> None:
    with pytest.raises(SystemExit) as exc:
        main([command, "--help"])
    assert exc.value.code == 0
    text = capsys.readouterr().out
    assert "examples:" in text and f"sycam {command}" in text.split("examples:")[1]
    description = _subparser(command).description or ""
    assert len(description.split()) > 15
    assert "LAMBDA_" not in text and "_" not in text.split("\n", 1)[0].replace("--", "")  # no leaked dest names
    for action in _subparser(command)._actions:
        if isinstance(action, argparse._HelpAction):
            continue
        assert action.help and len(action.help) > 10, f"{command} {action.option_strings or action.dest}: no help"
        if action.metavar is None and action.option_strings and action.nargs != 0 and action.choices is None:
            pytest.fail(f"{command} {action.option_strings}: metavar would leak the dest name")


def test_help_shows_defaults(capsys) -> None:
    with pytest.raises(SystemExit):
        main(["synthesize", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for shown in ("budget: candidates scored (after equivalence pruning) (default: 5000)",
                  "(default: efficientnet_lite0)", "(default: 0.5)", "(default: no limit)",
                  "(default: the grammar's, 7)", "(default: 32)"):
        assert shown in text, shown


def test_demo_is_synthesize_with_the_demo_defaults(capsys) -> None:
    from sycam.synth.demo import DEMO

    demo = build_parser().parse_args(["demo"])
    syn = build_parser().parse_args(["synthesize", "--data", "x", "--metric", "m", "--out", "o"])
    assert demo.func is syn.func
    for dest, value in DEMO.items():
        assert getattr(demo, dest) == value, dest
    assert set(vars(demo)) == set(vars(syn))  # every synthesize option exists for the demo (a new flag too)
    with pytest.raises(SystemExit):
        main(["demo", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for dest, value in DEMO.items():  # the help shows the demo's real defaults
        if value is not None and value is not False:
            shown = ", ".join(map(str, value)) if isinstance(value, list) else str(value)
            assert f"(default: {shown})" in text, dest
    assert f"largest expression, in AST nodes (default: {DEMO['max_size']})" in text


def test_repeatable_options_replace_the_demo_default() -> None:
    args = build_parser().parse_args(["demo", "--metric", "iou", "--metric", "sparseness",
                                      "--constraint", "mask_auc >= gradcam", "--constraint", "iou <= 0.9"])
    assert args.metric == ["iou", "sparseness"]
    assert args.constraint == ["mask_auc >= gradcam", "iou <= 0.9"]
    args = build_parser().parse_args(["synthesize", "--data", "demo", "--metric", "iou", "--out", "o",
                                      "--validation-fraction", "0.2", "--max-degenerate", "0.1"])
    assert args.metric == ["iou"] and args.validation_fraction == 0.2 and args.max_degenerate == 0.1


def test_metric_params_go_to_their_metric() -> None:
    from sycam.cli.synthesize import metrics_from

    args = build_parser().parse_args(["synthesize", "--data", "demo", "--metric", "pointing_game", "--metric",
                                      "sparseness", "--metric-param", "pointing_game.tolerance=0", "--out", "o"])
    first, second = metrics_from(args)
    assert first.params()["tolerance"] == 0 and first.name == "pointing_game" and second.name == "sparseness"


class _Stop(SycamError):
    pass


@pytest.fixture
def fake_search(monkeypatch) -> dict[str, Any]:
    """Replace the search (and the report) by fakes that record their arguments; no model work is done."""
    import sycam.report
    import sycam.synth

    seen: dict[str, Any] = {"mode": "stop"}

    class Config(dict):
        def check(self) -> None:  # the CLI checks the guards' settings before any work
            pass

    def config(**kw: Any) -> dict[str, Any]:
        seen["config"] = kw
        return Config(kw)

    def synthesize(model, layer, synthesis, test, metric, *, config, options, settings, on_progress=None,
                   validation=None):
        seen.update(metric=metric, validation=validation, settings=settings, n=(len(synthesis), len(test)))
        if seen["mode"] == "stop":
            raise _Stop("stopped by the test")
        if seen["mode"] in ("escape", "escape-checkpoint"):
            if seen["mode"] == "escape-checkpoint":
                Path(config["checkpoint"]).write_text("{}")
            raise KeyboardInterrupt

        class Result:
            def to_dict(self) -> dict[str, Any]:
                return {"metric": {"name": "energy_pointing_game", "higher_is_better": True},
                        "best": {"expression": "mean(G)", "size": 2, "synthesis_score": 0.5, "test_score": 0.4},
                        "baselines": {"gradcam": {"expression": "mean(G)", "synthesis_score": 0.5,
                                                  "test_score": 0.4}},
                        "stopped_because": "interrupted", "candidates_scored": 7, "timings": {}}

        Path(config["checkpoint"]).write_text("{}")
        return Result()

    def write_report(path, results, gallery):
        Path(path).write_text("<html>")
        return Path(path)

    monkeypatch.setattr(sycam.synth, "SynthesisConfig", config)
    monkeypatch.setattr(sycam.synth, "synthesize", synthesize)
    monkeypatch.setattr(sycam.report, "write_report", write_report)
    return seen


FAST = ["synthesize", "--random-weights", "--data", "demo", "--limit", "6", "--gallery", "0", "--quiet"]


def test_new_flags_reach_the_search_api(fake_search, tmp_path, capsys) -> None:
    code = main([*FAST, "--metric", "energy_pointing_game", "--metric", "sparseness", "--constraint",
                 "energy_pointing_game >= gradcam", "--max-degenerate", "0.25", "--max-candidates", "77",
                 "--time-limit", "9", "--out", str(tmp_path / "o")])
    assert code == 2 and "stopped by the test" in capsys.readouterr().err
    cfg = fake_search["config"]
    assert cfg["constraints"] == ("energy_pointing_game >= gradcam",) and cfg["max_degenerate_fraction"] == 0.25
    assert cfg["max_candidates"] == 77 and cfg["time_limit"] == 9.0 and cfg["resume"] is False
    assert [m.name for m in fake_search["metric"]] == ["energy_pointing_game", "sparseness"]  # several: a list
    assert fake_search["validation"] is None
    assert not (tmp_path / "o").exists()  # the failed run removed its folder


def test_one_metric_is_passed_alone(fake_search, tmp_path, capsys) -> None:
    main([*FAST, "--metric", "iou", "--out", str(tmp_path / "o")])
    assert fake_search["metric"].name == "iou"


def test_validation_split_is_passed(fake_search, tmp_path, capsys) -> None:
    import sycam.data

    if not hasattr(sycam.data, "split_three"):
        pytest.skip("needs the data branch's split_three")
    main([*FAST, "--metric", "iou", "--validation-fraction", "0.25", "--test-fraction", "0.25",
          "--out", str(tmp_path / "o")])
    assert fake_search["validation"] is not None and len(fake_search["validation"]) >= 1


def test_interrupted_search_exits_130_and_says_what_was_kept(fake_search, tmp_path, capsys) -> None:
    fake_search["mode"] = "interrupted"
    out = tmp_path / "o"
    code = main([*FAST, "--metric", "energy_pointing_game", "--out", str(out)])
    captured = capsys.readouterr()
    assert code == 130
    assert "stopped: interrupted" in captured.out and "best expression: mean(G)" in captured.out
    assert "interrupted: the search stopped early; kept results.json, report.html and checkpoint.json" \
        in captured.out and "--resume" in captured.out
    assert {"results.json", "report.html", "checkpoint.json"} <= {p.name for p in out.iterdir()}
    assert json.loads((out / ".sycam-run.json").read_text())["complete"] is True


def test_interrupt_outside_the_search_keeps_only_the_checkpoint(fake_search, tmp_path, capsys) -> None:
    out = tmp_path / "o"
    fake_search["mode"] = "escape-checkpoint"
    assert main([*FAST, "--metric", "iou", "--out", str(out)]) == 130
    err = capsys.readouterr().err
    assert err.strip() == f"sycam: error: interrupted: kept checkpoint.json in {out} (continue with --resume)"
    assert sorted(p.name for p in out.iterdir()) == [".sycam-run.json", "checkpoint.json"]
    fake_search["mode"] = "escape"
    assert main([*FAST, "--metric", "iou", "--out", str(tmp_path / "p")]) == 130
    assert capsys.readouterr().err.strip() == "sycam: error: interrupted: nothing was kept"
    assert not (tmp_path / "p").exists()


def test_os_error_is_one_line(monkeypatch, tmp_path, capsys) -> None:
    def disk_full(args: Any) -> int:
        raise OSError(28, "No space left on device", str(tmp_path / "x"))

    args = build_parser().parse_args(["list", "metrics"])
    args.func = disk_full
    monkeypatch.setattr("sycam.cli.build_parser", lambda argv=None: _FixedParser(args))
    code = main(["list", "metrics"])
    err = capsys.readouterr().err
    assert code == 1 and err.strip() == f"sycam: error: No space left on device: {tmp_path / 'x'}"


class _FixedParser:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args

    def parse_args(self, argv: Any) -> argparse.Namespace:
        return self.args


def test_custom_metric_that_raises_is_one_line(tmp_path, capsys) -> None:
    from sycam.metrics.base import Metric

    if not hasattr(Metric, "evaluate"):
        pytest.skip("needs the metrics branch's Metric.evaluate (MetricError naming the metric and its file)")
    path = tmp_path / "my_metric.py"
    path.write_text("def broken(maps, ctx):\n    raise TypeError('no good')\n")
    code = main(["evaluate", "--random-weights", "--data", "demo", "--limit", "2", "--methods", "gradcam",
                 "--metrics", f"{path}:broken", "--gallery", "0", "--quiet", "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert "broken" in err and "my_metric.py" in err and "TypeError" in err
    assert not (tmp_path / "o").exists()


@pytest.mark.slow
def test_sigint_during_a_real_search_exits_130(tmp_path) -> None:
    """A real SIGINT to a real run (covered fast by the two interrupt tests above)."""
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2]), "OMP_NUM_THREADS": "1"}
    out = tmp_path / "o"
    proc = subprocess.Popen([sys.executable, "-m", "sycam", "synthesize", "--random-weights", "--data", "demo",
                             "--limit", "8", "--metric", "energy_pointing_game", "--terminals", "A,G",
                             "--baselines", "gradcam", "--max-size", "9", "--max-candidates", "1000000",
                             "--gallery", "0", "--out", str(out)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))  # as in a terminal
    assert proc.stderr is not None
    for line in proc.stderr:  # the run announces its splits just before the search
        if "synthesis," in line:
            break
    time.sleep(3)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr
    assert "interrupted" in stdout + stderr and "Traceback" not in stderr
    if "stopped: interrupted" in stdout:  # the search had started: it kept its best, and says so
        assert "interrupted: the search stopped early; kept results.json" in stdout


_SIGTERM_RUN = r"""
import sys, time
from pathlib import Path
import sycam.cli.synthesize as syn
from sycam.cli import main
from sycam.cli._common import output_folder
from sycam.synth import checkpoint as ckpt


def fake_run(args):  # a search that checkpoints as it goes, until it is stopped
    with output_folder(args, "synthesize", checkpoint="checkpoint.json") as out:
        path = out.path("checkpoint.json")
        scored = {}
        for i in range(10**6):
            scored[f"expr{i}"] = [i / 1000]
            ckpt.save(path, "k", ["iou"], scored, {"max_candidates": None})
            if i == 3:
                print("ready", flush=True)
            time.sleep(0.01)


syn.run = fake_run
sys.exit(main(["synthesize", "--data", "demo", "--metric", "iou", "--out", sys.argv[1]]))
"""


def test_sigterm_exits_143_releases_the_lock_and_keeps_a_valid_checkpoint(tmp_path) -> None:
    """A real SIGTERM to a real process: exit 143, one line saying what was kept, no lock, a checkpoint
    that loads, and a rerun with --resume that is let in."""
    from sycam._io import LOCK_NAME, MANIFEST_NAME, OutputFolder
    from sycam.synth import checkpoint as ckpt

    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2]), "OMP_NUM_THREADS": "1"}
    out = tmp_path / "o"
    proc = subprocess.Popen([sys.executable, "-c", _SIGTERM_RUN, str(out)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 143, stderr
    assert stderr.strip() == (f"sycam: error: terminated (SIGTERM): kept checkpoint.json in {out} "
                              "(continue with --resume)")
    assert sorted(p.name for p in out.iterdir()) == [MANIFEST_NAME, "checkpoint.json"]
    assert not (out / LOCK_NAME).exists()
    stored = ckpt.load(out / "checkpoint.json", "k", ["iou"])
    assert len(stored) >= 4 and stored["expr3"] == [0.003]
    OutputFolder(out, resume=True, checkpoint="checkpoint.json").open().commit()


def test_sigterm_from_rays_own_handler_is_handled_too(tmp_path, capsys) -> None:
    """Ray's driver handler turns SIGTERM into ``sys.exit(15)``: the run still ends as a SIGTERM (143, the
    lock released, what was kept said), not silently."""
    import sycam.cli.synthesize as syn
    from sycam._io import LOCK_NAME
    from sycam.cli._common import output_folder

    out = tmp_path / "o"

    def fake_run(args: Any) -> int:
        with output_folder(args, "synthesize", checkpoint="checkpoint.json") as folder:
            folder.write("checkpoint.json", "{}")
            raise SystemExit(signal.SIGTERM)

    original, before = syn.run, signal.getsignal(signal.SIGTERM)
    syn.run = fake_run
    try:
        code = main(["synthesize", "--data", "demo", "--metric", "iou", "--out", str(out)])
    finally:
        syn.run = original
    assert code == 143 and not (out / LOCK_NAME).exists()
    assert capsys.readouterr().err.strip() == (f"sycam: error: terminated (SIGTERM): kept checkpoint.json in {out} "
                                               "(continue with --resume)")
    assert signal.getsignal(signal.SIGTERM) == before  # main() puts the caller's handler back
