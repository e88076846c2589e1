"""The ``photos`` check set: real photos from Python packages, hand-drawn boxes, sources shared with the
demo named. (That the real EfficientNet-Lite0 recognizes them is tested in test_data_demo.py, beside the
demo, so the model is loaded once.)"""

from __future__ import annotations

import pytest
import torch

from sycam.data import DataError, Preprocess, Samples, build_demo, load_data, shared_sources, split_three
from sycam.data import photos as photos_module

LITE0 = Preprocess(size=224, resize=256, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5), interpolation="bicubic")


@pytest.fixture(scope="module")
def photos() -> Samples:
    return load_data("photos", LITE0)


def test_composition_and_boxes(photos: Samples) -> None:
    assert len(photos) == 8 and photos.images.shape == (8, 3, 224, 224)
    assert photos.ids[0] == "skimage/coffee.png#967"
    assert photos.labels.tolist() == [967, 665, 872, 657, 892, 698, 985, 652]
    assert len({p.source for p in photos_module.PHOTOS}) == 8
    for i in range(8):
        area = float(photos.masks[i].float().mean())
        assert 0.05 < area < 0.9, (photos.ids[i], area)  # a box that localizes: never the whole input
        assert photos.sources[i] == (photos_module.PHOTOS[i].source,)
    # the rocket's box, by hand: 640×427 → 383×256, crop left round(79.5) = 80, top 16
    # x: 302·383/640 − 80 = 100.7, y: 126·256/427 − 16 = 59.5
    torch.testing.assert_close(photos.boxes[3], torch.tensor([[100.728, 59.541, 122.870, 224.0]]), atol=1e-3,
                               rtol=0)


def test_shares_three_photos_with_the_demo_and_nothing_else(photos: Samples) -> None:
    demo = build_demo(LITE0)
    assert shared_sources(demo, photos) == ["photo:skimage/camera", "photo:skimage/coffee",
                                            "photo:skimage/stereo_motorcycle"]
    synthesis, _, _ = split_three(demo, 1 / 3, 1 / 3, seed=0)
    shared = set(shared_sources(synthesis, photos))
    fresh = [i for i, s in enumerate(photos.sources) if not shared & set(s)]
    assert len(fresh) >= 6  # a synthesis world holds at most two of the shared photos


def test_changed_photo_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    first = photos_module.PHOTOS[0]
    bad = photos_module.Photo(first.package, first.folder, first.file, first.source, (601, 400), first.label,
                              first.boxes, first.what)
    monkeypatch.setattr(photos_module, "PHOTOS", (bad, *photos_module.PHOTOS[1:]))
    with pytest.raises(DataError, match=r"photos: skimage/coffee.png is 600×400 but its boxes were drawn on a "
                                        r"601×400 image"):
        load_data("photos", LITE0)


def test_missing_package_is_a_clean_error(monkeypatch: pytest.MonkeyPatch) -> None:
    real = photos_module.importlib.util.find_spec
    monkeypatch.setattr(photos_module.importlib.util, "find_spec",
                        lambda name, *a: None if name == "sklearn" else real(name, *a))
    with pytest.raises(DataError, match=r"needs the package scikit-learn .*pip install scikit-learn"):
        load_data("photos", LITE0)


def test_options_that_do_not_apply() -> None:
    with pytest.raises(DataError, match="the photos data set has ImageNet-1k targets"):
        load_data("photos", LITE0, classes=["a", "b"])
    with pytest.raises(DataError, match="the photos data set has fixed labels"):
        load_data("photos", LITE0, label=3)
    assert len(load_data("Photos", LITE0, limit=2)) == 2

