"""What every subcommand shares: argument types that validate, the help format, the output folder, the
model/data loading from options, and printing.

Argument types raise ``argparse.ArgumentTypeError``, so a bad number is refused by the parser before any
work, in one line (see :class:`Parser`).
"""

from __future__ import annotations

import argparse
import math
import re
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .._io import JSONError, OutputFolder, loads_strict
from ..errors import SycamError

EXIT_OK = 0
EXIT_OS = 1  #: the system refused (disk full, permissions) — not the user's input
EXIT_USAGE = 2  #: bad input: one line on stderr says what and where
EXIT_INTERRUPTED = 130  #: Ctrl-C (SIGINT); what was kept is said
EXIT_TERMINATED = 143  #: SIGTERM (128 + 15): handled as Ctrl-C (lock released, checkpoint kept), then this status


class Terminated(KeyboardInterrupt):
    """Raised in the main thread by SIGTERM, so that a run stops as on Ctrl-C: the search returns its best so far,
    a failed run removes what it wrote but its checkpoint, and the lock is released."""


def _on_sigterm(signum: int, frame: Any) -> None:
    if _state.get("terminated"):
        return  # a second SIGTERM while the first unwinds: let the cleanup finish
    _state["terminated"] = True
    raise Terminated()


def handle_sigterm() -> None:
    """Make SIGTERM raise :class:`Terminated` in the main thread (called again after Ray starts: ``ray.init``
    installs a handler of its own that exits without cleaning up)."""
    import signal
    import threading

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _on_sigterm)


def terminated() -> bool:
    """Whether this command was stopped by SIGTERM."""
    return bool(_state.get("terminated"))



class CLIError(SycamError):
    """A user-facing error found by the command line itself: printed as one line."""


_state: dict[str, Any] = {"quiet": False, "folder": None}


def err(msg: str) -> None:
    """Print ``sycam: error: msg`` on stderr (one line)."""
    print(f"sycam: error: {msg}", file=sys.stderr, flush=True)


def info(msg: str) -> None:
    """Print a note on stderr, unless ``--quiet``."""
    if not _state["quiet"]:
        print(msg, file=sys.stderr, flush=True)


def set_quiet(quiet: bool) -> None:
    """``--quiet``: no progress and no notes on stderr (results on stdout stay)."""
    _state["quiet"] = bool(quiet)


# --------------------------------------------------------------------------------------------------
# the parser: one-line errors, defaults shown, examples kept as written
# --------------------------------------------------------------------------------------------------


#: what an option whose default is None does, shown as its default in --help (by dest)
UNSET_DEFAULTS = {
    "layer": "the model's usual CAM layer", "reshape": "the model's own (none for CNNs)", "score_top_k": "all channels",
    "target": "each image's predicted class",
    "terminals": "the grammar's", "operators": "the grammar's", "constants": "the grammar's",
    "form": "the grammar's, channel", "max_size": "the grammar's, 7", "validation_fraction": "none",
    "lambda_": "the best classic method's score on the synthesis split", "time_limit": "no limit",
    "candidate_batch": "2 on the CPU (64 for layer-resolution metrics), 32 on a GPU",
    "weights": "the model's ImageNet weights",
    "limit": "all samples", "grammar": "the built-in grammar",
    "ray_address": "none: start a local Ray instance", "workers": "one per CPU of the Ray cluster",
    "worker_threads": "1", "worker_gpus": "0",
}


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Descriptions and examples as written; ``(default: X)`` after every option that has a default (for a
    None default, what it means, from :data:`UNSET_DEFAULTS`)."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        default = action.default
        if default is None and action.dest in UNSET_DEFAULTS:
            return f"{text} (default: {UNSET_DEFAULTS[action.dest]})"
        if "%(default)" in text or default is None or default is False or default is argparse.SUPPRESS \
                or default == []:
            return text
        if action.option_strings or action.nargs in (argparse.OPTIONAL, argparse.ZERO_OR_MORE):
            if isinstance(default, list | tuple):
                default = ", ".join(str(d) for d in default)
            return f"{text} (default: {str(default).replace('%', '%%')})"
        return text


class Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line: ``sycam CMD: error: ... (see 'sycam CMD --help')``."""

    def error(self, message: str) -> Any:  # type: ignore[override]
        """Print ``PROG: error: message (see 'PROG --help')`` on stderr and exit with status 2 (usage)."""
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def _type(name: str, check: Any, what: str) -> Any:
    def parse(text: str) -> Any:
        try:
            value = check(text)
        except (ValueError, OverflowError):
            value = None
        if value is None:
            raise argparse.ArgumentTypeError(f"must be {what}, got {text!r}")
        return value

    parse.__name__ = name  # argparse names the type in some messages
    return parse


MAX_INT = 2**63 - 1
"""the largest integer any option takes (torch, numpy and the seeds are 64-bit)"""


def _int(text: str, low: int) -> int | None:
    value = int(text.strip())
    if value > MAX_INT:
        raise argparse.ArgumentTypeError(f"must be at most 2^63 - 1 = {MAX_INT}, got {text.strip()[:30]!r}"
                                         + ("…" if len(text.strip()) > 30 else ""))
    return value if value >= low else None


def _float(text: str, ok: Any) -> float | None:
    value = float(text.strip())
    return value if math.isfinite(value) and ok(value) else None


positive_int = _type("positive_int", lambda t: _int(t, 1), "a positive integer")
nonneg_int = _type("nonneg_int", lambda t: _int(t, 0), "an integer ≥ 0")
positive_float = _type("positive_float", lambda t: _float(t, lambda v: v > 0), "a finite number > 0")
finite_float = _type("finite_float", lambda t: _float(t, lambda v: True), "a finite number")
nonneg_float = _type("nonneg_float", lambda t: _float(t, lambda v: v >= 0), "a finite number ≥ 0")
fraction = _type("fraction", lambda t: _float(t, lambda v: 0 < v < 1), "a fraction strictly between 0 and 1")
fraction0 = _type("fraction0", lambda t: _float(t, lambda v: 0 <= v < 1), "a fraction in [0, 1)")
nonneg_float = _type("nonneg_float", lambda t: _float(t, lambda v: v >= 0), "a finite number ≥ 0")


def non_empty(what: str) -> Any:
    """An argument type that refuses an empty (or blank) string."""

    def parse(text: str) -> str:
        if not text.strip():
            raise argparse.ArgumentTypeError(f"must be {what}, got an empty string")
        return text.strip()

    parse.__name__ = "non_empty"
    return parse


_DEVICE = re.compile(r"auto|cpu|mps|cuda(?::\d+)?")


def device_arg(text: str) -> str:
    """``--device``: ``auto``, ``cpu``, ``cuda``, ``cuda:N`` or ``mps``, and present on this machine."""
    name = text.strip().lower()
    if not _DEVICE.fullmatch(name):
        raise argparse.ArgumentTypeError(f"must be auto, cpu, cuda, cuda:N or mps, got {text!r}")
    if name in ("auto", "cpu"):
        return name
    import torch

    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise argparse.ArgumentTypeError(f"{name} was asked for, but no CUDA device is available (use cpu)")
        index = int(name.partition(":")[2] or 0)
        if index >= torch.cuda.device_count():
            raise argparse.ArgumentTypeError(f"{name} was asked for, but this machine has "
                                             f"{torch.cuda.device_count()} CUDA device(s)")
    elif name == "mps" and not torch.backends.mps.is_available():
        raise argparse.ArgumentTypeError("mps was asked for, but the Apple MPS backend is not available (use cpu)")
    return name


def resolve_device(name: str) -> str:
    """``auto`` → ``cuda`` when available, else ``cpu``; other names as given (already checked)."""
    if name != "auto":
        return name
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def key_value(text: str) -> tuple[str, Any]:
    """``KEY=VALUE`` → ``(KEY, value)``, the value read as JSON when it is JSON (numbers, true, lists)."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"must be KEY=VALUE, got {text!r}")
    try:
        return key.strip(), loads_strict(value)  # NaN, 1e999 or a 5000-digit number stay text, for the metric to refuse
    except JSONError:
        return key.strip(), value


