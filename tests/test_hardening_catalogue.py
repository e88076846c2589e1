"""The error catalogue (docs/errors.md): every row's bad input, run here, prints exactly the row's message,
on one line, with the row's exit status, and no traceback.

docs/errors.md is the one place the messages are written; this file holds how to produce each input. To
regenerate the table after changing a message: ``python tests/test_hardening_catalogue.py``.
"""

from __future__ import annotations

import json
import os
import re
import struct
import sys
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

import pytest
import torch

from sycam.cli import main
from sycam.errors import SycamError

DOC = Path(__file__).resolve().parent.parent / "docs" / "errors.md"
SYN = ["synthesize", "--data", "demo", "--metric", "energy_pointing_game"]
EXPLAIN = ["explain", "--random-weights", "--method", "gradcam"]


def _png(path: Path, width: int = 32, height: int = 32) -> Path:
    """A valid PNG header claiming ``width`` × ``height`` (8-bit grey), with an empty image body."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"")) +
                     chunk(b"IEND", b""))
    return path


def _photo(tmp: Path) -> Path:
    from PIL import Image

    path = tmp / "photo.png"
    if not path.exists():
        Image.new("RGB", (64, 48), (120, 80, 40)).save(path)
    return path


def _setup_out(tmp: Path, kind: str) -> Path:
    out = tmp / "out"
    if kind == "file":
        out.write_text("x")
    elif kind == "results":
        out.mkdir()
        (out / "results.json").write_text("{}")
    elif kind == "locked":
        out.mkdir()
        (out / ".sycam.lock").write_text(json.dumps({"pid": os.getpid(), "host": os.uname().nodename}))
    return out


# id -> (bad input, how to run it: argv with {tmp}/{photo} placeholders, or a callable(tmp) for API rows)
CLI: dict[str, tuple[str, list[str]]] = {
    "E01": ("a zero batch size", [*SYN, "--batch-size", "0", "--out", "{tmp}/o"]),
    "E02": ("a negative budget", [*SYN, "--max-candidates", "-5", "--out", "{tmp}/o"]),
    "E03": ("a zero budget", [*SYN, "--max-candidates", "0", "--out", "{tmp}/o"]),
    "E04": ("a negative time limit", [*SYN, "--time-limit", "-5", "--out", "{tmp}/o"]),
    "E05": ("a NaN time limit", [*SYN, "--time-limit", "nan", "--out", "{tmp}/o"]),
    "E06": ("a test fraction above 1", [*SYN, "--test-fraction", "1.5", "--out", "{tmp}/o"]),
    "E07": ("a zero validation fraction", [*SYN, "--validation-fraction", "0", "--out", "{tmp}/o"]),
    "E08": ("a zero candidate batch", [*SYN, "--candidate-batch", "0", "--out", "{tmp}/o"]),
    "E09": ("a degenerate share of 1", [*SYN, "--max-degenerate", "1", "--out", "{tmp}/o"]),
    "E10": ("an infinite λ", [*SYN, "--lambda", "inf", "--out", "{tmp}/o"]),
    "E11": ("a negative gallery size", [*SYN, "--gallery", "-1", "--out", "{tmp}/o"]),
    "E12": ("a negative seed", [*SYN, "--seed", "-1", "--out", "{tmp}/o"]),
    "E13": ("an empty method", ["explain", "--method", "", "{photo}", "--out", "{tmp}/o"]),
    "E14": ("an unknown device", [*EXPLAIN, "--device", "tpu9", "{photo}", "--out", "{tmp}/o"]),
    "E15": ("CUDA asked for on a machine without it", [*EXPLAIN, "--device", "cuda", "{photo}", "--out", "{tmp}/o"]),
    "E16": ("no --metric", ["synthesize", "--data", "demo", "--out", "{tmp}/o"]),
    "E17": ("a metric parameter without '='", [*SYN, "--metric-param", "tolerance", "--out", "{tmp}/o"]),
    "E18": ("an unknown list", ["list", "nothing"]),
    "E19": ("an unknown equivalence mode", [*SYN, "--equivalence", "fast", "--out", "{tmp}/o"]),
    "E20": ("no command", []),
    "E21": ("an empty layer path", [*EXPLAIN, "--layer", "", "{photo}", "--out", "{tmp}/o"]),
    "E22": ("an unknown terminal", [*SYN, "--terminals", "A,X", "--out", "{tmp}/o"]),
    "E23": ("an unknown metric", ["synthesize", "--data", "demo", "--metric", "nonsense", "--out", "{tmp}/o"]),
    "E24": ("the same metric twice", [*SYN, "--metric", "energy_pointing_game", "--out", "{tmp}/o"]),
    "E25": ("an unprefixed parameter with several metrics",
            [*SYN, "--metric", "sparseness", "--metric-param", "tolerance=0", "--out", "{tmp}/o"]),
    "E26": ("an unknown baseline", [*SYN, "--baselines", "gradcam,nope", "--out", "{tmp}/o"]),
    "E27": ("splits that leave no synthesis samples",
            [*SYN, "--test-fraction", "0.6", "--validation-fraction", "0.5", "--out", "{tmp}/o"]),
    "E28": ("a constant that is not a number", [*SYN, "--constants", "1 x", "--out", "{tmp}/o"]),
    "E29": ("an unclosed bracket", ["explain", "--method", "mean(G", "{photo}", "--out", "{tmp}/o"]),
    "E30": ("a misspelt method", ["explain", "--method", "gradcm", "{photo}", "--out", "{tmp}/o"]),
    "E31": ("300 nested relu(", ["explain", "--method", "relu(" * 300 + "G" + ")" * 300, "{photo}", "--out",
                                 "{tmp}/o"]),
    "E32": ("500 terms G+G+…", ["explain", "--method", "+".join(["G"] * 500), "{photo}", "--out", "{tmp}/o"]),
    "E33": ("an ill-typed expression", ["explain", "--method", "mean(S)", "{photo}", "--out", "{tmp}/o"]),
    "E34": ("--out is a file", [*EXPLAIN, "{photo}", "--out", "{tmp}/out", "@file"]),
    "E35": ("--out below a file", [*EXPLAIN, "{photo}", "--out", "{tmp}/out/sub", "@file"]),
    "E36": ("--out holds an earlier run", [*EXPLAIN, "{photo}", "--out", "{tmp}/out", "@results"]),
    "E37": ("--resume where there is no checkpoint", [*SYN, "--resume", "--out", "{tmp}/out", "@results"]),
    "E38": ("--out in use by a running sycam", [*EXPLAIN, "{photo}", "--out", "{tmp}/out", "--force", "@locked"]),
    "E39": ("a missing image", [*EXPLAIN, "{tmp}/missing.png", "--out", "{tmp}/o"]),
    "E40": ("a file that is not an image", [*EXPLAIN, "{tmp}/bad.png", "--out", "{tmp}/o", "@bad"]),
    "E41": ("a decompression bomb (30000² PNG)", [*EXPLAIN, "{tmp}/bomb.png", "--out", "{tmp}/o", "@bomb"]),
    "E42": ("an unknown model", ["explain", "--model", "alexnet9000", "--method", "gradcam", "{photo}", "--out",
                                 "{tmp}/o"]),
    "E43": ("a malformed layer path", [*EXPLAIN, "--layer", "blocks[[", "{photo}", "--out", "{tmp}/o"]),
    "E44": ("an unknown layer", [*EXPLAIN, "--layer", "nope", "{photo}", "--out", "{tmp}/o"]),
    "E45": ("a missing weights file", ["explain", "--weights", "{tmp}/w.pt", "--method", "gradcam", "{photo}",
                                       "--out", "{tmp}/o"]),
    "E46": ("--weights with --random-weights", [*EXPLAIN, "--weights", "w.pt", "{photo}", "--out", "{tmp}/o"]),
    "E47": ("an unknown target class", [*EXPLAIN, "--target", "unicorn", "{photo}", "--out", "{tmp}/o"]),
    "E48": ("a missing manifest", ["evaluate", "--random-weights", "--data", "{tmp}/missing.csv", "--metrics",
                                   "iou", "--out", "{tmp}/o"]),
    "E49": ("a missing grammar file", [*SYN, "--grammar", "{tmp}/g.txt", "--out", "{tmp}/o"]),
    "E50": ("a custom metric file that does not exist", ["evaluate", "--data", "demo", "--metrics",
                                                          "{tmp}/m.py:fn", "--out", "{tmp}/o"]),
    "E51": ("a metric that needs boxes, on data without any",
            ["evaluate", "--random-weights", "--data", "{tmp}/nobox.csv", "--metrics", "iou", "--quiet", "--out",
             "{tmp}/o", "@nobox"]),
    "E52": ("a class index out of range", [*EXPLAIN, "--target", "5000", "{photo}", "--out", "{tmp}/o"]),
    "E53": ("an unknown operator", [*SYN, "--operators", "+ foo", "--out", "{tmp}/o"]),
    "E54": ("a zero expression size", [*SYN, "--max-size", "0", "--out", "{tmp}/o"]),
    "E55": ("a zero sample limit", [*SYN, "--limit", "0", "--out", "{tmp}/o"]),
    "E56": ("a zero Score-CAM cap", [*SYN, "--score-top-k", "0", "--out", "{tmp}/o"]),
    "E57": ("an unknown metric parameter", [*SYN, "--metric-param", "colour=red", "--out", "{tmp}/o"]),
    "E58": ("a Ray option without --executor ray", [*SYN, "--workers", "2", "--out", "{tmp}/o"]),
    "E59": ("--racing on Ray", [*SYN, "--executor", "ray", "--racing", "--out", "{tmp}/o"]),
    "E60": ("--executor ray where Ray is not installed", [*SYN, "--executor", "ray", "--out", "{tmp}/o", "@noray"]),
    "E61": ("zero Ray workers", [*SYN, "--executor", "ray", "--workers", "0", "--out", "{tmp}/o"]),
    "E62": ("a negative GPU share per worker", [*SYN, "--executor", "ray", "--worker-gpus", "-1", "--out",
                                                "{tmp}/o"]),
    "E110": ("a terminal at an unknown layer", ["explain", "--random-weights", "--method", "mean(G@nope)", "{photo}",
                                                "--out", "{tmp}/o"]),
    "E111": ("an operator mixing two layers' channels", ["explain", "--random-weights", "--method",
                                                         "mean(G@blocks.5) * mean(G)", "{photo}", "--out", "{tmp}/o"]),
    "E112": ("a quantile threshold of 2", ["explain", "--random-weights", "--method", "thresh(mean(G), 2)", "{photo}",
                                           "--out", "{tmp}/o"]),
    "E113": ("Score-CAM's S at another layer", ["explain", "--random-weights", "--method", "mean(G) * S@blocks.5",
                                                "{photo}", "--out", "{tmp}/o"]),
    "E114": ("a pre-activation terminal at a layer without an activation",
             ["explain", "--random-weights", "--method", "mean(Gp@conv_head)", "{photo}", "--out", "{tmp}/o"]),
    "E115": ("a final-map operator on a channel vector", ["explain", "--random-weights", "--method",
                                                          "mean(sharpen(mean(G), 2))", "{photo}", "--out", "{tmp}/o"]),
    "E116": ("--layers naming an unknown layer", [*SYN, "--layers", "nope", "--limit", "2", "--out", "{tmp}/o"]),
}


def _api_uint8(tmp: Path) -> None:
    from engine_helpers import tiny_net

    from sycam import CAM

    CAM(tiny_net(), "body", "gradcam")(torch.zeros(1, 3, 16, 16, dtype=torch.uint8))


def _api_hwc(tmp: Path) -> None:
    from engine_helpers import tiny_net

    from sycam import CAM

    CAM(tiny_net(), "body", "gradcam")(torch.zeros(224, 224, 3))


def _api_grey(tmp: Path) -> None:
    from engine_helpers import tiny_net

    from sycam import CAM

    CAM(tiny_net(), "body", "gradcam")(torch.zeros(2, 1, 16, 16))


def _api_nan(tmp: Path) -> None:
    from engine_helpers import tiny_net

    from sycam import CAM

    x = torch.zeros(1, 3, 16, 16)
    x[0, 0, 0, 0] = float("nan")
    CAM(tiny_net(), "body", "gradcam")(x)


def _api_too_small(tmp: Path) -> None:
    from engine_helpers import tiny_net

    from sycam import CAM

    CAM(tiny_net(), "body", "gradcam")(torch.zeros(1, 3, 1, 1))


def _api_empty_expression(tmp: Path) -> None:
    from sycam import parse

    parse("  ")


def _api_long_expression(tmp: Path) -> None:
    from sycam import parse

    parse("G" * 5000)


API: dict[str, tuple[str, Callable[[Path], Any]]] = {
    "A01": ("`CAM(...)(uint8 images)`", _api_uint8),
    "A02": ("`CAM(...)(torch.zeros(224, 224, 3))` (HWC)", _api_hwc),
    "A03": ("`CAM(...)(torch.zeros(2, 1, 16, 16))` (one channel)", _api_grey),
    "A04": ("`CAM(...)(images with a NaN)`", _api_nan),
    "A05": ("`CAM(...)(torch.zeros(1, 3, 1, 1))` (too small for the model)", _api_too_small),
    "A06": ('`parse("  ")`', _api_empty_expression),
    "A07": ("`parse(\"G\" * 5000)`", _api_long_expression),
}


@contextmanager
def _without_ray() -> Iterator[None]:
    """``import ray`` fails inside, as where Ray is not installed."""
    saved = sys.modules.get("ray")
    sys.modules["ray"] = None  # type: ignore[assignment]
    try:
        yield
    finally:
        if saved is None:
            del sys.modules["ray"]
        else:
            sys.modules["ray"] = saved


def run_cli(case: str, tmp: Path, capsys: Any) -> tuple[int, str]:
    """Run CLI case ``case`` in ``tmp``; returns (exit status, stderr with ``tmp`` written as ``{tmp}``)."""
    argv = list(CLI[case][1])
    ray: Any = nullcontext()
    for a in [a for a in argv if a.startswith("@")]:
        argv.remove(a)
        if a == "@noray":
            ray = _without_ray()
        elif a == "@bad":
            (tmp / "bad.png").write_bytes(b"not a png")
        elif a == "@bomb":
            _png(tmp / "bomb.png", 30000, 30000)
        elif a == "@nobox":
            (tmp / "nobox.csv").write_text(f"image,label\n{_photo(tmp)},1\n")
        else:
            _setup_out(tmp, a[1:])
    argv = [a.replace("{tmp}", str(tmp)).replace("{photo}", str(_photo(tmp))) for a in argv]
    try:
        with ray:
            code = main(argv)
    except SystemExit as exc:  # the parser exits
        code = int(exc.code or 0)
    err = capsys.readouterr().err
    return code, err.replace(str(tmp), "{tmp}").replace(f"pid {os.getpid()} on {os.uname().nodename}",
                                                        "pid {pid} on {host}")


def run_api(case: str, tmp: Path) -> tuple[int, str]:
    """Run API case ``case``; returns (2, the error's one-line message)."""
    try:
        API[case][1](tmp)
    except SycamError as exc:
        one_line = getattr(exc, "one_line", None)
        return 2, (one_line() if callable(one_line) else str(exc)) + "\n"
    raise AssertionError(f"{case} raised nothing")


ROW = re.compile(r"^\| (?P<id>[EA]\d\d\d?) \| (?P<input>.*?) \| (?P<status>\d+) \| `(?P<message>.*)` \|$")


def doc_rows() -> dict[str, dict[str, str]]:
    """The catalogue rows of docs/errors.md by id (message with ``\\|`` unescaped)."""
    rows = {}
    for line in DOC.read_text(encoding="utf-8").splitlines():
        m = ROW.match(line)
        if m:
            row = m.groupdict()
            row["message"] = row["message"].replace("\\|", "|")
            rows[row["id"]] = row
    return rows


def test_catalogue_has_a_case_per_row_and_at_least_40_rows() -> None:
    rows = doc_rows()
    assert len(rows) >= 40
    assert set(rows) == set(CLI) | set(API)


@pytest.fixture
def tmp(tmp_path: Path, monkeypatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.mark.parametrize("case", sorted(CLI))
def test_cli_row(case: str, tmp: Path, capsys) -> None:
    if case == "E15" and torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    row = doc_rows()[case]
    code, err = run_cli(case, tmp, capsys)
    assert err.rstrip("\n") == row["message"]
    assert code == int(row["status"])
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not (tmp / "o").exists(), "a failed run leaves no output folder behind"


@pytest.mark.parametrize("case", sorted(API))
def test_api_row(case: str, tmp: Path) -> None:
    row = doc_rows()[case]
    code, err = run_api(case, tmp)
    assert err.rstrip("\n") == row["message"] and code == int(row["status"])


def _generate() -> str:  # pragma: no cover - maintenance helper
    """The catalogue table from running every case (``python tests/test_hardening_catalogue.py``)."""
    import tempfile

    class Capture:
        def readouterr(self) -> Any:
            class R:
                err = sys.stderr.getvalue()  # type: ignore[attr-defined]

            sys.stderr.truncate(0)
            sys.stderr.seek(0)
            return R

    import io

    lines = ["| id | bad input | exit | message |", "|----|-----------|------|---------|"]
    real = sys.stderr
    for case in sorted(CLI):
        with tempfile.TemporaryDirectory() as d:
            sys.stderr = io.StringIO()
            try:
                code, err = run_cli(case, Path(d), Capture())
            finally:
                sys.stderr = real
        msg = err.strip().replace("|", "\\|")
        lines.append(f"| {case} | {CLI[case][0]} | {code} | `{msg}` |")
    for case in sorted(API):
        with tempfile.TemporaryDirectory() as d:
            code, err = run_api(case, Path(d))
        lines.append(f"| {case} | {API[case][0]} | {code} | `{err.strip().replace('|', chr(92) + '|')}` |")
    return "\n".join(lines)


if __name__ == "__main__":  # pragma: no cover
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    print(_generate())
