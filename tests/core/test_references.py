"""Every classic method and every built-in metric cites the paper that defines it, with an arXiv or DOI link, in
its docstring (metrics) or its record (methods); ``sycam list metrics --long``, results.json's metric records and
the report show it."""

from __future__ import annotations

import inspect
import re
from typing import Any

import pytest
from report_helpers import make_full_results

from sycam.cli import main
from sycam.methods import METHODS
from sycam.metrics import METRICS, get_metric, list_metrics
from sycam.metrics.custom import QuantusMetric
from sycam.report.format import cite
from sycam.report.synthesis import render_report

LINK = re.compile(r"https://(arxiv\.org/abs/\d{4}\.\d{4,5}|doi\.org/10\.\d{4,9}/\S+)")


@pytest.mark.parametrize("name", list(METHODS))
def test_each_method_cites_its_paper_with_a_link(name: str) -> None:
    assert LINK.search(METHODS[name].reference), METHODS[name].reference


@pytest.mark.parametrize("name", list(METRICS))
def test_each_metric_carries_its_reference_and_its_docstring_cites_it(name: str) -> None:
    cls = METRICS[name]
    link = LINK.search(cls.reference)
    assert link, (name, cls.reference)
    docs = " ".join(inspect.getdoc(c) or "" for c in cls.__mro__)
    assert link.group(0) in docs.replace("\n    ", " "), name
    assert get_metric(name).describe()["reference"] == cls.reference


def test_the_quantus_adapter_cites_quantus() -> None:
    assert "https://arxiv.org/abs/2202.06861" in QuantusMetric.reference


def test_list_metrics_long_shows_each_reference(capsys: Any) -> None:
    assert main(["list", "metrics", "--long"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].split()[-1] == "reference"
    for row in list_metrics():
        assert row["reference"] in out
    assert main(["list", "metrics"]) == 0
    assert "reference" not in capsys.readouterr().out  # the short table stays narrow


def test_the_report_links_the_metric_reference() -> None:
    results = make_full_results()
    results["metric"]["reference"] = get_metric("energy_pointing_game").reference
    page = render_report(results)
    assert '<a href="https://arxiv.org/abs/1910.01279">https://arxiv.org/abs/1910.01279</a>' in page
    assert "metric reference: energy_pointing_game" in page


def test_cite_escapes_the_text_and_links_only_urls() -> None:
    assert cite("") == ""
    assert cite("A <b> & B — https://doi.org/10.1/x") == (
        'A &lt;b&gt; &amp; B — <a href="https://doi.org/10.1/x">https://doi.org/10.1/x</a>'
    )
