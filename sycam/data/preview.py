"""A picture of the demo data set with its ground-truth boxes (``docs/demo_samples.png``).

Regenerate with ``python -m sycam.data.preview docs/demo_samples.png``.
"""

from __future__ import annotations

import sys
from pathlib import Path

from PIL import Image

from .demo import OBJECTS, PAIRS, TEXTURES, demo_scenes

#: one box colour per object, so that the two targets of a two-object scene can be told apart
COLORS = {"cat": (255, 220, 0), "espresso": (0, 230, 255), "moped": (255, 60, 200)}


def demo_figure(size: int = 224, cell: int = 160) -> Image.Image:
    """A grid: one row per texture; columns the first scene of each object, then the three two-object
    scenes; every object's box drawn in its colour (cat yellow, espresso cyan, moped magenta)."""
    from torch import tensor

    from ..viz import draw_ground_truth, grid

    scenes = demo_scenes(size)
    rows = []
    for texture in TEXTURES:
        chosen = [next(s for s in scenes if s.texture == texture and s.objects[0][0] == name
                       and len(s.objects) == 1) for name in OBJECTS]
        chosen += [next(s for s in scenes if s.texture == texture and [o[0] for o in s.objects] == list(pair))
                   for pair in PAIRS]
        row = []
        for scene in chosen:
            image = Image.fromarray(scene.image)
            for name, _, box in scene.objects:
                image = draw_ground_truth(image, boxes=tensor([box]), color=COLORS[name])
            row.append(image)
        rows.append(row)
    headers = [f"{name} ({OBJECTS[name][2]})" for name in OBJECTS] + [" + ".join(p) for p in PAIRS]
    return grid(rows, row_labels=list(TEXTURES), col_labels=headers, cell=cell)


def main(argv: list[str] | None = None) -> int:
    """``python -m sycam.data.preview OUT.png``: write the demo figure."""
    from ..viz import save_png

    args = sys.argv[1:] if argv is None else argv
    out = Path(args[0]) if args else Path("docs/demo_samples.png")
    save_png(demo_figure(), out)
    print(out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
