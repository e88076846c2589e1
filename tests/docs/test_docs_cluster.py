"""docs/cluster.md says what the code does: every option it names exists (sycam's and Ray's), the numbers it
quotes are the code's, its links resolve, and a checkpoint moves between executors as it says."""

from __future__ import annotations

import argparse
import inspect
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from engine_helpers import tiny_net, tiny_samples

from sycam.cli import build_parser
from sycam.metrics import get_metric
from sycam.synth import Grammar, SynthesisConfig, SynthesisError, SynthesisResult, synthesize
from sycam.synth.executors import InProcessExecutor
from sycam.terminals import ExtractOptions

ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / "docs" / "cluster.md"
TEXT = PAGE.read_text(encoding="utf-8")
FLAG = re.compile(r"(?<![\w-])--[a-z][a-z0-9-]*")


def sycam_options(*commands: str) -> set[str]:
    """The option strings of ``sycam COMMAND`` for each command."""
    parser = build_parser([commands[0]])
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return {s for c in commands for s in sub.choices[c]._option_string_actions}


def ray_options(*commands: str) -> set[str]:
    """The options ``ray COMMAND --help`` lists (empty when the ray command is not installed)."""
    exe = shutil.which("ray", path=os.path.dirname(sys.executable)) or shutil.which("ray")
    if exe is None:
        return set()
    out: set[str] = set()
    for c in commands:
        text = subprocess.run([exe, c, "--help"], capture_output=True, text=True, timeout=120).stdout
        out |= set(FLAG.findall(text))
    return out


def test_every_option_the_page_names_exists() -> None:
    sycam = sycam_options("synthesize", "evaluate")
    if "--executor" not in sycam:
        pytest.skip("the CLI's executor options are not there yet")
    named = set(FLAG.findall(TEXT))
    ray = ray_options("start", "stop", "status", "get-auth-token")
    if not ray:
        pytest.skip("the ray command is not installed (pip install 'sycam[ray]')")
    assert named - sycam - ray == set()
    for option in ("--executor", "--ray-address", "--workers", "--worker-threads", "--worker-gpus", "--resume",
                   "--batch-size"):
        assert option in named


def test_the_numbers_the_page_quotes_are_the_codes() -> None:
    from sycam.exactsum import _UNIT
    from sycam.synth import learner, ray_executor, search, sharded
    from sycam.synth.keystore import digest

    assert f"blocks of {sharded.TRIAGE_BLOCK}" in TEXT and f"block of {sharded.TRIAGE_BLOCK} candidates" in TEXT
    assert f"one per {sharded.BANK_CHUNK} proposed sub-expressions" in TEXT
    assert f"at most {learner._SAMPLE} floats" in TEXT
    assert f"{ray_executor.RESTART_WAIT:.0f} s (`RESTART_WAIT`)" in TEXT
    assert "max_restarts=-1" in inspect.getsource(ray_executor) and "`max_restarts=-1`" in TEXT
    assert f"{len(digest(b''))}-byte digest" in TEXT
    assert f"2^-{_UNIT}" in TEXT
    assert f"every {SynthesisConfig().checkpoint_every:.0f} s" in TEXT
    assert "its share: max_bank_bytes / 2 / W" in TEXT  # each shard's recompute cache
    assert "cache = self.config.max_bank_bytes // 2 // len(plan)" in inspect.getsource(search.Search.extract)


def test_links_resolve() -> None:
    for target in re.findall(r"\]\(([^)#]+)", TEXT):
        assert (PAGE.parent / target).exists(), target


def test_a_checkpoint_moves_between_executors(tmp_path: Path) -> None:
    """Written by a sharded run, resumed by a local one with the same batch (and refused with another batch)."""
    s = tiny_samples(16)
    syn, test = s.subset(slice(0, 8)), s.subset(slice(8, 16))
    grammar = Grammar(terminals=("A", "G"), max_size=4)
    ckpt = tmp_path / "checkpoint.json"

    def run(budget: int, batch: int, resume: bool, executor: InProcessExecutor | None = None) -> SynthesisResult:
        config = SynthesisConfig(grammar=grammar, max_candidates=budget, checkpoint=ckpt, resume=resume)
        return synthesize(tiny_net(), "body", syn, test, get_metric("iou"), config=config,
                          options=ExtractOptions(batch_size=batch), executor=executor)

    with InProcessExecutor(workers=2) as ex:
        run(20, 2, False, ex)
    resumed = run(40, 2, True)
    assert "resumed from a checkpoint holding 20 scored candidates" in resumed.notes
    with pytest.raises(SynthesisError, match="written with other settings"):
        run(40, 4, True)
