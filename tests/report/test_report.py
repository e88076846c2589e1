"""Tests for sycam.report.html: the synthesis and evaluation pages and the PNG figures."""

from __future__ import annotations

import base64
import copy
import io
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
import torch
from PIL import Image

from sycam.report import (
    SYNTHESIZED,
    GalleryItem,
    render_report,
    write_evaluation_report,
    write_figures,
    write_report,
)

BASELINES = {
    "Grad-CAM": ("mean(G)", 0.5810, 0.5704),
    "Grad-CAM++": ("sum(relu(G) * sq(G) / (2*sq(G) + sum(A)*cube(G)))", 0.5701, 0.5655),
    "XGrad-CAM": ("sum(G*A) / sum(A)", 0.5688, 0.5600),
    "Score-CAM": ("softmax(S)", 0.5500, 0.5790),
    "Ablation-CAM": ("D", 0.5300, 0.5200),
}
HISTORY = [[1, 0.40], [5, 0.45], [20, 0.52], [120, 0.58], [700, 0.60], [2600, 0.6123]]


def make_results(
    synthesis: float = 0.6123, test: float | None = 0.5512, higher_is_better: bool = True
) -> dict[str, Any]:
    """A results.json-like dict; by default the winner beats every baseline on synthesis but not on test."""
    return {
        "metric": {
            "name": "energy_pointing_game",
            "higher_is_better": higher_is_better,
            "params": {"gt": "box"},
            "requires": "box",
            "cost": "cached",
        },
        "model": {"name": "efficientnet_lite0", "layer": "conv_head", "weights": "bundled"},
        "data": {"source": "demo", "n_synthesis": 4, "n_test": 4},
        "lambda": 0.5810,
        "lambda_source": "best_baseline",
        "best": {
            "expression": "mean(G) * relu(S)",
            "latex": r"\operatorname{mean}_{ij} G \cdot \mathrm{relu}(S)",
            "size": 5,
            "synthesis_score": synthesis,
            "test_score": test,
        },
        "baselines": {
            n: {"expression": e, "synthesis_score": s, "test_score": t} for n, (e, s, t) in BASELINES.items()
        },
        "leaderboard": [
            {"rank": 1, "expression": "mean(G) * relu(S)", "size": 5, "synthesis_score": synthesis, "test_score": test},
            {"rank": 2, "expression": "mean(G) + S", "size": 4, "synthesis_score": 0.60, "test_score": None},
        ],
        "history": HISTORY,
        "candidates_enumerated": 4000,
        "candidates_scored": 2600,
        "equivalent_pruned": 1300,
        "rejected": {"constant": 90, "nan": 10},
        "seconds": 12.5,
        "timings": {"terminals": 2.0, "search": 10.5},
        "settings": {"max_size": 7, "seed": 0, "data_dir": "/tmp/<odd> & name"},
        "versions": {"sycam": "0.1.0"},
        "notes": ["Score-CAM terminal capped to the top-32 channels", "<script>alert(1)</script>"],
    }


