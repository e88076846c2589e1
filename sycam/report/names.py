"""Display names of methods, the same in every table and gallery header of both reports."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["method_names"]


def _norm(expression: str) -> str:
    return re.sub(r"\s+", "", expression)


def method_names(keys: Sequence[str], evaluation: Mapping[str, Any]) -> dict[str, str]:
    """Display names for method keys (names like ``gradcam`` or expressions like ``mean(G)``): the
    method's title (``Grad-CAM``), with the Score-CAM cap named when one was used
    (``Score-CAM (top-16 channels)``); any other expression stays as written."""
    from ..methods import METHODS

    settings = evaluation.get("settings") or {}
    top_k = settings.get("score_top_k")
    by_expr = {_norm(m.expression): m for m in METHODS.values()}
    given = {_norm(str(e)): n for n, e in (evaluation.get("methods") or {}).items()}
    out = {}
    for key in keys:
        m = METHODS.get(key.lower()) or METHODS.get(key.lower().replace("-", "")) or by_expr.get(_norm(key))
        if m is None and _norm(key) in given:
            name = given[_norm(key)]
            m = METHODS.get(name)
            if m is None:
                out[key] = name
                continue
        if m is None:
            out[key] = key
            continue
        title = m.title
        if "S" in re.findall(r"[A-Z]", m.expression) and top_k:
            title += f" (top-{top_k} channels)"
        out[key] = title
    return out
