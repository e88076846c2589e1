"""Manifests (CSV and JSON): grouping of rows into samples, paths, masks, ground-truth policies and every
error path, each naming the file and row."""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import pytest
import torch
from data_helpers import SMALL, write_csv, write_json, write_mask, write_png

from sycam.data import DataError, DataWarning, load_data


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """Two 32×32 images (a.png, sub/b.png) and a mask for a.png."""
    write_png(tmp_path / "a.png", 32, 32)
    write_png(tmp_path / "sub" / "b.png", 32, 32, color=(10, 200, 10))
    write_mask(tmp_path / "masks" / "a.png", 32, 32, (20, 20, 24, 30))
    return tmp_path


def box_mask(*boxes: tuple[int, int, int, int]) -> torch.Tensor:
    m = torch.zeros(32, 32, dtype=torch.bool)
    for x1, y1, x2, y2 in boxes:
        m[y1:y2, x1:x2] = True
    return m


def test_csv_rows_group_into_samples(folder: Path) -> None:
    rows = [
        ["a.png", "Egyptian cat", 0, 0, 8, 8, None],
        ["sub/b.png", 967, 4, 4, 12, 12, None],
        ["a.png", 285, 10, 10, 16, 12, None],           # same image, same class: a second box
        ["a.png", "n07920052", 1, 2, 3, 4, None],        # same image, another class: another sample
        ["./a.png", "egyptian cat", None, None, None, None, "masks/a.png"],  # same file, a mask too
    ]
    s = load_data(write_csv(folder / "m.csv", rows), SMALL)
    assert s.ids == ("a.png#285", "sub/b.png#967", "a.png#967")
    assert s.labels.tolist() == [285, 967, 967]
    assert s.boxes is not None and s.masks is not None
    assert s.boxes[0].tolist() == [[0, 0, 8, 8], [10, 10, 16, 12]]
    assert s.boxes[2].tolist() == [[1, 2, 3, 4]]
    assert torch.equal(s.masks[0], box_mask((0, 0, 8, 8), (10, 10, 16, 12), (20, 20, 24, 30)))
    assert torch.equal(s.masks[1], box_mask((4, 4, 12, 12)))
    assert torch.equal(s.masks[2], box_mask((1, 2, 3, 4)))
    assert torch.equal(s.images[0], s.images[2])
    assert not torch.equal(s.images[0], s.images[1])
    assert s.images.dtype == torch.float32 and s.images.shape == (3, 3, 32, 32)


def test_json_matches_csv(folder: Path) -> None:
    rows = [["a.png", 285, 0, 0, 8, 8, None], ["a.png", 285, 10, 10, 16, 12, "masks/a.png"],
            ["sub/b.png", "espresso", 4, 4, 12, 12, None]]
    from_csv = load_data(write_csv(folder / "m.csv", rows), SMALL)
    items = [
        {"image": "a.png", "label": 285, "boxes": [[0, 0, 8, 8], [10, 10, 16, 12]], "mask": "masks/a.png"},
        {"image": "sub/b.png", "label": "espresso", "x1": 4, "y1": 4, "x2": 12, "y2": 12, "mask": None},
    ]
    for data in (items, {"samples": items}):
        from_json = load_data(write_json(folder / "m.json", data), SMALL)
        assert from_json.ids == from_csv.ids
        assert torch.equal(from_json.images, from_csv.images)
        assert torch.equal(from_json.masks, from_csv.masks)  # type: ignore[arg-type]
        assert all(torch.equal(a, b) for a, b in zip(from_json.boxes, from_csv.boxes, strict=True))  # type: ignore[arg-type]
    one = load_data(write_json(folder / "one.json", [{"image": "a.png", "label": 1, "box": [0, 0, 4, 4]}]), SMALL)
    assert one.boxes is not None and one.boxes[0].tolist() == [[0, 0, 4, 4]]


def test_columns_in_any_order_and_optional(folder: Path) -> None:
    p = folder / "m.csv"
    p.write_text("label, IMAGE ,x2,y2,x1,y1\n285,a.png,8,8,0,0\n")
    s = load_data(p, SMALL)
    assert s.boxes is not None and s.boxes[0].tolist() == [[0, 0, 8, 8]]
    p.write_text("image,label\na.png,285\nsub/b.png,967\n")
    s = load_data(p, SMALL)
    assert s.masks is None and s.boxes is None and len(s) == 2


