"""Output folders (sycam._io.OutputFolder): checked before work, locked, never silently overwritten, and
cleaned up after a failed run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sycam._io import LOCK_NAME, MANIFEST_NAME, OutputError, OutputFolder, write_atomic
from sycam.errors import SycamError


def test_write_atomic_lives_in_io_and_viz_reexports_it() -> None:
    from sycam import viz

    assert viz.write_atomic is write_atomic


def test_a_run_records_what_it_wrote(tmp_path: Path) -> None:
    with OutputFolder(tmp_path / "out", command="evaluate") as out:
        out.write("a.json", "{}")
        out.write("b.txt", b"x")
        assert (tmp_path / "out" / LOCK_NAME).exists()
    manifest = json.loads((tmp_path / "out" / MANIFEST_NAME).read_text())
    assert manifest["files"] == ["a.json", "b.txt"] and manifest["complete"] is True
    assert manifest["command"] == "evaluate"
    assert not (tmp_path / "out" / LOCK_NAME).exists()


def test_unwritable_folder_fails_before_any_work(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(OutputError, match="exists and is not a folder"):
        OutputFolder(blocker).open()
    with pytest.raises(OutputError, match="cannot create output folder"):
        OutputFolder(blocker / "sub").open()
    with pytest.raises(OutputError, match=r"cannot create output folder|not writable"):
        OutputFolder("/proc/sycam-out").open()  # not writable even for root
    assert issubclass(OutputError, SycamError)


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write into read-only folders")
def test_read_only_folder_is_refused(tmp_path: Path) -> None:
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        with pytest.raises(OutputError, match="not writable"):
            OutputFolder(ro / "out").open()
    finally:
        ro.chmod(0o700)


def test_second_run_into_the_same_folder_fails(tmp_path: Path) -> None:
    first = OutputFolder(tmp_path / "out").open()
    with pytest.raises(OutputError, match="in use by another sycam run"):
        OutputFolder(tmp_path / "out", force=True).open()
    first.commit()
    OutputFolder(tmp_path / "out", force=True).open().commit()  # free again


def test_lock_of_a_dead_process_is_taken_over(tmp_path: Path) -> None:
    import socket

    out = tmp_path / "out"
    out.mkdir()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    (out / LOCK_NAME).write_text(json.dumps({"pid": int(dead.stdout), "host": socket.gethostname()}))
    OutputFolder(out).open().commit()


def test_existing_results_are_not_overwritten_without_force(tmp_path: Path) -> None:
    out = tmp_path / "out"
    with OutputFolder(out) as run:
        run.write("results.json", "old")
    with pytest.raises(OutputError, match=r"not empty \(it holds .*results.json.*--force"):
        OutputFolder(out).open()
    assert (out / "results.json").read_text() == "old"


def test_force_removes_only_the_earlier_runs_files(tmp_path: Path) -> None:
    out = tmp_path / "out"
    with OutputFolder(out) as run:
        run.write("stale_overlay.png", b"png")
        run.write("results.json", "old")
    (out / "my_notes.txt").write_text("mine")  # not written by sycam: kept
    with OutputFolder(out, force=True) as run:
        assert run.replaced == []  # nothing is touched before the new run writes (its inputs are checked)
        run.write("results.json", "new")
        assert sorted(run.replaced) == ["results.json", "stale_overlay.png"]
    assert sorted(p.name for p in out.iterdir()) == [MANIFEST_NAME, "my_notes.txt", "results.json"]
    assert (out / "results.json").read_text() == "new"


def test_force_never_follows_a_manifest_outside_the_folder(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    victim = tmp_path / "victim.txt"
    victim.write_text("keep")
    (out / MANIFEST_NAME).write_text(json.dumps({"files": ["../victim.txt", "/etc/hostname"]}))
    OutputFolder(out, force=True).open().commit()
    assert victim.read_text() == "keep"


def test_resume_refuses_results_without_a_checkpoint(tmp_path: Path) -> None:
    out = tmp_path / "out"
    with OutputFolder(out) as run:  # e.g. an earlier `sycam evaluate`
        run.write("report.html", "<html>")
    with pytest.raises(OutputError, match=r"--resume: .* holds no checkpoint\.json to resume from"):
        OutputFolder(out, resume=True, checkpoint="checkpoint.json").open()
    assert (out / "report.html").read_text() == "<html>"
    # with a checkpoint, resuming is allowed
    (out / "checkpoint.json").write_text("{}")
    OutputFolder(out, resume=True, checkpoint="checkpoint.json").open().commit()


def test_failed_run_removes_what_it_created(tmp_path: Path) -> None:
    out = tmp_path / "new" / "out"
    with pytest.raises(RuntimeError), OutputFolder(out) as run:
        run.write("results.json", "partial")
        raise RuntimeError("boom")
    assert not (tmp_path / "new").exists()  # the folders it created are gone too


def test_failed_run_keeps_its_checkpoint_and_the_earlier_files(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "checkpoint.json").write_text("{}")  # an earlier run's, resumed
    with pytest.raises(KeyboardInterrupt), OutputFolder(out, resume=True, checkpoint="checkpoint.json") as run:
        run.path("checkpoint.json").write_text('{"more": 1}')
        run.write("results.json", "partial")
        raise KeyboardInterrupt
    assert run.kept == ["checkpoint.json"]
    assert sorted(p.name for p in out.iterdir()) == [MANIFEST_NAME, "checkpoint.json"]
    assert not (out / LOCK_NAME).exists()


def test_no_write_permission_is_refused_at_once(tmp_path: Path, monkeypatch) -> None:
    """What a read-only folder looks like to a non-root user (root bypasses permission bits)."""
    import sycam._io as io_mod

    monkeypatch.setattr(io_mod.os, "access", lambda path, mode: False)
    with pytest.raises(OutputError, match=r"is not writable \(no write permission on"):
        OutputFolder(tmp_path / "out").open()
    assert not (tmp_path / "out").exists()


def test_a_resumed_run_keeps_owning_the_earlier_files(tmp_path: Path) -> None:
    out = tmp_path / "out"
    with OutputFolder(out, checkpoint="checkpoint.json") as run:
        run.path("checkpoint.json").write_text("{}")
        run.write("report.html", "<html>")
    with pytest.raises(RuntimeError), OutputFolder(out, resume=True, checkpoint="checkpoint.json") as run:
        run.write("extra.png", b"png")
        raise RuntimeError("the resumed run fails")
    assert not (out / "extra.png").exists() and (out / "report.html").exists()
    manifest = json.loads((out / MANIFEST_NAME).read_text())
    assert sorted(manifest["files"]) == ["checkpoint.json", "report.html"]  # a later --force removes both
    with OutputFolder(out, force=True) as run:
        pass
    assert sorted(run.replaced) == ["checkpoint.json", "report.html"]


# ------------------------------------------------------------------ --force never costs the earlier run early


def _earlier_run(out: Path) -> None:
    with OutputFolder(out, checkpoint="checkpoint.json") as run:
        run.write("results.json", "old")
        run.write("report.html", "<old>")


def test_force_touches_nothing_until_the_new_run_writes(tmp_path: Path) -> None:
    out = tmp_path / "out"
    _earlier_run(out)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    with pytest.raises(ValueError), OutputFolder(out, force=True) as run:
        raise ValueError("a mistyped --data, found while loading")
    assert run.replaced == [] and {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_force_puts_the_earlier_run_back_when_the_new_one_fails(tmp_path: Path) -> None:
    out = tmp_path / "out"
    _earlier_run(out)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    with pytest.raises(RuntimeError), OutputFolder(out, force=True, checkpoint="checkpoint.json") as run:
        run.write("results.json", "new, partial")
        assert not (out / "report.html").exists()  # set aside while the new run writes
        raise RuntimeError("the new run fails before keeping a checkpoint")
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_force_with_a_kept_checkpoint_replaces_the_earlier_run(tmp_path: Path) -> None:
    out = tmp_path / "out"
    _earlier_run(out)
    with pytest.raises(KeyboardInterrupt), OutputFolder(out, force=True, checkpoint="checkpoint.json") as run:
        run.write("checkpoint.json", "{}")
        raise KeyboardInterrupt
    assert sorted(p.name for p in out.iterdir()) == [MANIFEST_NAME, "checkpoint.json"]


def test_a_killed_runs_set_aside_folder_is_removed_by_the_next_force(tmp_path: Path) -> None:
    from sycam._io import ASIDE_PREFIX

    out = tmp_path / "out"
    _earlier_run(out)
    (out / f"{ASIDE_PREFIX}dead").mkdir()
    (out / f"{ASIDE_PREFIX}dead" / "results.json").write_text("older")
    with OutputFolder(out, force=True) as run:
        run.write("results.json", "new")
    assert sorted(p.name for p in out.iterdir()) == [MANIFEST_NAME, "results.json"]


def test_force_never_replaces_a_file_no_manifest_lists(tmp_path: Path) -> None:
    out = tmp_path / "out"
    _earlier_run(out)
    (out / "explain.json").write_text("the user's own")
    with OutputFolder(out, force=True) as run:
        with pytest.raises(OutputError, match=r"explain\.json was not written by sycam \(no manifest of ours "
                                              r"lists it\) and is never replaced"):
            run.check_names(["results.json", "explain.json"])
        assert run.replaced == []
        with pytest.raises(OutputError, match="was not written by sycam"):
            run.write("explain.json", "ours")
    assert (out / "explain.json").read_text() == "the user's own"


# ------------------------------------------------------------------ the lock: one taker of a stale lock


def _take(path: str, barrier: Any, results: Any) -> None:
    barrier.wait()
    try:
        folder = OutputFolder(path).open()
    except OutputError as exc:
        results.put("busy" if "in use" in str(exc) else str(exc))
        return
    results.put("got")
    import time

    time.sleep(0.4)  # hold it while the others try
    folder.commit()


def _dead_pid() -> int:
    proc = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    return int(proc.stdout)


def test_a_stale_lock_is_taken_over_by_exactly_one_of_six_processes(tmp_path: Path) -> None:
    import multiprocessing
    import socket

    ctx = multiprocessing.get_context("fork")
    dead = _dead_pid()
    for trial in range(4):
        out = tmp_path / f"out{trial}"
        out.mkdir()
        (out / LOCK_NAME).write_text(json.dumps({"pid": dead, "host": socket.gethostname()}))
        barrier, results = ctx.Barrier(6), ctx.Queue()
        procs = [ctx.Process(target=_take, args=(str(out), barrier, results)) for _ in range(6)]
        for p in procs:
            p.start()
        for p in procs:
            p.join(30)
        got = sorted(results.get(timeout=5) for _ in procs)
        assert got == ["busy"] * 5 + ["got"], (trial, got)
        assert not (out / LOCK_NAME).exists()


def test_a_run_releases_only_its_own_lock(tmp_path: Path) -> None:
    import socket

    out = tmp_path / "out"
    run = OutputFolder(out).open()
    other = {"pid": 1, "host": socket.gethostname(), "token": "someone-else"}
    (out / LOCK_NAME).write_text(json.dumps(other))  # e.g. deleted by hand and retaken
    run.commit()
    assert json.loads((out / LOCK_NAME).read_text()) == other


def test_a_corrupt_lock_or_run_file_is_one_line(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / LOCK_NAME).write_text("[" * 5000 + "]" * 5000)
    with pytest.raises(OutputError, match=r"in use by another sycam run \(another process\)"):
        OutputFolder(out).open()
    (out / LOCK_NAME).unlink()
    (out / MANIFEST_NAME).write_text('{"files": [' + "1" * 5000 + "]}")
    with OutputFolder(out, force=True) as run:  # an unreadable run file lists nothing of ours
        run.write("a.txt", "x")
    assert run.replaced == []


# ------------------------------------------------------------------ strict JSON, for every file read back


def test_strict_json_refuses_what_save_never_writes() -> None:
    from sycam._io import JSONError, loads_strict

    cases = {"[NaN]": "a non-finite number: NaN", '{"a": Infinity}': "a non-finite number: Infinity",
             "[-Infinity]": "a non-finite number: -Infinity", "[1e999]": "a number out of range: 1e999",
             "[" + "9" * 5000 + "]": "a number of 5000 characters (the limit is 100)",
             "[" * 33 + "]" * 33: "nested more than 32 levels deep",
             '{"a": [1,}': "not valid JSON: Expecting value at line 1 column 10"}
    for text, message in cases.items():
        with pytest.raises(JSONError) as exc:
            loads_strict(text)
        assert str(exc.value) == message
    assert issubclass(JSONError, SycamError)
    assert loads_strict('{"a": [1, -2.5e-3, "[[{", null, true]}') == {"a": [1, -2.5e-3, "[[{", None, True]}
    assert loads_strict("[" * 32 + "]" * 32) == eval("[" * 32 + "]" * 32)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(10**30), 10**30) | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner, max_size=4),
    max_leaves=20)


@settings(max_examples=150, deadline=None)
@given(json_values)
def test_strict_json_reads_back_what_json_dumps_writes(value: Any) -> None:
    from sycam._io import loads_strict

    assert loads_strict(json.dumps(value)) == value


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet='[]{}",:0123456789.eE-+ aNIfinityul\\tr', max_size=60))
def test_strict_json_on_any_text_returns_a_value_or_one_json_error(text: str) -> None:
    import math

    from sycam._io import JSONError, loads_strict

    try:
        value = loads_strict(text)
    except JSONError as exc:
        assert "\n" not in str(exc)
        return

    def finite(v: Any) -> bool:
        if isinstance(v, float):
            return math.isfinite(v)
        if isinstance(v, list):
            return all(finite(x) for x in v)
        if isinstance(v, dict):
            return all(finite(x) for x in v.values())
        return True

    assert finite(value)