def make_gallery(size: int = 24) -> list[GalleryItem]:
    torch.manual_seed(0)
    items = []
    for i, split in enumerate(["synthesis", "test", "test"]):
        maps = {name: torch.rand(size, size) for name in BASELINES}
        maps[SYNTHESIZED] = torch.rand(size // 4, size // 4)  # layer resolution: resized by the overlay
        mask = torch.zeros(size, size, dtype=torch.bool)
        mask[4:12, 4:12] = True
        items.append(
            GalleryItem(
                id=f"img{i}#<{i}>",
                label="Egyptian cat",
                pixels=torch.rand(3, size, size),
                boxes=torch.tensor([[2.0, 2.0, 20.0, 18.0]]) if i != 2 else None,
                mask=mask if i == 2 else None,
                maps=maps,
                split=split,
            )
        )
    return items


class Page(HTMLParser):
    """Collects what the tests look at: elements by id, table rows, images, links, svg shapes."""

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[tuple[str, dict[str, str]]] = []
        self.ids: dict[str, list[str]] = {}  # id → text inside
        self.id_classes: dict[str, str] = {}
        self.classes_text: dict[str, list[str]] = {}  # class → texts of elements with it
        self.tables: list[tuple[str | None, list[list[tuple[str, str]]]]] = []  # (section id, rows of (text, class))
        self.attrs: list[tuple[str, str, str]] = []  # (tag, attr, value)
        self.imgs: list[dict[str, str]] = []
        self.polylines: list[dict[str, str]] = []
        self.lines: list[dict[str, str]] = []
        self.tags: list[str] = []
        self.section: str | None = None
        self._cell: list[str] | None = None
        self._cell_class = ""
        self._row: list[tuple[str, str]] | None = None
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        self.tags.append(tag)
        for k, v in a.items():
            self.attrs.append((tag, k, v))
        if tag == "section":
            self.section = a.get("id")
        if "id" in a:
            self.ids[a["id"]] = []
            self.id_classes[a["id"]] = a.get("class", "")
        for c in a.get("class", "").split():
            self.classes_text.setdefault(c, [])
        if tag == "img":
            self.imgs.append(a)
            return
        if tag in ("polyline", "line", "circle", "rect", "br", "meta"):
            if tag == "polyline":
                self.polylines.append(a)
            if tag == "line":
                self.lines.append(a)
            return
        if tag == "table":
            self.tables.append((self.section, []))
        if tag == "tr":
            self._row = []
        if tag in ("td", "th"):
            self._cell, self._cell_class = [], a.get("class", "")
        self.stack.append((tag, a))

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)
        if self.stack and self.stack[-1][0] == tag:  # a self-closed element that was pushed
            self.handle_endtag(tag)

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._cell is not None and self._row is not None:
            self._row.append(("".join(self._cell).strip(), self._cell_class))
            self._cell = None
        if tag == "tr" and self._row is not None:
            self.tables[-1][1].append(self._row)
            self._row = None
        while self.stack:
            t, _ = self.stack.pop()
            if t == tag:
                break

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)
        for _, a in self.stack:
            if "id" in a:
                self.ids[a["id"]].append(data)
            for c in a.get("class", "").split():
                self.classes_text[c].append(data)

    def attrs_of(self, tag: str) -> list[dict[str, str]]:
        """Attributes of every ``tag`` element, in document order."""
        out: list[dict[str, str]] = []
        for t, k, v in self.attrs:
            if t == tag and k == "cx":
                out.append({})
            if t == tag and out:
                out[-1][k] = v
        return out

    def text(self, id_: str) -> str:
        return " ".join("".join(self.ids[id_]).split())

    def table(self, section: str) -> list[list[tuple[str, str]]]:
        return next(rows for sec, rows in self.tables if sec == section)


def headline(page: Page) -> str:
    return " ".join("".join(page.classes_text["headline"]).split())


# ------------------------------------------------------------------------------------------------ headline


def test_headline_winning_case() -> None:
    page = Page(render_report(make_results(synthesis=0.62, test=0.60)))
    text = headline(page)
    # Score-CAM (0.5790) is the best baseline on test, Grad-CAM on synthesis.
    assert text == (
        "The synthesized expression beats Grad-CAM on the synthesis split, and beats Score-CAM on held-out images."
    )
    assert "win" in page.id_classes["headline"].split()


def test_headline_losing_on_test_is_said_plainly() -> None:
    results = make_results(synthesis=0.62, test=0.5512)
    page = Page(render_report(results))
    text = headline(page)
    assert "beats Grad-CAM on the synthesis split" in text
    assert "but does not beat Score-CAM on held-out images" in text
    assert "lose" in page.id_classes["headline"].split()
    details = page.text("headline")
    assert "0.5512 for the synthesized expression, worse than Score-CAM (0.5790)" in details


