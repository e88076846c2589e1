"""The learner's bank: exact (sound) merging, recomputed map values, deferred maps and memory."""

from __future__ import annotations

import dataclasses
import itertools

import pytest
import torch
from engine_helpers import tiny_net, tiny_samples

import sycam.synth.learner as learner_module
from sycam.expr import Kind, evaluate, parse
from sycam.expr.ops import safe_div
from sycam.synth import Grammar, Learner
from sycam.synth.learner import exact_key
from sycam.workspace import Workspace

LAYER = "body"


def _leaves(n: int = 4) -> dict[str, tuple[torch.Tensor, ...]]:
    vals = Workspace.build(tiny_net(), LAYER, tiny_samples(n)).values(["A", "G", "D"])
    return {k: (v,) for k, v in vals.items()}


def _values(entries) -> list[tuple[torch.Tensor, ...]]:
    return [e.values for e in entries]


def _same(a: tuple[torch.Tensor, ...], b: tuple[torch.Tensor, ...]) -> bool:
    return all(x.shape == y.shape and torch.equal(x, y) for x, y in zip(a, b, strict=True))


def test_exact_key_is_shared_by_equal_values_only_signed_zero_aside() -> None:
    x = torch.randn(3, 5, 4, 4)
    assert exact_key((x,)) == exact_key((x.clone(),))
    z = torch.zeros(3, 5, 1, 1)
    assert exact_key((z,)) == exact_key((-z,))  # torch.equal(0.0, -0.0)
    y = x.clone()
    y.view(-1)[0] = torch.nextafter(y.view(-1)[0], torch.tensor(10.0))
    assert exact_key((x,)) != exact_key((y,))
    assert exact_key((x[:, :, :1, :1],)) != exact_key((x[:, :, :1, :1].reshape(3, 5),))


def test_sq_and_cube_under_softmax_no_longer_merge_on_real_activations() -> None:
    """On EfficientNet-Lite0's bn2 activations of demo photos the two are within 1e-6 (the old relative
    1e-5 merge joined them), yet ``1 / ·`` separates them by ~1e35: both must stay in the bank."""
    import sycam
    from sycam.data import load_data
    from sycam.terminals import TerminalCache

    model = sycam.load_model("efficientnet_lite0")
    samples = load_data("demo", model.preprocess, model.classes)
    pick = [3, 9, 11, 13]  # demo scenes where the two differ by a non-zero amount below the old 1e-5 criterion
    values = TerminalCache(model.module, model.layer, samples.images[pick], samples.labels[pick]).values(["A"])
    sq, cube = (evaluate(parse(t), values) for t in ("softmax(sum(sq(A)))", "softmax(sum(cube(A)))"))
    assert float((sq - cube).abs().max()) <= 1e-5 * float(sq.abs().max())  # what the old criterion merged
    assert float((safe_div(1, sq) - safe_div(1, cube)).abs().max()) > 1.0  # yet they are different
    grammar = Grammar(terminals=("A",), constants=(), operators=("sq", "cube", "sum", "softmax"), max_size=4)
    found = {str(e.node) for e in Learner(grammar, {"A": (values["A"],)}).entries()}
    assert {"softmax(sum(sq(A)))", "softmax(sum(cube(A)))"} <= found


def _unpruned(grammar: Grammar, leaves, monkeypatch: pytest.MonkeyPatch) -> list:
    counter = itertools.count()
    monkeypatch.setattr(learner_module, "exact_key", lambda values: next(counter))  # never two alike
    try:
        return list(Learner(grammar, leaves).entries())
    finally:
        monkeypatch.undo()


