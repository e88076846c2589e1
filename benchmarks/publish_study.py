"""Publish one or more ``sycam study`` runs: docs/wins.json (one entry per cell, :func:`sycam.study.wins`) and the
markdown table of README's "What sycam finds" and docs/study.md.

    python benchmarks/publish_study.py /work/study-run/imagenet/study.json:"test: 100 photos of check.csv ..." \\
        /work/study-run/curves/study.json:"..." --wins docs/wins.json

Each argument is ``STUDY.json[:NOTE]``; the note goes into every entry of that study (what the test images are).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from sycam.report.format import fmt, fmt_seconds, fmt_signed
from sycam.results import SYNTHESIZED
from sycam.study import cell_forwards, same_scores, wins


def _forwards(cell: dict) -> str:
    """``full + tail`` forwards; cells written before the two were recorded apart are recomputed from their cost
    model, sizes and settings (the same :func:`sycam.study.cell_forwards`)."""
    f = cell["forwards"]
    if not isinstance(f, dict):
        n = {k: int(v or 0) for k, v in cell["n"].items()}
        f = cell_forwards(cell["cost_per_image"], n, int(cell["candidates_scored"]), len(cell["classic"]),
                          int(cell["settings"]["synthesis"]["leaderboard_size"]))
    return f"{fmt(f['full'])} + {fmt(f['tail'])} tail"


def table(cells: list[dict]) -> str:
    """The published table: one row per cell."""
    head = ("metric", "winner (test)", "best classic (test)", "winner − best classic [95% CI]", "verdict",
            "vs every classic: better / n.d. / worse", "n syn / val / test", "candidates", "forwards (cost model)",
            "wall time")
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for c in cells:
        top = c["best_classic_on_test"]
        v = c["versus"][top]
        lo, hi = v["ci95"]
        arrow = "↑" if c["metric"]["higher_is_better"] else "↓"
        verdicts = [x["verdict"] for x in c["versus"].values()]
        tally = " / ".join(str(verdicts.count(k)) for k in ("better", "not distinguishable", "worse"))
        n = c["n"]
        same = c.get("same_as")
        if same is None:  # studies written before same_as was recorded
            same = same_scores(c["test_per_image"], SYNTHESIZED, list(c["classic"]))
        alias = f" (= {', '.join(same)} on every test image)" if same else ""
        lines.append(
            f"| {c['metric']['name']} {arrow} | `{c['winner']['expression']}` {fmt(c['winner']['test_score'])}"
            f"{alias} | "
            f"{top} {fmt(c['classic'][top]['test_score'])} | {fmt_signed(v['diff'])} [{fmt_signed(lo)}, "
            f"{fmt_signed(hi)}] | **{c['verdict']}** | {tally} | {n['synthesis']} / {n['validation']} / {n['test']} | "
            f"{c['candidates_scored']} | {_forwards(c)} | {fmt_seconds(c['wall_seconds'])} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("studies", nargs="+", metavar="STUDY.json[:NOTE]")
    p.add_argument("--wins", type=Path, default=None, help="write the entries here (docs/wins.json)")
    args = p.parse_args()
    entries, cells = [], []
    for spec in args.studies:
        path, _, note = spec.partition(":")
        study = json.loads(Path(path).read_text(encoding="utf-8"))
        entries += wins(study, note)
        cells += study["cells"]
    print(table(cells))
    if args.wins is not None:
        args.wins.write_text(json.dumps(entries, indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
