"""The synthesis/test split: deterministic, disjoint, images kept whole, classes balanced."""

from __future__ import annotations

from collections import Counter

import pytest
import torch

from sycam.data import DataError, DataWarning, Samples, shared_sources, split, split_three
from sycam.data.split import groups_of, sources_of


def make(ids: list[str], labels: list[int]) -> Samples:
    n = len(ids)
    images = torch.arange(n, dtype=torch.float32).view(n, 1, 1, 1).expand(n, 3, 4, 4).clone()
    return Samples(images=images, labels=torch.tensor(labels), ids=tuple(ids))


@pytest.fixture
def samples() -> Samples:
    """40 single-object images of 4 classes (10 each) and 6 two-object images (12 samples)."""
    ids, labels = [], []
    for c in range(4):
        for k in range(10):
            ids.append(f"img_{c}_{k}.png#{c}")
            labels.append(c)
    for k in range(6):
        for c in (0, 1):
            ids.append(f"pair_{k}.png#{c}")
            labels.append(c)
    return make(ids, labels)


def test_deterministic_and_seeded(samples: Samples) -> None:
    a1, b1 = split(samples, 0.5, seed=0)
    a2, b2 = split(samples, 0.5, seed=0)
    assert a1.ids == a2.ids and b1.ids == b2.ids
    others = {split(samples, 0.5, seed=s)[1].ids for s in range(1, 6)}
    assert b1.ids not in others and len(others) == 5


def test_disjoint_cover_and_order(samples: Samples) -> None:
    a, b = split(samples, 0.3, seed=3)
    assert set(a.ids).isdisjoint(b.ids)
    assert sorted(a.ids + b.ids) == sorted(samples.ids)
    order = {sid: i for i, sid in enumerate(samples.ids)}
    assert [order[i] for i in a.ids] == sorted(order[i] for i in a.ids)
    assert [order[i] for i in b.ids] == sorted(order[i] for i in b.ids)
    # images travel with their ids
    for part in (a, b):
        for i, sid in enumerate(part.ids):
            assert torch.equal(part.images[i], samples.images[order[sid]])


def test_samples_of_one_image_stay_together(samples: Samples) -> None:
    for seed in range(10):
        a, b = split(samples, 0.5, seed=seed)
        side_a = {groups_of(a)[i] for i in range(len(a))}
        side_b = {groups_of(b)[i] for i in range(len(b))}
        assert side_a.isdisjoint(side_b)
        for k in range(6):
            assert (f"pair_{k}.png#0" in b.ids) == (f"pair_{k}.png#1" in b.ids)


def test_stratified_by_class_and_fraction(samples: Samples) -> None:
    for seed in range(5):
        _, test = split(samples, 0.5, seed=seed)
        singles = Counter(int(l) for sid, l in zip(test.ids, test.labels, strict=True) if sid.startswith("img"))
        assert singles == {0: 5, 1: 5, 2: 5, 3: 5}
        assert sum(sid.startswith("pair") for sid in test.ids) == 6  # 3 of the 6 pair images
    _, test = split(samples, 0.2, seed=0)
    # 46 images × 0.2 = 9.2 → 9 images; per class 10 × 0.2 = 2 each, pairs 6 × 0.2 = 1.2 → 1
    assert len(set(groups_of(test))) == 9
    assert Counter(int(l) for sid, l in zip(test.ids, test.labels, strict=True) if sid.startswith("img")) == \
        {0: 2, 1: 2, 2: 2, 3: 2}


def test_independent_of_sample_order(samples: Samples) -> None:
    perm = torch.randperm(len(samples), generator=torch.Generator().manual_seed(1)).tolist()
    shuffled = samples.subset(perm)
    assert set(split(samples, 0.5, 7)[1].ids) == set(split(shuffled, 0.5, 7)[1].ids)


