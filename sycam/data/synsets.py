"""Folders of images labelled by WordNet synset, without a manifest: ImageNet's train layout
(``n01440764/n01440764_10026.JPEG``: the folder names the class) and flat folders whose file names start with the
synset (``n01440764_tench.JPEG``, ``n01440764.png``: the ImageNet sample set's naming).

The class of an image is the synset of its nearest folder named like one (``n\\d{8}``, under the folder given),
else the synset at the start of its file name (followed by ``_``, ``-``, ``.`` or the end of the stem). Images
anywhere below the folder are found (sorted by path, so the order is the same on every machine); an image with
neither is an error naming it, unless a fixed ``label`` is given. Labels go through the data set's
:class:`~sycam.data.labels.Labeler`, so ``label_map`` and ``unknown_labels="skip"`` apply. Sample ids are the
image's path relative to the folder, then ``#class``, as for manifests; there are no boxes.

Example::

    samples = load_data("train/", net.preprocess, net.classes)      # train/n01440764/*.JPEG, ...
    samples = load_data("imagenet-samples/images", net.preprocess)  # n01440764_tench.JPEG, ...
"""

from __future__ import annotations

import re
from pathlib import Path

from .assemble import Target, add_target
from .errors import DataError
from .labels import Labeler
from .voc import IMAGE_EXTENSIONS

_SYNSET_FOLDER = re.compile(r"^n\d{8}$")
_SYNSET_NAME = re.compile(r"^(n\d{8})(?:[_\-.]|$)")
_EXTENSIONS = {e.lower() for e in IMAGE_EXTENSIONS}


def image_files(root: Path) -> list[Path]:
    """Every image below ``root`` (by extension), sorted by relative path; hidden files and folders skipped."""
    found = []
    for p in root.rglob("*"):
        rel = p.relative_to(root)
        if p.suffix.lower() in _EXTENSIONS and p.is_file() and not any(part.startswith(".") for part in rel.parts):
            found.append(p)
    return sorted(found, key=lambda p: p.relative_to(root).as_posix())


def synset_of(root: Path, image: Path) -> str | None:
    """The synset naming ``image``: its nearest synset-named folder below ``root``, else its file name's prefix."""
    for folder in reversed(image.relative_to(root).parts[:-1]):
        if _SYNSET_FOLDER.match(folder):
            return folder
    m = _SYNSET_NAME.match(image.stem)
    return m.group(1) if m else None


def looks_like_synset_folder(root: Path) -> bool:
    """Whether some image below ``root`` is named or foldered by a synset (the layout :func:`read_synset_folder`
    reads)."""
    return any(synset_of(root, p) is not None for p in image_files(root))


def read_synset_folder(root: Path, labeler: Labeler) -> list[Target]:
    """One target per image below ``root``, labelled by its synset (see the module doc); no image is read yet."""
    targets: dict[tuple[Path, int], Target] = {}
    for image in image_files(root):
        rel = image.relative_to(root).as_posix()
        where = f"{root / rel}"
        synset = synset_of(root, image)
        if synset is None and labeler.fixed is None:
            raise DataError(f"{where}: no WordNet synset in its folder or file name (expected n01440764/x.JPEG or "
                            "n01440764_name.JPEG); name it so, or pass a label or a manifest .csv")
        cls = labeler(synset, where)
        if cls is None:
            continue
        add_target(targets, image, cls, where, f"{rel}#{cls}")
    return list(targets.values())
