"""The report's evidence: CI verdict, counters that add up, ticks equal to their gridlines, gallery
per-image scores and degenerate flags, ground truth on every heatmap, Pareto, constraints, control,
validation and optimism, splits, and the evaluation page's names, wording and settings."""

from __future__ import annotations

import base64
import io
import math
import re

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image
from report_helpers import BASELINES, SPLIT_IDS, make_evaluation, make_full_results, make_photo_gallery
from test_report import Page, headline

from sycam import viz
from sycam.report import SYNTHESIZED, GalleryItem, render_evaluation_report, render_report
from sycam.report.charts import curve_svg, nice_ticks
from sycam.report.format import id_html
from sycam.report.synthesis import counter_sum

# ------------------------------------------------------------------------------------------------ ticks


def test_ticks_of_the_issue_are_labelled_by_their_values() -> None:
    axis = nice_ticks(0.725, 0.825)
    assert axis.labels == ("0.72", "0.74", "0.76", "0.78", "0.80", "0.82", "0.84")
    assert axis.lo <= 0.725 and axis.hi >= 0.825


@settings(max_examples=300, deadline=None)
@given(
    st.floats(-1e6, 1e6, allow_nan=False),
    st.floats(1e-6, 1e6, allow_nan=False),
    st.integers(2, 8),
)
def test_nice_ticks_labels_equal_gridlines(lo: float, span: float, count: int) -> None:
    hi = lo + span
    axis = nice_ticks(lo, hi, count)
    assert axis.lo <= lo + axis.step * 1e-9 and axis.hi >= hi - axis.step * 1e-9  # covers, up to rounding
    mantissa = axis.step / 10 ** math.floor(math.log10(axis.step) + 1e-12)
    assert any(math.isclose(mantissa, m, rel_tol=1e-9) for m in (1, 2, 5))
    for t, label in zip(axis.ticks, axis.labels, strict=True):
        assert math.isclose(float(label.replace(",", "")), t, rel_tol=0, abs_tol=axis.step * 1e-9), (label, t)
    gaps = np.diff(axis.ticks)
    assert np.allclose(gaps, axis.step, rtol=1e-9, atol=4 * math.ulp(max(abs(axis.lo), abs(axis.hi))))
    assert len(axis.ticks) <= 2 * count + 3


def test_chart_labels_sit_on_their_gridlines() -> None:
    svg = curve_svg([[0, 0.725], [50, 0.8], [120, 0.825]], 0.78, True)
    wide = svg.split('<svg class="chart narrow"')[0]
    ys = re.findall(r'<text x="[\d.]+" y="([\d.]+)" class="tick" text-anchor="end">([^<]+)</text>', wide)
    grid = sorted(
        {float(y) for y in re.findall(r'<line x1="\d+" x2="\d+" y1="([\d.]+)" y2="[\d.]+" class="gridline"', wide)}
    )
    assert len(ys) >= 4
    values = [(float(label), float(y) - 4) for y, label in ys]
    (v0, y0), (v1, y1) = values[0], values[-1]
    for v, y in values:  # each label is drawn at its own value's position on a linear axis, on a gridline
        assert y == pytest.approx(y0 + (v - v0) / (v1 - v0) * (y1 - y0), abs=0.11)
        assert min(abs(y - g) for g in grid) < 0.11


# ------------------------------------------------------------------------------------------------ verdict


@pytest.mark.parametrize(
    ("verdict", "css", "phrase"),
    [
        ("better", "win", "is better than"),
        ("not distinguishable", "mixed", "is not distinguishable from"),
        ("worse", "lose", "is worse than"),
    ],
)
def test_headline_from_the_confidence_interval(verdict: str, css: str, phrase: str) -> None:
    page = Page(render_report(make_full_results(verdict)))
    text = headline(page)
    assert text.startswith(f"On held-out test images the synthesized expression {phrase} Grad-CAM, the best baseline")
    assert "95% CI" in text
    assert css in page.id_classes["headline"].split()


def test_incomplete_search_is_said_with_its_reason() -> None:
    results = make_full_results()
    results["incomplete"] = True
    results["stopped_because"] = "the bank reached its memory cap"
    page = Page(render_report(results))
    assert "The search is incomplete: it stopped because the bank reached its memory cap" in page.text("incomplete")
    assert "Incomplete: the search was cut short" in page.text("curve")
    assert "The whole search space was scored." in Page(render_report(make_full_results())).text("curve")
    results["incomplete"] = False
    results["stopped_because"] = "max candidates"
    assert "ran to its budget" in Page(render_report(results)).text("curve")


# ------------------------------------------------------------------------------------------------ counters


def test_counters_add_up_and_a_gap_is_flagged() -> None:
    results = make_full_results()
    total, parts = counter_sum(results)
    assert total == sum(v for _, v in parts) == 12033
    assert "adds up" in Page(render_report(results)).text("curve") or "add up" in Page(render_report(results)).text(
        "curve"
    )
    results["candidates_enumerated"] += 7
    text = Page(render_report(results)).text("curve")
    assert "7 enumerated candidates are not accounted for" in text