def test_both_sides_never_empty() -> None:
    s = make(["a#1", "b#1", "c#2"], [1, 1, 2])
    for f in (0.01, 0.99):
        a, b = split(s, f)
        assert len(a) >= 1 and len(b) >= 1
    a, b = split(make(["a#1", "b#1"], [1, 1]), 0.5)
    assert len(a) == len(b) == 1


def test_without_ids_identical_images_group() -> None:
    images = torch.stack([torch.full((3, 2, 2), v) for v in (0.0, 0.0, 1.0, 2.0, 2.0, 3.0)])
    s = Samples(images=images, labels=torch.tensor([1, 2, 1, 1, 2, 1]))
    for seed in range(6):
        _, test = split(s, 0.5, seed)
        values = test.images[:, 0, 0, 0].tolist()
        assert values.count(0.0) in (0, 2) and values.count(2.0) in (0, 2)


@pytest.mark.parametrize("fraction", [0, 1, 1.5, -0.1, True, "0.5"])
def test_bad_fraction(samples: Samples, fraction: object) -> None:
    with pytest.raises(DataError, match="test_fraction must be strictly between 0 and 1"):
        split(samples, fraction)  # type: ignore[arg-type]


def test_one_image_cannot_be_split() -> None:
    with pytest.raises(DataError, match=r"cannot split 2 sample\(s\) from 1 image\(s\) into synthesis and test"):
        split(make(["a.png#1", "a.png#2"], [1, 2]), 0.5)


# ---- sources: object photos and textures are kept on one side, like images -------------------------------


def composited(worlds: int = 4, per_world: int = 6) -> Samples:
    """A demo-like set: world w composites photos p{w}a, p{w}b onto textures t{w}a, t{w}b (every image one
    photo on one texture), class = photo; so the worlds are the only source-disjoint groups."""
    ids, labels, sources = [], [], []
    k = 0
    for w in range(worlds):
        for j in range(per_world):
            photo, texture = f"photo:p{w}{'ab'[j % 2]}", f"texture:t{w}{'ab'[(j // 2) % 2]}"
            label = 2 * w + j % 2
            ids.append(f"scene_{k:03d}#{label}")
            labels.append(label)
            sources.append((photo, texture))
            k += 1
    base = make(ids, labels)
    return Samples(images=base.images, labels=base.labels, ids=base.ids, sources=tuple(sources))


def test_no_photo_or_texture_on_both_sides() -> None:
    s = composited()
    for seed in range(8):
        a, b = split(s, 0.5, seed)
        assert shared_sources(a, b) == []
        assert len(a) == len(b) == 12  # 2 of the 4 worlds each
        v = split_three(s, 0.25, 0.25, seed)
        assert [len(x) for x in v] == [12, 6, 6]
        for x, y in ((v[0], v[1]), (v[0], v[2]), (v[1], v[2])):
            assert shared_sources(x, y) == []


def test_sources_follow_subsets_and_name_the_image() -> None:
    s = composited(2, 2)
    assert sources_of(s)[0] == ("image:scene_000", "photo:p0a", "texture:t0a")
    sub = s.subset([3, 1])
    assert sub.sources == (s.sources[3], s.sources[1])
    assert shared_sources(s.subset([0]), s.subset([1])) == ["texture:t0a"]  # same texture, other photo
    assert shared_sources(s.subset([0]), s.subset([2])) == []  # another world


def test_textures_are_relaxed_when_the_data_do_not_allow() -> None:
    # every photo on every texture: photos and textures together connect all images into one group
    ids, labels, sources = [], [], []
    for p in range(4):
        for t in range(3):
            ids.append(f"p{p}_t{t}#{p}")
            labels.append(p)
            sources.append((f"photo:p{p}", f"texture:t{t}"))
    base = make(ids, labels)
    s = Samples(images=base.images, labels=base.labels, ids=base.ids, sources=tuple(sources))
    with pytest.warns(DataWarning, match="texture sources connect them"):
        a, b = split(s, 0.5, 0)
    assert all(x.startswith("texture:") for x in shared_sources(a, b)) and shared_sources(a, b)
    assert {x for x in sources_of(a) for x in x if x.startswith("photo")}.isdisjoint(
        {x for x in sources_of(b) for x in x if x.startswith("photo")})
    # a single photo everywhere: photos are relaxed too, images never
    one = Samples(images=base.images, labels=base.labels, ids=base.ids, sources=tuple(("photo:p",) for _ in ids))
    with pytest.warns(DataWarning, match="photo sources"):
        a, b = split(one, 0.5, 0)
    assert shared_sources(a, b) == ["photo:p"]