class Repeat(argparse.Action):
    """A repeatable option whose default (a list or one value) is replaced, not extended, by the first use."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any,
                 option_string: str | None = None) -> None:
        current = getattr(namespace, self.dest, None)
        if current is None or current is self.default:
            current = []
        setattr(namespace, self.dest, [*current, values])


def as_list(value: Any) -> list[Any]:
    """A repeatable option's value as a list (a default may be one value)."""
    if value is None:
        return []
    return list(value) if isinstance(value, list | tuple) else [value]


def method_list(text: str, option: str = "--methods") -> list[str]:
    """A comma-separated list of methods; ``all`` stands for every classic method (``sycam list methods``);
    a list that names none (``,``) is refused."""
    from ..methods import METHODS

    out: list[str] = []
    for item in split_list(text):
        out += list(METHODS) if item.lower() == "all" else [item]
    if not out:
        raise CLIError(f"{option} {text!r} names no method (see sycam list methods)")
    return out


def name_list(text: str, option: str, what: str) -> list[str]:
    """A comma-separated list that must name at least one thing, each once (``--metrics``)."""
    names = split_list(text)
    if not names:
        raise CLIError(f"{option} {text!r} names no {what}")
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise CLIError(f"{option} names {', '.join(twice)} twice")
    return names


def split_list(text: str) -> list[str]:
    """Split a comma-separated list, keeping commas inside parentheses (expressions)."""
    parts, depth, cur = [], 0, ""
    for ch in text:
        if ch == "," and depth == 0:
            parts.append(cur.strip())
            cur = ""
            continue
        depth += ch == "("
        depth -= ch == ")"
        cur += ch
    if cur.strip():
        parts.append(cur.strip())
    return [p for p in parts if p]


# --------------------------------------------------------------------------------------------------
# option groups shared by several subcommands
# --------------------------------------------------------------------------------------------------


def add_model_args(p: argparse.ArgumentParser) -> None:
    """--model, --weights, --random-weights, --layer, --device, --seed, --batch-size, --score-top-k."""
    g = p.add_argument_group("model")
    g.add_argument("--model", default="efficientnet_lite0", metavar="NAME",
                   help="efficientnet_lite0, resnet50, vgg16, vgg19 or any timm model name (`sycam list models`)")
    g.add_argument("--weights", metavar="PATH",
                   help="a local state dict to load instead of the model's ImageNet weights")
    g.add_argument("--random-weights", action="store_true",
                   help="seeded random weights instead of ImageNet ones (for trying things out)")
    g.add_argument("--layer", type=non_empty("a layer path"), metavar="PATH", action="append",
                   help="target layer, e.g. 'layer4[-1]' or 'features.29'; repeated (explain only): several layers, "
                   "fused as pytorch-grad-cam does (per-layer normalized maps averaged, then normalized)")
    g.add_argument("--reshape", choices=("vit", "swin"), default=None,
                   help="turn the layer's output into (N, K, h, w) maps: 'vit' (ViT/DeiT tokens, prefix tokens "
                   "dropped) or 'swin' (channels last); timm ViT/DeiT/Swin models get theirs by default")
    g.add_argument("--device", type=device_arg, default="auto", metavar="DEVICE",
                   help="auto, cpu, cuda, cuda:N or mps (auto: cuda when available)")
    g.add_argument("--seed", type=nonneg_int, default=0, metavar="N",
                   help="seed of random weights and of the data split")
    g.add_argument("--batch-size", type=positive_int, default=32, metavar="N",
                   help="images (or masked inputs) per forward pass")
    g.add_argument("--score-top-k", type=positive_int, default=None, metavar="K",
                   help="cap the Score-CAM terminal S to the top-K channels per image")


