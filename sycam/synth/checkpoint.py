"""Checkpoints of a search: the metric values of every candidate scored so far, validated on load.

A checkpoint is one JSON object, written atomically (a temporary file renamed over the old one)::

    {"format": "sycam-checkpoint", "version": 3,
     "key": "<hash of the settings that determine the scores>",
     "parts": {"data": "<hash>", "model": "<hash>", ...},      # the key's parts, to say what changed
     "digest": "<hash of key, columns and scored>",            # a hand-edited value is refused
     "columns": ["energy_pointing_game", "mask_auc"],          # the metrics, in score order
     "budget": {"max_candidates": 5000, "time_limit": null},   # informative: budgets may change on resume
     "scored": {"mean(G)": [0.71, 0.98], ...}}                 # null: a guard metric not scored yet

The search replays its deterministic enumeration on resume and takes the stored values instead of scoring
again, so a resumed run ends exactly where an uninterrupted one would. The key covers every setting except the
budgets (``max_candidates``, ``time_limit``), which may be raised (or lowered) on resume; the settings hold a
fingerprint of the data (every sample's id, label, boxes, mask and input pixels), so a changed manifest is
never resumed. Anything else that differs is refused with one line naming the parts that changed, and any
file that is not such an object (truncated, binary, a JSON list, a missing key, a value of the wrong type, a
non-finite number, a value that does not match its digest) raises one
:class:`~sycam.synth.errors.SynthesisError` line. The file is read with :func:`sycam._io.loads_strict`.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .._io import JSONError, loads_strict, write_atomic
from .errors import SynthesisError

FORMAT = "sycam-checkpoint"
VERSION = 3
"""3: the key covers the data fingerprint, and the file carries its parts and a digest (2 had neither)"""
BUDGET_KEYS = ("max_candidates", "time_limit")
_REQUIRED = ("format", "version", "key", "columns", "scored")


def _strip(obj: Any) -> Any:
    if isinstance(obj, Mapping):
        return {k: _strip(v) for k, v in obj.items() if k not in BUDGET_KEYS}
    return obj


def _hash(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


def settings_key(settings: Mapping[str, Any]) -> str:
    """A short hash of the settings that determine the scores (budgets excluded: see the module doc)."""
    return _hash(_strip(settings))


def settings_parts(settings: Mapping[str, Any]) -> dict[str, str]:
    """The hash of each top-level part of the settings (``data``, ``model``, ``synthesis``, ...), stored beside
    the key so that a refused resume can say which parts changed."""
    return {k: _hash(_strip(v)) for k, v in settings.items()}


def _digest(key: str, columns: Sequence[str], scored: Mapping[str, Any]) -> str:
    return hashlib.sha256(json.dumps([key, list(columns), scored], sort_keys=True).encode()).hexdigest()


def save(path: Path, key: str, columns: Sequence[str], scored: Mapping[str, Sequence[float]],
         budget: Mapping[str, Any], parts: Mapping[str, str] | None = None) -> None:
    """Write the checkpoint atomically (non-finite values as ``null``), with its digest and the key's parts."""
    values = {k: [float(v) if math.isfinite(v) else None for v in vals] for k, vals in scored.items()}
    state = {"format": FORMAT, "version": VERSION, "key": key, "parts": dict(parts or {}), "columns": list(columns),
             "budget": dict(budget), "scored": values, "digest": _digest(key, columns, values)}
    write_atomic(path, json.dumps(state))


PART_NAMES = {"data_fingerprint": "the data (images, labels, boxes or masks)", "synthesis_ids": "the samples",
              "data": "the data set or split", "model": "the model", "synthesis": "the search settings",
              "extraction": "the extraction options", "metric": "the metric", "metrics": "the metric",
              "constraints": "the constraints"}
"""how a refused resume names each part of the settings that changed"""


def _changed(state: Mapping[str, Any], columns: Sequence[str], parts: Mapping[str, str]) -> str:
    stored = state.get("parts")
    what: list[str] = []
    if isinstance(stored, dict) and stored:
        keys = [k for k in [*PART_NAMES, *sorted(set(stored) | set(parts))] if k in stored or k in parts]
        what = [PART_NAMES.get(k, k) for k in dict.fromkeys(keys) if stored.get(k) != parts.get(k)]
    if state["columns"] != list(columns) and "the metric" not in what:
        what.append("the metric")
    return f": {', '.join(dict.fromkeys(what))} changed" if what else ""


def load(path: Path, key: str, columns: Sequence[str], parts: Mapping[str, str] | None = None
         ) -> dict[str, list[float]]:
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
        state = loads_strict(text)
    except JSONError as exc:
        raise corrupt(str(exc)) from None
    if not isinstance(state, dict):
        raise corrupt(f"a JSON {type(state).__name__} instead of an object")
    missing = [k for k in _REQUIRED if k not in state]
    if missing:
        raise corrupt(f"missing key(s) {', '.join(missing)}")
    if state["format"] == FORMAT and isinstance(state["version"], int) and not isinstance(state["version"], bool) \
            and 0 < state["version"] < VERSION:
        raise SynthesisError(f"checkpoint {path} was written by an older sycam (checkpoint version "
                             f"{state['version']}; this one reads version {VERSION}); rerun without --resume")
    if state["format"] != FORMAT or state["version"] != VERSION:
        raise corrupt(f"format {state['format']!r} version {state['version']!r}, expected {FORMAT!r} "
                      f"version {VERSION}")
    if state["key"] != key or state["columns"] != list(columns):
        raise SynthesisError(f"checkpoint {path} was written with other settings"
                             f"{_changed(state, columns, parts or {})}; rerun without --resume or with "
                             "the same settings and data (only the budgets --max-candidates and --time-limit may "
                             "change)")
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
    if state.get("digest") != _digest(state["key"], state["columns"], scored):
        raise corrupt("its values do not match its digest: edited by hand, or written by another program")
    return out
