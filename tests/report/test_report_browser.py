"""Both reports in a real browser (headless Chromium): screenshots at 1400 and 390 px, no console errors,
every image decodes, formulas render, charts stay readable, nothing scrolls the page sideways, nothing
external is referenced.

Skipped, with the reason, where no Chromium is installed (Debian: ``apt-get install chromium``; CI installs
it in ``.ci/run``). Set ``SYCAM_SCREENSHOT_DIR`` to keep the screenshots.
"""

from __future__ import annotations

import base64
import io
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from PIL import Image
from report_helpers import make_evaluation, make_full_results, make_photo_gallery, with_comparisons, with_intervals

from sycam.report import render_evaluation_report, render_report

BROWSER = next((p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None)
pytestmark = pytest.mark.skipif(
    BROWSER is None,
    reason="no headless browser installed (apt-get install chromium); the report's browser checks need one",
)

WIDTHS = (1400, 390)

# Measures the laid-out page and logs one line; only ever added to a test copy of the page.
PROBE = """<script>
window.addEventListener("load", () => {
  const imgs = [...document.images];
  const charts = [...document.querySelectorAll("svg.chart")].filter(s => s.getBoundingClientRect().width > 0);
  const fonts = charts.map(s => 12 * s.getBoundingClientRect().width / s.viewBox.baseVal.width);
  const maths = [...document.querySelectorAll("math")];
  const sticky = [...document.querySelectorAll("table.scores tbody tr > :first-child")]
    .map(c => getComputedStyle(c).position);
  console.log("SYCAM_PROBE " + JSON.stringify({
    scrollWidth: document.documentElement.scrollWidth, innerWidth: window.innerWidth,
    images: imgs.length, broken: imgs.filter(i => !i.complete || i.naturalWidth === 0).length,
    charts: charts.length, minChartFont: fonts.length ? Math.min(...fonts) : null,
    maths: maths.length, mathsRendered: maths.filter(m => m.getBoundingClientRect().width > 20).length,
    sticky: [...new Set(sticky)],
    intervals: [...document.querySelectorAll("svg.chart line.ci")].filter(l => l.getBoundingClientRect().width > 0)
      .length,
    pairs: [...document.querySelectorAll("svg.chart circle.pair-point")]
      .filter(c => c.getBoundingClientRect().width > 0).length,
  }));
});
</script>"""


def _run(args: list[str]) -> subprocess.CompletedProcess[str]:
    assert BROWSER is not None
    cmd = [BROWSER, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--enable-logging=stderr",
           "--v=0", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=90, check=False)


def _harness(page: Path, width: int, height: int) -> tuple[Path, int]:
    """The page to load and the window width: headless Chromium lays a window out at least 500 px wide
    (narrower windows are cropped, not laid out), so a phone width is shown in an iframe of that width,
    where the page's media queries and ``innerWidth`` see the phone's width."""
    if width >= 500:
        return page, width
    harness = page.with_name(page.stem + "_harness.html")
    harness.write_text(
        '<!DOCTYPE html><html><body style="margin:0">'
        f'<iframe src="{page.name}" style="border:0;display:block;width:{width}px;height:{height}px"></iframe>'
        "</body></html>",
        encoding="utf-8",
    )
    return harness, 500


def _console(stderr: str) -> list[str]:
    return re.findall(r":CONSOLE[^\]]*\] (.*)", stderr)


@pytest.fixture(scope="module")
def pages(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("pages")
    synthesis = out / "synthesis.html"
    synthesis.write_text(render_report(with_comparisons(make_full_results()), make_photo_gallery(size=112)),
                         encoding="utf-8")
    evaluation = out / "evaluation.html"
    evaluation.write_text(
        render_evaluation_report(with_intervals(make_evaluation()),
                                 make_photo_gallery(size=112, per_split=3, evaluation=True)),
        encoding="utf-8",
    )
    return {"synthesis": synthesis, "evaluation": evaluation}


@pytest.mark.parametrize("name", ["synthesis", "evaluation"])
def test_page_is_self_contained_and_every_image_decodes(pages: dict[str, Path], name: str) -> None:
    text = pages[name].read_text(encoding="utf-8")
    sources = re.findall(r'<img[^>]* src="([^"]*)"', text)
    assert sources
    for src in sources:
        head, data = src.split(",", 1)
        assert head in ("data:image/jpeg;base64", "data:image/png;base64"), head
        Image.open(io.BytesIO(base64.b64decode(data))).load()
    assert not re.search(r"(?:https?:)?//[a-z0-9]", re.sub(r"data:[^\"]*", "", text), re.I), "external URL"
    assert not re.search(r"<(script|link|iframe|object|embed)\b", text, re.I)
    assert "url(" not in text and "@import" not in text


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("name", ["synthesis", "evaluation"])
def test_page_in_chromium(pages: dict[str, Path], tmp_path: Path, name: str, width: int) -> None:
    page = pages[name]
    shot = tmp_path / f"{name}_{width}.png"
    # one run: a copy of the page with the probe script, screenshotted; its console must hold the probe's line only
    probe_page = tmp_path / f"{name}_{width}_probe.html"
    probe_page.write_text(page.read_text(encoding="utf-8").replace("</body>", PROBE + "</body>"), encoding="utf-8")
    target, window = _harness(probe_page, width, 1000)
    run = _run([f"--screenshot={shot}", f"--window-size={window},1000", target.as_uri()])
    assert run.returncode == 0, run.stderr[-2000:]
    image = Image.open(shot)
    image.load()
    if image.width != width:
        image = image.crop((0, 0, width, image.height))
        image.save(shot)
    assert image.size == (width, 1000)
    assert len(image.convert("L").getcolors(1 << 16) or []) > 20  # not a blank page
    keep = os.environ.get("SYCAM_SCREENSHOT_DIR")
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, Path(keep) / shot.name)

    lines = _console(run.stderr)
    probes = [ln for ln in lines if ln.startswith('"SYCAM_PROBE ')]
    assert len(probes) == 1 and len(lines) == 1, lines  # the probe's line and no message from the page
    m = re.match(r'"SYCAM_PROBE (.*)", source:', probes[0])
    assert m is not None
    result = json.loads(m.group(1))
    assert result["images"] > 0 and result["broken"] == 0, result
    assert result["scrollWidth"] <= result["innerWidth"], f"the page scrolls sideways at {width} px: {result}"
    if name == "synthesis":
        assert result["maths"] >= 1 and result["mathsRendered"] == result["maths"], result
        # the curve, the Pareto plot, the forest plot and the per-image scatter, one variant each for this width
        assert result["charts"] == 4
        assert result["minChartFont"] >= 10, f"chart text {result['minChartFont']:.1f} px at {width} px"
    else:  # a forest plot per metric (two) and the per-image scatter of the evaluation
        assert result["charts"] == 3
    # every interval of the forest plot and every image of the scatter is drawn (a zero-width interval aside)
    assert result["intervals"] >= 1 and result["pairs"] == 5, result
    assert result["sticky"] == ["sticky"], result
