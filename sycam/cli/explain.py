"""``sycam explain``: heatmaps of your images with one or more methods or expressions.

The model sees the usual centre crop of each image (resize the shorter side, crop the middle square); the
heatmap covers that crop. By default the overlays are drawn on the original image, the heatmap placed on
the region the model saw and the rest dimmed, with that region outlined; ``--crop`` draws on the crop.
The raw maps are written as ``.npy`` (float32, crop resolution, values in [0, 1]) and ``explain.json``
says, per image, the predicted class and probability, the target, and the crop box in original pixels.
"""

from __future__ import annotations

import argparse
import io
import json
from pathlib import Path
from typing import Any

from ._common import (
    CLIError,
    HelpFormatter,
    Repeat,
    add_model_args,
    add_output_args,
    info,
    load_model,
    non_empty,
    output_folder,
)

DESCRIPTION = """\
Heatmaps of your own images with one or more methods or expressions. Writes, into --out, one overlay
PNG and one .npy map per image and method, grid.png (every image × every method, with the predicted
class and its probability), and explain.json.

examples:
  sycam explain --method gradcam cat.jpg dog.png --out explained
  sycam explain --method gradcam --method "mean(G) * relu(D)" --target 285 cat.jpg --out explained
  sycam explain --model resnet50 --method scorecam --crop photos/*.jpg --out explained
"""
"""The ``sycam explain --help`` text: what the command writes, and examples."""

MAX_SIDE = 1024
"""Overlays of larger originals are drawn on a copy scaled down to this longest side (pixels)."""


def add_parsers(sub: Any) -> None:
    """Register ``explain``."""
    p = sub.add_parser("explain", help="heatmaps of your images with one or more methods or expressions",
                       description=DESCRIPTION, formatter_class=HelpFormatter)
    p.add_argument("images", nargs="+", metavar="IMAGE", help="image files (PNG, JPEG, ...; EXIF orientation applied)")
    g = p.add_argument_group("what to show")
    g.add_argument("--method", action=Repeat, type=non_empty("a method name or an expression"), required=True,
                   metavar="METHOD", help="a method name (`sycam list methods`) or an expression such as "
                   "'mean(G) * relu(D)' (repeatable)")
    g.add_argument("--target", type=non_empty("a class"), metavar="CLASS",
                   help="class to explain: index, synset (n02123045) or name")
    g.add_argument("--crop", action="store_true",
                   help="draw the overlays on the model's centre crop instead of the original image")
    add_model_args(p)
    add_output_args(p)
    p.set_defaults(func=run, several_layers=True)


def read_image(path: str) -> Any:
    """Open an image named on the command line as 8-bit RGB through the data layer's one reader (EXIF
    orientation applied, high-bit-depth greys scaled, decompression bombs refused, one-line errors)."""
    from ..data.images import read_image as read
    from ..data.images import to_rgb

    return to_rgb(read(path, where="explain"))


def _pixels(pre: Any, image: Any, path: str) -> Any:
    """The model's crop of ``image`` (an image too large once resized is refused naming its file)."""
    from ..data import DataError

    try:
        return pre.pixels(image)
    except DataError as exc:
        raise DataError(f"explain: {path}: {exc}") from None


def _unique_names(paths: list[str]) -> list[str]:
    names: list[str] = []
    for path in paths:
        stem = _slug(Path(path).stem)
        name, k = stem, 2
        while name in names:
            name, k = f"{stem}_{k}", k + 1
        names.append(name)
    return names


def _slug(text: str) -> str:
    keep = "".join(c if c.isalnum() or c in "+-_" else "_" for c in text)
    return keep[:60].strip("_") or "x"


def crop_box(pre: Any, width: int, height: int) -> tuple[float, float, float, float]:
    """The region of the original image (``x1, y1, x2, y2`` in its pixels) that the model's crop shows."""
    new_w, new_h, left, top = pre.geometry(width, height)
    sx, sy = width / new_w, height / new_h
    return left * sx, top * sy, (left + pre.size) * sx, (top + pre.size) * sy


