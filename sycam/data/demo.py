"""The embedded ``demo`` data set: photos shipped with scikit-image pasted onto textures shipped with
scikit-image, at known boxes, so the ground truth is exact and nothing is downloaded.

Objects (tight crops of the photos, in original pixels ``x1, y1, x2, y2``; the crop *is* the box):

- ``cat``: ``chelsea()`` crop ``(0, 0, 395, 300)`` → 285 *Egyptian cat*
- ``tripod``: ``camera()`` (grayscale) crop ``(228, 138, 406, 508)``, tripod and camera → 872 *tripod*
- ``espresso``: ``coffee()`` crop ``(76, 16, 480, 392)`` (cup, spoon and saucer) → 967 *espresso*
- ``shuttle``: ``astronaut()`` crop ``(352, 0, 470, 290)``, the model shuttle on its stand → 812 *space shuttle*
- ``moped``: ``stereo_motorcycle()[0]`` crop ``(90, 72, 688, 452)`` → 665 *moped*

Backgrounds: ``grass()``, ``moon()``, ``brick()`` and ``gravel()`` (grayscale, tinted) and
``immunohistochemistry()`` ("tissue") and ``hubble_deep_field()`` ("galaxies") in colour; each scene views a
different window of its texture.

**Worlds.** Photos and textures are grouped into three worlds that share nothing, so that a split can give
every side its own object photos and textures (the samples name them in :attr:`Samples.sources`):

1. cat + tripod on grass and tissue; 2. espresso + shuttle on moon and galaxies; 3. moped on brick and gravel.

Scenes, built directly at the model's input size ``S`` (no resize or crop afterwards): 16 single-object
scenes per world (each object on each of its world's textures in 4 layouts, or 8 for the one-object world),
the worlds' scenes interleaved so that a prefix (``limit=``) or every 2nd or 3rd sample holds all three;
the object's longer side is 55, 60, 65, 70 or 75 % of ``S``, it sits at one of 9 anchor positions (corners,
edge middles, centre) and every other scene mirrors it left-right. Each two-object world adds one scene with
both objects in opposite corners (longer sides 50 % of ``S``, so the boxes never overlap); each object is
its own sample with its own target and box: the map for "espresso" belongs on the cup, not on the shuttle.

So 50 images and 52 samples (ids like ``cat_on_grass_00#285`` and ``cat+tripod_on_grass_16#872``). The
build uses no random numbers, is bitwise deterministic (tested across processes, digest pinned) and takes
well under a second. Measured with the real EfficientNet-Lite0: the intended class is the top-1 for 44 of
the 48 single-object samples and in the top-5 for all 52 (see ``docs/data.md``).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import numpy as np
import torch
from PIL import Image

from .errors import DataError
from .preprocess import Preprocess
from .samples import Samples

IntBox = tuple[int, int, int, int]

OBJECTS: dict[str, tuple[str, IntBox, int]] = {
    "cat": ("chelsea", (0, 0, 395, 300), 285),
    "tripod": ("camera", (228, 138, 406, 508), 872),
    "espresso": ("coffee", (76, 16, 480, 392), 967),
    "shuttle": ("astronaut", (352, 0, 470, 290), 812),
    "moped": ("stereo_motorcycle", (90, 72, 688, 452), 665),
}
"""name → (scikit-image photo, tight crop x1, y1, x2, y2 in the photo, ImageNet class)"""
TEXTURES: dict[str, tuple[str, tuple[float, float, float] | None]] = {
    "grass": ("grass", (0.55, 0.85, 0.35)),
    "tissue": ("immunohistochemistry", None),
    "moon": ("moon", (0.75, 0.8, 0.95)),
    "galaxies": ("hubble_deep_field", None),
    "brick": ("brick", (1.0, 0.55, 0.42)),
    "gravel": ("gravel", (0.92, 0.86, 0.74)),
}
"""texture → (scikit-image image, RGB tint multiplied into a grayscale texture; ``None`` keeps a colour one)"""
WORLDS: tuple[tuple[tuple[str, ...], tuple[str, str]], ...] = (
    (("cat", "tripod"), ("grass", "tissue")),
    (("espresso", "shuttle"), ("moon", "galaxies")),
    (("moped",), ("brick", "gravel")),
)
"""the three worlds: object photos composited onto two textures each, never with anything of another world, so that a
split can give every side its own photos and textures (see ``sycam.data.split``)"""
SIZES = (0.55, 0.60, 0.65, 0.70, 0.75)  # the object's longer side, as a share of the image side
ANCHORS = ((0.0, 0.0), (1.0, 1.0), (0.5, 0.5), (1.0, 0.0), (0.0, 1.0), (0.5, 0.0), (0.0, 0.5), (1.0, 0.5), (0.5, 1.0))
PAIR_ANCHORS = (((0.0, 0.0), (1.0, 1.0)), ((1.0, 0.0), (0.0, 1.0)))  # the two diagonals
SINGLES_PER_WORLD = 16  # single-object scenes per world, shared equally by its objects and textures
PAIR_SIZE = 0.5  # on a diagonal two objects whose longer sides are half the image never overlap


def photo_source(name: str) -> str:
    """The source name of an object's photo, as in :attr:`Samples.sources` (``"photo:skimage/chelsea"``)."""
    return f"photo:skimage/{OBJECTS[name][0]}"