def test_headline_same_best_baseline_on_both_splits() -> None:
    results = make_results(synthesis=0.62, test=0.5)
    results["baselines"]["Score-CAM"]["test_score"] = 0.55  # Grad-CAM is now best on both splits
    page = Page(render_report(results))
    assert headline(page) == (
        "The synthesized expression beats Grad-CAM on the synthesis split, but does not beat Grad-CAM on "
        "held-out images."
    )
    results["best"]["test_score"] = 0.59
    assert headline(Page(render_report(results))) == (
        "The synthesized expression beats the best baseline, Grad-CAM, on both the synthesis split and held-out images."
    )
    results["best"]["synthesis_score"] = 0.5
    results["best"]["test_score"] = 0.5
    page = Page(render_report(results))
    assert headline(page) == (
        "The synthesized expression does not beat the best baseline, Grad-CAM, on the synthesis split or on "
        "held-out images."
    )
    assert "lose" in page.id_classes["headline"].split()


def test_headline_lower_is_better() -> None:
    # Lower is better: the synthesized 0.50 / 0.51 beat every baseline (best: Ablation-CAM 0.53 / 0.52).
    results = make_results(synthesis=0.50, test=0.51, higher_is_better=False)
    page = Page(render_report(results))
    assert headline(page) == (
        "The synthesized expression beats the best baseline, Ablation-CAM, on both the synthesis split and "
        "held-out images."
    )
    assert "win" in page.id_classes["headline"].split()
    # The same numbers with higher-is-better lose on both splits.
    flipped = make_results(synthesis=0.50, test=0.51, higher_is_better=True)
    text = headline(Page(render_report(flipped)))
    assert text.startswith("The synthesized expression does not beat Grad-CAM on the synthesis split")
    assert "does not beat Score-CAM on held-out images" in text
    # Lower is better and worse on test only.
    mixed = make_results(synthesis=0.50, test=0.53, higher_is_better=False)
    text = headline(Page(render_report(mixed)))
    assert text == (
        "The synthesized expression beats Ablation-CAM on the synthesis split, but does not beat Ablation-CAM on "
        "held-out images."
    )


def test_tie_does_not_count_as_beating() -> None:
    results = make_results(synthesis=0.62, test=0.5790)
    page = Page(render_report(results))
    assert "does not beat Score-CAM on held-out images" in headline(page)
    assert "tied with Score-CAM (0.5790)" in page.text("headline")


def test_headline_without_test_scores() -> None:
    results = make_results(synthesis=0.62, test=None)
    for b in results["baselines"].values():
        b["test_score"] = None
    text = headline(Page(render_report(results)))
    assert text.startswith("The synthesized expression beats Grad-CAM on the synthesis split")
    assert "generalization is not measured" in text


def test_nan_score_does_not_beat() -> None:
    text = headline(Page(render_report(make_results(synthesis=0.62, test=float("nan")))))
    assert text.endswith("but does not beat Score-CAM on held-out images.")


def test_headline_without_baselines() -> None:
    results = make_results()
    results["baselines"] = {}
    assert "No baselines" in headline(Page(render_report(results)))


def test_winner_and_latex_shown() -> None:
    page = Page(render_report(make_results()))
    text = page.text("winner")
    assert "mean(G) * relu(S)" in text
    # the LaTeX source comes from the printer (correct by construction), not from the results file
    assert r"\left(\operatorname{mean}_{ij} G\right) \cdot \mathrm{relu}\left(S\right)" in text
    assert "pre" in page.tags and "script" not in page.tags
    assert "math" in page.tags and "mfrac" not in page.tags and "munder" in page.tags  # typeset as MathML


# ------------------------------------------------------------------------------------------------ tables