def test_timings_split_with_total() -> None:
    page = Page(render_report(make_full_results()))
    rows = {r[0][0]: r[1][0] for r in page.table("timings")[1:]}
    assert rows["search"] == "16.02 s" and rows["terminals"] == "20.10 s" and rows["total"] == "45.40 s"
    assert "The search loop took 16.02 s of 45.40 s" in page.text("curve")


# ------------------------------------------------------------------------------------------------ tables


def test_scores_table_has_validation_control_display_names_and_degenerate_counts() -> None:
    page = Page(render_report(make_full_results()))
    header, *rows = page.table("scores")
    heads = [h for h, _ in header]
    assert heads[:4] == ["Method", "Synthesis split ↑", "Validation split ↑", "Held-out test ↑"]
    by = {r[0][0]: [c for c, _ in r] for r in rows}
    assert "Score-CAM (top-16 channels)" in by and "Score-CAM" not in by
    assert by["Grad-CAM thresholded to the winner's sparsity"][1:4] == ["0.7931", "0.7710", "0.7800"]
    assert by["Synthesized"][4] == "0 / 0 / 1"
    assert "never set λ" in page.text("scores")
    winner = page.text("winner")
    assert "validation score 0.7902" in winner and "optimism +0.0221" in winner


def test_constraints_pareto_and_splits() -> None:
    results = make_full_results()
    results["constraints"][1]["holds"] = False
    page = Page(render_report(results))
    _, *rows = page.table("constraints")
    assert [r[-1][0] for r in rows] == ["✓ holds", "✗ violated"]
    _, *front = page.table("pareto")
    assert [r[1][0] for r in front] == [e["expression"] for e in results["pareto"]]
    assert "synth" not in front[0][0][1]  # row classes live on <tr>; the winner's row is marked there
    svg = render_report(results).split('id="pareto"')[1].split("</section>")[0]
    assert svg.count('class="pareto-best"') == 2 and svg.count('class="pareto-point"') == 2 * 3
    assert "texture:grass" in page.text("splits")
    results["data"]["shared_sources"] = []
    assert "No source photo" in Page(render_report(results)).text("splits")


def test_winner_is_typeset_with_its_latex_source() -> None:
    html = render_report(make_full_results())
    winner = html.split('id="winner"')[1].split("</section>")[0]
    assert "<math" in winner and "<munder>" in winner  # mean over ij, typeset
    assert r"\operatorname{mean}_{ij} G - \operatorname{softmax}_k\left(D\right)" in winner
    assert "ignored" not in winner  # the stored LaTeX is not trusted: the printer writes it


# ------------------------------------------------------------------------------------------------ gallery


def _decode(src: str) -> Image.Image:
    return Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1]))).convert("RGB")


def test_gallery_scores_flags_names_zoom_and_colour_bar() -> None:
    results = make_full_results()
    gallery = make_photo_gallery(size=48)
    html = render_report(results, gallery, thumb=32)
    page = Page(html)
    text = page.text("gallery")
    # per-image scores from results["per_image"], in ids order
    k = SPLIT_IDS["test"].index(gallery[-1].id)
    assert f"{results['per_image']['test']['synthesized'][k]:.4f}" in text
    assert f"{results['per_image']['test']['Grad-CAM'][k]:.4f}" in text
    # the all-zero synthesized map of the second test sample is flagged, and only it
    assert html.count('<div class="flag"') == 1 and "blank: all zero" in text
    # display names in the headers, as in the tables
    header = next(rows for sec, rows in page.tables if sec == "gallery")[0]
    assert [c for c, _ in header] == [
        "Sample",
        "Image + ground truth",
        "Synthesized",
        *["Score-CAM (top-16 channels)" if n == "Score-CAM" else n for n in BASELINES],
    ]
    # 2x pictures, click to enlarge: each image sits in a link to its own zoom box
    for m in re.finditer(r'<div class="zoom" id="([^"]+)"><a class="open" href="#([^"]+)"', html):
        assert m.group(1) == m.group(2)
    assert html.count('class="zoom"') == len(page.imgs) == len(gallery) * (2 + len(BASELINES))
    assert all(img["width"] == "32" for img in page.imgs)
    assert {_decode(img["src"]).size for img in page.imgs} == {(48, 48)}
    assert "colorbar-ramp" in html and "linear-gradient" in html


def test_ground_truth_outlined_on_every_heatmap() -> None:
    gallery = make_photo_gallery(size=64)[:1]
    page = Page(render_report(make_full_results(), gallery, thumb=32))
    x1, y1, x2, _ = (int(v) for v in gallery[0].boxes[0].tolist())
    for img in page.imgs:
        pic = np.asarray(_decode(img["src"]), dtype=float)
        edge = pic[y1, x1 + 2 : x2 - 2]  # the box's top edge
        assert np.abs(edge - np.array(viz.GT_COLOR)).max(axis=1).mean() < 40, img["alt"]