def add_output_args(p: argparse.ArgumentParser, default_out: str | None = None) -> None:
    """--out, --force, --quiet."""
    g = p.add_argument_group("output")
    g.add_argument("--out", type=non_empty("a folder"), required=default_out is None, default=default_out,
                   metavar="DIR", help="output folder (created if missing; must not hold an earlier run "
                   "unless --force)")
    g.add_argument("--force", action="store_true",
                   help="replace an earlier run in --out (its own files are removed first; other files are kept)")
    g.add_argument("--quiet", action="store_true", help="no progress bars and no notes on stderr")


def add_data_args(p: argparse.ArgumentParser, required: bool = True) -> None:
    """--data, --limit."""
    g = p.add_argument_group("data")
    g.add_argument("--data", type=non_empty("a data source"), required=required, metavar="SOURCE",
                   help="'demo' (embedded), 'photos' (bundled photos), a manifest .csv/.json, or a folder of "
                   "images with Pascal VOC .xml boxes (see docs/data.md)")
    g.add_argument("--limit", type=positive_int, default=None, metavar="N", help="use only the first N samples")


EXECUTORS = ("local", "ray")
"""``--executor``'s choices (:data:`sycam.synth.executors.EXECUTORS`, not imported: it imports torch)"""
RAY_OPTIONS = ("ray_address", "workers", "worker_threads", "worker_gpus")
"""the dests of the options that only ``--executor ray`` reads"""


def add_executor_args(p: argparse.ArgumentParser) -> None:
    """--executor, --ray-address, --workers, --worker-threads, --worker-gpus."""
    g = p.add_argument_group("where to run")
    g.add_argument("--executor", choices=EXECUTORS, default="local",
                   help="local: in this process; ray: the images sharded over Ray actors, with the same results as "
                   'a local run (needs pip install "sycam[ray]")')
    g.add_argument("--ray-address", type=non_empty("a Ray address"), default=None, metavar="ADDR",
                   help="the Ray cluster to join: auto (the one running on this machine) or HOST:PORT of its head")
    g.add_argument("--workers", type=positive_int, default=None, metavar="N",
                   help="Ray workers (actors), each holding the model and one shard of the images")
    g.add_argument("--worker-threads", type=positive_int, default=None, metavar="N",
                   help="CPUs (and torch threads) per Ray worker")
    g.add_argument("--worker-gpus", type=nonneg_float, default=None, metavar="X",
                   help="GPUs per Ray worker, fractions allowed (above 0 the workers run the model on CUDA)")


# --------------------------------------------------------------------------------------------------
# doing
# --------------------------------------------------------------------------------------------------


@contextmanager
def output_folder(args: argparse.Namespace, command: str, checkpoint: str | None = None) -> Iterator[OutputFolder]:
    """The run's output folder (see :class:`sycam._io.OutputFolder`), checked and locked before any work;
    on failure what this run wrote is removed."""
    folder = OutputFolder(Path(args.out), force=args.force, resume=bool(getattr(args, "resume", False)),
                          checkpoint=checkpoint, command=command)
    _state["folder"] = folder
    with folder:
        yield folder


def check_executor_args(args: argparse.Namespace) -> None:
    """Refuse "where to run" options that do not fit together, before any work: Ray options without
    ``--executor ray``, and with it ``--device`` (the workers' device is ``--worker-gpus``) or ``--racing``."""
    if args.executor != "ray":
        given = [f"--{dest.replace('_', '-')}" for dest in RAY_OPTIONS if getattr(args, dest) is not None]
        if given:
            raise CLIError(f"{' and '.join(given)} {'needs' if len(given) == 1 else 'need'} --executor ray")
        return
    if args.device not in ("auto", "cpu"):
        raise CLIError(f"--device {args.device} applies to --executor local: the Ray workers run the model on "
                       "the CPU, or on CUDA with --worker-gpus")
    if getattr(args, "racing", False):
        raise CLIError("--racing needs every synthesis image in one process: drop --racing to use --executor ray")


