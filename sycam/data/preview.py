"""A picture of the demo data set with its ground-truth boxes (``docs/demo_samples.png``).

Regenerate with ``python -m sycam.data.preview docs/demo_samples.png``.
"""

from __future__ import annotations

import sys
from pathlib import Path

from PIL import Image

from .demo import OBJECTS, WORLDS, Scene, demo_scenes

COLORS = {"cat": (255, 220, 0), "tripod": (255, 140, 0), "espresso": (0, 230, 255), "shuttle": (120, 255, 60),
          "moped": (255, 60, 200)}
"""one box colour per object, so that the two targets of a two-object scene can be told apart"""


def _drawn(scene: Scene) -> Image.Image:
    from torch import tensor

    from ..viz import draw_ground_truth

    image = Image.fromarray(scene.image)
    for name, _, box in scene.objects:
        image = draw_ground_truth(image, boxes=tensor([box]), color=COLORS[name])
    return image


def _firsts(singles: list[Scene], textures: tuple[str, ...], names: tuple[str, ...]) -> list[Scene]:
    """Four scenes of a world: the first of each object on each texture (or, with one object, its first two)."""
    out = []
    for texture in textures:
        of_texture = [s for s in singles if s.texture == texture]
        if len(names) == 1:
            out += of_texture[:2]
        else:
            out += [next(s for s in of_texture if s.objects[0][0] == name) for name in names]
    return out


def demo_figure(size: int = 224, cell: int = 160) -> Image.Image:
    """A grid: one row per world; columns the first scene of each of its objects on each of its textures,
    then its two-object scene; every object's box drawn in its colour (:data:`COLORS`)."""
    from ..viz import grid

    scenes = demo_scenes(size)
    rows, labels = [], []
    for names, textures in WORLDS:
        singles = [s for s in scenes if s.texture in textures and len(s.objects) == 1 and s.objects[0][0] in names]
        row: list[Image.Image | None] = [_drawn(s) for s in _firsts(singles, textures, names)]
        pair = [s for s in scenes if len(s.objects) == 2 and s.objects[0][0] in names]
        row.append(_drawn(pair[0]) if pair else None)
        rows.append(row)
        labels.append(f"{' + '.join(f'{n} ({OBJECTS[n][2]})' for n in names)} on {' / '.join(textures)}")
    headers = ["texture 1", "texture 1", "texture 2", "texture 2", "two objects"]
    return grid(rows, row_labels=labels, col_labels=headers, cell=cell)


def photos_figure(size: int = 224, resize: int = 256, cell: int = 180) -> Image.Image:
    """The ``photos`` set as the model sees it (resize ``resize``, centre crop ``size``) with its boxes in
    green; two rows of photos, each labelled with its file and target class."""
    from ..viz import draw_ground_truth, grid, to_image
    from .labels import LabelResolver
    from .photos import PHOTOS, build_photos
    from .preprocess import Preprocess

    samples = build_photos(Preprocess(size=size, resize=resize))
    names = LabelResolver(None).classes
    cells = [draw_ground_truth(to_image(samples.pixels[i]), boxes=samples.boxes[i], color=(0, 255, 80))
             for i in range(len(samples))]
    labels = [f"{p.file.rsplit('.', 1)[0]}: {names[p.label]}" for p in PHOTOS]
    half = (len(cells) + 1) // 2
    top = grid([cells[:half]], col_labels=labels[:half], cell=cell)
    bottom = grid([cells[half:]], col_labels=labels[half:], cell=cell)
    out = Image.new("RGB", (max(top.width, bottom.width), top.height + bottom.height), (255, 255, 255))
    out.paste(top, (0, 0))
    out.paste(bottom, (0, top.height))
    return out


def main(argv: list[str] | None = None) -> int:
    """``python -m sycam.data.preview OUT.png`` writes the demo figure, ``... --photos OUT.png`` the photos set."""
    from ..viz import save_png

    args = sys.argv[1:] if argv is None else argv
    photos = "--photos" in args
    args = [a for a in args if a != "--photos"]
    out = Path(args[0]) if args else Path("docs/photos_samples.png" if photos else "docs/demo_samples.png")
    save_png(photos_figure() if photos else demo_figure(), out)
    print(out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
