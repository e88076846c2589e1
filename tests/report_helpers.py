"""Results files and galleries for the report tests: a full ``results.json`` with every block of the
schema, an ``evaluation.json``, and a gallery of photo-like images with blob heatmaps (no model needed)."""

from __future__ import annotations

import math
from typing import Any

import torch

from sycam.report import SYNTHESIZED, GalleryItem

BASELINES = {
    "Grad-CAM": ("mean(G)", 0.7810, 0.7704, 0.7650),
    "Grad-CAM++": ("sum(relu(G) * sq(G) / (2 * sq(G) + sum(A) * cube(G) + 1e-06))", 0.7701, 0.7655, 0.7600),
    "XGrad-CAM": ("sum(G * A) / sum(A)", 0.7688, 0.7600, 0.7550),
    "Score-CAM": ("softmax(S)", 0.7500, 0.7790, 0.7400),
    "Ablation-CAM": ("D", 0.7300, 0.7200, 0.7100),
}
SPLIT_IDS = {
    "synthesis": [f"espresso_on_grass_{i:02d}#967" for i in range(6)],
    "validation": [f"moped_on_gravel_{i:02d}#665" for i in range(4)],
    "test": [f"tabby_cat_on_bricks_{i:02d}#281" for i in range(5)],
}


def _per_image(mean: float, n: int, seed: int) -> list[float]:
    g = torch.Generator().manual_seed(seed)
    return [round(min(1.0, max(0.0, mean + 0.08 * float(x))), 4) for x in torch.randn(n, generator=g)]


def make_full_results(verdict: str = "not distinguishable") -> dict[str, Any]:
    """A results.json with every block of the round's schema (comparison, per-image scores, degenerate
    counts, constraints, Pareto front, control, validation, counters that add up, split timings)."""
    best = "mean(G) - softmax(D)"
    ci = {"better": [0.004, 0.061], "not distinguishable": [-0.016, 0.185], "worse": [-0.09, -0.012]}[verdict]
    names = ["synthesized", *BASELINES]
    per_image = {
        split: {name: _per_image(0.77, len(ids), 7 * i + j) for j, name in enumerate(names)}
        for i, (split, ids) in enumerate(SPLIT_IDS.items())
    }
    return {
        "metric": {"name": "energy_pointing_game", "higher_is_better": True, "params": {"gt": "box"},
                   "requires": "box", "cost": "cached"},
        "metrics": [{"name": "energy_pointing_game", "higher_is_better": True},
                    {"name": "deletion_auc", "higher_is_better": False}],
        "model": {"name": "efficientnet_lite0", "layer": "conv_head", "weights": "bundled"},
        "data": {"source": "demo", "n_synthesis": 6, "n_validation": 4, "n_test": 5, "seed": 0,
                 "shared_sources": ["texture:grass"]},
        "lambda": 0.7810,
        "lambda_source": "best_baseline",
        "accepted": True,
        "best": {"expression": best, "latex": "ignored", "size": 4, "synthesis_score": 0.8123,
                 "validation_score": 0.7902, "test_score": 0.7951, "is_baseline": None},
        "baselines": {
            n: {"expression": e, "synthesis_score": s, "validation_score": v, "test_score": t,
                "title": f"{n} (top-16 channels)" if n == "Score-CAM" else n, "exact": n != "Score-CAM"}
            for n, (e, s, v, t) in BASELINES.items()
        },
        "control": {"name": "Grad-CAM thresholded to the winner's sparsity",
                    "scores": {"synthesis": 0.7931, "validation": 0.7710, "test": 0.7800}},
        "comparison": {"baseline": "Grad-CAM", "diff": 0.0301, "ci95": ci, "verdict": verdict},
        "constraints": [
            {"text": "mask_auc >= gradcam", "metric": "mask_auc", "op": ">=", "rhs": "gradcam", "bound": 0.9851,
             "synthesis_value": 0.9862, "holds": True},
            {"text": "deletion_auc <= 0.2", "metric": "deletion_auc", "op": "<=", "rhs": "0.2", "bound": 0.2,
             "synthesis_value": 0.1811, "holds": True},
        ],
        "pareto": [
            {"expression": best, "scores": {"energy_pointing_game": 0.8123, "deletion_auc": 0.1811}},
            {"expression": "mean(G)", "scores": {"energy_pointing_game": 0.7810, "deletion_auc": 0.1502}},
            {"expression": "relu(G) * A", "scores": {"energy_pointing_game": 0.7950, "deletion_auc": 0.1650}},
            {"expression": "max(G - A)", "scores": {"energy_pointing_game": 0.8201, "deletion_auc": 0.2302}},
        ],
        "leaderboard": [
            {"rank": 1, "expression": best, "size": 4, "synthesis_score": 0.8123, "validation_score": 0.7902,
             "test_score": 0.7951},
            {"rank": 2, "expression": "sum(A - G) * D", "size": 6, "synthesis_score": 0.8101,
             "validation_score": 0.7702, "test_score": None},
            {"rank": 3, "expression": "sum(G - softmax(D))", "size": 5, "synthesis_score": 0.8050,
             "validation_score": 0.7600, "test_score": None},
        ],
        "history": [[1, 0.725], [12, 0.74], [130, 0.78], [900, 0.80], [3597, 0.8123]],
        "per_image": per_image,
        "ids": SPLIT_IDS,
        "degenerate": {"synthesized": {"synthesis": 0, "validation": 0, "test": 1},
                       **{n: {"synthesis": 0, "validation": 0, "test": 0} for n in BASELINES}},
        "validation_score": 0.7902,
        "optimism": 0.0221,
        "incomplete": False,
        "stopped_because": "search space exhausted",
        "candidates_enumerated": 12033,
        "candidates_scored": 3597,
        "equivalent_pruned": 3601,
        "rejected_total": 1420,
        "rejected": {"degenerate": 1300, "constraint": 120},
        "subexpressions_pruned": 3300,
        "form_skipped": 100,
        "duplicates_of_seeds": 10,
        "unscored": 5,
        "seconds": 45.4,
        "timings": {"terminals": 20.1, "baselines": 3.2, "search": 16.02, "validation": 1.1, "test": 2.5,
                    "report": 2.48},
        "settings": {"max_size": 5, "max_candidates": 20000, "seed": 0},
        "versions": {"sycam": "0.1.0", "torch": "2.4.0"},
        "notes": ["Score-CAM's S is capped to the top-16 channels: an approximation, shown as such; it never sets λ."],
    }


