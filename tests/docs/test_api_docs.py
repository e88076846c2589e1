"""The API reference builds from the docstrings (pdoc, ``docs/build_api.py``) and shows the main public names.

One build (search index and sources off, a few seconds) shared by the tests of this module.
"""

from __future__ import annotations

import html
import importlib.util
import inspect
import re
import warnings
from pathlib import Path

import pytest

pytest.importorskip("pdoc", minversion="14")

import sycam
import sycam.stats

ROOT = Path(__file__).resolve().parents[2]

#: (page, anchor, object): the names a reader looks for first
MAIN_NAMES = [
    ("sycam.html", "CAM", lambda: sycam.CAM),
    ("sycam.html", "synthesize", lambda: sycam.synthesize),
    ("sycam.html", "SynthesisConfig", lambda: sycam.SynthesisConfig),
    ("sycam.html", "load_data", lambda: sycam.load_data),
    ("sycam.html", "split", lambda: sycam.split),
    ("sycam.html", "get_metric", lambda: sycam.get_metric),
    ("sycam/stats.html", "paired_bootstrap_ci", lambda: sycam.stats.paired_bootstrap_ci),
]

#: warnings that mean a module or an exported name could not be imported or resolved
MISSING = re.compile(r"does not resolve|error importing|cannot import|couldn't import|no module named|"
                     r"not found|failed to import", re.IGNORECASE)


def _load_builder():
    spec = importlib.util.spec_from_file_location("sycam_build_api", ROOT / "docs" / "build_api.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    out = tmp_path_factory.mktemp("api")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        index = _load_builder().build(out, search=False, show_source=False)
    assert index == out / "index.html" and index.is_file()
    return out, [str(w.message) for w in caught]


def _text(fragment: str) -> str:
    """Visible text of an HTML fragment without any whitespace (markup may add or drop spaces)."""
    return "".join(html.unescape(re.sub(r"<[^>]+>", " ", fragment)).split())


def _plain(docstring_line: str) -> str:
    """A docstring line without reST markup (roles, backticks, emphasis) and whitespace, as :func:`_text`."""
    line = re.sub(r"(:py)?:(func|meth):`~?([^`]+)`", r"\3()", docstring_line)  # pdoc shows calls as name()
    line = re.sub(r"(:py)?:\w+:`~?([^`]+)`", r"\2", line)
    line = line.replace("``", "").replace("`", "").replace("*", "")
    return "".join(line.split())


def _docstring_html(page: str, anchor: str) -> str:
    start = page.find(f'<section id="{anchor}">')
    assert start >= 0, f"no section for {anchor}"
    end = page.find("</section>", start)
    doc = page.find('class="docstring"', start, end)
    assert doc >= 0, f"{anchor} is documented without a docstring"
    return page[doc:end]


def test_every_public_module_has_a_page(built: tuple[Path, list[str]]) -> None:
    out, _ = built
    builder = _load_builder()
    missing = [m for m in builder.public_modules() if not (out / f"{m.replace('.', '/')}.html").is_file()]
    assert not missing
    assert {"sycam.data", "sycam.expr", "sycam.metrics", "sycam.synth", "sycam.report"} <= set(builder.public_modules())


def test_build_warns_of_no_missing_module(built: tuple[Path, list[str]]) -> None:
    _, messages = built
    assert [m for m in messages if MISSING.search(m)] == []


@pytest.mark.parametrize(("page", "anchor", "get"), MAIN_NAMES, ids=[a for _, a, _ in MAIN_NAMES])
def test_main_names_shown_with_their_docstrings(built: tuple[Path, list[str]], page: str, anchor: str, get) -> None:
    out, _ = built
    obj = get()
    doc = inspect.getdoc(obj)
    assert doc, f"{anchor} has no docstring"
    shown = _text(_docstring_html((out / page).read_text(encoding="utf-8"), anchor))
    assert _plain(doc.splitlines()[0]) in shown
