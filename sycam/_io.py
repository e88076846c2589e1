"""File output: atomic writes and output folders that one run owns.

:func:`write_atomic` writes a file so that a reader never sees half of it. :class:`OutputFolder` is the
folder a CLI run writes into, with these rules (the CLI's ``--out``, ``--force`` and ``--resume``):

- it is checked (created if missing, and written to) before any work starts, so an unwritable ``--out``
  fails at once, not after a long search;
- a lock file (``.sycam.lock``, holding the pid, host and a fresh token) makes a second run into the same
  folder fail with a clear message while the first is alive; a lock left by a dead process on this host is
  taken over, by one process only (each taker checks and writes the lock under ``flock``);
- a folder holding files is refused unless ``force`` or ``resume``. With ``force`` nothing is removed
  when the folder is opened: the earlier run's own files (listed in its manifest ``.sycam-run.json``) are
  set aside when this run first writes — after it has checked its inputs — and removed when it succeeds,
  or put back when it fails before keeping anything, so a mistyped input never costs the earlier run.
  Files sycam did not write are never replaced: writing one is refused (:meth:`OutputFolder.check_names`).
  ``resume`` needs the earlier run's checkpoint: a folder with results but no checkpoint is refused, so
  nothing is silently overwritten;
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
import math
import os
import re
import secrets
import shutil
import socket
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any, BinaryIO

from .errors import SycamError

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX: the lock is then checked without flock
    fcntl = None  # type: ignore[assignment]

LOCK_NAME = ".sycam.lock"
MANIFEST_NAME = ".sycam-run.json"
ASIDE_PREFIX = ".sycam-replaced-"
"""``--force`` sets the earlier run's files aside in ``.sycam-replaced-<token>/`` until the new run commits"""
LOCK_WAIT = 10.0
"""seconds a run waits for another process that is checking or writing the lock file"""


class OutputError(SycamError):
    """An output folder that cannot be used: not writable, in use, or holding an earlier run."""


class JSONError(SycamError, ValueError):
    """A file we read back that is not strict JSON: not JSON at all, a non-finite number (``NaN``,
    ``Infinity``, ``1e999``), a number of more than :data:`MAX_JSON_DIGITS` characters, or nesting deeper than
    :data:`MAX_JSON_DEPTH`. The message is one line; callers prefix the file it came from."""


MAX_JSON_DEPTH = 32
"""deepest nesting of lists and objects :func:`loads_strict` accepts (our files need 4)"""
MAX_JSON_DIGITS = 100
"""longest number literal :func:`loads_strict` accepts, in characters (a float needs 24)"""
_JSON_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{}]')


def _json_depth(text: str) -> int:
    """The deepest nesting of ``[``/``{`` outside strings (a scan, so deep input never reaches the parser)."""
    depth = deepest = 0
    for m in _JSON_TOKEN.finditer(text):
        c = m.group()
        if c in "[{":
            depth += 1
            if depth > deepest:
                deepest = depth
                if deepest > MAX_JSON_DEPTH:
                    break
        elif c in "]}":
            depth -= 1
    return deepest


def _number(kind: type) -> Callable[[str], Any]:
    def parse(text: str) -> Any:
        if len(text) > MAX_JSON_DIGITS:
            raise JSONError(f"a number of {len(text)} characters (the limit is {MAX_JSON_DIGITS})")
        value = kind(text)
        if kind is float and not math.isfinite(value):
            raise JSONError(f"a number out of range: {text}")
        return value

    return parse


def _constant(name: str) -> Any:
    raise JSONError(f"a non-finite number: {name}")


def loads_strict(text: str) -> Any:
    """Parse JSON strictly: finite numbers only, at most :data:`MAX_JSON_DIGITS` characters a number and
    :data:`MAX_JSON_DEPTH` levels of nesting; every failure is one :class:`JSONError` line (no
    ``RecursionError``, no ``ValueError`` from a 5000-digit integer). Every JSON file sycam reads back
    (manifests, checkpoints, locks, run files) goes through this.

    Example::

        loads_strict('{"a": [1, 2.5]}')     # {'a': [1, 2.5]}
        loads_strict('[NaN]')               # JSONError: a non-finite number: NaN
    """
    if _json_depth(text) > MAX_JSON_DEPTH:
        raise JSONError(f"nested more than {MAX_JSON_DEPTH} levels deep")
    try:
        return json.loads(text, parse_int=_number(int), parse_float=_number(float), parse_constant=_constant)
    except json.JSONDecodeError as exc:
        raise JSONError(f"not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    except RecursionError:  # pragma: no cover - the depth scan comes first
        raise JSONError(f"nested more than {MAX_JSON_DEPTH} levels deep") from None


def read_json_file(path: str | os.PathLike[str], encoding: str = "utf-8") -> Any:
    """:func:`loads_strict` of a file's text; :class:`JSONError` for text that is not ``encoding``
    (``OSError`` passes through: the caller says what the file is)."""
    try:
        text = Path(path).read_bytes().decode(encoding)
    except UnicodeDecodeError:
        raise JSONError(f"not {encoding.upper().replace('-SIG', '')} text") from None
    return loads_strict(text)


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


def _flock(fd: int, deadline: float) -> bool:
    """``flock(fd, LOCK_EX)``, polling until ``deadline``; False when another process holds it that long."""
    if fcntl is None:  # pragma: no cover
        return True
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.005)