@pytest.mark.parametrize("higher_is_better", [True, False])
def test_score_table_holds_every_baseline_sorted_with_best_marked(higher_is_better: bool) -> None:
    results = make_results(synthesis=0.6123, test=0.5512, higher_is_better=higher_is_better)
    page = Page(render_report(results))
    header, *rows = page.table("scores")
    # numbers next to the (sticky) method column, the expression last: a phone shows the scores first
    assert header[0][0] == "Method" and header[-1][0] == "Expression"
    by_name = {r[0][0]: r for r in rows}
    assert set(by_name) == {*BASELINES, "Synthesized"}
    for name, (expr, syn, test) in BASELINES.items():
        row = by_name[name]
        assert row[-1][0] == expr
        assert row[1][0] == f"{syn:.4f}" and row[2][0] == f"{test:.4f}"
    assert by_name["Synthesized"][1][0] == "0.6123" and by_name["Synthesized"][2][0] == "0.5512"
    tests = [float(r[2][0]) for r in rows]
    assert tests == sorted(tests, reverse=higher_is_better)
    best_syn = [r[0][0] for r in rows if "best" in r[1][1].split()]
    best_test = [r[0][0] for r in rows if "best" in r[2][1].split()]
    if higher_is_better:
        assert best_syn == ["Synthesized"] and best_test == ["Score-CAM"]
    else:
        assert best_syn == ["Ablation-CAM"] and best_test == ["Ablation-CAM"]


def test_leaderboard_rows() -> None:
    page = Page(render_report(make_results()))
    _, *rows = page.table("leaderboard")
    assert [[c for c, _ in r] for r in rows] == [
        ["1", "0.6123", "0.5512", "5", "mean(G) * relu(S)"],
        ["2", "0.6000", "—", "4", "mean(G) + S"],
    ]


# ------------------------------------------------------------------------------------------------ curve


def test_curve_has_one_point_per_history_entry_and_lambda_line() -> None:
    page = Page(render_report(make_results()))
    assert len(page.polylines) == 2  # the wide chart and the phone chart
    curve = page.polylines[0]
    dots = [(float(c["cx"]), float(c["cy"])) for c in page.attrs_of("circle")][: len(HISTORY)]
    assert len(dots) == len(HISTORY)  # one dot per history entry (wide chart first)
    points = [tuple(map(float, p.split(","))) for p in curve["points"].split()]
    assert len(points) == 2 * len(HISTORY) - 1  # a step line: along, then up
    assert set(dots) <= set(points)
    points = dots
    xs = [p[0] for p in points]
    ys = [p[1] for p in points]
    assert xs == sorted(xs) and ys == sorted(ys, reverse=True)  # scores rise → SVG y falls
    lam = next(ln for ln in page.lines if ln.get("class") == "lambda")
    assert lam.get("stroke-dasharray")
    # λ = 0.581 lies between the points with scores 0.58 and 0.60.
    assert points[4][1] < float(lam["y1"]) < points[3][1]
    text = page.text("curve")
    assert "candidates scored" in text and "best synthesis score" in text and "λ (best baseline) = 0.5810" in text


def test_curve_without_lambda_or_history() -> None:
    results = make_results()
    results["lambda"] = None
    page = Page(render_report(results))
    assert len(page.polylines) == 2 and not [ln for ln in page.lines if ln.get("class") == "lambda"]
    results["history"] = []
    page = Page(render_report(results))
    assert not page.polylines and "No search history" in page.text("curve")


# ------------------------------------------------------------------------------------------------ self-contained


def test_images_embedded_and_nothing_external(tmp_path: Path) -> None:
    gallery = make_gallery()
    path = write_report(tmp_path / "report.html", make_results(), gallery, thumb=16)
    assert path == tmp_path / "report.html"
    text = path.read_text(encoding="utf-8")
    page = Page(text)
    n_methods = len(BASELINES) + 1
    assert len(page.imgs) == len(gallery) * (1 + n_methods)
    for img in page.imgs:
        assert img["src"].startswith("data:image/jpeg;base64,")
        pic = Image.open(io.BytesIO(base64.b64decode(img["src"].split(",", 1)[1])))
        pic.load()  # decodes
        # embedded at 2× the displayed size (at most the image's own 24 px), shown 16 CSS pixels wide
        assert pic.format == "JPEG" and pic.size == (24, 24)
        assert img["width"] == img["height"] == "16"
    for tag, attr, value in page.attrs:
        if attr in ("src", "href", "action", "poster", "srcset"):
            assert value.startswith(("data:", "#")), (tag, attr, value)
    assert "http://" not in text and "https://" not in text
    assert not {"script", "link", "iframe", "object"} & set(page.tags)
    assert "url(" not in text and "@import" not in text