def overlay_on_original(image: Any, heatmap: Any | None, box: tuple[float, float, float, float]) -> Any:
    """The original image (scaled to at most :data:`MAX_SIDE`), the heatmap blended over ``box``, the rest
    dimmed, ``box`` outlined; with no heatmap, the image with ``box`` outlined."""
    import numpy as np
    import torch
    from PIL import Image, ImageDraw

    from ..viz import overlay

    rgb = image.convert("RGB")
    scale = min(1.0, MAX_SIDE / max(rgb.size))
    if scale < 1.0:
        rgb = rgb.resize((max(1, round(rgb.width * scale)), max(1, round(rgb.height * scale))),
                         Image.Resampling.BILINEAR)
    x1, y1, x2, y2 = (round(v * scale) for v in box)
    x2, y2 = max(x2, x1 + 1), max(y2, y1 + 1)
    width = max(1, rgb.width // 300)
    if heatmap is None:
        out = rgb.copy()
        ImageDraw.Draw(out).rectangle((x1, y1, x2 - 1, y2 - 1), outline=(255, 255, 255), width=width)
        return out
    region = np.asarray(rgb.crop((x1, y1, x2, y2)), dtype=np.float32) / 255.0
    tinted = overlay(torch.from_numpy(region).permute(2, 0, 1), heatmap)
    out = Image.blend(rgb, Image.new("RGB", rgb.size, (0, 0, 0)), 0.45)
    out.paste(tinted, (x1, y1))
    ImageDraw.Draw(out).rectangle((x1, y1, x2 - 1, y2 - 1), outline=(255, 255, 255), width=width)
    return out


def run(args: argparse.Namespace) -> int:
    """Explain every image with every method; write overlays, maps, a grid and explain.json."""
    import numpy as np
    import torch

    from ..data import LabelResolver
    from ..heatmap import explain
    from ..methods import resolve_method
    from ..viz import grid, overlay, to_image

    methods = [resolve_method(m) for m in args.method]  # a bad expression fails before any work
    labels_given = [label for label, _ in methods]
    twice = sorted({label for label in labels_given if labels_given.count(label) > 1})
    if twice:
        raise CLIError(f"--method {', '.join(twice)} is given twice (each method is one column of the grid)")
    names = _unique_names(args.images)  # a repeated image gets a second name: img, img_2
    stems = [f"{name}_{j}_{_slug(label)}" for name in names for j, (label, _) in enumerate(methods)]
    with output_folder(args, "explain") as out:
        out.check_names([*(f"{s}{ext}" for s in stems for ext in (".png", ".npy")), "grid.png", "explain.json"])
        originals = [read_image(p) for p in args.images]  # unreadable files fail before the model loads
        model = load_model(args)
        pixels = torch.stack([_pixels(model.preprocess, im, p) for im, p in zip(originals, args.images, strict=True)])
        x = model.preprocess.normalize(pixels).to(model.device)
        targets = None
        if args.target is not None:
            targets = [LabelResolver(model.classes).resolve(args.target, "--target")] * len(names)
        several = {"layers": args.layers} if len(args.layers) > 1 else {}
        maps = explain(model, x, [node for _, node in methods], targets=targets, score_top_k=args.score_top_k,
                       batch_size=args.batch_size, **several)
        with torch.no_grad():
            probs = torch.softmax(model.module(x).float(), dim=1).cpu()
        predicted = probs.argmax(1).tolist()
        chosen = targets or predicted
        rows, labels, records = [], [], []
        for i, name in enumerate(names):
            box = crop_box(model.preprocess, *originals[i].size)
            shown = to_image(pixels[i]) if args.crop else overlay_on_original(originals[i], None, box)
            row, files = [shown], {}
            for j, (label, node) in enumerate(methods):
                heat = maps[str(node)][i].detach().cpu()
                img = overlay(pixels[i], heat) if args.crop else overlay_on_original(originals[i], heat, box)
                stem = f"{name}_{j}_{_slug(label)}"
                out.write(f"{stem}.png", lambda f, img=img: img.save(f, format="PNG"))
                buf = io.BytesIO()
                np.save(buf, heat.numpy().astype(np.float32))
                out.write(f"{stem}.npy", buf.getvalue())
                files[label] = {"overlay": f"{stem}.png", "map": f"{stem}.npy"}
                row.append(img)
            rows.append(row)
            pred, tgt = predicted[i], chosen[i]
            text = f"{name}: {model.classes[pred]} ({probs[i, pred]:.0%})"
            if tgt != pred:
                text += f"; target {model.classes[tgt]} ({probs[i, tgt]:.0%})"
            labels.append(text)
            records.append({"image": str(args.images[i]), "size": list(originals[i].size),
                            "crop_box": [round(v, 2) for v in box],
                            "predicted": {"index": pred, "class": model.classes[pred],
                                          "probability": round(float(probs[i, pred]), 6)},
                            "target": {"index": tgt, "class": model.classes[tgt],
                                       "probability": round(float(probs[i, tgt]), 6)},
                            "files": files})
        picture = grid(rows, row_labels=labels, col_labels=["image", *[label for label, _ in methods]])
        out.write("grid.png", lambda f: picture.save(f, format="PNG"))
        out.write("explain.json", json.dumps({"model": {"name": model.name, "layer": model.layer,
                                                        **({"layers": args.layers} if several else {}),
                                                        "reshape": args.reshape,
                                                        "weights": model.weights},
                                              "methods": {label: str(node) for label, node in methods},
                                              "overlays_on": "crop" if args.crop else "original",
                                              "images": records}, indent=1))
    info(f"wrote {len(names) * len(methods)} overlays and maps, {out.root / 'grid.png'} and explain.json")
    return 0