@pytest.mark.parametrize("forms", [("channel", "pixel"), ("channel",)])
def test_pruning_loses_no_value_and_keeps_no_duplicate(forms, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every value of the unpruned enumeration is some kept entry's value (exactly), and no two kept
    candidates are equal: merging is exact and complete on a grammar of every operator."""
    leaves = _leaves()
    grammar = Grammar(terminals=("A", "G", "D"), constants=(2.0,), max_size=4, forms=forms)
    learner = Learner(grammar, leaves)
    kept = [e for e in learner.entries() if grammar.form_allows(e.kind)]
    assert learner.stats.subexpr_pruned > 0
    all_ = [e for e in _unpruned(grammar, leaves, monkeypatch) if grammar.form_allows(e.kind)]
    assert len(all_) > len(kept)
    by_key: dict[int, list[tuple[torch.Tensor, ...]]] = {}
    for e in kept:
        for other in by_key.get(exact_key(e.values), []):
            assert not _same(e.values, other), f"{e.node} kept twice"
        by_key.setdefault(exact_key(e.values), []).append(e.values)
    for e in all_:
        assert any(_same(e.values, v) for v in by_key.get(exact_key(e.values), [])), f"{e.node} lost"


def test_values_are_the_expressions_values_bit_for_bit_even_when_recomputed() -> None:
    """A tiny map cache forces values out: recomputed values are identical, and the enumeration (order,
    entries) does not depend on the cache size."""
    leaves = _leaves()
    flat = {k: v[0] for k, v in leaves.items()}
    grammar = Grammar(terminals=("A", "G", "D"), constants=(2.0,), max_size=4, forms=("channel", "pixel"))
    big = Learner(grammar, leaves)
    small = Learner(grammar, leaves, cache_bytes=4 * flat["A"].numel() * 4)
    got_big = [(str(e.node), e.values) for e in big.entries()]
    got_small = [(str(e.node), e.values) for e in small.entries()]
    assert small.stats.cache_misses > 0
    assert [t for t, _ in got_big] == [t for t, _ in got_small]
    for (text, a), (_, b) in zip(got_big, got_small, strict=True):
        assert _same(a, b)
        assert torch.equal(a[0], evaluate(parse(text), flat)), text


def test_channel_form_defers_maps_below_the_limit_and_finds_the_same_candidates() -> None:
    leaves = _leaves()
    channel = Grammar(terminals=("A", "G", "D"), constants=(2.0,), max_size=4, forms=("channel",))
    both = Grammar(terminals=("A", "G", "D"), constants=(2.0,), max_size=4, forms=("channel", "pixel"))
    lc, lb = Learner(channel, leaves), Learner(both, leaves)
    cand_c = [e.values for e in lc.entries() if e.kind != Kind.MAP]
    cand_b = [e.values for e in lb.entries() if e.kind != Kind.MAP]
    assert lc.stats.deferred > 0 and lb.stats.deferred == 0
    assert len(cand_c) == len(cand_b)
    keys = {}
    for v in cand_b:
        keys.setdefault(exact_key(v), []).append(v)
    assert all(any(_same(v, w) for w in keys.get(exact_key(v), [])) for v in cand_c)


def test_rejects_non_finite_and_zero_values() -> None:
    a = torch.rand(2, 3, 4, 4) + 0.5
    big = torch.full((2, 3, 1, 1), 3e38)
    grammar = Grammar(terminals=("A", "D"), constants=(), operators=("-", "+", "relu", "neg"), max_size=3,
                      forms=("channel", "pixel"))
    learner = Learner(grammar, {"A": (a,), "D": (big,)})
    found = {str(e.node) for e in learner.entries()}
    assert "D + D" not in found and "A - A" not in found and "relu(neg(A))" not in found
    assert learner.stats.rejected["non-finite value"] >= 1 and learner.stats.rejected["identically zero"] >= 2
    assert safe_div(torch.tensor(1.0), torch.tensor(0.0)) == 0


def test_bank_holds_many_more_entries_than_full_map_values_would_allow() -> None:
    """Entries held per byte: maps hold no value of their own, so the bank is mostly small vectors."""
    leaves = _leaves(8)
    grammar = Grammar(terminals=("A", "G", "D"), max_size=4)
    learner = Learner(grammar, leaves)
    for _ in learner.entries():
        pass
    map_bytes = leaves["A"][0].numel() * 4
    held = learner.stats.bank_size
    assert held > 200
    # every entry stored as a full map would take held * map_bytes
    assert learner.stats.bank_bytes + learner.stats.cache_bytes < held * map_bytes / 5


@pytest.mark.parametrize("forms", [("channel", "pixel"), ("channel",)])
def test_counters_add_up(forms) -> None:
    """Every enumerated expression is yielded, pruned as a duplicate, or rejected with a reason."""
    grammar = Grammar(terminals=("A", "G", "D"), constants=(2.0,), max_size=4, forms=forms)
    learner = Learner(grammar, _leaves())
    yielded = sum(1 for _ in learner.entries())
    st = learner.stats
    assert st.enumerated == yielded + st.subexpr_pruned + sum(st.rejected.values())


def test_the_bank_chunk_changes_only_the_work_read_ahead() -> None:
    """Proposals per bank call: the entries, their order, their values and the counters are the same for any
    chunk; a search that stops reading the stream leaves at most one chunk built past the entries it took."""
    leaves = _leaves()
    grammar = Grammar(terminals=("A", "G", "D"), constants=(2.0,), max_size=4)
    runs = {}
    for chunk in (1, 7, learner_module.LOCAL_BANK_CHUNK, learner_module.BANK_CHUNK):
        learner = Learner(grammar, leaves, chunk=chunk)
        got = [(str(e.node), e.values) for e in learner.entries()]
        runs[chunk] = (got, learner.stats)
    (first, stats), *rest = runs.values()
    for got, st in rest:
        assert [t for t, _ in got] == [t for t, _ in first]
        assert all(_same(a, b) for (_, a), (_, b) in zip(got, first, strict=True))
        # the map cache may still hold a value the last call's rejections will drop: memory, not the enumeration
        assert dataclasses.replace(st, cache_bytes=0, cache_misses=0) == dataclasses.replace(stats, cache_bytes=0,
                                                                                            cache_misses=0)
    assert Learner(grammar, leaves)._chunk == learner_module.LOCAL_BANK_CHUNK  # a bank in this process

    for chunk in (7, 64):
        learner = Learner(grammar, leaves, chunk=chunk)
        taken = list(itertools.islice(learner.entries(), 40))
        assert len(taken) == 40
        assert learner.values is not None
        built = len(learner.values.entries)
        assert built <= learner.stats.enumerated + chunk  # no more than one chunk past what was read
