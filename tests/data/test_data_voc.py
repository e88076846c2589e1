"""XML-annotated folders: the ImageNet-val and PASCAL VOC layouts, the 1-based coordinate convention,
label maps for VOC names, and every error path."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
from data_helpers import SMALL, voc_xml, write_png

from sycam.data import DataError, DataWarning, load_data


def imagenet_layout(root: Path) -> tuple[Path, Path]:
    ann, img = root / "Annotations" / "CLS-LOC" / "val", root / "Data" / "CLS-LOC" / "val"
    ann.mkdir(parents=True)
    write_png(img / "ILSVRC2012_val_00000002.JPEG", 32, 32)  # PNG bytes, ImageNet's extension: PIL sniffs
    write_png(img / "ILSVRC2012_val_00000001.JPEG", 32, 32, color=(0, 0, 200))
    (ann / "ILSVRC2012_val_00000001.xml").write_text(voc_xml(
        "ILSVRC2012_val_00000001", [("n02124075", (1, 1, 8, 4)), ("n02124075", (0, 20, 33, 32))], size=(32, 32)))
    (ann / "ILSVRC2012_val_00000002.xml").write_text(voc_xml(
        "ILSVRC2012_val_00000002", [("n07920052", (11, 11, 20, 20)), ("n03785016", (2, 3, 4, 5))]))
    return ann, img


def test_imagenet_val_layout(tmp_path: Path) -> None:
    imagenet_layout(tmp_path)
    s = load_data(tmp_path, SMALL)
    assert s.ids == ("ILSVRC2012_val_00000001.JPEG#285", "ILSVRC2012_val_00000002.JPEG#967",
                     "ILSVRC2012_val_00000002.JPEG#665")
    assert s.boxes is not None and s.masks is not None
    # 1-based inclusive → edges: (1, 1, 8, 4) → (0, 0, 8, 4); (0, 20, 33, 32) → (−1, 19, 33, 32), clipped
    # to the 32×32 image because it is at most one pixel outside
    assert s.boxes[0].tolist() == [[0, 0, 8, 4], [0, 19, 32, 32]]
    assert s.boxes[1].tolist() == [[10, 10, 20, 20]]
    assert s.boxes[2].tolist() == [[1, 2, 4, 5]]
    expected = torch.zeros(32, 32, dtype=torch.bool)
    expected[0:4, 0:8] = True
    expected[19:32, :] = True
    assert torch.equal(s.masks[0], expected)
    assert torch.equal(s.images[1], s.images[2]) and not torch.equal(s.images[0], s.images[1])


def test_voc_layout_with_label_map_and_skipped_names(tmp_path: Path) -> None:
    (tmp_path / "Annotations").mkdir()
    write_png(tmp_path / "JPEGImages" / "000001.jpg", 32, 32)
    write_png(tmp_path / "JPEGImages" / "000002.jpg", 32, 32)
    (tmp_path / "Annotations" / "000001.xml").write_text(voc_xml(
        "000001.jpg", [("person", (1, 1, 10, 10)), ("cat", (5, 5, 30, 30)), ("motorbike", (1, 1, 2, 2))]))
    (tmp_path / "Annotations" / "000002.xml").write_text(voc_xml("000002.jpg", [("person", (1, 1, 3, 3))]))
    mapping = {"cat": "Egyptian cat", "motorbike": 665}
    with pytest.raises(DataError, match=r"000001.xml object 1: unknown label 'person'"):
        load_data(tmp_path, SMALL, label_map=mapping)
    with pytest.warns(DataWarning, match=r"skipped 2 annotation\(s\) with unknown labels: 'person' ×2"):
        s = load_data(tmp_path, SMALL, label_map=mapping, unknown_labels="skip")
    assert s.ids == ("000001.jpg#285", "000001.jpg#665")
    s = load_data(tmp_path, SMALL, label="tabby")  # one class for every object: one sample per image
    assert s.ids == ("000001.jpg#281", "000002.jpg#281")
    assert s.boxes is not None and len(s.boxes[0]) == 3


def test_flat_folder_and_explicit_folders(tmp_path: Path) -> None:
    write_png(tmp_path / "x.png", 32, 32)
    (tmp_path / "x.xml").write_text(voc_xml(None, [("285", (1, 1, 32, 32))]))  # no <filename>: the XML's stem
    s = load_data(tmp_path, SMALL)
    assert s.ids == ("x.png#285",) and s.boxes is not None and s.boxes[0].tolist() == [[0, 0, 32, 32]]
    other = tmp_path / "elsewhere"
    other.mkdir()
    (other / "y.xml").write_text(voc_xml("x.png", [("espresso", (3, 3, 4, 4))]))
    s = load_data(tmp_path, SMALL, annotations=other)
    assert s.ids == ("x.png#967",)
    s = load_data(other, SMALL, images=tmp_path)
    assert s.ids == ("x.png#967",)
    with pytest.raises(DataError, match="the image folder does not exist"):
        load_data(other, SMALL, images=tmp_path / "nope")


def test_object_without_box_is_a_sample_without_ground_truth(tmp_path: Path) -> None:
    write_png(tmp_path / "x.png", 32, 32)
    (tmp_path / "x.xml").write_text(voc_xml("x.png", [("285", (1, 1, 5, 5)), ("967", None)]))
    msg = f"{tmp_path / 'x.xml'} object 2: sample x.png#967 has no ground truth, it has no box or mask"
    with pytest.raises(DataError, match=re.escape(msg)):
        load_data(tmp_path, SMALL)
    with pytest.warns(DataWarning):
        assert load_data(tmp_path, SMALL, missing_gt="drop").ids == ("x.png#285",)
    (tmp_path / "x.xml").write_text(voc_xml("x.png", [("285", None)]))
    s = load_data(tmp_path, SMALL)
    assert s.masks is None and s.ids == ("x.png#285",)


@pytest.mark.parametrize("xml, message", [
    ("<annotation><object>", "x.xml: not a readable XML file"),
    ("<notes/>", "x.xml: expected an <annotation> root element, got <notes>"),
    (voc_xml("nope.jpg", [("285", (1, 1, 4, 4))]), "x.xml: image 'nope.jpg' not found in"),
    (voc_xml("x.png", [("285", (1, 1, 4, 4))], size=(64, 32)), "x.xml: <size> says 64×32 but the image x.png is 32×32"),
    (voc_xml("x.png", [("", (1, 1, 4, 4))]), "x.xml object 1: no <name>"),
    (voc_xml("x.png", [("285", (1, 1, 4, 4)), ("crane", (1, 1, 4, 4))]), "x.xml object 2: label 'crane' is ambiguous"),
    (voc_xml("x.png", [("n09999999", (1, 1, 4, 4))]), "x.xml object 1: unknown synset 'n09999999'"),
    (voc_xml("x.png", [("285", (1, 1, "four", 4))]), "x.xml object 1: <xmax> must be a number, got 'four'"),
    (voc_xml("x.png", [("285", (9, 1, 4, 4))]), "x.xml object 1: empty box .*need xmax >= xmin"),
    (voc_xml("x.png", [("285", (1, 1, 34, 4))]), r"x.xml object 1 \(x.png\): box \(0, 0, 34, 4\) lies outside"),
    (voc_xml("x.png", [("285", (-1, 1, 4, 4))]), r"x.xml object 1 \(x.png\): box \(-2, 0, 4, 4\) lies outside"),
    ("<annotation><filename>x.png</filename><object><name>1</name><bndbox><xmin>1</xmin></bndbox></object>"
     "</annotation>", "x.xml object 1: <bndbox> lacks <ymin>"),
])
def test_xml_errors_name_file_and_object(tmp_path: Path, xml: str, message: str) -> None:
    write_png(tmp_path / "x.png", 32, 32)
    (tmp_path / "x.xml").write_text(xml)
    with pytest.raises(DataError) as err:
        load_data(tmp_path, SMALL)
    msg = str(err.value)
    assert msg.startswith(str(tmp_path / "x.xml")) and "\n" not in msg
    assert re.search(message, msg), msg


def test_folder_without_annotations(tmp_path: Path) -> None:
    write_png(tmp_path / "x.png", 32, 32)
    with pytest.raises(DataError, match=r"no XML annotations found .*write a manifest"):
        load_data(tmp_path, SMALL)
    (tmp_path / "Annotations").mkdir()
    (tmp_path / "JPEGImages").mkdir()
    with pytest.raises(DataError, match=r"Annotations: no \*.xml annotation files"):
        load_data(tmp_path, SMALL)


def test_demo_name_and_folder_named_demo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "demo").mkdir()
    write_png(tmp_path / "demo" / "x.png", 32, 32)
    (tmp_path / "demo" / "x.xml").write_text(voc_xml("x.png", [("1", (1, 1, 4, 4))]))
    monkeypatch.chdir(tmp_path)
    assert load_data("./demo", SMALL).ids == ("x.png#1",)
    assert len(load_data("demo", SMALL, limit=3)) == 3  # the embedded data set
