"""Folders labelled by WordNet synset (ImageNet's train layout and the sample set's names), without a manifest."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from data_helpers import SMALL, write_png

from sycam.data import DataError, load_data
from sycam.data.labels import imagenet_synsets


def test_train_layout_folders_name_the_class(tmp_path: Path) -> None:
    write_png(tmp_path / "n01440764" / "n01440764_10026.JPEG", 40, 32)
    write_png(tmp_path / "n01440764" / "b.png", 32, 40)
    write_png(tmp_path / "n02124075" / "cat.jpg", 32, 32)
    samples = load_data(tmp_path, SMALL)
    assert samples.labels.tolist() == [0, 0, 285]  # tench, tench, Egyptian cat; sorted by path
    assert list(samples.ids) == ["n01440764/b.png#0", "n01440764/n01440764_10026.JPEG#0", "n02124075/cat.jpg#285"]
    assert samples.boxes is None and samples.masks is None and tuple(samples.images.shape) == (3, 3, 32, 32)


def test_sample_set_names_and_the_nearest_synset_folder_wins(tmp_path: Path) -> None:
    write_png(tmp_path / "n01443537_goldfish.JPEG", 32, 32)
    write_png(tmp_path / "n01484850.png", 32, 32)
    write_png(tmp_path / "more" / "n02124075" / "n01440764_looks_like_tench.png", 32, 32)  # the folder wins
    samples = load_data(tmp_path, SMALL)
    synsets = imagenet_synsets()
    assert [synsets[i] for i in samples.labels.tolist()] == ["n02124075", "n01443537", "n01484850"]
    assert samples.ids[0] == "more/n02124075/n01440764_looks_like_tench.png#285"


def test_same_pixels_as_a_label_only_manifest(tmp_path: Path) -> None:
    write_png(tmp_path / "images" / "n01440764_tench.png", 48, 32, color=(10, 200, 30))
    (tmp_path / "m.csv").write_text("image,label\nimages/n01440764_tench.png,n01440764\n")
    by_folder = load_data(tmp_path / "images", SMALL)
    by_manifest = load_data(tmp_path / "m.csv", SMALL)  # label-only manifests keep working
    assert torch.equal(by_folder.images, by_manifest.images) and by_folder.labels.tolist() == [0]
    assert by_manifest.ids == ("images/n01440764_tench.png#0",) and by_folder.ids == ("n01440764_tench.png#0",)


def test_label_options_apply(tmp_path: Path) -> None:
    write_png(tmp_path / "n01440764" / "a.png", 32, 32)
    write_png(tmp_path / "n99999999" / "b.png", 32, 32)
    with pytest.raises(DataError, match=r"b\.png: unknown synset 'n99999999' \(not one of the 1000"):
        load_data(tmp_path, SMALL)
    with pytest.warns(UserWarning, match=r"skipped 1 annotation\(s\) with unknown labels: 'n99999999' ×1"):
        kept = load_data(tmp_path, SMALL, unknown_labels="skip")
    assert kept.labels.tolist() == [0]
    assert load_data(tmp_path, SMALL, label=7).labels.tolist() == [7, 7]


def test_an_image_without_synset_is_named(tmp_path: Path) -> None:
    write_png(tmp_path / "n01440764_tench.png", 32, 32)
    write_png(tmp_path / "holiday.png", 32, 32)
    with pytest.raises(DataError) as err:
        load_data(tmp_path, SMALL)
    assert str(err.value) == (f"{tmp_path / 'holiday.png'}: no WordNet synset in its folder or file name (expected "
                              "n01440764/x.JPEG or n01440764_name.JPEG); name it so, or pass a label or a manifest "
                              ".csv")
    assert load_data(tmp_path, SMALL, label="tench").labels.tolist() == [0, 0]


def test_xml_folders_still_take_precedence(tmp_path: Path) -> None:
    write_png(tmp_path / "n01440764_x.png", 32, 32)
    (tmp_path / "n01440764_x.xml").write_text(
        "<annotation><filename>n01440764_x.png</filename><object><name>n02124075</name><bndbox><xmin>1</xmin>"
        "<ymin>1</ymin><xmax>16</xmax><ymax>16</ymax></bndbox></object></annotation>")
    samples = load_data(tmp_path, SMALL)
    assert samples.labels.tolist() == [285] and samples.boxes is not None  # the XML's class and box
