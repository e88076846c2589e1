"""The ``sycam`` command line: parse, call the library, print. One module per subcommand.

Exit status: 0 success; 2 bad input (one line ``sycam: error: ...`` on stderr, or the parser's one-line
``sycam CMD: error: ...``); 1 the system refused (disk full, permissions); 130 interrupted (Ctrl-C), with
what was kept; 143 terminated (SIGTERM), handled as Ctrl-C: the lock released, a valid checkpoint kept.
Every error a user can cause is a :class:`sycam.errors.SycamError` and is printed as one line, never a
traceback. ``docs/errors.md`` lists the messages.

Example::

    sycam demo
    sycam synthesize --data demo --metric energy_pointing_game --out runs/epg
    python -m sycam list metrics
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from .. import _progress
from ..errors import SycamError
from ._common import (
    EXIT_INTERRUPTED,
    EXIT_OS,
    EXIT_TERMINATED,
    EXIT_USAGE,
    CLIError,
    HelpFormatter,
    Parser,
    current_folder,
    err,
    handle_sigterm,
    set_quiet,
    terminated,
)

__all__ = ["CLIError", "build_parser", "main"]

DESCRIPTION = """\
Metric-guided synthesis of class activation maps: search a small language of CAM expressions for the
one that scores best on a metric, and compare it with the classic methods on held-out images.

examples:
  sycam demo                                   the embedded example, offline, about 3 minutes on a CPU
  sycam list metrics                           what can be optimized
  sycam synthesize --data demo --metric iou --out runs/iou
  sycam explain --method "mean(G) * relu(D)" cat.jpg --out explained
  sycam study --metric average_drop --metric equivariance --data dev.csv --test check.csv --out runs/study

`sycam COMMAND --help` explains each command, with examples.
"""
"""The ``sycam --help`` text: what sycam does, and a few example command lines."""


def build_parser(argv: Sequence[str] | None = None) -> Parser:
    """The argument parser of every subcommand; given the command line ``argv``, the demo's defaults (which
    import the search) are read only when it runs ``demo``."""
    from .. import __version__
    from . import evaluate, explain, listing, study, synthesize

    command = next((a for a in argv if not a.startswith("-")), None) if argv is not None else "demo"

    parser = Parser(prog="sycam", description=DESCRIPTION, formatter_class=HelpFormatter)
    parser.add_argument("--version", action="version", version=f"sycam {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=Parser)
    synthesize.add_parsers(sub, demo_defaults=command == "demo")
    evaluate.add_parsers(sub)
    explain.add_parsers(sub)
    listing.add_parsers(sub)
    study.add_parsers(sub)
    return parser


def _one_line(exc: BaseException) -> str:
    cause = getattr(exc, "cause", None)  # a Ray worker's error (RayTaskError) carries the one it raised
    if isinstance(cause, SycamError):
        exc = cause
    one_line = getattr(exc, "one_line", None)
    text = one_line() if callable(one_line) else str(exc)
    lines = text.strip().splitlines()
    return lines[0] if lines else type(exc).__name__


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status (see the module docstring)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser(argv).parse_args(argv)
    quiet = bool(getattr(args, "quiet", False))
    set_quiet(quiet)
    _progress.configure(not quiet)
    previous = _sigterm_handler()
    handle_sigterm()
    try:
        code = int(args.func(args) or 0)
        return EXIT_TERMINATED if terminated() and code == EXIT_INTERRUPTED else code
    except SycamError as exc:
        if terminated():  # SIGTERM while a Ray worker or a step reported it as its own failure
            return _stopped()
        err(_one_line(exc))
        return EXIT_USAGE
    except KeyboardInterrupt:
        return _stopped()
    except SystemExit as exc:
        import signal

        if exc.code == signal.SIGTERM or terminated():  # a handler of Ray's, or a dying local Ray
            _state_terminated()
            return _stopped()
        raise
    except OSError as exc:
        name = f": {exc.filename}" if getattr(exc, "filename", None) else ""
        err(f"{exc.strerror or type(exc).__name__}{name}")
        return EXIT_OS
    finally:
        _progress.configure(False)
        _restore_sigterm(previous)


def _sigterm_handler() -> object:
    import signal

    return signal.getsignal(signal.SIGTERM)


def _restore_sigterm(previous: object) -> None:
    import signal
    import threading

    from . import _common

    _common._state["terminated"] = False
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, previous if previous is not None else signal.SIG_DFL)  # type: ignore[arg-type]


def _state_terminated() -> None:
    from . import _common

    _common._state["terminated"] = True


def _stopped() -> int:
    """Ctrl-C or SIGTERM: say what was kept (the lock is already released); 130 or 143."""
    folder = current_folder()
    kept = folder.kept if folder is not None else []
    where = f" in {folder.root}" if folder is not None else ""
    what = f"kept {', '.join(kept)}{where} (continue with --resume)" if kept else "nothing was kept"
    if terminated():
        err(f"terminated (SIGTERM): {what}")
        return EXIT_TERMINATED
    err(f"interrupted: {what}")
    return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
