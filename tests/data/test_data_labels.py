"""Label resolution: indices, synsets, names, synonyms, ambiguity, unknown labels, label maps."""

from __future__ import annotations

import pytest

from sycam.data import DataError, LabelResolver
from sycam.data.labels import Labeler


@pytest.fixture(scope="module")
def imagenet() -> LabelResolver:
    return LabelResolver()


@pytest.mark.parametrize("value, expected", [
    (285, 285), ("285", 285), (" 0 ", 0), (999, 999), (967.0, 967),
    ("n01440764", 0), ("n02124075", 285), ("n07920052", 967),
    ("Egyptian cat", 285), ("egyptian CAT", 285), ("  espresso ", 967), ("moped", 665),
    ("Tinca tinca", 0), ("tiger shark", 3), ("crane bird", 134), ("maillot tank suit", 639),
])
def test_resolves_index_synset_name_and_synonym(imagenet: LabelResolver, value: object, expected: int) -> None:
    assert imagenet.resolve(value, "x") == expected


@pytest.mark.parametrize("name, indices", [
    ("crane", (134, 517)), ("maillot", (638, 639)), ("Cardigan", (264, 474)), ("missile", (657, 744)),
])
def test_ambiguous_names_list_every_candidate(imagenet: LabelResolver, name: str, indices: tuple[int, ...]) -> None:
    with pytest.raises(DataError, match="ambiguous") as err:
        imagenet.resolve(name, "data.csv line 4")
    msg = str(err.value)
    assert msg.startswith("data.csv line 4: ")
    assert "\n" not in msg
    for i in indices:
        assert f"{i} " in msg
    assert "n0" in msg  # the synsets, so the user can pick one


def test_unknown_name_suggests_close_matches(imagenet: LabelResolver) -> None:
    with pytest.raises(DataError, match=r"data.csv line 2: unknown label 'espreso'.*'espresso'"):
        imagenet.resolve("espreso", "data.csv line 2")


@pytest.mark.parametrize("value, message", [
    (1000, "out of range"), (-1, "out of range"), ("1000", "out of range"), ("n99999999", "unknown synset"),
    ("", "empty"), ("   ", "empty"), (None, "must be"), (True, "must be"), (2.5, "must be"), ([1], "must be"),
    ("no such thing", "unknown label"),
])
def test_bad_labels(imagenet: LabelResolver, value: object, message: str) -> None:
    with pytest.raises(DataError, match=message):
        imagenet.resolve(value, "f.json entry 1")


def test_custom_classes_have_no_synsets_and_own_ambiguity() -> None:
    r = LabelResolver(["dog", "crane", "Crane", "cat"])
    assert not r.is_imagenet
    assert r.resolve("CAT", "x") == 3
    assert r.resolve(0, "x") == 0
    with pytest.raises(DataError, match=r"ambiguous.*1 crane.*2 Crane"):
        r.resolve("crane", "x")
    with pytest.raises(DataError, match="not ImageNet-1k"):
        r.resolve("n01440764", "x")
    with pytest.raises(DataError, match=r"out of range \(0–3\)"):
        r.resolve(4, "x")
    with pytest.raises(DataError, match="unknown label"):
        r.resolve("tench", "x")  # ImageNet synonyms only apply to ImageNet classes


def test_imagenet_detected_from_model_classes() -> None:
    from sycam.models import imagenet_classes

    assert LabelResolver(imagenet_classes()).is_imagenet
    assert LabelResolver(imagenet_classes()).describe(285) == "285 Egyptian cat (n02124075)"


def test_labeler_fixed_label_wins(imagenet: LabelResolver) -> None:
    lab = Labeler(imagenet, label="n02124075")
    assert lab("dog", "x") == 285
    assert lab("anything at all", "x") == 285


def test_labeler_map_is_case_insensitive_then_falls_back(imagenet: LabelResolver) -> None:
    lab = Labeler(imagenet, label_map={"Cat": 285, "motorbike": "moped", "dog": "n02085620"})
    assert lab("cat", "x") == 285
    assert lab(" MOTORBIKE ", "x") == 665
    assert lab("dog", "x") == 151
    assert lab("espresso", "x") == 967
    with pytest.raises(DataError, match="unknown label 'person'"):
        lab("person", "x")


def test_labeler_bad_map_or_override_is_an_error(imagenet: LabelResolver) -> None:
    with pytest.raises(DataError, match=r"label map entry 'cat'.*ambiguous"):
        Labeler(imagenet, label_map={"cat": "crane"})
    with pytest.raises(DataError, match=r"--label.*unknown"):
        Labeler(imagenet, label="kitty cat")
    with pytest.raises(DataError, match="'error' or 'skip'"):
        Labeler(imagenet, unknown="ignore")


def test_labeler_skip_counts_unknown_names(imagenet: LabelResolver) -> None:
    lab = Labeler(imagenet, label_map={"cat": 285}, unknown="skip")
    assert lab("person", "x") is None
    assert lab("person", "x") is None
    assert lab("chair", "x") is None
    assert lab("cat", "x") == 285
    assert lab.skipped_summary() == "'person' ×2, 'chair' ×1"