@contextmanager
def executor_from(args: argparse.Namespace) -> Iterator[Any]:
    """The executor of the "where to run" options (None: this process), closed on exit (a
    :class:`~sycam.synth.ray_executor.RayExecutor` refuses workers that do not fit the cluster at once)."""
    from ..synth.executors import make_executor
    from ..synth.ray_executor import RayExecutor

    executor = make_executor(args.executor, args.ray_address, args.workers, args.worker_threads or 1,
                             args.worker_gpus or 0.0)
    handle_sigterm()  # Ray's own handler would exit leaving the lock and a half-written run
    if executor is None:
        yield None
        return
    with executor:
        line = f"executor: {executor.name}, {executor.workers} workers"
        if isinstance(executor, RayExecutor):
            line += _ray_placement(executor)
        info(line)
        yield executor


def _ray_placement(executor: Any) -> str:
    """`` (1 CPU each) on a local Ray instance``: what each Ray worker holds, and where."""
    gpus = f", {executor.num_gpus:g} GPU" if executor.num_gpus else ""
    where = "a local Ray instance" if executor.address is None else f"the Ray cluster at {executor.address}"
    return f" ({executor.threads} CPU{gpus} each) on {where}"


def current_folder() -> OutputFolder | None:
    """The output folder of the running (or just failed) command, if any."""
    return _state["folder"]


def load_model(args: argparse.Namespace, device: str | None = None) -> Any:
    """The model of ``--model``/``--weights``/``--random-weights``/``--layer``, on ``device`` (default:
    ``--device``)."""
    from ..models import load_model as load
    from ..models import resolve_layer

    if args.weights and args.random_weights:
        raise CLIError("--weights and --random-weights exclude each other")
    weights = args.weights or (None if args.random_weights else "imagenet")
    model = load(args.model, weights=weights, seed=args.seed)
    layers = list(getattr(args, "layer", None) or [])
    if len(layers) > 1 and not getattr(args, "several_layers", False):
        raise CLIError("several --layer are fused by sycam explain only; evaluate and synthesize take one target "
                       "layer")
    if layers:
        model.layer = resolve_layer(model.module, layers[0])[0] or layers[0]
    args.layers = [resolve_layer(model.module, x)[0] or x for x in layers] or [model.layer]
    if getattr(args, "reshape", None):
        from ..transforms import reshape_preset

        model.reshape_transform = reshape_preset(args.reshape, model.module)
    return model.to(resolve_device(device or args.device))


def load_samples(args: argparse.Namespace, model: Any) -> Any:
    """The samples of ``--data`` (first ``--limit``), preprocessed for ``model``."""
    from ..data import load_data

    samples = load_data(args.data, model.preprocess, model.classes, limit=args.limit)
    if len(samples) == 0:
        raise CLIError(f"data {args.data} holds no samples")
    return samples


def pick(samples: Any, k: int) -> Any:
    """``k`` samples spread evenly over ``samples`` (all of them if there are at most ``k``)."""
    n = len(samples)
    if n <= k:
        return samples
    step = n / k
    return samples.subset([int(i * step) for i in range(k)])


def gallery(model: Any, samples: Any, maps_by_name: dict[str, Any], split_name: str) -> list[Any]:
    """Report gallery items: each sample with its ground truth and one heatmap per method."""
    from ..report import GalleryItem

    items = []
    for i in range(len(samples)):
        label = int(samples.labels[i])
        items.append(GalleryItem(
            id=samples.ids[i] if samples.ids else str(i),
            label=model.classes[label] if label < len(model.classes) else str(label),
            pixels=samples.pixels[i].cpu(),
            boxes=None if samples.boxes is None else samples.boxes[i].cpu(),
            mask=None if samples.masks is None else samples.masks[i].cpu(),
            maps={name: m[i].cpu() for name, m in maps_by_name.items()}, split=split_name))
    return items


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A plain-text table with a header row and a rule, columns padded to their widest cell."""
    cells = [[str(h) for h in headers], *[[str(c) for c in r] for r in rows]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