def make_evaluation() -> dict[str, Any]:
    """An evaluation.json as ``sycam evaluate`` writes it (method names as keys)."""
    results = {
        "gradcam": {"energy_pointing_game": 0.7704, "deletion_auc": 0.152},
        "scorecam": {"energy_pointing_game": 0.7790, "deletion_auc": 0.161},
        "ablationcam": {"energy_pointing_game": 0.7200, "deletion_auc": 0.149},
        "mean(G) - softmax(D)": {"energy_pointing_game": 0.7951, "deletion_auc": 0.181},
    }
    ids = SPLIT_IDS["test"]
    return {
        "metrics": {"energy_pointing_game": {"higher_is_better": True}, "deletion_auc": {"higher_is_better": False}},
        "results": results,
        "model": {"name": "efficientnet_lite0", "layer": "conv_head", "weights": "bundled"},
        "data": {"source": "demo", "n": len(ids)},
        "per_image": {"all": {m: {k: _per_image(v, len(ids), i) for k, v in s.items()}
                              for i, (m, s) in enumerate(results.items())}},
        "ids": {"all": ids},
        "degenerate": {m: {"all": int(m.startswith("mean"))} for m in results},
        "settings": {"score_top_k": 16, "batch_size": 8},
        "versions": {"sycam": "0.1.0"},
        "seconds": 12.3,
    }


def _photo(size: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A photo-like picture (smooth background and a textured object) and the object's box."""
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.linspace(0, 1, size), torch.linspace(0, 1, size), indexing="ij")
    base = torch.rand(3, 1, 1, generator=g) * 0.5 + 0.25
    pixels = base * (0.7 + 0.3 * yy) + 0.05 * torch.rand(3, size, size, generator=g)
    x1, y1 = int(size * (0.15 + 0.3 * float(torch.rand(1, generator=g)))), int(size * 0.25)
    x2, y2 = x1 + size // 3, y1 + size // 3
    colour = torch.rand(3, 1, 1, generator=g)
    pixels[:, y1:y2, x1:x2] = colour * (0.8 + 0.2 * torch.sin(xx[y1:y2, x1:x2] * 40))
    return pixels.clamp(0, 1), torch.tensor([[x1, y1, x2, y2]], dtype=torch.float32)


