"""Output folders (sycam._io.OutputFolder): checked before work, locked, never silently overwritten, and
cleaned up after a failed run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

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
        assert sorted(run.replaced) == ["results.json", "stale_overlay.png"]
        run.write("results.json", "new")
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
        assert sorted(run.replaced) == ["checkpoint.json", "report.html"]
