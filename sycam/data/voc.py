"""Folders of images with PASCAL-VOC-style XML annotations (PASCAL VOC, ImageNet-val/ILSVRC boxes).

One XML file per image::

    <annotation>
      <filename>ILSVRC2012_val_00000001.JPEG</filename>   (the extension may be missing, as in ImageNet)
      <size><width>500</width><height>375</height></size> (optional; checked against the image)
      <object>
        <name>n01751748</name>                            (synset, class index or name; see label_map)
        <bndbox><xmin>111</xmin><ymin>108</ymin><xmax>441</xmax><ymax>336</ymax></bndbox>
      </object>
      ...
    </annotation>

Folder layouts found automatically under the folder given (first match wins): ``Annotations/`` +
``JPEGImages/`` (PASCAL VOC), ``Annotations/CLS-LOC/val/`` + ``Data/CLS-LOC/val/`` (the ILSVRC/Kaggle
layout), ``annotations/`` + ``images/``, or XML files next to the images. ``annotations=`` and ``images=``
override the search.

Coordinates follow the PASCAL VOC devkit: 1-based and inclusive, so ``xmin=1, xmax=W`` spans the whole
width; the box in pixel-edge coordinates is ``[xmin − 1, xmax] × [ymin − 1, ymax]``. ImageNet's files use
the same format but often write 0 for the first pixel, so coordinates up to one pixel outside the image
are clipped to it; anything further out is an error. Objects with the same class in one file are one
sample with several boxes; an object without ``<bndbox>`` is a sample without ground truth.
"""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from pathlib import Path

from .assemble import Target, add_target
from .errors import DataError
from .geometry import parse_box
from .images import displayed_size
from .labels import Labeler

IMAGE_EXTENSIONS = (".JPEG", ".jpg", ".jpeg", ".JPG", ".png", ".PNG", ".bmp", ".tif", ".tiff", ".webp")
LAYOUTS = (
    ("Annotations", "JPEGImages"),
    ("Annotations/CLS-LOC/val", "Data/CLS-LOC/val"),
    ("annotations", "images"),
)
XML_TOLERANCE = 1.0


def find_layout(root: Path, annotations: Path | None = None, images: Path | None = None) -> tuple[Path, Path]:
    """``(annotation folder, image folder)`` for a data set folder (see the module doc)."""
    if annotations is not None or images is not None:
        ann = Path(annotations) if annotations is not None else root
        img = Path(images) if images is not None else root
        for what, folder in (("annotation", ann), ("image", img)):
            if not folder.is_dir():
                raise DataError(f"{folder}: the {what} folder does not exist")
        return ann, img
    for ann_name, img_name in LAYOUTS:
        if (root / ann_name).is_dir() and (root / img_name).is_dir():
            return root / ann_name, root / img_name
    if any(root.glob("*.xml")):
        return root, root
    looked = ", ".join(f"{a}/ + {i}/" for a, i in LAYOUTS)
    raise DataError(
        f"{root}: no XML annotations found (looked for {looked}, or *.xml in the folder); "
        f"nor images named or foldered by WordNet synset (n01440764/x.JPEG, n01440764_name.JPEG); "
        f"for other images without XML boxes write a manifest .csv"
    )


def has_xml_layout(root: Path) -> bool:
    """Whether ``root`` holds one of the XML layouts :func:`find_layout` finds without being told."""
    return any((root / a).is_dir() and (root / i).is_dir() for a, i in LAYOUTS) or any(root.glob("*.xml"))


def _find_image(xml: Path, filename: str | None, images: Path) -> Path:
    """The image of an XML file: ``<filename>`` in the image folder, else its stem with a usual image
    extension (ImageNet writes no extension); without ``<filename>``, the XML file's stem."""
    name = filename.strip() if filename and filename.strip() else None
    if name is not None and (images / name).is_file():
        return images / name
    stem = Path(name).stem if name is not None else xml.stem
    for ext in IMAGE_EXTENSIONS:
        if (images / (stem + ext)).is_file():
            return images / (stem + ext)
    raise DataError(f"{xml}: image {name or stem!r} not found in {images}")


def _number(obj: ET.Element, tag: str, where: str) -> float:
    text = obj.findtext(f"bndbox/{tag}")
    if text is None or not text.strip():
        raise DataError(f"{where}: <bndbox> lacks <{tag}>")
    try:
        return float(text)
    except ValueError:
        raise DataError(f"{where}: <{tag}> must be a number, got {text.strip()!r}") from None


def read_xml(xml: Path, images: Path, labeler: Labeler, targets: dict[tuple[Path, int], Target]) -> None:
    """Add the objects of one XML annotation file to ``targets``."""
    try:
        root = ET.parse(xml).getroot()
    except (ET.ParseError, OSError) as exc:
        raise DataError(f"{xml}: not a readable XML file: {exc}") from None
    if root.tag != "annotation":
        raise DataError(f"{xml}: expected an <annotation> root element, got <{root.tag}>")
    image = _find_image(xml, root.findtext("filename"), images)
    declared = (root.findtext("size/width"), root.findtext("size/height"))
    if all(d and d.strip() for d in declared):
        try:
            dw, dh = int(float(declared[0])), int(float(declared[1]))  # type: ignore[arg-type]
        except ValueError:
            raise DataError(f"{xml}: <size> must hold numbers, got {declared}") from None
        actual = displayed_size(image, str(xml))
        if dw > 0 and dh > 0 and (dw, dh) != actual:
            raise DataError(f"{xml}: <size> says {dw}×{dh} but the image {image.name} is {actual[0]}×{actual[1]}")
    image_id = Path(os.path.relpath(image, images)).as_posix()
    for k, obj in enumerate(root.findall("object"), start=1):
        where = f"{xml} object {k}"
        name = obj.findtext("name")
        if name is None or not name.strip():
            raise DataError(f"{where}: no <name>")
        cls = labeler(name.strip(), where)
        if cls is None:
            continue
        if obj.find("bndbox") is None:
            add_target(targets, image, cls, where, f"{image_id}#{cls}", tolerance=XML_TOLERANCE)
            continue
        xmin, ymin, xmax, ymax = (_number(obj, t, where) for t in ("xmin", "ymin", "xmax", "ymax"))
        if xmax < xmin or ymax < ymin:
            raise DataError(f"{where}: empty box (xmin {xmin:g}, ymin {ymin:g}, xmax {xmax:g}, ymax {ymax:g}): "
                            f"need xmax >= xmin and ymax >= ymin")
        box = parse_box([xmin - 1, ymin - 1, xmax, ymax], where)
        add_target(targets, image, cls, where, f"{image_id}#{cls}", box=box, tolerance=XML_TOLERANCE)


def read_folder(
    root: Path, labeler: Labeler, annotations: Path | None = None, images: Path | None = None
) -> list[Target]:
    """Parse every ``*.xml`` of the annotation folder (sorted by name) into targets."""
    ann, img = find_layout(root, annotations, images)
    files = sorted(ann.glob("*.xml"))
    if not files:
        raise DataError(f"{ann}: no *.xml annotation files")
    targets: dict[tuple[Path, int], Target] = {}
    for xml in files:
        read_xml(xml, img, labeler, targets)
    return list(targets.values())