def test_split_three_stratified_deterministic_and_seeded(samples: Samples) -> None:
    syn, val, test = split_three(samples, 0.2, 0.3, seed=4)
    assert (syn.ids, val.ids, test.ids) == tuple(x.ids for x in split_three(samples, 0.2, 0.3, seed=4))
    assert sorted(syn.ids + val.ids + test.ids) == sorted(samples.ids)
    # 46 images: test round(13.8) = 14, validation round(9.2) = 9, synthesis 23
    assert [len(set(groups_of(x))) for x in (syn, val, test)] == [23, 9, 14]
    for part, per_class in ((test, 3), (val, 2)):
        singles = Counter(int(l) for sid, l in zip(part.ids, part.labels, strict=True) if sid.startswith("img"))
        assert singles == {c: per_class for c in range(4)}
    for x, y in ((syn, val), (syn, test), (val, test)):
        assert shared_sources(x, y) == []
    assert test.ids != split_three(samples, 0.2, 0.3, seed=5)[2].ids


def test_split_three_small_and_bad_fractions() -> None:
    s = make(["a#1", "b#1", "c#2"], [1, 1, 2])
    parts = split_three(s, 0.01, 0.01)
    assert sorted(len(p) for p in parts) == [1, 1, 1]
    with pytest.raises(DataError, match=r"into synthesis, validation and test: need at least 3 images"):
        split_three(make(["a#1", "b#1"], [1, 1]), 0.3, 0.3)
    with pytest.raises(DataError, match="validation_fraction must be strictly between 0 and 1"):
        split_three(s, 0, 0.5)
    with pytest.raises(DataError, match=r"validation_fraction \+ test_fraction must be below 1"):
        split_three(s, 0.5, 0.5)


def test_data_error_is_a_sycam_error() -> None:
    from sycam.errors import SycamError

    assert issubclass(DataError, SycamError) and issubclass(DataError, ValueError)


def test_samples_sources_are_checked_and_normalization_is_shared() -> None:
    from sycam.data import Preprocess

    base = make(["a#1", "b#1"], [1, 1])
    with pytest.raises(ValueError, match=r"sources must hold one tuple per sample \(2\), got 1"):
        Samples(images=base.images, labels=base.labels, sources=(("photo:x",),))
    pre = Preprocess(mean=(0.1, 0.2, 0.3), std=(0.5, 0.25, 0.125))
    pixels = torch.rand(2, 3, 4, 4)
    s = Samples(images=pre.normalize(pixels), labels=base.labels, mean=pre.mean, std=pre.std)
    torch.testing.assert_close(s.pixels, pre.denormalize(s.images))
    torch.testing.assert_close(s.pixels, pixels, atol=1e-6, rtol=0)
    torch.testing.assert_close(s.normalize(pixels), s.images)