def texture_source(name: str) -> str:
    """The source name of a texture (``"texture:skimage/brick"``)."""
    return f"texture:skimage/{TEXTURES[name][0]}"


@dataclass(frozen=True)
class Scene:
    """One demo image: ``image`` ``(S, S, 3)`` uint8 and its objects as ``(name, class, box)`` with integer
    boxes ``x1, y1, x2, y2`` in its pixels (pixel-edge coordinates: the object fills columns x1…x2-1)."""

    name: str
    texture: str
    image: np.ndarray
    objects: tuple[tuple[str, int, IntBox], ...]

    @property
    def sources(self) -> tuple[str, ...]:
        """The photos and the texture this scene is made of."""
        return (*(photo_source(o[0]) for o in self.objects), texture_source(self.texture))


def _skimage(name: str) -> np.ndarray:
    import skimage.data

    data = getattr(skimage.data, name)()
    return data[0] if isinstance(data, tuple) else data


@cache
def _object_crop(name: str) -> Image.Image:
    photo, box, _ = OBJECTS[name]
    return Image.fromarray(_skimage(photo)).convert("RGB").crop(box)


@cache
def _texture(name: str) -> np.ndarray:
    photo, tint = TEXTURES[name]
    image = _skimage(photo)
    if tint is None:
        out = np.ascontiguousarray(image[..., :3])
    else:
        gray = image.astype(np.float32) / 255.0
        rgb = np.clip(gray[..., None] * (np.asarray(tint, dtype=np.float32) * 1.1), 0.0, 1.0)
        out = (rgb * 255.0 + 0.5).astype(np.uint8)
    out.flags.writeable = False
    return out


@cache
def _texture_at(name: str, window: int, size: int) -> np.ndarray:
    """The texture scaled so that a ``window``-pixel square of it becomes ``size`` pixels."""
    tex = _texture(name)
    scaled = round(tex.shape[1] * size / window), round(tex.shape[0] * size / window)
    out = np.asarray(Image.fromarray(tex).resize(scaled, Image.Resampling.LANCZOS))
    out.flags.writeable = False
    return out


def _background(texture: str, k: int, size: int) -> Image.Image:
    """Scene ``k``'s view of the texture: a window of the texture's shorter side minus 0, 40, … 160 pixels
    at a varying offset."""
    tex = _texture_at(texture, min(_texture(texture).shape[:2]) - 40 * (k % 5), size)
    room_y, room_x = tex.shape[0] - size, tex.shape[1] - size
    ox, oy = (k * 37) % (room_x + 1), (k * 61) % (room_y + 1)
    return Image.fromarray(np.ascontiguousarray(tex[oy:oy + size, ox:ox + size]))


@cache
def _object_at(name: str, w: int, h: int) -> Image.Image:
    return _object_crop(name).resize((w, h), Image.Resampling.LANCZOS)


