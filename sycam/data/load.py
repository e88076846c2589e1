"""``load_data``: one entry point for the demo, the photos check set, manifests, XML-annotated folders and
folders labelled by synset."""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path

from .assemble import MissingGT, Target, assemble
from .demo import build_demo
from .errors import DataError, DataWarning
from .labels import Labeler, LabelResolver
from .manifest import read_csv, read_json
from .photos import PHOTOS_NAME, build_photos
from .preprocess import Preprocess
from .samples import Samples
from .synsets import looks_like_synset_folder, read_synset_folder
from .voc import has_xml_layout, read_folder

DEMO = "demo"


def load_data(
    spec: str | Path,
    preprocess: Preprocess,
    classes: Sequence[str] | None = None,
    *,
    label: int | str | None = None,
    label_map: Mapping[str, int | str] | None = None,
    unknown_labels: str = "error",
    missing_gt: MissingGT = "error",
    annotations: str | Path | None = None,
    images: str | Path | None = None,
    limit: int | None = None,
) -> Samples:
    """Load a data set as model-ready :class:`Samples` (on the CPU).

    Args:
        spec: ``"demo"`` (the embedded composited data set; write ``./demo`` for a folder of that name),
            ``"photos"`` (real photos that ship in Python packages, with hand-drawn boxes), a manifest ``.csv``
            or ``.json``, a folder of images with PASCAL-VOC/ImageNet XML annotations, or a folder of images
            named or foldered by WordNet synset (``n01440764/x.JPEG``, ``n01440764_tench.JPEG``; no manifest,
            no boxes; :mod:`sycam.data.synsets`).
        preprocess: the model's preprocessing; images, boxes and masks all go through it.
        classes: the model's class names in index order (``LoadedModel.classes``); ``None`` for ImageNet-1k.
        label: the class of every sample, overriding the files (index, synset or name).
        label_map: names used in the files → class (index, synset or name), e.g. ``{"cat": 285}`` for VOC.
        unknown_labels: ``"error"`` (default) or ``"skip"`` rows/objects whose label names no class (a
            :class:`DataWarning` counts them).
        missing_gt: samples without ground truth in a data set where others have some: ``"error"``
            (default), ``"drop"`` or ``"empty"`` (all-False mask); see :func:`sycam.data.assemble.assemble`.
        annotations, images: XML and image folders, overriding the layout search for a folder ``spec``.
        limit: keep only the first ``limit`` samples (in file order), before any image is read.

    Raises:
        DataError: any bad input, with a one-line message naming the file and row.

    Example::

        net = sycam.load_model("resnet50")
        samples = load_data("photos", net.preprocess, net.classes)
        voc = load_data("VOC2012/", net.preprocess, net.classes, label_map={"cat": 285}, unknown_labels="skip")
    """
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise DataError(f"limit must be a positive integer, got {limit!r}")
    if isinstance(spec, str) and spec.strip().lower() in (DEMO, PHOTOS_NAME):
        name = spec.strip().lower()
        if label is not None or label_map or annotations is not None or images is not None:
            raise DataError(f"the {name} data set has fixed labels and boxes: label, label_map, annotations and "
                            f"images do not apply to it")
        if classes is not None and len(classes) != 1000:
            raise DataError(f"the {name} data set has ImageNet-1k targets, but the model has {len(classes)} classes")
        samples = build_demo(preprocess) if name == DEMO else build_photos(preprocess)
        return samples if limit is None else samples.subset(slice(0, limit))
    path = Path(spec).expanduser()
    labeler = Labeler(LabelResolver(classes), label=label, label_map=label_map, unknown=unknown_labels)
    targets: list[Target]
    if path.is_dir() and annotations is None and images is None and not has_xml_layout(path) \
            and looks_like_synset_folder(path):
        targets = read_synset_folder(path, labeler)
    elif path.is_dir():
        targets = read_folder(path, labeler, None if annotations is None else Path(annotations),
                              None if images is None else Path(images))
    elif path.is_file():
        suffix = path.suffix.lower()
        if suffix == ".csv":
            targets = read_csv(path, labeler)
        elif suffix == ".json":
            targets = read_json(path, labeler)
        else:
            raise DataError(f"{path}: unknown data file type {path.suffix!r} (expected a .csv or .json manifest, "
                            f"a folder with XML annotations, or 'demo')")
    else:
        raise DataError(f"{path}: no such file or folder (expected 'demo', a .csv/.json manifest, or a folder "
                        f"with XML annotations)")
    if labeler.skipped:
        warnings.warn(f"{path}: skipped {sum(labeler.skipped.values())} annotation(s) with unknown labels: "
                      f"{labeler.skipped_summary()}", DataWarning, stacklevel=2)
    if not targets:
        raise DataError(f"{path}: no samples")
    if limit is not None:
        targets = targets[:limit]
    return assemble(targets, preprocess, str(path), missing_gt)
