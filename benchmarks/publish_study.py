"""Publish one or more ``sycam study`` runs: docs/wins.json (one entry per cell, :func:`sycam.study.wins`) and the
markdown table of README's "What sycam finds" and docs/study.md.

    python benchmarks/publish_study.py study-run/imagenet/study.json:"test: 100 photos of check.csv ..." \\
        study-run/curves/study.json:"..." --wins docs/wins.json

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


def add_overlap(study: dict) -> None:
    """For a study with ``--test`` written before cells recorded ``test_shares_sources``: the test samples that
    share a source with the synthesis or validation split (the same split as the run: ``split`` of ``--data`` with
    its validation fraction and seed), and every comparison again on the others (``versus_unshared``)."""
    data = study["settings"]["data"]
    if not data.get("test") or all("test_shares_sources" in c for c in study["cells"]):
        return
    from sycam.data import load_data, split
    from sycam.models import load_model
    from sycam.study import StudySplits, compare_on_test, held_out_overlap, restrict

    for c in study["cells"]:
        pre = load_model(c["model"], weights=None).preprocess
        samples = load_data(data["source"], pre, limit=data.get("limit"))
        synthesis, validation = split(samples, data["validation_fraction"], data["seed"])
        test = load_data(data["test"], pre, limit=data.get("test_limit"))
        shared, clean = held_out_overlap(StudySplits(synthesis, validation, test))
        c["test_shares_sources"] = shared
        if shared:
            per = restrict(c["test_per_image"], clean)
            c["versus_unshared"] = {"n": len(clean), **compare_on_test(per, SYNTHESIZED, list(c["versus"]),
                                                                      c["metric"]["higher_is_better"])}


def unshared_table(cells: list[dict]) -> str:
    """The winner against the best classic method on the test samples that share no source with the search."""
    lines = ["| model | metric | test samples sharing a source | winner − best classic on the others [95% CI] | "
             "verdict there |", "|---|---|---|---|---|"]
    for c in cells:
        if not c.get("test_shares_sources"):
            continue
        top = c["best_classic_on_test"]
        v = c["versus_unshared"][top]
        lo, hi = v["ci95"]
        k = c["n"]["test"] - c["versus_unshared"]["n"]
        lines.append(f"| {c['model']} | {c['metric']['name']} | {k} of {c['n']['test']} "
                     f"({', '.join(c['test_shares_sources'])}) | {fmt_signed(v['diff'])} [{fmt_signed(lo)}, "
                     f"{fmt_signed(hi)}] (n = {c['versus_unshared']['n']}) | {v['verdict']} |")
    return "\n".join(lines) + "\n" if len(lines) > 2 else ""


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("studies", nargs="+", metavar="STUDY.json[:NOTE]")
    p.add_argument("--wins", type=Path, default=None, help="write the entries here (docs/wins.json)")
    args = p.parse_args()
    entries, cells = [], []
    for spec in args.studies:
        path, _, note = spec.partition(":")
        study = json.loads(Path(path).read_text(encoding="utf-8"))
        add_overlap(study)
        entries += wins(study, note)
        cells += study["cells"]
    print(table(cells))
    print(unshared_table(cells))
    if args.wins is not None:
        args.wins.write_text(json.dumps(entries, indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
