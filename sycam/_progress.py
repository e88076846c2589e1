"""Progress reporting for long work: one place decides how progress is shown.

A TTY gets a tqdm bar with what is being done, a rate and an ETA; a pipe or file gets plain lines (at most
one every few seconds, plus the final one); ``quiet`` shows nothing. Library code opens a bar with
:func:`progress` and calls ``update``; the CLI decides with :func:`configure` once.

Example::

    with progress(total=len(images), desc="terminals", unit="img") as bar:
        for chunk in chunks:
            ...
            bar.update(len(chunk))
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TextIO

_state: dict[str, Any] = {"enabled": False, "stream": None}


def configure(enabled: bool, stream: TextIO | None = None) -> None:
    """Turn progress output on or off for this process (the library default is off; the CLI turns it on
    unless ``--quiet``). ``stream`` defaults to stderr."""
    _state["enabled"] = bool(enabled)
    _state["stream"] = stream


def enabled() -> bool:
    """Whether progress output is on."""
    return bool(_state["enabled"])


@dataclass
class _Plain:
    """Plain progress lines for a non-TTY stream: ``desc: n/total unit (rate/s, ETA 12 s)``."""

    total: int | None
    desc: str
    unit: str
    stream: TextIO
    interval: float = 5.0
    n: int = 0
    start: float = 0.0
    last: float = 0.0
    postfix: str = ""

    def update(self, n: int = 1) -> None:
        self.n += n
        now = time.perf_counter()
        if now - self.last >= self.interval:
            self.last = now
            self._write(now)

    def set_postfix_str(self, text: str) -> None:
        self.postfix = text

    def set_total(self, total: int | None) -> None:
        self.total = total

    def _write(self, now: float) -> None:
        elapsed = max(now - self.start, 1e-9)
        rate = self.n / elapsed
        parts = [f"{self.desc}: {self.n}" + (f"/{self.total}" if self.total else "") + f" {self.unit}",
                 f"{rate:.1f}/s"]
        if self.total and rate > 0:
            parts.append(f"ETA {max(self.total - self.n, 0) / rate:.0f} s")
        if self.postfix:
            parts.append(self.postfix)
        print(", ".join(parts), file=self.stream, flush=True)

    def close(self) -> None:
        self._write(time.perf_counter())


class _Null:
    """What a bar is when progress is off: every call does nothing."""

    n = 0

    def update(self, n: int = 1) -> None:
        self.n += n

    def set_postfix_str(self, text: str) -> None:
        pass

    def set_total(self, total: int | None) -> None:
        pass

    def close(self) -> None:
        pass


class _Tqdm:
    """A tqdm bar that stays on screen when done (``leave=True``), so the last state is readable."""

    def __init__(self, total: int | None, desc: str, unit: str, stream: TextIO) -> None:
        from tqdm import tqdm

        self._bar = tqdm(total=total, desc=desc, unit=unit, file=stream, dynamic_ncols=True, leave=True)

    @property
    def n(self) -> int:
        return int(self._bar.n)

    def update(self, n: int = 1) -> None:
        self._bar.update(n)

    def set_postfix_str(self, text: str) -> None:
        self._bar.set_postfix_str(text, refresh=False)

    def set_total(self, total: int | None) -> None:
        self._bar.total = total
        self._bar.refresh()

    def close(self) -> None:
        self._bar.close()


@contextmanager
def progress(total: int | None, desc: str, unit: str = "it") -> Iterator[_Null | _Plain | _Tqdm]:
    """A progress bar for ``total`` steps (``None``: unknown) labelled ``desc``; closed on exit."""
    if not _state["enabled"]:
        bar: _Null | _Plain | _Tqdm = _Null()
    else:
        stream = _state["stream"] or sys.stderr
        if getattr(stream, "isatty", lambda: False)():
            bar = _Tqdm(total, desc, unit, stream)
        else:
            now = time.perf_counter()
            bar = _Plain(total, desc, unit, stream, start=now, last=now)
    try:
        yield bar
    finally:
        bar.close()
