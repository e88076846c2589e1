"""The study's tables (study.md and report.html) from study.json (:func:`sycam.study.run_study`'s result)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from .format import arrow, esc, fmt, fmt_ci, fmt_seconds, fmt_signed
from .page import page
from .tables import Col, table

__all__ = ["cell_rows", "cross_rows", "study_html", "study_markdown"]

HEADERS = ("model", "layer", "metric", "winner", "synthesis", "validation", "test", "best classic (test)",
           "winner − best classic [95% CI]", "verdict", "vs every classic (better / n.d. / worse)",
           "winner − power control [95% CI]", "candidates", "forwards", "wall time")
"""the columns of the main table"""


def _interval(v: Mapping[str, Any]) -> str:
    return f"{fmt_signed(v.get('diff'))} {fmt_ci(v.get('ci95'))}"


def _tally(cell: Mapping[str, Any]) -> str:
    verdicts = [v["verdict"] for v in cell["versus"].values()]
    return " / ".join(str(verdicts.count(k)) for k in ("better", "not distinguishable", "worse"))


def _forwards(f: object) -> str:
    if isinstance(f, Mapping):
        return f"{fmt(f['full'])} + {fmt(f['tail'])} tail"
    return fmt(f)


def cell_rows(study: Mapping[str, Any]) -> list[list[str]]:
    """One row of text cells per study cell, in :data:`HEADERS` order."""
    rows = []
    for c in study["cells"]:
        m, w, top = c["metric"], c["winner"], c["best_classic_on_test"]
        best = "—" if top is None else f"{top} {fmt(c['classic'][top]['test_score'])}"
        diff = "—" if top is None or top not in c["versus"] else _interval(c["versus"][top])
        control = (c.get("controls") or {}).get("power_control")
        power = "—" if not control else f"{_interval(control)} ({control['verdict']})"
        rows.append([c["model"], c["layer"], f"{m['name']} {arrow(m['higher_is_better'])}", w["expression"],
                     fmt(w["synthesis_score"]), fmt(w["validation_score"]), fmt(w["test_score"]), best, diff,
                     c["verdict"], _tally(c), power, fmt(c["candidates_scored"]), _forwards(c["forwards"]),
                     fmt_seconds(c["wall_seconds"])])
    return rows


def cross_rows(study: Mapping[str, Any]) -> list[list[str]]:
    """One row per (winner, other model): the winner's score there against that model's best classic method."""
    return [[r["metric"], r["from_model"], r["on_model"], r["expression"], fmt(r["score"]),
             f"{r['best_classic']} {fmt(r['best_classic_score'])}", _interval(r), r["verdict"], str(r["n"])]
            for r in study.get("cross_model", [])]


CROSS_HEADERS = ("metric", "winner of", "scored on", "expression", "score (test)", "best classic there",
                 "difference [95% CI]", "verdict", "n")


def _md(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    def cell(x: str) -> str:
        return str(x).replace("|", "\\|")

    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(cell(x) for x in r) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def _sizes(study: Mapping[str, Any]) -> str:
    sizes = sorted({(c["model"], c["n"]["synthesis"], c["n"]["validation"], c["n"]["test"]) for c in study["cells"]})
    return "; ".join(f"{m}: {s} synthesis / {v} validation / {t} test samples" for m, s, v, t in sizes)


def study_markdown(study: Mapping[str, Any]) -> str:
    """study.md: the main table, each cell's comparison with every classic method, and the cross-model table."""
    parts = [f"# Study\n\n{_sizes(study)}. Verdicts read the paired bootstrap 95% interval on the test split: wins = "
             "better than every exact classic method and than the power control (Grad-CAM's map to a power fitted on "
             "synthesis), loses = worse than the best classic method, ties = otherwise.\n\n",
             _md(HEADERS, cell_rows(study))]
    for c in study["cells"]:
        rows = [[b, fmt(c["classic"][b]["test_score"]), _interval(v), v["verdict"]
                 + ("" if c["classic"][b].get("exact", True) else " (approximation)")]
                for b, v in c["versus"].items()]
        parts.append(f"\n## {c['model']} × {c['metric']['name']}: `{c['winner']['expression']}` against every "
                     f"classic method (test)\n\n" + _md(("method", "test score", "winner − method [95% CI]",
                                                          "verdict"), rows))
    if study.get("cross_model"):
        parts.append("\n## Winners on the other models (test)\n\n" + _md(CROSS_HEADERS, cross_rows(study)))
    return "".join(parts)


def study_html(study: Mapping[str, Any]) -> str:
    """report.html: the same tables as study.md, one self-contained page."""
    body = [f"<h1>Study</h1><p>{esc(_sizes(study))}. Verdicts read the paired bootstrap 95% interval on the test "
            "split: <em>wins</em> = better than every exact classic method and than the power control, <em>loses</em> "
            "= worse than the best classic method, <em>ties</em> = otherwise. Total wall time "
            f"{esc(fmt_seconds(study.get('seconds')))}.</p>",
            table([Col(h, code=h == "winner") for h in HEADERS], cell_rows(study), caption="one row per cell")]
    for c in study["cells"]:
        rows = [[b, fmt(c["classic"][b]["test_score"]), _interval(v), v["verdict"]] for b, v in c["versus"].items()]
        body.append(f"<h2>{esc(c['model'])} × {esc(c['metric']['name'])}: <code>{esc(c['winner']['expression'])}"
                    "</code> against every classic method (test)</h2>")
        body.append(table([Col("method"), Col("test score"), Col("winner − method [95% CI]"), Col("verdict")], rows))
    if study.get("cross_model"):
        body.append("<h2>Winners on the other models (test)</h2>")
        body.append(table([Col(h, code=h == "expression") for h in CROSS_HEADERS], cross_rows(study)))
    return page("sycam study", "\n".join(body))
