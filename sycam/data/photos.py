"""The ``photos`` check set: real, un-composited photos that ship inside Python packages, with boxes drawn
by hand — to see whether what was synthesized on the composited demo holds on real photos.

Each photo goes through the same path as any user image (read, EXIF, model preprocessing with its centre
crop); boxes are in the pixels of the photo file as displayed, ``x1, y1, x2, y2`` with pixel-edge
coordinates, and are clipped by the crop like any other box. A photo whose file has another size than the
one the boxes were drawn on (a changed package) is an error rather than a silently misplaced box.

Sources: every sample names its photo as ``"photo:<package>/<name>"``, the same name the demo gives the
photos it crops, so :func:`sycam.data.shared_sources` tells which photos a demo split and this set share:
``coffee``, ``stereo_motorcycle`` (its left view) and ``camera`` are three of the demo's photos, here whole
and un-composited; ``rocket``, ``clock_motion`` (scikit-image), ``china.jpg``, ``flower.jpg``
(scikit-learn) and ``grace_hopper.jpg`` (matplotlib) appear nowhere in the demo. (``chelsea`` is left out:
the cat fills the model's centre crop, so its box would be the whole input and localize nothing.)
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass, replace
from pathlib import Path

from .assemble import Target, assemble
from .errors import DataError
from .images import displayed_size
from .preprocess import Preprocess
from .samples import Samples

Box = tuple[float, float, float, float]


@dataclass(frozen=True)
class Photo:
    """One photo of the set: where it ships, its size, its ImageNet class and the boxes of that object."""

    package: str  # the import name of the package that ships it
    folder: str  # inside the package
    file: str
    source: str  # "photo:<package>/<name>" as in Samples.sources (the demo's name for its own photos)
    size: tuple[int, int]  # width, height the boxes were drawn on
    label: int
    boxes: tuple[Box, ...]
    what: str  # what the boxes hold, for the docs


PHOTOS: tuple[Photo, ...] = (
    Photo("skimage", "data", "coffee.png", "photo:skimage/coffee", (600, 400), 967,
          ((174, 16, 411, 296),), "the cup of espresso with its handle (not the saucer and spoon)"),
    Photo("skimage", "data", "motorcycle_left.png", "photo:skimage/stereo_motorcycle", (741, 500), 665,
          ((92, 74, 688, 452),), "the motorcycle"),
    Photo("skimage", "data", "camera.png", "photo:skimage/camera", (512, 512), 872,
          ((228, 138, 406, 508),), "tripod with the camera on it"),
    Photo("skimage", "data", "rocket.jpg", "photo:skimage/rocket", (640, 427), 657,
          ((302, 126, 339, 410),), "the rocket on its pad (not the towers)"),
    Photo("skimage", "data", "clock_motion.png", "photo:skimage/clock_motion", (400, 300), 892,
          ((140, 92, 285, 215),), "the motion-blurred clock face"),
    Photo("sklearn", "datasets/images", "china.jpg", "photo:sklearn/china.jpg", (640, 427), 698,
          ((60, 28, 372, 395),), "the pagoda (Tower of Buddhist Incense)"),
    Photo("sklearn", "datasets/images", "flower.jpg", "photo:sklearn/flower.jpg", (640, 427), 985,
          ((168, 86, 447, 359), (288, 373, 447, 427)), "the dahlia and the second bloom below it"),
    Photo("matplotlib", "mpl-data/sample_data", "grace_hopper.jpg", "photo:matplotlib/grace_hopper.jpg",
          (512, 600), 652, ((15, 318, 512, 600), (150, 22, 372, 140)), "the uniform jacket and the cap"),
)
"""the photos, boxes drawn by hand on the displayed image (checked by eye in ``docs/photos_samples.png``)"""

PHOTOS_NAME = "photos"
_PIP = {"skimage": "scikit-image", "sklearn": "scikit-learn", "matplotlib": "matplotlib"}


def photo_path(photo: Photo) -> Path:
    """Where ``photo`` lies in its installed package (the package is located, not imported)."""
    spec = importlib.util.find_spec(photo.package)
    if spec is None or not spec.submodule_search_locations:
        raise DataError(f"the photos data set needs the package {_PIP[photo.package]} (for {photo.file}): "
                        f"pip install {_PIP[photo.package]} (or pip install 'sycam[photos]')")
    return Path(next(iter(spec.submodule_search_locations))) / photo.folder / photo.file


def photo_id(photo: Photo) -> str:
    """The sample id of a photo: ``"<package>/<file>#<class>"``."""
    return f"{photo.package}/{photo.file}#{photo.label}"


def build_photos(preprocess: Preprocess) -> Samples:
    """The ``photos`` check set for a model with this preprocessing (see the module doc).

    Example::

        model = load_model("efficientnet_lite0")
        photos = build_photos(model.preprocess)          # or load_data("photos", model.preprocess)
        shared_sources(synthesis, photos)                # the demo photos both hold, if any
    """
    targets = []
    for photo in PHOTOS:
        path = photo_path(photo)
        where = f"photos: {photo.package}/{photo.file}"
        size = displayed_size(path, where)
        if size != photo.size:
            raise DataError(f"{where} is {size[0]}×{size[1]} but its boxes were drawn on a {photo.size[0]}×"
                            f"{photo.size[1]} image (another version of {_PIP[photo.package]}?)")
        target = Target(path, photo.label, where, photo_id(photo))
        target.boxes.extend((box, where) for box in photo.boxes)
        targets.append(target)
    samples = assemble(targets, preprocess, PHOTOS_NAME)
    return replace(samples, sources=tuple((photo.source,) for photo in PHOTOS))
