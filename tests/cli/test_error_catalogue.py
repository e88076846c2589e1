"""The error catalogue (docs/errors.md): every row's bad input, run here, prints exactly the row's message,
on one line, with the row's exit status, and no traceback.

docs/errors.md is the one place the messages are written; this file holds how to produce each input. To
regenerate the table after changing a message: ``python tests/cli/test_error_catalogue.py``.
"""

from __future__ import annotations

import json
import os
import re
import struct
import sys
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

import pytest
import torch

from sycam.cli import main
from sycam.errors import SycamError

DOC = Path(__file__).resolve().parents[2] / "docs" / "errors.md"
SYN = ["synthesize", "--data", "demo", "--metric", "energy_pointing_game"]
STUDY = ["study", "--data", "demo"]
EXPLAIN = ["explain", "--random-weights", "--method", "gradcam"]
EVALUATE = ["evaluate", "--random-weights", "--metrics", "iou", "--methods", "gradcam", "--gallery", "0", "--quiet"]


def _png(path: Path, width: int = 32, height: int = 32) -> Path:
    """A valid PNG header claiming ``width`` × ``height`` (8-bit grey), with an empty image body."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"")) +
                     chunk(b"IEND", b""))
    return path


def _photo(tmp: Path) -> Path:
    from PIL import Image

    path = tmp / "photo.png"
    if not path.exists():
        Image.new("RGB", (64, 48), (120, 80, 40)).save(path)
    return path


def _setup_out(tmp: Path, kind: str) -> Path:
    out = tmp / "out"
    if kind == "file":
        out.write_text("x")
    elif kind == "results":
        out.mkdir()
        (out / "results.json").write_text("{}")
    elif kind == "locked":
        out.mkdir()
        (out / ".sycam.lock").write_text(json.dumps({"pid": os.getpid(), "host": os.uname().nodename}))
    elif kind == "deeplock":
        out.mkdir()
        (out / ".sycam.lock").write_text("[" * 5000 + "]" * 5000)
    elif kind in ("run", "own"):  # an earlier run (its manifest lists its files), and a file of the user's
        out.mkdir()
        (out / "evaluation.json").write_text("{}")
        (out / ".sycam-run.json").write_text(json.dumps({"complete": True, "files": ["evaluation.json"]}))
        if kind == "own":
            (out / "explain.json").write_text('{"mine": true}')
    return out


def _tall_png(path: Path) -> Path:
    """A 1×100000 grey PNG: 100000 pixels decoded, 6.5 billion after the resize to a shorter side of 256."""
    from PIL import Image

    Image.new("L", (1, 100000)).save(path, optimize=True)
    return path


MANIFESTS = {"deep": "[" * 5000 + "]" * 5000, "digits": '[{"image": "a.png", "label": ' + "1" * 5000 + "}]",
             "nan": '[{"image": "a.png", "label": 1, "box": [0, 0, NaN, 4]}]'}


# id -> (bad input, how to run it: argv with {tmp}/{photo} placeholders, or a callable(tmp) for API rows)
CLI: dict[str, tuple[str, list[str]]] = {
    "E01": ("a zero batch size", [*SYN, "--batch-size", "0", "--out", "{tmp}/o"]),
    "E02": ("a negative budget", [*SYN, "--max-candidates", "-5", "--out", "{tmp}/o"]),
    "E03": ("a zero budget", [*SYN, "--max-candidates", "0", "--out", "{tmp}/o"]),
    "E04": ("a negative time limit", [*SYN, "--time-limit", "-5", "--out", "{tmp}/o"]),
    "E05": ("a NaN time limit", [*SYN, "--time-limit", "nan", "--out", "{tmp}/o"]),
    "E06": ("a test fraction above 1", [*SYN, "--test-fraction", "1.5", "--out", "{tmp}/o"]),
    "E07": ("a zero validation fraction", [*SYN, "--validation-fraction", "0", "--out", "{tmp}/o"]),
    "E08": ("a zero candidate batch", [*SYN, "--candidate-batch", "0", "--out", "{tmp}/o"]),
    "E09": ("a degenerate share of 1", [*SYN, "--max-degenerate", "1", "--out", "{tmp}/o"]),
    "E10": ("an infinite λ", [*SYN, "--lambda", "inf", "--out", "{tmp}/o"]),
    "E11": ("a negative gallery size", [*SYN, "--gallery", "-1", "--out", "{tmp}/o"]),
    "E12": ("a negative seed", [*SYN, "--seed", "-1", "--out", "{tmp}/o"]),
    "E13": ("an empty method", ["explain", "--method", "", "{photo}", "--out", "{tmp}/o"]),
    "E14": ("an unknown device", [*EXPLAIN, "--device", "tpu9", "{photo}", "--out", "{tmp}/o"]),
    "E15": ("CUDA asked for on a machine without it", [*EXPLAIN, "--device", "cuda", "{photo}", "--out", "{tmp}/o"]),
    "E16": ("no --metric", ["synthesize", "--data", "demo", "--out", "{tmp}/o"]),
    "E17": ("a metric parameter without '='", [*SYN, "--metric-param", "tolerance", "--out", "{tmp}/o"]),
    "E18": ("an unknown list", ["list", "nothing"]),
    "E19": ("an unknown equivalence mode", [*SYN, "--equivalence", "fast", "--out", "{tmp}/o"]),
    "E20": ("no command", []),
    "E21": ("an empty layer path", [*EXPLAIN, "--layer", "", "{photo}", "--out", "{tmp}/o"]),
    "E22": ("an unknown terminal", [*SYN, "--terminals", "A,X", "--out", "{tmp}/o"]),
    "E23": ("an unknown metric", ["synthesize", "--data", "demo", "--metric", "nonsense", "--out", "{tmp}/o"]),
    "E24": ("the same metric twice", [*SYN, "--metric", "energy_pointing_game", "--out", "{tmp}/o"]),
    "E25": ("an unprefixed parameter with several metrics",
            [*SYN, "--metric", "sparseness", "--metric-param", "tolerance=0", "--out", "{tmp}/o"]),
    "E26": ("an unknown baseline", [*SYN, "--baselines", "gradcam,nope", "--out", "{tmp}/o"]),
    "E27": ("splits that leave no synthesis samples",
            [*SYN, "--test-fraction", "0.6", "--validation-fraction", "0.5", "--out", "{tmp}/o"]),
    "E28": ("a constant that is not a number", [*SYN, "--constants", "1 x", "--out", "{tmp}/o"]),
    "E29": ("an unclosed bracket", ["explain", "--method", "mean(G", "{photo}", "--out", "{tmp}/o"]),
    "E30": ("a misspelt method", ["explain", "--method", "gradcm", "{photo}", "--out", "{tmp}/o"]),
    "E31": ("300 nested relu(", ["explain", "--method", "relu(" * 300 + "G" + ")" * 300, "{photo}", "--out",
                                 "{tmp}/o"]),
    "E32": ("500 terms G+G+…", ["explain", "--method", "+".join(["G"] * 500), "{photo}", "--out", "{tmp}/o"]),
    "E33": ("an ill-typed expression", ["explain", "--method", "mean(S)", "{photo}", "--out", "{tmp}/o"]),
    "E34": ("--out is a file", [*EXPLAIN, "{photo}", "--out", "{tmp}/out", "@file"]),
    "E35": ("--out below a file", [*EXPLAIN, "{photo}", "--out", "{tmp}/out/sub", "@file"]),
    "E36": ("--out holds an earlier run", [*EXPLAIN, "{photo}", "--out", "{tmp}/out", "@results"]),
    "E37": ("--resume where there is no checkpoint", [*SYN, "--resume", "--out", "{tmp}/out", "@results"]),
    "E38": ("--out in use by a running sycam", [*EXPLAIN, "{photo}", "--out", "{tmp}/out", "--force", "@locked"]),
    "E39": ("a missing image", [*EXPLAIN, "{tmp}/missing.png", "--out", "{tmp}/o"]),
    "E40": ("a file that is not an image", [*EXPLAIN, "{tmp}/bad.png", "--out", "{tmp}/o", "@bad"]),
    "E41": ("a decompression bomb (30000² PNG)", [*EXPLAIN, "{tmp}/bomb.png", "--out", "{tmp}/o", "@bomb"]),
    "E42": ("an unknown model", ["explain", "--model", "alexnet9000", "--method", "gradcam", "{photo}", "--out",
                                 "{tmp}/o"]),
    "E43": ("a malformed layer path", [*EXPLAIN, "--layer", "blocks[[", "{photo}", "--out", "{tmp}/o"]),
    "E44": ("an unknown layer", [*EXPLAIN, "--layer", "nope", "{photo}", "--out", "{tmp}/o"]),
    "E45": ("a missing weights file", ["explain", "--weights", "{tmp}/w.pt", "--method", "gradcam", "{photo}",
                                       "--out", "{tmp}/o"]),
    "E46": ("--weights with --random-weights", [*EXPLAIN, "--weights", "w.pt", "{photo}", "--out", "{tmp}/o"]),
    "E47": ("an unknown target class", [*EXPLAIN, "--target", "unicorn", "{photo}", "--out", "{tmp}/o"]),
    "E48": ("a missing manifest", ["evaluate", "--random-weights", "--data", "{tmp}/missing.csv", "--metrics",
                                   "iou", "--out", "{tmp}/o"]),
    "E49": ("a missing grammar file", [*SYN, "--grammar", "{tmp}/g.txt", "--out", "{tmp}/o"]),
    "E50": ("a custom metric file that does not exist", ["evaluate", "--data", "demo", "--metrics",
                                                          "{tmp}/m.py:fn", "--out", "{tmp}/o"]),
    "E51": ("a metric that needs boxes, on data without any",
            ["evaluate", "--random-weights", "--data", "{tmp}/nobox.csv", "--metrics", "iou", "--quiet", "--out",
             "{tmp}/o", "@nobox"]),
    "E52": ("a class index out of range", [*EXPLAIN, "--target", "5000", "{photo}", "--out", "{tmp}/o"]),
    "E53": ("an unknown operator", [*SYN, "--operators", "+ foo", "--out", "{tmp}/o"]),
    "E54": ("a zero expression size", [*SYN, "--max-size", "0", "--out", "{tmp}/o"]),
    "E55": ("a zero sample limit", [*SYN, "--limit", "0", "--out", "{tmp}/o"]),
    "E56": ("a zero Score-CAM cap", [*SYN, "--score-top-k", "0", "--out", "{tmp}/o"]),
    "E57": ("an unknown metric parameter", [*SYN, "--metric-param", "colour=red", "--out", "{tmp}/o"]),
    "E58": ("a Ray option without --executor ray", [*SYN, "--workers", "2", "--out", "{tmp}/o"]),
    "E59": ("--racing on Ray", [*SYN, "--executor", "ray", "--racing", "--out", "{tmp}/o"]),
    "E60": ("--executor ray where Ray is not installed", [*SYN, "--executor", "ray", "--out", "{tmp}/o", "@noray"]),
    "E61": ("zero Ray workers", [*SYN, "--executor", "ray", "--workers", "0", "--out", "{tmp}/o"]),
    "E62": ("a negative GPU share per worker", [*SYN, "--executor", "ray", "--worker-gpus", "-1", "--out",
                                                "{tmp}/o"]),
    "E63": ("--force with a mistyped --data (the earlier run is kept)",
            [*EVALUATE, "--data", "{tmp}/typo.csv", "--out", "{tmp}/out", "--force", "@run"]),
    "E64": ("explain --force where --out holds the user's own explain.json",
            [*EXPLAIN, "{photo}", "--out", "{tmp}/out", "--force", "@own"]),
    "E65": ("a JSON manifest nested 5000 deep", [*EVALUATE, "--data", "{tmp}/m.json", "--out", "{tmp}/o", "@deep"]),
    "E66": ("a JSON manifest with a 5000-digit number",
            [*EVALUATE, "--data", "{tmp}/m.json", "--out", "{tmp}/o", "@digits"]),
    "E67": ("a JSON manifest with NaN", [*EVALUATE, "--data", "{tmp}/m.json", "--out", "{tmp}/o", "@nan"]),
    "E68": ("a lock file nested 5000 deep", [*EXPLAIN, "{photo}", "--out", "{tmp}/out", "--force", "@deeplock"]),
    "E69": ("--ray-address with nothing listening", [*SYN, "--executor", "ray", "--ray-address", "127.0.0.1:1",
                                                     "--out", "{tmp}/o"]),
    "E70": ("--ray-address with port 0", [*SYN, "--executor", "ray", "--ray-address", "localhost:0", "--out",
                                          "{tmp}/o"]),
    "E71": ("a 1×100000 PNG (a few hundred bytes, 20 GB once resized)", [*EXPLAIN, "{tmp}/tall.png", "--out", "{tmp}/o",
                                                             "@tall"]),
    "E72": ("the same, in a manifest", [*EVALUATE, "--data", "{tmp}/tall.csv", "--out", "{tmp}/o", "@tall"]),
    "E73": ("a seed above 2^63", [*SYN, "--seed", str(2**64), "--out", "{tmp}/o"]),
    "E74": ("a 30-digit sample limit", [*SYN, "--limit", "9" * 30, "--out", "{tmp}/o"]),
    "E75": ("--methods that name no method", ["evaluate", "--data", "demo", "--methods", ",", "--metrics", "iou",
                                              "--out", "{tmp}/o"]),
    "E76": ("--metrics that name no metric", ["evaluate", "--data", "demo", "--metrics", " , ", "--out", "{tmp}/o"]),
    "E77": ("the same metric twice in --metrics", ["evaluate", "--data", "demo", "--metrics", "iou,iou", "--out",
                                                   "{tmp}/o"]),
    "E78": ("--baselines that name no method", [*SYN, "--baselines", ",", "--out", "{tmp}/o"]),
    "E79": ("explain with a repeated method", [*EXPLAIN, "--method", "gradcam", "{photo}", "--out", "{tmp}/o"]),
    "E80": ("--weights naming a text file", ["explain", "--weights", "{tmp}/text.pt", "--method", "gradcam",
                                            "{photo}", "--out", "{tmp}/o", "@text"]),
    "E135": ("an unknown --reshape preset", [*EXPLAIN, "--reshape", "deit", "{photo}", "--out", "{tmp}/o"]),
    "E136": ("several --layer outside explain", ["evaluate", "--random-weights", "--data", "demo", "--metrics",
                                                 "iou", "--layer", "bn2", "--layer", "conv_head", "--out", "{tmp}/o"]),
    "E137": ("--reshape swin on a CNN (its maps read as channels last)",
             [*EXPLAIN, "--reshape", "swin", "--quiet", "{photo}", "--out", "{tmp}/o"]),
    "E100": ("--no-guards with --constraint", [*SYN, "--no-guards", "--constraint", "iou >= gradcam", "--out",
                                               "{tmp}/o"]),
    "E101": ("default guards without Grad-CAM among the baselines", [*SYN, "--baselines", "xgradcam", "--out",
                                                                     "{tmp}/o"]),
    "E102": ("an evaluate reference that is not scored",
             ["evaluate", "--random-weights", "--data", "demo", "--methods", "gradcam", "--metrics", "iou",
              "--reference", "layercam", "--out", "{tmp}/o"]),
    "E103": ("a negative minimum effect", [*SYN, "--min-effect", "-0.1", "--out", "{tmp}/o"]),
    "E150": ("a study model outside the zoo", [*STUDY, "--model", "alexnet", "--metric", "iou", "--out", "{tmp}/o"]),
    "E151": ("a study metric parameter without its metric",
             [*STUDY, "--metric", "deletion_auc", "--metric-param", "steps=5", "--out", "{tmp}/o"]),
    "E152": ("the same study model twice", [*STUDY, "--model", "efficientnet_lite0", "--model", "efficientnet_lite0",
                                            "--metric", "iou", "--out", "{tmp}/o"]),
    "E153": ("the same study metric twice", [*STUDY, "--metric", "iou", "--metric", "iou", "--out", "{tmp}/o"]),
    "E110": ("a terminal at an unknown layer", ["explain", "--random-weights", "--method", "mean(G@nope)", "{photo}",
                                                "--out", "{tmp}/o"]),
    "E111": ("an operator mixing two layers' channels", ["explain", "--random-weights", "--method",
                                                         "mean(G@blocks.5) * mean(G)", "{photo}", "--out", "{tmp}/o"]),
    "E112": ("a quantile threshold of 2", ["explain", "--random-weights", "--method", "thresh(mean(G), 2)", "{photo}",
                                           "--out", "{tmp}/o"]),
    "E113": ("Score-CAM's S at another layer", ["explain", "--random-weights", "--method", "mean(G) * S@blocks.5",
                                                "{photo}", "--out", "{tmp}/o"]),
    "E114": ("a pre-activation terminal at a layer without an activation",
             ["explain", "--random-weights", "--method", "mean(Gp@conv_head)", "{photo}", "--out", "{tmp}/o"]),
    "E115": ("a final-map operator on a channel vector", ["explain", "--random-weights", "--method",
                                                          "mean(sharpen(mean(G), 2))", "{photo}", "--out", "{tmp}/o"]),
    "E116": ("--layers naming an unknown layer", [*SYN, "--layers", "nope", "--limit", "2", "--out", "{tmp}/o"]),
}


def _api_uint8(tmp: Path) -> None:
    from engine_helpers import tiny_net

    from sycam import CAM

    CAM(tiny_net(), "body", "gradcam")(torch.zeros(1, 3, 16, 16, dtype=torch.uint8))


def _api_hwc(tmp: Path) -> None:
    from engine_helpers import tiny_net

    from sycam import CAM

    CAM(tiny_net(), "body", "gradcam")(torch.zeros(224, 224, 3))


def _api_grey(tmp: Path) -> None:
    from engine_helpers import tiny_net

    from sycam import CAM

    CAM(tiny_net(), "body", "gradcam")(torch.zeros(2, 1, 16, 16))


def _api_nan(tmp: Path) -> None:
    from engine_helpers import tiny_net

    from sycam import CAM

    x = torch.zeros(1, 3, 16, 16)
    x[0, 0, 0, 0] = float("nan")
    CAM(tiny_net(), "body", "gradcam")(x)


def _api_too_small(tmp: Path) -> None:
    from engine_helpers import tiny_net

    from sycam import CAM

    CAM(tiny_net(), "body", "gradcam")(torch.zeros(1, 3, 1, 1))


def _api_empty_expression(tmp: Path) -> None:
    from sycam import parse

    parse("  ")


def _api_long_expression(tmp: Path) -> None:
    from sycam import parse

    parse("G" * 5000)


def _api_target_huge(tmp: Path) -> None:
    from engine_helpers import tiny_net

    from sycam import CAM

    CAM(tiny_net(), "body", "gradcam")(torch.zeros(2, 3, 16, 16), targets=[2**70, 0])


def _api_target_bools(tmp: Path) -> None:
    from engine_helpers import tiny_net

    from sycam import CAM

    CAM(tiny_net(), "body", "gradcam")(torch.zeros(2, 3, 16, 16), targets=[True, True])


def _api_target_fraction(tmp: Path) -> None:
    from engine_helpers import tiny_net

    from sycam import CAM

    CAM(tiny_net(), "body", "gradcam")(torch.zeros(2, 3, 16, 16), targets=[1.5, 0])


def _api_target_float_tensor(tmp: Path) -> None:
    from engine_helpers import tiny_net

    from sycam import CAM

    CAM(tiny_net(), "body", "gradcam")(torch.zeros(2, 3, 16, 16), targets=torch.tensor([1.0, 0.0]))


def _checkpoint(edit: Callable[[str], str]) -> None:
    from sycam.synth import checkpoint as ckpt

    path = Path("checkpoint.json")  # the fixture runs in tmp
    ckpt.save(path, "k", ["iou"], {"mean(G)": [0.25]}, {"max_candidates": 3})
    path.write_text(edit(path.read_text()))
    ckpt.load(path, "k", ["iou"])


def _api_resume_changed_data(tmp: Path) -> None:
    from dataclasses import replace

    from engine_helpers import tiny_net, tiny_samples

    from sycam.metrics import get_metric
    from sycam.synth import Grammar, SynthesisConfig, synthesize

    net, samples, metric = tiny_net(), tiny_samples(4), get_metric("energy_pointing_game")
    grammar = Grammar(terminals=("A", "G"), max_size=3)
    config = SynthesisConfig(grammar=grammar, batch=4, max_candidates=3, checkpoint=Path("checkpoint.json"))
    synthesize(net, "body", samples, None, metric, config=config)
    moved = replace(samples, masks=samples.masks.roll(2, dims=-1))  # every box moved
    synthesize(net, "body", moved, None, metric, config=replace(config, resume=True, max_candidates=6))


def _tiny_vit(img_size: int = 32) -> Any:
    import timm

    torch.manual_seed(0)
    return timm.create_model("vit_tiny_patch16_224", pretrained=False, img_size=img_size,
                             patch_size=8 if img_size == 32 else 16, depth=1, num_classes=10).eval()


def _api_attention_output(tmp: Path) -> None:
    from sycam import CAM

    CAM(_tiny_vit(224), "blocks[-1].attn.k_norm", "gradcam")(torch.zeros(1, 3, 224, 224))


def _api_channels_last(tmp: Path) -> None:
    import timm

    from sycam import CAM

    torch.manual_seed(0)
    swin = timm.create_model("swin_tiny_patch4_window7_224", pretrained=False, img_size=32, window_size=4,
                             embed_dim=16, depths=(1, 1), num_heads=(1, 2), num_classes=10).eval()
    CAM(swin, "layers[-1].blocks[-1].norm1", "gradcam")(torch.zeros(1, 3, 32, 32))


def _api_tokens(tmp: Path) -> None:
    from sycam import CAM

    CAM(_tiny_vit(), "blocks[-1].norm1", "gradcam")(torch.zeros(1, 3, 32, 32))


def _api_vit_preset_on_a_map(tmp: Path) -> None:
    from sycam.transforms import TokensToMap

    TokensToMap()(torch.zeros(1, 8, 4, 4))


def _api_unknown_preset(tmp: Path) -> None:
    from engine_helpers import tiny_net

    from sycam import CAM

    CAM(tiny_net(), "body", "gradcam", reshape_transform="deit")


def _api_ablation_through_arithmetic(tmp: Path) -> None:
    from sycam import CAM
    from sycam.transforms import TokensToMap

    CAM(_tiny_vit(), "blocks[-1].norm1", "ablationcam",
        reshape_transform=lambda t: TokensToMap()(t) * 2)(torch.zeros(1, 3, 32, 32), [1])


def _api_export_score_cam(tmp: Path) -> None:
    import sycam

    sycam.export("scorecam", "pytorch_grad_cam")


def _api_export_format(tmp: Path) -> None:
    import sycam

    sycam.export("gradcam", "captum")


def _api_export_without_grad_cam(tmp: Path) -> None:
    import sycam

    saved = sys.modules.get("pytorch_grad_cam.base_cam")
    sys.modules["pytorch_grad_cam.base_cam"] = None  # type: ignore[assignment]
    try:
        sycam.export("gradcam", "pytorch_grad_cam")
    finally:
        if saved is None:
            del sys.modules["pytorch_grad_cam.base_cam"]
        else:
            sys.modules["pytorch_grad_cam.base_cam"] = saved


def _api_no_layers(tmp: Path) -> None:
    from engine_helpers import tiny_net

    from sycam import CAM

    CAM(tiny_net(), method="gradcam", layers=[])


def _api_layer_and_layers(tmp: Path) -> None:
    from engine_helpers import tiny_net

    from sycam import CAM

    CAM(tiny_net(), "body", "gradcam", layers=["stem", "body"])


def _api_heatmaps_misfit(tmp: Path) -> None:
    import sycam

    sycam.Heatmaps(torch.zeros(2, 8, 8), torch.zeros(2, 3, 16, 16))


API: dict[str, tuple[str, Callable[[Path], Any]]] = {
    "A01": ("`CAM(...)(uint8 images)`", _api_uint8),
    "A02": ("`CAM(...)(torch.zeros(224, 224, 3))` (HWC)", _api_hwc),
    "A03": ("`CAM(...)(torch.zeros(2, 1, 16, 16))` (one channel)", _api_grey),
    "A04": ("`CAM(...)(images with a NaN)`", _api_nan),
    "A05": ("`CAM(...)(torch.zeros(1, 3, 1, 1))` (too small for the model)", _api_too_small),
    "A06": ('`parse("  ")`', _api_empty_expression),
    "A07": ("`parse(\"G\" * 5000)`", _api_long_expression),
    "E81": ("`CAM(...)(x, targets=[2**70, 0])`", _api_target_huge),
    "E82": ("`CAM(...)(x, targets=[True, True])`", _api_target_bools),
    "E83": ("`CAM(...)(x, targets=[1.5, 0])`", _api_target_fraction),
    "E84": ("`CAM(...)(x, targets=torch.tensor([1.0, 0.0]))`", _api_target_float_tensor),
    "E85": ("a checkpoint holding Infinity (which save() never writes)",
            lambda tmp: _checkpoint(lambda t: t.replace("0.25", "Infinity"))),
    "E86": ("a checkpoint holding NaN", lambda tmp: _checkpoint(lambda t: t.replace("0.25", "NaN"))),
    "E87": ("a checkpoint value edited by hand", lambda tmp: _checkpoint(lambda t: t.replace("0.25", "0.99"))),
    "E88": ("a checkpoint with a 5000-digit number", lambda tmp: _checkpoint(lambda t: t.replace("0.25", "1" * 5000))),
    "E89": ("a checkpoint nested 5000 deep", lambda tmp: _checkpoint(lambda t: "[" * 5000 + "]" * 5000)),
    "E90": ("`--resume` after every box of the data moved (`synthesize(..., resume=True)`)",
            _api_resume_changed_data),
    "E138": ("`CAM(vit, \"blocks[-1].attn.k_norm\", ...)` (attention output (N, heads, tokens, dim))",
             _api_attention_output),
    "E139": ("`CAM(swin, \"layers[-1].blocks[-1].norm1\", ...)` without a reshape_transform (channels last)",
             _api_channels_last),
    "E140": ("`CAM(vit, \"blocks[-1].norm1\", ...)` without a reshape_transform (tokens)", _api_tokens),
    "E141": ("`TokensToMap()(a (N, K, h, w) map)`", _api_vit_preset_on_a_map),
    "E142": ('`CAM(..., reshape_transform="deit")`', _api_unknown_preset),
    "E143": ("Ablation-CAM through a reshape_transform that computes (`× 2`)", _api_ablation_through_arithmetic),
    "E144": ('`sycam.export("scorecam")`', _api_export_score_cam),
    "E145": ('`sycam.export("gradcam", "captum")`', _api_export_format),
    "E146": ("`sycam.export(...)` where pytorch-grad-cam is not installed", _api_export_without_grad_cam),
    "E147": ("`CAM(..., layers=[])`", _api_no_layers),
    "E148": ('`CAM(model, "body", ..., layers=[...])`', _api_layer_and_layers),
    "E149": ("`Heatmaps(maps, pixels)` of different sizes", _api_heatmaps_misfit),
}


@contextmanager
def _without_ray() -> Iterator[None]:
    """``import ray`` fails inside, as where Ray is not installed."""
    saved = sys.modules.get("ray")
    sys.modules["ray"] = None  # type: ignore[assignment]
    try:
        yield
    finally:
        if saved is None:
            del sys.modules["ray"]
        else:
            sys.modules["ray"] = saved


def run_cli(case: str, tmp: Path, capsys: Any) -> tuple[int, str]:
    """Run CLI case ``case`` in ``tmp``; returns (exit status, stderr with ``tmp`` written as ``{tmp}``)."""
    argv = list(CLI[case][1])
    ray: Any = nullcontext()
    for a in [a for a in argv if a.startswith("@")]:
        argv.remove(a)
        if a == "@noray":
            ray = _without_ray()
        elif a == "@bad":
            (tmp / "bad.png").write_bytes(b"not a png")
        elif a == "@bomb":
            _png(tmp / "bomb.png", 30000, 30000)
        elif a == "@nobox":
            (tmp / "nobox.csv").write_text(f"image,label\n{_photo(tmp)},1\n")
        elif a[1:] in MANIFESTS:
            (tmp / "m.json").write_text(MANIFESTS[a[1:]])
        elif a == "@tall":
            _tall_png(tmp / "tall.png")
            (tmp / "tall.csv").write_text("image,label\ntall.png,1\n")
        elif a == "@text":
            (tmp / "text.pt").write_text("hello, these are not weights\n")
        else:
            _setup_out(tmp, a[1:])
    argv = [a.replace("{tmp}", str(tmp)).replace("{photo}", str(_photo(tmp))) for a in argv]
    try:
        with ray:
            code = main(argv)
    except SystemExit as exc:  # the parser exits
        code = int(exc.code or 0)
    err = capsys.readouterr().err
    return code, err.replace(str(tmp), "{tmp}").replace(f"pid {os.getpid()} on {os.uname().nodename}",
                                                        "pid {pid} on {host}")


def run_api(case: str, tmp: Path) -> tuple[int, str]:
    """Run API case ``case``; returns (2, the error's one-line message)."""
    try:
        API[case][1](tmp)
    except SycamError as exc:
        one_line = getattr(exc, "one_line", None)
        return 2, (one_line() if callable(one_line) else str(exc)) + "\n"
    raise AssertionError(f"{case} raised nothing")


ROW = re.compile(r"^\| (?P<id>[EA]\d{2,3}) \| (?P<input>.*?) \| (?P<status>\d+) \| `(?P<message>.*)` \|$")


def doc_rows() -> dict[str, dict[str, str]]:
    """The catalogue rows of docs/errors.md by id (message with ``\\|`` unescaped)."""
    rows = {}
    for line in DOC.read_text(encoding="utf-8").splitlines():
        m = ROW.match(line)
        if m:
            row = m.groupdict()
            row["message"] = row["message"].replace("\\|", "|")
            rows[row["id"]] = row
    return rows


def test_catalogue_has_a_case_per_row_and_at_least_40_rows() -> None:
    rows = doc_rows()
    assert len(rows) >= 40
    assert set(rows) == set(CLI) | set(API)


@pytest.fixture
def tmp(tmp_path: Path, monkeypatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.mark.parametrize("case", sorted(CLI))
def test_cli_row(case: str, tmp: Path, capsys) -> None:
    if case == "E15" and torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    if case in ("E69", "E70"):
        pytest.importorskip("ray", reason='the Ray address is probed by the Ray executor (pip install "sycam[ray]")')
    row = doc_rows()[case]
    code, err = run_cli(case, tmp, capsys)
    assert err.rstrip("\n") == row["message"]
    assert code == int(row["status"])
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not (tmp / "o").exists(), "a failed run leaves no output folder behind"


@pytest.mark.parametrize("case", sorted(API))
def test_api_row(case: str, tmp: Path) -> None:
    row = doc_rows()[case]
    code, err = run_api(case, tmp)
    assert err.rstrip("\n") == row["message"] and code == int(row["status"])


def _generate() -> str:  # pragma: no cover - maintenance helper
    """The catalogue table from running every case (``python tests/cli/test_error_catalogue.py``)."""
    import tempfile

    class Capture:
        def readouterr(self) -> Any:
            class R:
                err = sys.stderr.getvalue()  # type: ignore[attr-defined]

            sys.stderr.truncate(0)
            sys.stderr.seek(0)
            return R

    import io

    lines = ["| id | bad input | exit | message |", "|----|-----------|------|---------|"]
    real = sys.stderr
    for case in sorted(CLI):
        with tempfile.TemporaryDirectory() as d:
            sys.stderr = io.StringIO()
            try:
                code, err = run_cli(case, Path(d), Capture())
            finally:
                sys.stderr = real
        msg = err.strip().replace("|", "\\|")
        lines.append(f"| {case} | {CLI[case][0]} | {code} | `{msg}` |")
    for case in sorted(API):
        with tempfile.TemporaryDirectory() as d:
            code, err = run_api(case, Path(d))
        lines.append(f"| {case} | {API[case][0]} | {code} | `{err.strip().replace('|', chr(92) + '|')}` |")
    return "\n".join(lines)


if __name__ == "__main__":  # pragma: no cover
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    print(_generate())
