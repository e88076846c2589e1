"""docs/architecture.md stays true: every sycam name and every repository path it points to exists."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / "docs" / "architecture.md"
CODE = re.compile(r"`([^`\n]+)`")


def _spans() -> list[str]:
    return CODE.findall(PAGE.read_text(encoding="utf-8"))


def _resolve(dotted: str) -> object:
    """The object a dotted ``sycam.…`` name means: the longest importable module prefix, then attributes."""
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj: object = importlib.import_module(".".join(parts[:cut]))
        except ModuleNotFoundError:
            continue
        for name in parts[cut:]:
            obj = getattr(obj, name)
        return obj
    raise ModuleNotFoundError(dotted)


def test_the_page_names_the_driver_the_protocol_and_the_rules() -> None:
    text = PAGE.read_text(encoding="utf-8")
    for heading in ("## The search: one driver over one shard plane", "### The shard protocol",
                    "## Where each rule lives"):
        assert heading in text


def test_every_dotted_sycam_name_exists() -> None:
    names = sorted({s for s in _spans() if re.fullmatch(r"sycam(\.\w+)+", s)})
    assert len(names) >= 30
    missing = []
    for name in names:
        try:
            _resolve(name)
        except (ModuleNotFoundError, AttributeError) as e:
            missing.append(f"{name}: {e}")
    assert not missing, "\n".join(missing)


def test_every_method_of_the_protocol_table_is_a_shard_plane_method() -> None:
    from sycam.synth.sharded import ShardPlane

    text = PAGE.read_text(encoding="utf-8")
    table = text.split("### The shard protocol", 1)[1].split("\n\n", 2)[1]
    calls = {m for row in table.splitlines()[2:] for m in re.findall(r"`(\w+)[`(]", row.split("|")[1])}
    assert calls >= {"bank", "triage", "score", "race", "keys", "distances"}
    assert not [c for c in calls if not callable(getattr(ShardPlane, c, None))]
    public = {n for n in vars(ShardPlane) if not n.startswith("_") and callable(getattr(ShardPlane, n))}
    assert public <= calls, f"ShardPlane methods the page does not list: {sorted(public - calls)}"


def test_every_path_on_the_page_exists() -> None:
    paths = sorted({s for s in _spans() if re.fullmatch(r"(docs|tests|sycam|benchmarks)/[\w/.]+", s)})
    assert paths
    assert not [p for p in paths if not (ROOT / p).exists()]