def test_text_is_escaped() -> None:
    page = Page(render_report(make_results(), make_gallery()))
    assert "script" not in page.tags
    details = page.text("details")
    assert "<script>alert(1)</script>" in details  # shown as text
    assert "/tmp/<odd> & name" in details
    assert "img0#<0>" in page.text("gallery")


def test_gallery_columns_and_splits() -> None:
    page = Page(render_report(make_results(), make_gallery(), thumb=16))
    header, *rows = page.table("gallery")
    assert [c for c, _ in header] == ["Sample", "Image + ground truth", "Synthesized", *BASELINES]
    assert len(rows) == 1  # first table: the synthesis split
    assert len([t for sec, t in page.tables if sec == "gallery"]) == 2
    text = page.text("gallery")
    assert "Synthesis split" in text and "Held-out test split" in text


def test_write_report_is_atomic(tmp_path: Path) -> None:
    path = tmp_path / "report.html"
    path.write_text("old")
    bad = make_gallery()
    bad[1] = GalleryItem(id="bad", label="x", pixels=torch.rand(4, 8), maps={"Grad-CAM": torch.rand(8, 8)})
    with pytest.raises(ValueError, match="pixels must be"):
        write_report(path, make_results(), bad)
    assert path.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["report.html"]


def test_missing_optional_sections() -> None:
    results = make_results()
    for key in ("leaderboard", "timings", "settings", "versions", "notes", "model", "data"):
        results.pop(key)
    page = Page(render_report(copy.deepcopy(results)))
    assert "leaderboard" not in page.ids and "scores" in page.ids
    assert "No gallery samples" in page.text("gallery")


# ------------------------------------------------------------------------------------------------ evaluation


def test_evaluation_report_marks_best_per_metric(tmp_path: Path) -> None:
    evaluation = {
        "metrics": {"energy": {"higher_is_better": True}, "deletion_auc": {"higher_is_better": False}},
        "results": {
            "Grad-CAM": {"energy": 0.50, "deletion_auc": 0.20},
            "Score-CAM": {"energy": 0.55, "deletion_auc": 0.25},
            "mean(G) * relu(S)": {"energy": 0.52, "deletion_auc": 0.15},
        },
        "notes": ["evaluated on 3 images"],
    }
    path = write_evaluation_report(tmp_path / "eval.html", evaluation, make_gallery(), thumb=16)
    text = path.read_text(encoding="utf-8")
    page = Page(text)
    header, *rows = page.table("scores")
    assert [h for h, _ in header] == ["Method", "energy ↑", "deletion_auc ↓"]
    cells = {r[0][0]: r for r in rows}
    assert cells["Grad-CAM"][1][0] == "0.5000" and cells["Grad-CAM"][2][0] == "0.2000"
    assert [n for n, r in cells.items() if "best" in r[1][1].split()] == ["Score-CAM"]
    assert [n for n, r in cells.items() if "best" in r[2][1].split()] == ["mean(G) * relu(S)"]
    assert all(img["src"].startswith("data:image/jpeg;base64,") for img in page.imgs) and page.imgs
    assert "http://" not in text and "https://" not in text
    assert "evaluated on 3 images" in page.text("details")


# ------------------------------------------------------------------------------------------------ figures


def test_write_figures(tmp_path: Path) -> None:
    gallery = make_gallery(size=20)
    paths = write_figures(tmp_path / "figs", gallery)
    assert [p.name for p in paths] == ["000_img0_0.png", "001_img1_1.png", "002_img2_2.png"]
    for p in paths:
        im = Image.open(p)
        assert im.format == "PNG"
        # 1 image + 6 overlays in 20-pixel cells, 4-pixel gaps, plus a row-label band.
        assert im.width > 7 * 20 + 8 * 4 and im.height > 20 + 2 * 4
    assert sorted(x.name for x in (tmp_path / "figs").iterdir()) == [p.name for p in paths]