def test_paths_are_relative_to_the_manifest(folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (folder / "lists").mkdir()
    write_csv(folder / "lists" / "m.csv", [["../a.png", 1, 0, 0, 4, 4, "../masks/a.png"],
                                           [str(folder / "sub" / "b.png"), 2, 0, 0, 4, 4, None]])
    monkeypatch.chdir(folder / "sub")
    s = load_data(folder / "lists" / "m.csv", SMALL)
    assert s.ids == ("../a.png#1", f"{(folder / 'sub' / 'b.png').as_posix()}#2")


def test_utf8_bom_and_blank_lines(folder: Path) -> None:
    p = folder / "m.csv"
    p.write_bytes("\ufeffimage,label\n\na.png,285\n,\n".encode())
    assert load_data(p, SMALL).ids == ("a.png#285",)


def test_limit_keeps_the_first_samples(folder: Path) -> None:
    p = write_csv(folder / "m.csv", [["a.png", 1, None, None, None, None, None],
                                    ["sub/b.png", 2, None, None, None, None, None],
                                    ["missing.png", 3, None, None, None, None, None]])
    assert load_data(p, SMALL, limit=2).labels.tolist() == [1, 2]
    with pytest.raises(DataError, match="limit"):
        load_data(p, SMALL, limit=0)


def test_fixed_label_and_label_map(folder: Path) -> None:
    p = folder / "m.csv"
    p.write_text("image\na.png\nsub/b.png\n")
    assert load_data(p, SMALL, label="moped").labels.tolist() == [665, 665]
    with pytest.raises(DataError, match=r"lacks the column.*label"):
        load_data(p, SMALL)
    write_csv(p, [["a.png", "kitty", None, None, None, None, None]])
    assert load_data(p, SMALL, label_map={"KITTY": "tabby"}).labels.tolist() == [281]


def test_unknown_labels_can_be_skipped_with_a_warning(folder: Path) -> None:
    p = write_csv(folder / "m.csv", [["a.png", "kitty", 0, 0, 4, 4, None], ["sub/b.png", 967, 0, 0, 4, 4, None]])
    with pytest.warns(DataWarning, match=r"skipped 1 annotation.*'kitty' ×1"):
        s = load_data(p, SMALL, unknown_labels="skip")
    assert s.ids == ("sub/b.png#967",)
    write_csv(p, [["a.png", "kitty", 0, 0, 4, 4, None]])
    with pytest.warns(DataWarning), pytest.raises(DataError, match="no samples"):
        load_data(p, SMALL, unknown_labels="skip")


# ---------------------------------------------------------------------------------------------- errors


def error_of(path: Path, **kwargs: object) -> str:
    with pytest.raises(DataError) as err:
        load_data(path, SMALL, **kwargs)  # type: ignore[arg-type]
    msg = str(err.value)
    assert "\n" not in msg
    return msg


@pytest.mark.parametrize("row, message", [
    (["a.png", 285, 8, 0, 8, 4, None], r"line 3: empty box \(8, 0, 8, 4\): need x2 > x1"),
    (["a.png", 285, 0, 6, 4, 2, None], r"line 3: empty box .*y2 > y1"),
    (["a.png", 285, 0, 0, 33, 4, None], r"line 3 \(a.png\): box \(0, 0, 33, 4\) lies outside the 32×32 image"),
    (["a.png", 285, -1, 0, 3, 4, None], r"line 3 \(a.png\): box .* lies outside"),
    (["a.png", 285, 0, 0, "", 4, None], "line 3: the box needs all of x1, y1, x2, y2 \\(x2 empty\\)"),
    (["a.png", 285, 0, "top", 4, 4, None], "line 3: y1 must be a number, got 'top'"),
    (["a.png", "kitty cat", 0, 0, 4, 4, None], "line 3: unknown label 'kitty cat'"),
    (["a.png", "crane", 0, 0, 4, 4, None], "line 3: label 'crane' is ambiguous.*134.*517"),
    (["a.png", 1000, 0, 0, 4, 4, None], "line 3: class index 1000 is out of range"),
    (["a.png", "", 0, 0, 4, 4, None], "line 3: the label is empty"),
    (["", 285, 0, 0, 4, 4, None], "line 3: the image path is empty"),
    (["nope.png", 285, 0, 0, 4, 4, None], "line 3: image file not found: .*nope.png"),
    (["broken.png", 285, 0, 0, 4, 4, None], "line 3: cannot read image .*broken.png"),
    (["a.png", 285, None, None, None, None, "masks/none.png"], "line 3: mask file not found"),
    (["a.png", 285, None, None, None, None, "small.png"],
     "line 3: mask small.png is 16×32 but its image a.png is 32×32"),
    (["a.png", 285, None, None, None, None, "empty.png"], "line 3: mask .*empty.png has no non-zero pixel"),
    (["a.png", 285, 0, 0, 4, 4, None, "extra"], "line 3: 8 cells but the header has 7 columns"),
])
def test_csv_errors_name_file_and_line(folder: Path, row: list[object], message: str) -> None:
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    write_mask(folder / "small.png", 16, 32, (0, 0, 4, 4))
    write_mask(folder / "empty.png", 32, 32, None)
    p = write_csv(folder / "m.csv", [["sub/b.png", 967, 0, 0, 4, 4, None], row])
    msg = error_of(p)
    assert msg.startswith(str(p))
    assert re.search(message, msg), msg


@pytest.mark.parametrize("header, message", [
    ("image,lable,x1,y1,x2,y2", r"line 1: unknown column\(s\) 'lable'"),
    ("image,x1,y1,x2,y2", r"line 1: the header lacks the column\(s\) label"),
    ("image,label,x1,y1,x2", "line 1: box columns must be all of x1,y1,x2,y2 or none"),
    ("image,label,label", r"line 1: column\(s\) label given twice"),
])
def test_csv_header_errors(folder: Path, header: str, message: str) -> None:
    p = write_csv(folder / "m.csv", [], header=header)
    assert re.search(message, error_of(p))


def test_empty_and_unknown_files(folder: Path) -> None:
    (folder / "empty.csv").write_text("")
    assert "the manifest is empty" in error_of(folder / "empty.csv")
    (folder / "header.csv").write_text("image,label\n")
    assert error_of(folder / "header.csv").endswith("header.csv: no samples")
    (folder / "m.txt").write_text("image,label\n")
    assert "unknown data file type '.txt'" in error_of(folder / "m.txt")
    assert "no such file or folder" in error_of(folder / "nothing.csv")


@pytest.mark.parametrize("data, message", [
    ('[{"image": "a.png", "label": 285,}]', "not valid JSON: Expecting property name enclosed in double quotes at "
                                            "line 1"),
    ('[{"image": "a.png", "label": NaN}]', r"m\.json: a non-finite number: NaN"),
    ('[{"image": "a.png", "label": 285, "box": [0, 0, 1e999, 1]}]', "a number out of range: 1e999"),
    ('[{"image": "a.png", "label": ' + "2" * 5000 + "}]", r"a number of 5000 characters \(the limit is 100\)"),
    ("[" * 5000 + "]" * 5000, "nested more than 32 levels deep"),
    ('{"image": "a.png"}', "expected a list of objects"),
    ('["a.png"]', "entry 1: expected an object"),
    ('[{"image": "a.png", "label": 1}, {"image": "a.png"}]', "entry 2: the label is missing"),
    ('[{"image": "a.png", "label": 1, "bbox": [0, 0, 1, 1]}]', r"entry 1: unknown key\(s\) 'bbox'"),
    ('[{"image": "a.png", "label": 1, "box": [0, 0, 1]}]', "entry 1: a box needs 4 numbers"),
    ('[{"image": "a.png", "label": 1, "box": "0 0 1 1"}]', "entry 1: box must be a list"),
    ('[{"image": "a.png", "label": 1, "boxes": [[0, 0, 1, 1], [5, 5, 2, 9]]}]', "entry 1 box 2: empty box"),
    ('[{"image": "a.png", "label": 1, "x1": 0, "y1": 0, "x2": 4}]', "entry 1: the box needs all of"),
    ('[{"image": "a.png", "label": 1, "box": [0, 0, 40, 4]}]', r"entry 1 \(a.png\): box .* lies outside"),
    ('[{"image": 3, "label": 1}]', "entry 1: image must be a path"),
    ('[{"image": "a.png", "label": 1, "mask": 5}]', "entry 1: mask must be a path"),
    ('[{"image": "a.png", "label": [1]}]', "entry 1: label must be"),
])
def test_json_errors_name_file_and_entry(folder: Path, data: str, message: str) -> None:
    p = folder / "m.json"
    p.write_text(data)
    msg = error_of(p)
    assert msg.startswith(str(p))
    assert re.search(message, msg), msg


# ---------------------------------------------------------------------------- missing ground truth


def test_missing_ground_truth_is_an_error_by_default(folder: Path) -> None:
    p = write_csv(folder / "m.csv", [["a.png", 1, 0, 0, 4, 4, None], ["sub/b.png", 2, None, None, None, None, None],
                                    ["a.png", 3, None, None, None, None, None]])
    msg = error_of(p)
    assert msg.startswith(f"{p} line 3: sample sub/b.png#2 has no ground truth, it has no box or mask")
    assert "(and 1 more)" in msg and "missing_gt='drop'" in msg


def test_missing_ground_truth_drop_and_empty(folder: Path) -> None:
    p = write_csv(folder / "m.csv", [["a.png", 1, 0, 0, 4, 4, None], ["sub/b.png", 2, None, None, None, None, None]])
    with pytest.warns(DataWarning, match=r"dropped 1 sample\(s\) without ground truth: sub/b.png#2"):
        s = load_data(p, SMALL, missing_gt="drop")
    assert s.ids == ("a.png#1",)
    with pytest.warns(DataWarning, match="keep an empty mask: sub/b.png#2"):
        s = load_data(p, SMALL, missing_gt="empty")
    assert s.ids == ("a.png#1", "sub/b.png#2") and s.masks is not None and s.boxes is not None
    assert int(s.masks[0].sum()) == 16 and not s.masks[1].any() and s.boxes[1].shape == (0, 4)
    assert "missing_gt must be one of" in error_of(p, missing_gt="ignore")


def test_ground_truth_outside_the_crop_counts_as_missing(tmp_path: Path) -> None:
    from data_helpers import TV

    write_png(tmp_path / "wide.png", 400, 300)  # the crop drops x < 68 of the original (58 px after resizing)
    p = write_csv(tmp_path / "m.csv", [["wide.png", 1, 0, 0, 60, 300, None], ["wide.png", 2, 100, 0, 200, 300, None]])
    with pytest.raises(DataError, match=r"line 2: sample wide.png#1 has no ground truth, its ground truth covers "
                                        r"no input pixel \(outside the model's centre crop"):
        load_data(p, TV)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        s = load_data(p, TV, missing_gt="drop")
    assert s.ids == ("wide.png#2",)
    # a box too thin to hold a pixel centre after resizing counts the same way
    write_csv(p, [["wide.png", 1, 150, 0, 150.3, 300, None], ["wide.png", 2, 100, 0, 200, 300, None]])
    with pytest.raises(DataError, match=r"line 2: sample wide.png#1 has no ground truth.*or too small"):
        load_data(p, TV)


def test_no_ground_truth_anywhere_gives_none(folder: Path) -> None:
    s = load_data(write_json(folder / "m.json", [{"image": "a.png", "label": 1}, {"image": "sub/b.png", "label": 2}]),
                  SMALL)
    assert s.masks is None and s.boxes is None and s.ids == ("a.png#1", "sub/b.png#2")


def test_mask_modes_and_channels(folder: Path) -> None:
    import numpy as np
    from PIL import Image

    rgb = np.zeros((32, 32, 3), dtype=np.uint8)
    rgb[0:2, 0:3, 2] = 1  # only the blue channel, value 1
    Image.fromarray(rgb).save(folder / "rgb.png")
    rgba = np.zeros((32, 32, 4), dtype=np.uint8)
    rgba[..., 3] = 255  # opaque everywhere, but black: no object except where coloured
    rgba[5:7, 5:6, 0] = 9
    Image.fromarray(rgba).save(folder / "rgba.png")
    write_mask(folder / "bw.png", 32, 32, (1, 1, 2, 2), mode="1")
    p = write_csv(folder / "m.csv", [["a.png", 1, None, None, None, None, "rgb.png"],
                                    ["a.png", 2, None, None, None, None, "rgba.png"],
                                    ["a.png", 3, None, None, None, None, "bw.png"]])
    s = load_data(p, SMALL)
    assert s.masks is not None
    assert [int(m.sum()) for m in s.masks] == [6, 2, 1]