def _paste(canvas: Image.Image, name: str, extent: float, anchor: tuple[float, float], flip: bool) -> IntBox:
    """Paste object ``name`` with its longer side ``extent × canvas side`` at ``anchor``; return its box."""
    crop = _object_crop(name)
    size = canvas.width
    long = max(1, round(extent * size))
    if crop.width >= crop.height:
        w, h = long, max(1, round(long * crop.height / crop.width))
    else:
        w, h = max(1, round(long * crop.width / crop.height)), long
    obj = _object_at(name, w, h)
    if flip:
        obj = obj.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    x, y = round(anchor[0] * (size - w)), round(anchor[1] * (size - h))
    canvas.paste(obj, (x, y))
    return x, y, x + w, y + h


def demo_scenes(size: int = 224) -> list[Scene]:
    """The 50 demo scenes at ``size`` × ``size`` pixels (see the module doc)."""
    if size < 32:
        raise DataError(f"the demo needs an input size of at least 32 pixels, got {size}")
    worlds: list[list[Scene]] = []
    k = 0
    for w, (names, textures) in enumerate(WORLDS):
        scenes: list[Scene] = []
        worlds.append(scenes)
        for _ in range(SINGLES_PER_WORLD // (len(names) * len(textures))):
            for texture in textures:
                for name in names:
                    canvas = _background(texture, k, size)
                    box = _paste(canvas, name, SIZES[k % len(SIZES)], ANCHORS[(2 * k) % len(ANCHORS)], k % 2 == 1)
                    objects = ((name, OBJECTS[name][2], box),)
                    scenes.append(Scene(f"{name}_on_{texture}_{k:02d}", texture, np.asarray(canvas), objects))
                    k += 1
        if len(names) == 2:
            texture = textures[w % 2]
            a, b = names if w % 2 == 0 else names[::-1]
            canvas = _background(texture, k, size)
            anchor_a, anchor_b = PAIR_ANCHORS[w % len(PAIR_ANCHORS)]
            box_a = _paste(canvas, a, PAIR_SIZE, anchor_a, False)
            box_b = _paste(canvas, b, PAIR_SIZE, anchor_b, True)
            objects = ((a, OBJECTS[a][2], box_a), (b, OBJECTS[b][2], box_b))
            scenes.append(Scene(f"{a}+{b}_on_{texture}_{k:02d}", texture, np.asarray(canvas), objects))
            k += 1
    return _interleave(worlds)


def _interleave(worlds: list[list[Scene]]) -> list[Scene]:
    """The worlds' scenes mixed in the repeating order 1 2 3 2 3 1 3 1 2 (each world's own order kept), so
    that a prefix (``limit=``) and every 2nd or 3rd scene hold all three worlds."""
    order = (0, 1, 2, 1, 2, 0, 2, 0, 1)
    queues = [list(reversed(scenes)) for scenes in worlds]
    out: list[Scene] = []
    step = 0
    while any(queues):
        queue = queues[order[step % len(order)] % len(queues)]
        if queue:
            out.append(queue.pop())
        step += 1
    return out


def build_demo(preprocess: Preprocess) -> Samples:
    """The demo data set for a model with this preprocessing: one sample per object of each scene, built at
    ``preprocess.size`` and normalized with ``preprocess``; masks are the objects' boxes."""
    size = preprocess.size
    scenes = demo_scenes(size)
    entries = [(i, label, box, f"{scene.name}#{label}") for i, scene in enumerate(scenes)
               for _, label, box in scene.objects]
    stack = np.stack([s.image for s in scenes])  # (scenes, S, S, 3) uint8
    which = torch.tensor([e[0] for e in entries], dtype=torch.long)
    pixels = torch.from_numpy(stack).index_select(0, which).permute(0, 3, 1, 2).to(torch.float32).div_(255.0)
    masks = torch.zeros(len(entries), size, size, dtype=torch.bool)
    for n, (_, _, (x1, y1, x2, y2), _) in enumerate(entries):
        masks[n, y1:y2, x1:x2] = True  # integer boxes: exactly the pixel-centre rule
    return Samples(
        images=preprocess.normalize(pixels),
        labels=torch.tensor([e[1] for e in entries], dtype=torch.long),
        masks=masks,
        boxes=tuple(torch.tensor([e[2]], dtype=torch.float32) for e in entries),
        ids=tuple(e[3] for e in entries),
        sources=tuple(scenes[e[0]].sources for e in entries),
        mean=tuple(preprocess.mean),  # type: ignore[arg-type]
        std=tuple(preprocess.std),  # type: ignore[arg-type]
    )
