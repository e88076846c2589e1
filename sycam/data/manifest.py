"""Manifests: a CSV or JSON list of ``image, label, x1, y1, x2, y2, mask, group`` rows.

CSV: a header row naming the columns (``image`` and ``label`` required, the others optional; any order;
an unknown column is an error, so that a typo never drops ground truth silently), then one row per box.
``label`` is a class index, synset or class name (see :mod:`sycam.data.labels`); the box is in pixels
of the original image (all four cells empty for none); ``mask`` is the path of an image whose non-zero
pixels are the object. Paths are relative to the manifest's folder. Rows with the same image and label
are one sample with several boxes (and masks, unioned); the same image with another label is another
sample. ``group`` (optional) names what samples share — the source photo, the object, the scene: samples of one
group are kept on one side of a split and resampled together by the clustered bootstrap
(:func:`sycam.data.split.bootstrap_groups`).

JSON: a list of objects (or ``{"samples": [...]}``) with the same keys, where the box may also be given
as ``"box": [x1, y1, x2, y2]`` or ``"boxes": [[x1, y1, x2, y2], ...]``.

Errors name the file and the CSV line (the header is line 1) or the JSON entry (counted from 1).
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Mapping
from pathlib import Path

from .._io import JSONError, loads_strict
from .assemble import Target, add_target
from .errors import DataError
from .geometry import Box, parse_box
from .labels import Labeler

COLUMNS = ("image", "label", "x1", "y1", "x2", "y2", "mask", "group")
BOX_COLUMNS = ("x1", "y1", "x2", "y2")
JSON_KEYS = (*COLUMNS, "box", "boxes")


def _path(base: Path, text: str) -> Path:
    """A manifest's path, relative to the manifest's folder (``~`` is a name like any other, not ``$HOME``)."""
    return Path(os.path.normpath(base / Path(text)))


def _row(
    targets: dict[tuple[Path, int], Target],
    base: Path,
    where: str,
    image: object,
    label: object,
    boxes: list[Box],
    mask: object,
    labeler: Labeler,
    group: object = None,
) -> None:
    if not isinstance(image, str):
        raise DataError(f"{where}: image must be a path, got {image!r}")
    if not image.strip():
        raise DataError(f"{where}: the image path is empty")
    if mask is not None and not isinstance(mask, str):
        raise DataError(f"{where}: mask must be a path, got {mask!r}")
    if group is not None and (isinstance(group, bool) or not isinstance(group, str | int)):
        raise DataError(f"{where}: group must be a name, got {group!r}")
    group_name = str(group).strip() if group is not None else ""
    cls = labeler(label, where)
    if cls is None:
        return
    image_path = _path(base, image.strip())
    mask_path = _path(base, mask.strip()) if mask and mask.strip() else None
    sample_id = f"{Path(image.strip()).as_posix()}#{cls}"
    if not boxes:
        add_target(targets, image_path, cls, where, sample_id, mask=mask_path, group=group_name or None)
    for i, box in enumerate(boxes):
        add_target(targets, image_path, cls, where, sample_id, box=box, mask=mask_path if i == 0 else None,
                   group=group_name or None)


def read_csv(path: Path, labeler: Labeler) -> list[Target]:
    """Parse a CSV manifest into targets (no image is read yet)."""
    name = str(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{name}: cannot read the manifest: {exc}") from None
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader, None)
    except csv.Error as exc:
        raise DataError(f"{name} line 1: bad CSV: {exc}") from None
    if header is None or not any(h.strip() for h in header):
        raise DataError(f"{name}: the manifest is empty (need a header row {','.join(COLUMNS)})")
    columns = [h.strip().lower() for h in header]
    unknown = [c for c in columns if c not in COLUMNS]
    if unknown:
        raise DataError(
            f"{name} line 1: unknown column(s) {', '.join(repr(c) for c in unknown)}; "
            f"the columns are {','.join(COLUMNS)}"
        )
    dupes = sorted({c for c in columns if columns.count(c) > 1})
    if dupes:
        raise DataError(f"{name} line 1: column(s) {', '.join(dupes)} given twice")
    need = ["image"] + ([] if labeler.fixed is not None else ["label"])
    missing = [c for c in need if c not in columns]
    if missing:
        raise DataError(
            f"{name} line 1: the header lacks the column(s) {', '.join(missing)} (header: {','.join(columns)})"
        )
    partial = [c for c in BOX_COLUMNS if c in columns]
    if partial and len(partial) != 4:
        raise DataError(f"{name} line 1: box columns must be all of x1,y1,x2,y2 or none, got {','.join(partial)}")
    base = path.parent.resolve()
    targets: dict[tuple[Path, int], Target] = {}
    while True:
        try:
            cells = next(reader, None)
        except csv.Error as exc:
            raise DataError(f"{name} line {reader.line_num}: bad CSV: {exc}") from None
        if cells is None:
            break
        where = f"{name} line {reader.line_num}"
        if not any(c.strip() for c in cells):
            continue
        if len(cells) > len(columns):
            raise DataError(f"{where}: {len(cells)} cells but the header has {len(columns)} columns")
        row = {c: (cells[i].strip() if i < len(cells) else "") for i, c in enumerate(columns)}
        boxes: list[Box] = []
        if partial:
            values = [row[c] for c in BOX_COLUMNS]
            if any(values):
                empty = [c for c, v in zip(BOX_COLUMNS, values, strict=True) if not v]
                if empty:
                    raise DataError(f"{where}: the box needs all of x1, y1, x2, y2 ({', '.join(empty)} empty)")
                boxes.append(parse_box(values, where))
        _row(targets, base, where, row["image"], row.get("label", ""), boxes, row.get("mask") or None, labeler,
             row.get("group") or None)
    return list(targets.values())


def _json_boxes(item: Mapping[str, object], where: str) -> list[Box]:
    boxes: list[Box] = []
    corners = [item.get(c) for c in BOX_COLUMNS]
    if any(v is not None and v != "" for v in corners):
        if any(v is None or v == "" for v in corners):
            raise DataError(f"{where}: the box needs all of x1, y1, x2, y2")
        boxes.append(parse_box(corners, where))
    box = item.get("box")
    if box is not None:
        if not isinstance(box, list):
            raise DataError(f"{where}: box must be a list [x1, y1, x2, y2], got {box!r}")
        boxes.append(parse_box(box, where))
    many = item.get("boxes")
    if many is not None:
        if not isinstance(many, list) or not all(isinstance(b, list) for b in many):
            raise DataError(f"{where}: boxes must be a list of [x1, y1, x2, y2] lists, got {many!r}")
        boxes.extend(parse_box(b, f"{where} box {k + 1}") for k, b in enumerate(many))
    return boxes


def read_json(path: Path, labeler: Labeler) -> list[Target]:
    """Parse a JSON manifest into targets (no image is read yet)."""
    name = str(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{name}: cannot read the manifest: {exc}") from None
    try:
        data = loads_strict(text)
    except JSONError as exc:
        raise DataError(f"{name}: {exc}") from None
    if isinstance(data, dict) and set(data) == {"samples"}:
        data = data["samples"]
    if not isinstance(data, list):
        raise DataError(f'{name}: expected a list of objects (or {{"samples": [...]}}), got {type(data).__name__}')
    base = path.parent.resolve()
    targets: dict[tuple[Path, int], Target] = {}
    for k, item in enumerate(data, start=1):
        where = f"{name} entry {k}"
        if not isinstance(item, dict):
            raise DataError(f"{where}: expected an object with keys image, label, ..., got {type(item).__name__}")
        unknown = [key for key in item if key not in JSON_KEYS]
        if unknown:
            raise DataError(
                f"{where}: unknown key(s) {', '.join(repr(u) for u in unknown)}; the keys are {', '.join(JSON_KEYS)}"
            )
        if "label" not in item and labeler.fixed is None:
            raise DataError(f"{where}: the label is missing")
        mask = item.get("mask")
        _row(
            targets,
            base,
            where,
            item.get("image"),
            item.get("label"),
            _json_boxes(item, where),
            mask if mask != "" else None,
            labeler,
            item.get("group") if item.get("group") != "" else None,
        )
    return list(targets.values())