def test_ids_break_only_between_tokens() -> None:
    assert id_html("espresso_on_grass_16#967") == "espresso_<wbr>on_<wbr>grass_<wbr>16#<wbr>967"
    assert id_html("a<b>_c") == "a&lt;b&gt;_<wbr>c"


def test_degenerate_reason() -> None:
    assert viz.degenerate_reason(torch.zeros(4, 4)) == "all zero"
    assert viz.degenerate_reason(torch.full((4, 4), 0.3)) == "constant"
    assert viz.degenerate_reason(torch.tensor([[0.0, float("nan")]])) == "non-finite"
    assert viz.degenerate_reason(torch.rand(4, 4) + torch.eye(4)) is None


def test_item_scores_given_by_the_caller_win() -> None:
    item = GalleryItem(
        id=SPLIT_IDS["test"][0],
        label="x",
        pixels=torch.rand(3, 8, 8),
        maps={SYNTHESIZED: torch.rand(8, 8)},
        split="test",
        scores={SYNTHESIZED: 0.123456},
    )
    assert "0.1235" in Page(render_report(make_full_results(), [item], thumb=8)).text("gallery")


# ------------------------------------------------------------------------------------------------ evaluate


def test_evaluation_page_names_wording_settings_and_cap() -> None:
    evaluation = make_evaluation()
    gallery = make_photo_gallery(size=48, per_split=2, evaluation=True)
    html = render_evaluation_report(evaluation, gallery, thumb=24)
    page = Page(html)
    subtitle = " ".join("".join(page.classes_text["subtitle"]).split())
    assert "{" not in subtitle and "'" not in subtitle
    assert "data demo: 5 images" in subtitle and "efficientnet_lite0" in subtitle
    _, *rows = page.table("scores")
    names = [r[0][0] for r in rows]
    assert names == ["Grad-CAM", "Score-CAM (top-16 channels)", "Ablation-CAM", "mean(G) - softmax(D)"]
    assert [r[-1][0] for r in rows] == ["0", "0", "0", "1"]
    assert "top-16 channels only" in page.text("scores")
    gallery_header = next(rows for sec, rows in page.tables if sec == "gallery")[0]
    assert [c for c, _ in gallery_header][2:] == names  # gallery keys are expressions; headers are names
    text = page.text("gallery")
    assert "All images" in text and "all split" not in text
    assert "EPG = energy_pointing_game" in text
    k = 1
    assert f"{evaluation['per_image']['all']['gradcam']['deletion_auc'][k]:.4f}" in text
    details = page.text("details")
    assert "score_top_k" in details and "none recorded" not in details


def test_fixtures_follow_the_typed_schema() -> None:
    from sycam.report import EvaluationResults
    from sycam.results import SynthesisResults

    assert set(make_full_results()) <= set(SynthesisResults.__annotations__)
    assert set(make_evaluation()) <= set(EvaluationResults.__annotations__)


def test_forest_plot_scatter_and_every_comparison_in_the_synthesis_report() -> None:
    from report_helpers import make_full_results, with_comparisons

    r = with_comparisons(make_full_results())
    html = render_report(r)
    section = html[html.index('id="evidence"'):]
    section = section[:section.index("</section>")]
    n_rows = sum(len(s["methods"]) for s in r["comparison"]["splits"].values())
    assert section.count('class="ci-dot"') == 2 * n_rows  # one dot per interval, in the wide and narrow charts
    assert section.count('class="pair-point"') == 2 * len(r["per_image"]["test"]["synthesized"])
    assert 'class="diagonal"' in section and 'class="zero"' in section
    assert f"{r['comparison']['n_comparisons']} comparisons with the exact classic methods" in section
    assert f"of {r['comparison']['n_comparisons']} comparisons" in html or "better than all" in html
    assert "power control" in html and "Why this winner:" in html
    assert "<script" not in html


def test_evaluate_report_shows_intervals_and_bolds_only_distinguishable_bests() -> None:
    from report_helpers import make_evaluation, with_intervals

    from sycam.report import render_evaluation_report

    ev = with_intervals(make_evaluation())
    html = render_evaluation_report(ev)
    assert html.count("Δ ") >= len(ev["intervals"]) * len(ev["metrics"]) and "(reference)" not in html
    assert 'id="evidence"' in html and 'class="ci-dot"' in html and 'class="pair-point"' in html
    # made distinguishable-free: no interval excludes 0, so nothing is bold in the scores table
    for per in ev["intervals"].values():
        for e in per.values():
            e["verdict"] = "not distinguishable"
    table = render_evaluation_report(ev).split('id="scores"')[1].split("</section>")[0]
    assert "<strong>" not in table.split('<p class="legend">')[0]