def _same_file(fd: int, path: Path) -> bool:
    """Whether ``path`` still names the file open as ``fd`` (not unlinked or replaced since)."""
    try:
        a, b = os.fstat(fd), os.stat(path)
    except OSError:
        return False
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


def _read_fd(fd: int) -> dict[str, Any] | None:
    """The lock's content: None when empty (free), ``{}`` when not a JSON object (refused: unknown owner)."""
    raw = os.pread(fd, 1 << 16, 0)
    if not raw.strip():
        return None
    try:
        data = loads_strict(raw.decode("utf-8"))
    except (UnicodeDecodeError, JSONError):
        return {}
    return data if isinstance(data, dict) else {}


def _stale(other: dict[str, Any], host: str) -> bool:
    """A lock left by a process that died on this host."""
    pid = other.get("pid")
    return isinstance(pid, int) and not isinstance(pid, bool) and 0 < pid < 2**31 and other.get("host") == host \
        and not _pid_alive(pid)


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
        self.replaced: list[str] = []  # earlier-run files set aside (then removed) by --force
        self._token = ""  # this run's lock token
        self._wrote_manifest = False
        self._earlier: list[str] = []  # --force: the earlier run's files, set aside at the first write
        self._earlier_manifest: bytes | None = None
        self._aside: Path | None = None  # where they are until this run commits (or fails: put back)
        self._stale_aside: list[Path] = []  # set-aside folders of runs that were killed

    # ---------------------------------------------------------------------------------------- opening

    def open(self) -> OutputFolder:
        """Check and lock the folder (with ``force``, note the earlier run's files: nothing is removed yet); raise
        :class:`OutputError` when it cannot be used."""
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
        """Take ``.sycam.lock``: free (absent or empty) or left by a dead process on this host, else refused.

        Every taker holds ``flock`` on the lock file while it checks and writes it, so that two processes that
        both find a stale lock cannot both take it over; a taker that opened a file another one unlinked
        meanwhile (another inode than the path's) starts again. The lock holds a fresh random token, so a
        run releases only its own lock.
        """
        lock = self.root / LOCK_NAME
        self._token = secrets.token_hex(8)
        info = {"pid": os.getpid(), "host": socket.gethostname(), "started": self._started,
                "command": self.command, "token": self._token}
        deadline = time.monotonic() + LOCK_WAIT
        while True:
            try:
                fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
            except OSError as exc:
                self._remove_made_dirs()
                raise OutputError(f"output folder {self.root} is not writable: {exc.strerror or exc}") from None
            try:
                if not _flock(fd, deadline):
                    raise OutputError(f"output folder {self.root}: cannot take the lock {lock} (another process "
                                      f"holds it for more than {LOCK_WAIT:g} s)")
                if not _same_file(fd, lock):
                    continue  # released (unlinked) while we waited: take the new one
                other = _read_fd(fd)
                if other is not None and not _stale(other, info["host"]):
                    pid, host = other.get("pid"), other.get("host")
                    who = f"pid {pid} on {host}" if pid else "another process"
                    raise OutputError(f"output folder {self.root} is in use by another sycam run ({who}); wait for "
                                      f"it to finish, choose another --out, or delete {lock} if no run is active")
                try:
                    os.ftruncate(fd, 0)
                    os.pwrite(fd, json.dumps(info).encode(), 0)
                    os.fsync(fd)
                except OSError as exc:
                    with contextlib.suppress(OSError):
                        lock.unlink()
                    raise OutputError(f"output folder {self.root} is not writable: {exc.strerror or exc}"
                                      ) from None
                self._locked = True
                return
            except OutputError:
                self._remove_made_dirs()
                raise
            finally:
                os.close(fd)  # releases the flock

    @staticmethod
    def _read_json(path: Path) -> dict[str, Any]:
        try:
            data = read_json_file(path)
        except (OSError, JSONError):
            return {}
        return data if isinstance(data, dict) else {}

    def _contents(self) -> list[Path]:
        return sorted(p for p in self.root.iterdir() if p.name != LOCK_NAME)

    def _check_contents(self) -> None:
        """Refuse a folder that holds files, unless ``resume`` (with its checkpoint) or ``force``; with
        ``force`` nothing is removed yet: the earlier run is set aside when this run first writes
        (:meth:`_set_aside_earlier`), after its inputs were checked."""
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
        root = self.root.resolve()
        for name in dict.fromkeys(earlier):
            target = (self.root / name).resolve()
            if root in target.parents and target.is_file():  # never follow a manifest outside the folder
                self._earlier.append(name)
        self._stale_aside = [p for p in contents if p.name.startswith(ASIDE_PREFIX) and p.is_dir()]

    def _set_aside_earlier(self) -> None:
        """``force``: move the earlier run's files into a hidden folder (restored if this run fails before it
        keeps anything; removed when it succeeds)."""
        if self._aside is not None or not (self._earlier or self._stale_aside):
            return
        self._aside = self.root / f"{ASIDE_PREFIX}{self._token}"
        manifest = self.root / MANIFEST_NAME
        with contextlib.suppress(OSError):
            self._earlier_manifest = manifest.read_bytes()
        for name in self._earlier:
            dest = self._aside / name
            try:
                dest.parent.mkdir(parents=True, exist_ok=True)
                os.replace(self.root / name, dest)
            except FileNotFoundError:
                continue
            except OSError as exc:
                raise OutputError(f"--force: cannot remove {self.root / name} of the earlier run: "
                                  f"{exc.strerror or exc}") from None
            self.replaced.append(name)
        with contextlib.suppress(FileNotFoundError):
            manifest.unlink()

    def _drop_aside(self) -> None:
        for d in [*self._stale_aside, *([self._aside] if self._aside is not None else [])]:
            shutil.rmtree(d, ignore_errors=True)
        self._stale_aside, self._aside = [], None

    def _restore_aside(self) -> None:
        """Put the earlier run back as it was (this run failed and keeps nothing)."""
        if self._aside is None:
            return
        for name in self.replaced:
            with contextlib.suppress(OSError):
                (self.root / name).parent.mkdir(parents=True, exist_ok=True)
                os.replace(self._aside / name, self.root / name)
        if self._earlier_manifest is not None:
            with contextlib.suppress(OSError):
                write_atomic(self.root / MANIFEST_NAME, self._earlier_manifest)
        shutil.rmtree(self._aside, ignore_errors=True)
        self._aside, self.replaced = None, []

    def check_names(self, names: list[str]) -> None:
        """Refuse, before any work, to write ``names`` where a file of that name is not this run's or the
        earlier run's (a user's own ``explain.json``: ``--force`` replaces only what a manifest of ours lists)."""
        for name in names:
            target = self.root / name
            ours = name in self.files or name in self._earlier or (self.resume and name == self.checkpoint)
            if (target.exists() or target.is_symlink()) and not ours:
                raise OutputError(f"{target} was not written by sycam (no manifest of ours lists it) and is never "
                                  "replaced; move it away or choose another --out")

    # ---------------------------------------------------------------------------------------- writing

    def path(self, name: str) -> Path:
        """The path of ``name`` in the folder, recorded as this run's (write it yourself, or let a library do)."""
        target = self.root / name
        if name not in self.files:
            self.check_names([name])
            self._set_aside_earlier()
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
        self._wrote_manifest = True

    # ---------------------------------------------------------------------------------------- closing

    def commit(self) -> None:
        """The run succeeded: mark the manifest complete and release the lock."""
        try:
            self._set_aside_earlier()
            self._write_manifest(complete=True)
            self._drop_aside()
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
            elif self._wrote_manifest:  # never the earlier run's, when this one wrote nothing
                (self.root / MANIFEST_NAME).unlink(missing_ok=True)
        if keep is None:
            self._restore_aside()  # nothing of this run is kept: the earlier run stays as it was
        else:
            self._drop_aside()  # the new run's checkpoint replaces the earlier run
        self._unlock()
        self._remove_made_dirs()
        return self.kept

    def _unlock(self) -> None:
        """Remove the lock if it is still ours (its token), under its flock."""
        if not self._locked:
            return
        self._locked = False
        lock = self.root / LOCK_NAME
        try:
            fd = os.open(lock, os.O_RDWR)
        except OSError:
            return
        try:
            if _flock(fd, time.monotonic() + LOCK_WAIT) and _same_file(fd, lock):
                mine = _read_fd(fd) or {}
                if mine.get("token") == self._token:
                    with contextlib.suppress(OSError):
                        lock.unlink()
        finally:
            os.close(fd)

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
