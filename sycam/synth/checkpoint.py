"""Checkpoints of a search: the metric values of every candidate scored so far, validated on load.

A checkpoint is one JSON object, written atomically (a temporary file renamed over the old one)::

    {"format": "sycam-checkpoint", "version": 2,
     "key": "<hash of the settings that determine the scores>",
     "columns": ["energy_pointing_game", "mask_auc"],          # the metrics, in score order
     "budget": {"max_candidates": 5000, "time_limit": null},   # informative: budgets may change on resume
     "scored": {"mean(G)": [0.71, 0.98], ...}}                 # null: a guard metric not scored yet

The search replays its deterministic enumeration on resume and takes the stored values instead of scoring
again, so a resumed run ends exactly where an uninterrupted one would. The key covers every setting except the
budgets (``max_candidates``, ``time_limit``), which may be raised (or lowered) on resume. Anything else that
differs, and any file that is not such an object (truncated, binary, a JSON list, a missing key, a value of
the wrong type), raises one :class:`~sycam.synth.errors.SynthesisError` line.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .._io import write_atomic
from .errors import SynthesisError

FORMAT = "sycam-checkpoint"
VERSION = 2
BUDGET_KEYS = ("max_candidates", "time_limit")
_REQUIRED = ("format", "version", "key", "columns", "scored")


def settings_key(settings: Mapping[str, Any]) -> str:
    """A short hash of the settings that determine the scores (budgets excluded: see the module doc)."""
    def strip(obj: Any) -> Any:
        if isinstance(obj, Mapping):
            return {k: strip(v) for k, v in obj.items() if k not in BUDGET_KEYS}
        return obj

    return hashlib.sha256(json.dumps(strip(settings), sort_keys=True, default=str).encode()).hexdigest()[:16]


def save(path: Path, key: str, columns: Sequence[str], scored: Mapping[str, Sequence[float]],
         budget: Mapping[str, Any]) -> None:
    """Write the checkpoint atomically (non-finite values as ``null``)."""
    state = {"format": FORMAT, "version": VERSION, "key": key, "columns": list(columns), "budget": dict(budget),
             "scored": {k: [float(v) if math.isfinite(v) else None for v in vals] for k, vals in scored.items()}}
    write_atomic(path, json.dumps(state))


def load(path: Path, key: str, columns: Sequence[str]) -> dict[str, list[float]]:
    """The stored values ``{expression: [value per column]}`` (NaN for ``null``), after checking the file.

    Raises:
        SynthesisError: unreadable, corrupt, or written with other settings (one line each).
    """
    def corrupt(reason: str) -> SynthesisError:
        return SynthesisError(f"checkpoint {path} is corrupt ({reason}); delete it or rerun without --resume")

    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise SynthesisError(f"checkpoint {path} cannot be read: {exc.strerror or exc}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise corrupt("not UTF-8 text") from None
    try:
        state = json.loads(text)
    except json.JSONDecodeError as exc:
        raise corrupt(f"not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    if not isinstance(state, dict):
        raise corrupt(f"a JSON {type(state).__name__} instead of an object")
    missing = [k for k in _REQUIRED if k not in state]
    if missing:
        raise corrupt(f"missing key(s) {', '.join(missing)}")
    if state["format"] != FORMAT or state["version"] != VERSION:
        raise corrupt(f"format {state['format']!r} version {state['version']!r}, expected {FORMAT!r} "
                      f"version {VERSION}")
    if state["key"] != key or state["columns"] != list(columns):
        raise SynthesisError(f"checkpoint {path} was written with other settings; rerun without --resume or with "
                             "the same settings (only the budgets --max-candidates and --time-limit may change)")
    scored = state["scored"]
    if not isinstance(scored, dict):
        raise corrupt(f"'scored' is a {type(scored).__name__}, not an object")
    out: dict[str, list[float]] = {}
    for expr, vals in scored.items():
        ok = isinstance(vals, list) and len(vals) == len(columns) and all(
            v is None or (isinstance(v, int | float) and not isinstance(v, bool)) for v in vals)
        if not ok:
            raise corrupt(f"the value of {expr!r} is not a list of {len(columns)} numbers")
        out[expr] = [math.nan if v is None else float(v) for v in vals]
    return out