def _blob(size: int, box: torch.Tensor, shift: float, width: float) -> torch.Tensor:
    x1, y1, x2, y2 = box[0].tolist()
    cx, cy = (x1 + x2) / 2 + shift * size, (y1 + y2) / 2
    yy, xx = torch.meshgrid(torch.arange(size).float(), torch.arange(size).float(), indexing="ij")
    m = torch.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * (width * size) ** 2))
    return m / m.max()


def make_photo_gallery(size: int = 224, per_split: int = 2, evaluation: bool = False) -> list[GalleryItem]:
    """Photo-like gallery items with blob heatmaps; the synthesized map of the second test sample is all
    zero (degenerate)."""
    items = []
    splits = {"all": SPLIT_IDS["test"]} if evaluation else SPLIT_IDS
    keys = (["mean(G)", "softmax(S)", "D", "mean(G) - softmax(D)"] if evaluation else [SYNTHESIZED, *BASELINES])
    for s, (split, ids) in enumerate(splits.items()):
        for i, sid in enumerate(ids[:per_split]):
            pixels, box = _photo(size, 10 * s + i)
            maps = {k: _blob(size, box, 0.06 * math.sin(j + i), 0.08 + 0.02 * j) for j, k in enumerate(keys)}
            if split in ("test", "all") and i == 1:
                maps[keys[-1] if evaluation else SYNTHESIZED] = torch.zeros(size, size)
            items.append(GalleryItem(id=sid, label="espresso" if s == 0 else "tabby cat", pixels=pixels, boxes=box,
                                     maps=maps, split=split))
    return items


def with_comparisons(results: dict[str, Any]) -> dict[str, Any]:
    """``results`` with the comparisons of this round's schema: every exact baseline on every split (clustered
    bootstrap of the per-image scores, each image its own group), the power control and the selection line."""
    from sycam.stats import difference

    out = dict(results)
    exact = [n for n, b in results["baselines"].items() if b.get("exact", True)]
    splits = {}
    for split, per in results["per_image"].items():
        splits[split] = {"grouping": f"image ({len(per['synthesized'])} groups)",
                         "methods": {n: difference(per["synthesized"], per[n], True,
                                                   list(range(len(per[n])))) for n in exact},
                         "controls": {}}
    methods = splits["test"]["methods"]
    toughest = min(methods, key=lambda n: methods[n]["diff"])
    out["comparison"] = {"baseline": toughest, **methods[toughest], "grouping": splits["test"]["grouping"],
                         "n_comparisons": len(methods), "methods": methods, "controls": {}, "splits": splits,
                         "power": 2.0, "beats_power_control": False}
    out["comparison"]["verdict"] = ("worse" if any(m["verdict"] == "worse" for m in methods.values()) else
                                    "better" if all(m["verdict"] == "better" for m in methods.values()) else
                                    "not distinguishable")
    out["power_control"] = {"name": "Grad-CAM sharpened to a fitted power", "power": 2.0, "powers": [1.0, 2.0],
                            "scores": {"synthesis": 0.80, "validation": 0.79, "test": 0.81}}
    out["selection"] = {"why": "The winner is the leaderboard's top row (x), the best on the synthesis split.",
                        "top_row": "x", "min_effect": 0.0, "merged": {}}
    out["guards"] = "default"
    return out


def with_intervals(evaluation: dict[str, Any], reference: str = "gradcam") -> dict[str, Any]:
    """``evaluation`` with ``reference``, ``grouping`` and ``intervals`` as ``sycam evaluate`` writes them."""
    from sycam.stats import difference

    out = dict(evaluation)
    per = evaluation["per_image"]["all"]
    hib = {m: bool(v.get("higher_is_better", True)) for m, v in evaluation["metrics"].items()}
    out["reference"], out["grouping"] = reference, f"image ({len(evaluation['ids']['all'])} groups)"
    out["intervals"] = {k: {m: difference(per[k][m], per[reference][m], hib[m]) for m in hib}
                        for k in per if k != reference}
    return out
