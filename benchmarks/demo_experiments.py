"""The experiments behind ``sycam demo``'s settings (issue 7, points 7-9), through the Python API.

Every number published in docs/synthesis.md ("The demo") comes out of this script. Scores are deterministic
(CPU, one thread); timings are not (the machine may be shared).

    python benchmarks/demo_experiments.py demo                       # DEMO as declared, plus the photos check
    python benchmarks/demo_experiments.py demo --burn                # the same with a CPU-burning process beside it
    python benchmarks/demo_experiments.py demo --set max_candidates=3000 --set terminals=A,G
    python benchmarks/demo_experiments.py photos "mean(G) * relu(A)"  # one expression vs the classics on photos
    python benchmarks/demo_experiments.py optimism --sizes 8,16,24 --draws 2

``demo`` prints the winner, its synthesis / validation / test scores, the comparison with the λ baseline (paired
bootstrap 95 % CI and verdict), the control, degenerate counts, ``incomplete``, timings, then every method on the
``photos`` check set (all 8 and the photos the synthesis split never saw) with paired bootstrap CIs of the winner
minus each method, and writes a PNG grid (winner vs Grad-CAM) and the results JSON when ``--out`` is given.
The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sycam.data import load_data, shared_sources, split_three  # noqa: E402
from sycam.methods import METHODS  # noqa: E402
from sycam.metrics import get_metric  # noqa: E402
from sycam.models import load_model  # noqa: E402
from sycam.stats import paired_bootstrap_ci, verdict  # noqa: E402
from sycam.synth import Grammar, SynthesisConfig, synthesize  # noqa: E402
from sycam.synth.demo import DEMO  # noqa: E402
from sycam.terminals import ExtractOptions  # noqa: E402


def settings_with(overrides: Sequence[str]) -> dict[str, Any]:
    """DEMO with ``key=value`` overrides (lists comma- or ';'-separated: ``constraint=a;b``)."""
    s = dict(DEMO)
    for item in overrides:
        key, _, value = item.partition("=")
        old = s.get(key)
        if isinstance(old, list) or key == "constraint":
            s[key] = [v.strip() for v in value.split(";") if v.strip()]
        elif value in ("None", "none", ""):
            s[key] = None
        elif isinstance(old, bool):
            s[key] = value.lower() in ("1", "true", "yes")
        elif isinstance(old, int):
            s[key] = int(value)
        elif isinstance(old, float):
            s[key] = float(value)
        else:
            s[key] = value
    return s


def config_from(s: dict[str, Any]) -> SynthesisConfig:
    """The SynthesisConfig ``sycam demo`` builds from these settings (grammar defaults + terminals/max_size)."""
    fields: dict[str, Any] = {"terminals": tuple(t.strip() for t in str(s["terminals"]).split(",") if t.strip()),
                              "max_size": int(s["max_size"])}
    if s.get("operators"):
        fields["operators"] = tuple(str(s["operators"]).replace(",", " ").split())
    if s.get("constants") is not None:
        fields["constants"] = tuple(float(x) for x in str(s["constants"]).replace(",", " ").split())
    return SynthesisConfig(grammar=Grammar(**fields), max_candidates=s["max_candidates"], time_limit=s["time_limit"],
                           constraints=tuple(s.get("constraint") or ()),
                           max_degenerate_fraction=float(s.get("max_degenerate") or 0.0))


def ci_row(a: Sequence[float], b: Sequence[float], hib: bool) -> str:
    d, lo, hi = paired_bootstrap_ci(a, b, hib)
    return f"{d:+.3f} [{lo:+.3f}, {hi:+.3f}] {verdict(lo, hi, hib)}"


def evaluate_set(model: Any, samples: Any, label: str, methods: dict[str, str], metric_names: Sequence[str],
                 subset: list[int] | None, score_top_k: int | None) -> dict[str, Any]:
    """Every method in ``methods`` on ``samples`` under each metric, with the winner (``synthesized``) minus
    each method as a paired bootstrap 95 % CI, on all samples and on ``subset`` (e.g. unseen photos)."""
    from sycam.expr import parse
    from sycam.workspace import evaluate_methods

    metrics = {n: get_metric(n) for n in metric_names}
    ev = evaluate_methods(model.module, model.layer, samples, {k: parse(v) for k, v in methods.items()}, metrics,
                          ExtractOptions(score_top_k=score_top_k))
    for mname in metric_names:
        hib = metrics[mname].higher_is_better
        per = ev.per_image[mname]
        sub = subset if subset is not None else []
        print(f"\n{label}, {mname} ({'higher' if hib else 'lower'} is better); winner − method, paired bootstrap "
              "95% CI")
        head = f"{'method':<14}{'all ' + str(len(samples)):>8}"
        if subset is not None:
            head += f"{'unseen ' + str(len(sub)):>10}"
        print(f"{head}   {'winner − method (all)':<40}{'winner − method (unseen)' if subset is not None else ''}")
        for name, vals in per.items():
            line = f"{name:<14}{sum(vals) / len(vals):>8.3f}"
            if subset is not None:
                line += f"{sum(vals[i] for i in sub) / max(len(sub), 1):>10.3f}"
            c_all = "" if name == "synthesized" else ci_row(per["synthesized"], vals, hib)
            c_un = "" if name == "synthesized" or len(sub) < 2 else ci_row([per["synthesized"][i] for i in sub],
                                                                            [vals[i] for i in sub], hib)
            print(f"{line}   {c_all:<44}{c_un}")
    print(f"{label}: degenerate maps {ev.degenerate}")
    return {"ids": list(samples.ids), "per_image": ev.per_image, "degenerate": ev.degenerate}


def evaluate_photos(model: Any, winner: str, metric_names: Sequence[str], chosen_on: Sequence[Any],
                    score_top_k: int | None) -> dict[str, Any]:
    """Every classic method and ``winner`` on the photos set: all 8, and the *unseen* ones: photos that no split
    the winner was chosen on (``chosen_on``: synthesis and validation) was made from."""
    photos = load_data("photos", model.preprocess, model.classes)
    seen = {src for part in chosen_on for src in shared_sources(part, photos)}
    unseen_idx = [i for i, src in enumerate(photos.sources) if not seen & set(src)]
    print(f"\nphotos: {len(photos)}; the synthesis and validation splits share {sorted(seen)}; unseen: "
          f"{[photos.ids[i] for i in unseen_idx]}")
    methods = {name: m.expression for name, m in METHODS.items()}
    methods["synthesized"] = winner
    out = evaluate_set(model, photos, "photos", methods, metric_names, unseen_idx, score_top_k)
    out.update(seen=sorted(seen), unseen_idx=unseen_idx)
    return out


def near_blank(model: Any, parts: dict[str, Any], expressions: Sequence[str], score_top_k: int | None,
               below: float = 0.5) -> dict[str, dict[str, int]]:
    """Per split, how many heatmaps of each expression have a maximum below ``below``: maps meant to be
    normalized to [0, 1] whose normalization failed (a raw map so small that ``heatmap.normalize``'s absolute
    1e-7 dominates its range), which look blank to a viewer yet are not ``degenerate`` (not exactly constant)."""
    from sycam.heatmap import explain

    out: dict[str, dict[str, int]] = {}
    for name, part in parts.items():
        maps = explain(model, part.images, list(expressions), targets=part.labels, score_top_k=score_top_k)
        out[name] = {e: int((m.flatten(1).amax(1) < below).sum()) for e, m in maps.items()}
        print(f"near-blank maps (max < {below}) on {name} ({len(part)} images): {out[name]}", flush=True)
    return out


def save_grid(model: Any, winner: str, parts: dict[str, Any], path: Path, score_top_k: int | None,
              per_part: int = 4) -> None:
    """A PNG grid: image with its box, Grad-CAM and the winner overlaid, on a few samples of each part."""
    from sycam.heatmap import explain
    from sycam.viz import draw_ground_truth, grid, overlay, save_png

    rows, labels = [], []
    mean = torch.tensor(model.preprocess.mean).view(3, 1, 1)
    std = torch.tensor(model.preprocess.std).view(3, 1, 1)
    for part_name, part in parts.items():
        n = len(part)
        idx = sorted({round(i * (n - 1) / max(per_part - 1, 1)) for i in range(min(per_part, n))})
        sub = part.subset(idx)
        maps = explain(model, sub.images, ["gradcam", winner], targets=sub.labels, score_top_k=score_top_k)
        names = list(maps)
        for k in range(len(sub)):
            rgb = (sub.images[k] * std + mean).clamp(0, 1)
            img = overlay(rgb, torch.zeros_like(rgb[0]), alpha=0.0)
            if sub.masks is not None:
                img = draw_ground_truth(img, mask=sub.masks[k])
            row = [img] + [overlay(rgb, maps[m][k]) for m in names]
            rows.append(row)
            labels.append(f"{part_name}: {sub.ids[k] if sub.ids else k}")
    save_png(grid(rows, labels, ["image + box", "Grad-CAM", f"winner {winner}"], cell=160), path)
    print(f"grid: {path}")


def run_demo(args: argparse.Namespace) -> dict[str, Any]:
    torch.set_num_threads(args.threads)
    s = settings_with(args.set)
    burner = None
    if args.burn:
        burner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
        print(f"CPU burner pid {burner.pid} started")
    try:
        t0 = time.perf_counter()
        model = load_model(s["model"])
        samples = load_data(s["data"], model.preprocess, model.classes)
        synthesis, validation, test = split_three(samples, s["validation_fraction"], s["test_fraction"], s["seed"])
        print(f"settings: {json.dumps(s)}")
        print(f"splits: {len(synthesis)} synthesis / {len(validation)} validation / {len(test)} test; shared "
              f"syn-val {shared_sources(synthesis, validation)} syn-test {shared_sources(synthesis, test)}")
        metrics = [get_metric(m) for m in s["metric"]]
        config = config_from(s)
        options = ExtractOptions(score_top_k=s.get("score_top_k"))
        result = synthesize(model.module, model.layer, synthesis, test, metrics[0] if len(metrics) == 1 else metrics,
                            config=config, options=options, settings={"data": {"n_synthesis": len(synthesis)}},
                            validation=validation)
        r = result.to_dict()
        wall = time.perf_counter() - t0
    finally:
        if burner is not None:
            burner.kill()
            burner.wait()
            print(f"CPU burner pid {burner.pid} stopped")
    best = r["best"]
    print(f"\nwinner: {best['expression']} (size {best['size']})")
    print(f"objective {r['metric']['name']}: synthesis {best['synthesis_score']:.4f} / validation "
          f"{best['validation_score']:.4f} / test {best['test_score']:.4f}; optimism {r['optimism']:+.4f}")
    print(f"λ = {r['lambda']:.4f} from {r['lambda_source']} ({r['lambda_baseline']}); accepted {r['accepted']}")
    print(f"comparison (test): {json.dumps(r['comparison'])}")
    print(f"control: {json.dumps(r['control'])}")
    cons = [(c["text"], c["bound"], c["synthesis_value"], c["holds"]) for c in r["constraints"]]
    print(f"constraints (text, bound, winner's synthesis value, holds): {json.dumps(cons)}")
    print(f"degenerate: {json.dumps(r['degenerate'])}")
    print(f"incomplete {r['incomplete']}, stopped because {r['stopped_because']!r}; candidates scored "
          f"{r.get('candidates_scored')}; timings {json.dumps(r['timings'])}; wall {wall:.1f} s")
    hib = r["metric"]["higher_is_better"]
    print(f"\n{'method':<16}{'synthesis':>10}{'validation':>11}{'test':>8}   winner − method on test (95% CI)")
    per_test = r["per_image"]["test"]
    for name, b in [("synthesized", best), *r["baselines"].items()]:
        c = "" if name == "synthesized" or name not in per_test else ci_row(per_test["synthesized"],
                                                                            per_test[name], hib)
        print(f"{name:<16}{b['synthesis_score']:>10.4f}{(b.get('validation_score') or float('nan')):>11.4f}"
              f"{(b.get('test_score') or float('nan')):>8.4f}   {c}")
    guards = sorted({c["metric"] for c in r["constraints"]})
    for g in guards:
        print(f"guard {g}: winner synthesis {best['scores'].get(g)}, test {best['test_scores'].get(g)}; Grad-CAM "
              f"synthesis {r['baselines'].get('gradcam', {}).get('scores', {}).get(g)}, test "
              f"{r['baselines'].get('gradcam', {}).get('test_scores', {}).get(g)}")
    print("leaderboard (top 8):")
    for e in r["leaderboard"][:8]:
        print(f"  {e['rank']:>2} {e['expression']:<40} size {e['size']} syn {e['synthesis_score']:.4f} "
              f"val {e['validation_score'] if e['validation_score'] is None else round(e['validation_score'], 4)}")
    summary: dict[str, Any] = {"winner": best["expression"], "synthesis": best["synthesis_score"],
                               "validation": best["validation_score"], "test": best["test_score"],
                               "comparison": r["comparison"], "incomplete": r["incomplete"],
                               "stopped_because": r["stopped_because"], "timings": r["timings"], "wall_s": wall}
    names = [m.name for m in metrics] + [g for g in guards if g not in [m.name for m in metrics]]
    if guards:  # the guard metrics on the test split (the results hold the objective's only)
        evaluate_set(model, test, "test split (guards)", {"gradcam": "mean(G)", "synthesized": best["expression"]},
                     guards, None, s.get("score_top_k"))
    photos = load_data("photos", model.preprocess, model.classes)
    summary["near_blank"] = near_blank(model, {"synthesis": synthesis, "validation": validation, "test": test,
                                               "photos": photos}, ["gradcam", best["expression"]],
                                       s.get("score_top_k"))
    if not args.no_photos:
        summary["photos"] = evaluate_photos(model, best["expression"], names, [synthesis, validation],
                                             s.get("score_top_k"))
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "results.json").write_text(json.dumps(r, indent=1))
        if args.grid:
            photos = load_data("photos", model.preprocess, model.classes)
            save_grid(model, best["expression"], {"test": test, "photos": photos}, out / "grid.png",
                      s.get("score_top_k"))
    print(json.dumps({k: v for k, v in summary.items() if k != "photos"}))
    return summary


def run_optimism(args: argparse.Namespace) -> dict[str, Any]:
    """Optimism of a synthesis-only winner vs the number of synthesis images.

    The demo's three source-disjoint worlds: each in turn is held out; the synthesis split is ``n`` images drawn
    (seeded) from the other two worlds. The winner is chosen on the synthesis split alone (no validation split)
    and scored on the held-out world. Optimism = synthesis − held-out score of the winner; because the worlds
    differ in difficulty, the *gain optimism* = (winner − Grad-CAM) on synthesis − (winner − Grad-CAM) held out
    removes that shift.
    """
    import random

    torch.set_num_threads(args.threads)
    s = settings_with(args.set)
    model = load_model(s["model"])
    samples = load_data(s["data"], model.preprocess, model.classes)
    worlds = split_three(samples, 1 / 3, 1 / 3, 0)
    ids = list(samples.ids)
    index = [[ids.index(i) for i in w.ids] for w in worlds]
    metric = get_metric(s["metric"][0])
    rows = []
    print(f"settings: {json.dumps(s)}")
    print(f"worlds: {[len(w) for w in worlds]} samples")
    for n in [int(x) for x in args.sizes.split(",")]:
        for held in [int(x) for x in args.held_out.split(",")]:
            for draw in range(args.first_draw, args.first_draw + args.draws):
                pool = sorted(i for k, w in enumerate(index) if k != held for i in w)
                if n > len(pool):
                    continue
                pick = sorted(random.Random(1000 * n + 10 * held + draw).sample(pool, n))
                syn, out = samples.subset(pick), samples.subset(index[held])
                t0 = time.perf_counter()
                r = synthesize(model.module, model.layer, syn, out, metric, config=config_from(s),
                               options=ExtractOptions(score_top_k=s.get("score_top_k"))).to_dict()
                b, g = r["best"], r["baselines"]["gradcam"]
                row = {"n": n, "held_out_world": held + 1, "draw": draw, "winner": b["expression"],
                       "syn": b["synthesis_score"], "held_out": b["test_score"],
                       "optimism": b["synthesis_score"] - b["test_score"],
                       "gradcam_syn": g["synthesis_score"], "gradcam_held_out": g["test_score"],
                       "gain_syn": b["synthesis_score"] - g["synthesis_score"],
                       "gain_held_out": b["test_score"] - g["test_score"],
                       "incomplete": r["incomplete"], "seconds": round(time.perf_counter() - t0, 1)}
                row["gain_optimism"] = row["gain_syn"] - row["gain_held_out"]
                rows.append(row)
                print(f"n={n:>2} held-out world {held + 1} draw {draw}: {b['expression']:<36} syn {row['syn']:.3f} "
                      f"held-out {row['held_out']:.3f} optimism {row['optimism']:+.3f} | gain over Grad-CAM syn "
                      f"{row['gain_syn']:+.3f} held-out {row['gain_held_out']:+.3f} (gain optimism "
                      f"{row['gain_optimism']:+.3f}) {row['seconds']} s", flush=True)
    print("\nmean over runs, per synthesis size:")
    print(f"{'n':>3}{'runs':>5}{'optimism':>10}{'gain optimism':>15}{'held-out gain':>15}{'gain>0 held out':>17}")
    for n in sorted({r["n"] for r in rows}):
        rs = [r for r in rows if r["n"] == n]

        def mean(k: str, rs: list[dict[str, Any]] = rs) -> float:
            return sum(r[k] for r in rs) / len(rs)

        print(f"{n:>3}{len(rs):>5}{mean('optimism'):>+10.3f}{mean('gain_optimism'):>+15.3f}"
              f"{mean('gain_held_out'):>+15.3f}{sum(r['gain_held_out'] > 0 for r in rs):>11}/{len(rs)}")
    print(json.dumps({"rows": rows}))
    return {"rows": rows}


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    d = sub.add_parser("demo", help="run DEMO (with overrides) through the Python API")
    d.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a DEMO key")
    d.add_argument("--burn", action="store_true", help="run a CPU-burning process beside it")
    d.add_argument("--no-photos", action="store_true")
    d.add_argument("--out", help="folder for results.json (and grid.png with --grid)")
    d.add_argument("--grid", action="store_true")
    d.add_argument("--threads", type=int, default=1)
    o = sub.add_parser("optimism", help="optimism of the synthesis-only winner vs synthesis split size")
    o.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a DEMO key")
    o.add_argument("--sizes", default="8,16,24")
    o.add_argument("--held-out", default="0,1,2", help="worlds held out (0-based)")
    o.add_argument("--draws", type=int, default=1)
    o.add_argument("--first-draw", type=int, default=0, help="seed offset of the subsample draws")
    o.add_argument("--threads", type=int, default=1)
    ph = sub.add_parser("photos", help="one expression vs the classic methods on the photos set")
    ph.add_argument("expression")
    ph.add_argument("--metrics", default="energy_pointing_game,mask_auc,pointing_game")
    ph.add_argument("--threads", type=int, default=1)
    ci = sub.add_parser("ci", help="paired bootstrap CIs of the winner minus every method, on every split of a "
                        "results.json")
    ci.add_argument("results")
    bl = sub.add_parser("blank", help="count near-blank heatmaps (max < 0.5) of expressions on the demo splits")
    bl.add_argument("expressions", nargs="+")
    bl.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", str(getattr(args, "threads", 1)))
    if args.cmd == "demo":
        run_demo(args)
    elif args.cmd == "optimism":
        run_optimism(args)
    elif args.cmd == "ci":
        r = json.loads(Path(args.results).read_text())
        hib = r["metric"]["higher_is_better"]
        for split, per in r["per_image"].items():
            for name in per:
                if name != "synthesized":
                    print(f"{split:<11}{len(per[name]):>3} images  winner − {name:<12}"
                          f"{ci_row(per['synthesized'], per[name], hib)}")
    elif args.cmd == "blank":
        torch.set_num_threads(args.threads)
        model = load_model(DEMO["model"])
        demo = load_data(DEMO["data"], model.preprocess, model.classes)
        parts = split_three(demo, DEMO["validation_fraction"], DEMO["test_fraction"], DEMO["seed"])
        near_blank(model, {**dict(zip(("synthesis", "validation", "test"), parts, strict=True)),
                           "photos": load_data("photos", model.preprocess, model.classes)},
                   ["gradcam", *args.expressions], DEMO.get("score_top_k"))
    else:
        torch.set_num_threads(args.threads)
        model = load_model(DEMO["model"])
        demo = load_data(DEMO["data"], model.preprocess, model.classes)
        synthesis, validation, _ = split_three(demo, DEMO["validation_fraction"], DEMO["test_fraction"], DEMO["seed"])
        evaluate_photos(model, args.expression, args.metrics.split(","), [synthesis, validation],
                        DEMO.get("score_top_k"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
