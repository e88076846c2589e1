"""File output: atomic writes and output folders that one run owns.

:func:`write_atomic` writes a file so that a reader never sees half of it. :class:`OutputFolder` is the
folder a CLI run writes into, with these rules (the CLI's ``--out``, ``--force`` and ``--resume``):

- it is checked (created if missing, and written to) before any work starts, so an unwritable ``--out``
  fails at once, not after a long search;
- a lock file (``.sycam.lock``, holding the pid and host) makes a second run into the same folder fail
  with a clear message while the first is alive (a lock left by a dead process on this host is taken over);
- a folder holding files is refused unless ``force`` (the earlier run's own files, listed in its manifest
  ``.sycam-run.json``, are removed first, so stale outputs never mix with new ones; files sycam did not
  write are left alone) or ``resume`` (which needs the earlier run's checkpoint: a folder with results but
  no checkpoint is refused, so nothing is silently overwritten);
- every file a run writes is recorded in the manifest as it is written; a failed run removes what it
  created (and the folder, if it created it), keeping only a checkpoint to resume from.

Example::

    with OutputFolder(Path("out"), force=args.force, command="evaluate") as out:
        out.write("evaluation.json", text)      # atomic, recorded in out/.sycam-run.json
    # on an exception: what this run wrote is removed and the lock released
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any, BinaryIO

from .errors import SycamError

LOCK_NAME = ".sycam.lock"
MANIFEST_NAME = ".sycam-run.json"


class OutputError(SycamError):
    """An output folder that cannot be used: not writable, in use, or holding an earlier run."""


def write_atomic(path: str | os.PathLike[str], data: bytes | str | Callable[[BinaryIO], object]) -> Path:
    """Write a file atomically: into a temporary file in the same folder, then rename over ``path``.

    ``data`` is bytes, text (written as UTF-8) or a function that writes to a binary file object. On any
    error the temporary file is removed and ``path`` is left as it was (absent, or its old content).
    Missing parent folders are created.

    Example::

        write_atomic("out/results.json", json.dumps(results))
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            if isinstance(data, str):
                f.write(data.encode("utf-8"))
            elif isinstance(data, bytes | bytearray | memoryview):
                f.write(data)
            else:
                data(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp creates 0600; give the usual permissions of a new file
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by someone else
        return True
    return True


def _names(paths: list[Path], limit: int = 4) -> str:
    shown = ", ".join(p.name for p in paths[:limit])
    return shown + (f" and {len(paths) - limit} more" if len(paths) > limit else "")


class OutputFolder:
    """The output folder of one run (see the module docstring for the rules).

    Args:
        path: the folder (created with its parents if missing).
        force: replace an earlier run's files.
        resume: continue an earlier run: its checkpoint (``checkpoint``) must be there.
        checkpoint: the checkpoint file name, for ``resume`` and for what a failed run keeps.
        command: what is running (recorded in the manifest).
    """

    def __init__(self, path: str | os.PathLike[str], *, force: bool = False, resume: bool = False,
                 checkpoint: str | None = None, command: str = "") -> None:
        self.root = Path(path)
        self.force = force
        self.resume = resume
        self.checkpoint = checkpoint
        self.command = command
        self.created: list[Path] = []  # files this run created (not present before), in order
        self.files: list[str] = []  # every file this run wrote, relative names (the manifest)
        self._made_dirs: list[Path] = []  # folders this run created, outermost first
        self._locked = False
        self._started = time.time()
        self.kept: list[str] = []  # what a failed run left behind on purpose (a checkpoint)
        self.replaced: list[str] = []  # earlier-run files removed by --force

    # ---------------------------------------------------------------------------------------- opening

    def open(self) -> OutputFolder:
        """Check, lock and (with ``force``) clear the folder; raise :class:`OutputError` when it cannot be used."""
        root = self.root
        if root.exists() and not root.is_dir():
            raise OutputError(f"output path {root} exists and is not a folder")
        missing = []
        p = root.absolute()
        while not p.exists():
            missing.append(p)
            p = p.parent
        if not p.is_dir():
            raise OutputError(f"cannot create output folder {root}: {p} is not a folder")
        if not os.access(p, os.W_OK | os.X_OK):
            raise OutputError(f"output folder {root} is not writable (no write permission on {p})")
        try:
            root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OutputError(f"cannot create output folder {root}: {exc.strerror or exc}") from None
        self._made_dirs = list(reversed(missing))
        self._lock()
        try:
            self._check_contents()
        except BaseException:
            self._unlock()
            self._remove_made_dirs()
            raise
        return self

    def _lock(self) -> None:
        lock = self.root / LOCK_NAME
        info = {"pid": os.getpid(), "host": socket.gethostname(), "started": self._started,
                "command": self.command}
        for _ in range(2):
            try:
                fd = os.open(lock, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            except FileExistsError:
                other = self._read_json(lock)
                pid, host = other.get("pid"), other.get("host")
                if isinstance(pid, int) and host == info["host"] and not _pid_alive(pid):
                    with contextlib.suppress(FileNotFoundError):
                        lock.unlink()  # left by a run that died on this host: take it over
                    continue
                who = f"pid {pid} on {host}" if pid else "another process"
                raise OutputError(f"output folder {self.root} is in use by another sycam run ({who}); wait for "
                                  f"it to finish, choose another --out, or delete {lock} if no run is active"
                                  ) from None
            except OSError as exc:
                self._remove_made_dirs()
                raise OutputError(f"output folder {self.root} is not writable: {exc.strerror or exc}") from None
            try:
                with os.fdopen(fd, "w") as f:
                    json.dump(info, f)
            except OSError as exc:
                with contextlib.suppress(OSError):
                    lock.unlink()
                self._remove_made_dirs()
                raise OutputError(f"output folder {self.root} is not writable: {exc.strerror or exc}") from None
            self._locked = True
            return
        raise OutputError(f"output folder {self.root}: cannot take the lock {lock}")  # pragma: no cover

    @staticmethod
    def _read_json(path: Path) -> dict[str, Any]:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def _contents(self) -> list[Path]:
        return sorted(p for p in self.root.iterdir() if p.name != LOCK_NAME)

    def _check_contents(self) -> None:
        contents = self._contents()
        if not contents:
            return
        manifest = self._read_json(self.root / MANIFEST_NAME)
        earlier = [str(f) for f in manifest.get("files", []) if isinstance(f, str)]
        if self.resume:
            if self.checkpoint and (self.root / self.checkpoint).is_file():
                self.files = list(dict.fromkeys(earlier))  # the run goes on: its earlier files stay its own
                return
            raise OutputError(f"--resume: {self.root} holds no {self.checkpoint or 'checkpoint'} to resume from "
                              f"(it holds {_names(contents)}); pass --force instead of --resume to replace "
                              "that run, or choose another --out")
        if not self.force:
            raise OutputError(f"output folder {self.root} is not empty (it holds {_names(contents)}); pass --force "
                              "to replace the earlier run's files, or choose another --out")
        for name in earlier:
            target = (self.root / name).resolve()
            if self.root.resolve() not in target.parents or not target.is_file():
                continue  # never follow a manifest outside the folder
            try:
                target.unlink()
            except OSError as exc:
                raise OutputError(f"--force: cannot remove {target} of the earlier run: {exc.strerror or exc}"
                                  ) from None
            self.replaced.append(name)
        with contextlib.suppress(FileNotFoundError):
            (self.root / MANIFEST_NAME).unlink()

    # ---------------------------------------------------------------------------------------- writing

    def path(self, name: str) -> Path:
        """The path of ``name`` in the folder, recorded as this run's (write it yourself, or let a library do)."""
        target = self.root / name
        if name not in self.files:
            if not target.exists():
                self.created.append(target)
            self.files.append(name)
            self._write_manifest(complete=False)
        return target

    def write(self, name: str, data: bytes | str | Callable[[BinaryIO], object]) -> Path:
        """Write ``name`` atomically (see :func:`write_atomic`) and record it; returns its path."""
        return write_atomic(self.path(name), data)

    def _write_manifest(self, complete: bool) -> None:
        manifest = {"command": self.command, "started": self._started, "complete": complete,
                    "files": self.files}
        write_atomic(self.root / MANIFEST_NAME, json.dumps(manifest, indent=1))

    # ---------------------------------------------------------------------------------------- closing

    def commit(self) -> None:
        """The run succeeded: mark the manifest complete and release the lock."""
        try:
            self._write_manifest(complete=True)
        finally:
            self._unlock()

    def abort(self) -> list[str]:
        """The run failed: remove what it created (keeping a checkpoint), release the lock; returns what was kept."""
        keep = self.checkpoint if self.checkpoint and (self.root / self.checkpoint).is_file() else None
        for target in reversed(self.created):
            if keep is not None and target.name == keep:
                continue
            with contextlib.suppress(OSError):
                target.unlink()
        created = {t.name for t in self.created}
        self.created = []
        self.files = [f for f in self.files if f not in created or f == keep]
        self.kept = list(self.files)
        with contextlib.suppress(OSError):
            if self.files:
                self._write_manifest(complete=False)
            else:
                (self.root / MANIFEST_NAME).unlink(missing_ok=True)
        self._unlock()
        self._remove_made_dirs()
        return self.kept

    def _unlock(self) -> None:
        if self._locked:
            with contextlib.suppress(FileNotFoundError):
                (self.root / LOCK_NAME).unlink()
            self._locked = False

    def _remove_made_dirs(self) -> None:
        for d in reversed(self._made_dirs):  # innermost first; only if empty
            with contextlib.suppress(OSError):
                d.rmdir()
        self._made_dirs = []

    def __enter__(self) -> OutputFolder:
        return self.open()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if exc_type is None:
            self.commit()
        else:
            self.abort()