def test_one_image_written_two_ways_is_one_image_for_the_split(tmp_path) -> None:
    """``/abs/d/img0.png``, ``../d/img0.png`` and a symlinked folder name one file: never on two sides."""
    from PIL import Image

    from sycam.data import Preprocess, load_data

    d = tmp_path / "d"
    d.mkdir()
    for i in range(6):
        Image.new("RGB", (16, 16), (40 * i, 10, 200 - 30 * i)).save(d / f"img{i}.png")
    (tmp_path / "link").symlink_to(d)
    (tmp_path / "m").mkdir()
    rows = [f"{d / 'img0.png'},1", "../d/img0.png,2", "../link/img1.png,3", "../d/img1.png,4",
            *[f"../d/img{i}.png,{i}" for i in range(2, 6)]]
    manifest = tmp_path / "m" / "m.csv"
    manifest.write_text("image,label\n" + "\n".join(rows) + "\n")
    samples = load_data(manifest, Preprocess(size=16, resize=16))
    assert len(samples) == 8
    for seed in range(12):
        a, b = split(samples, 0.5, seed)
        assert shared_sources(a, b) == [], seed
        sides = {sid: side for side, part in (("a", a), ("b", b)) for sid in part.ids}
        assert sides[f"{d / 'img0.png'}#1"] == sides["../d/img0.png#2"]
        assert sides["../link/img1.png#3"] == sides["../d/img1.png#4"]


def test_a_tilde_in_a_manifest_is_relative_to_the_manifest(tmp_path, monkeypatch) -> None:
    from PIL import Image

    from sycam.data import DataError, Preprocess, load_data

    home = tmp_path / "home"
    home.mkdir()
    Image.new("RGB", (16, 16)).save(home / "x.png")  # $HOME/x.png exists, and must not be read
    monkeypatch.setenv("HOME", str(home))
    here = tmp_path / "data"
    here.mkdir()
    manifest = here / "m.csv"
    manifest.write_text("image,label\n~/x.png,1\n")
    with pytest.raises(DataError, match=rf"image file not found: {here}/~/x.png"):
        load_data(manifest, Preprocess(size=16, resize=16))
    (here / "~").mkdir()
    Image.new("RGB", (16, 16), (9, 9, 9)).save(here / "~" / "x.png")
    samples = load_data(manifest, Preprocess(size=16, resize=16))
    assert samples.ids == ("~/x.png#1",) and float(samples.pixels.max()) < 0.1
def test_bootstrap_groups_prefer_photos_and_fall_back_to_images() -> None:
    from sycam.data.split import bootstrap_groups

    s = composited(worlds=2, per_world=4)  # photos p0a, p0b, p1a, p1b, each in 2 scenes
    groups, grouping = bootstrap_groups(s)
    assert grouping == "photo (4 groups)"
    assert groups[:4] == ["photo:p0a", "photo:p0b", "photo:p0a", "photo:p0b"]
    two = Samples(images=s.images[:2], labels=s.labels[:2], ids=s.ids[:2],
                  sources=(("photo:x", "photo:y", "texture:t"), ("texture:t",)))
    assert bootstrap_groups(two)[0] == ["photo:x+photo:y", f"image:{s.ids[1].split('#')[0]}"]
    plain = make(["a.png#1", "a.png#2", "b.png#1"], [1, 2, 1])  # two targets of one image are one group
    assert bootstrap_groups(plain) == (["image:a.png", "image:a.png", "image:b.png"], "image (2 groups)")


def test_manifest_group_column_groups_samples(tmp_path) -> None:
    from data_helpers import SMALL, write_csv, write_png

    from sycam.data import load_data
    from sycam.data.split import bootstrap_groups

    for name in ("a.png", "b.png", "c.png"):
        write_png(tmp_path / name, 32, 32)
    rows = [["a.png", 1, "sceneX"], ["b.png", 1, "sceneX"], ["c.png", 2, "sceneY"]]
    s = load_data(write_csv(tmp_path / "m.csv", rows, header="image,label,group"), SMALL)
    assert bootstrap_groups(s) == (["group:sceneX", "group:sceneX", "group:sceneY"], "group (2 groups)")
    bad = write_csv(tmp_path / "n.csv", [["a.png", 1, "p"], ["a.png", 1, "q"]], header="image,label,group")
    with pytest.raises(DataError, match=r"line 3: sample a.png#1 is in group 'p' .* and here in group 'q'"):
        load_data(bad, SMALL)
