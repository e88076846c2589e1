"""The command line, end to end on the real EfficientNet-Lite0 and bundled photos (offline)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from skimage import data

from sycam.cli import main


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> list[Path]:
    root = tmp_path_factory.mktemp("photos")
    paths = []
    for name in ("coffee", "chelsea"):
        path = root / f"{name}.png"
        Image.fromarray(getattr(data, name)()).save(path)
        paths.append(path)
    return paths


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_list(capsys) -> None:
    from sycam.cli._common import method_list
    from sycam.methods import METHODS

    assert method_list("all") == list(METHODS) and method_list("gradcam,all")[:2] == ["gradcam", "gradcam"]
    code, out, _ = run(capsys, "list", "methods")
    assert code == 0 and "gradcam++" in out and "softmax(S)" in out
    assert out.splitlines()[0].split() == ["method", "name", "expression", "reference"]
    code, out, _ = run(capsys, "list", "models")
    assert "efficientnet_lite0" in out and "(default)" in out and out.startswith("model")
    code, out, _ = run(capsys, "list", "metrics")
    assert "energy_pointing_game" in out and "deletion_auc" in out
    assert out.splitlines()[0].split() == ["metric", "better", "needs", "cost", "description"]
    assert set(out.splitlines()[1]) <= {"-", " "}
    code, out, _ = run(capsys, "list", "terminals")
    assert out.splitlines()[0].split() == ["terminal", "kind", "meaning"] and "gradient" in out
    code, out, _ = run(capsys, "list", "grammar", "--terminals", "A,G", "--max-size", "4")
    assert "terminals: A G" in out and "max_size: 4" in out and "softmax" in out
    code, out, _ = run(capsys, "list", "operators")
    assert "minmax" in out


def test_explain_real_photo(tmp_path, photos, capsys) -> None:
    out = tmp_path / "explain"
    code, _, err = run(capsys, "explain", "--method", "gradcam", "--method", "mean(G) * relu(D)",
                       *photos, "--out", out)
    assert code == 0, err
    pngs = sorted(p.name for p in out.glob("*.png"))
    assert "grid.png" in pngs and len(pngs) == 1 + 2 * 2
    assert len(list(out.glob("*.npy"))) == 2 * 2
    grid = Image.open(out / "grid.png")
    assert grid.size[0] > 3 * 100 and grid.mode == "RGB"
    info = json.loads((out / "explain.json").read_text())
    first = info["images"][0]
    # overlays are drawn on the original image (coffee is 400×600 → 600×400 wide), maps are the crop's
    overlay = Image.open(out / first["files"]["gradcam"]["overlay"])
    assert overlay.size == tuple(first["size"]) == Image.open(photos[0]).size
    heat = np.load(out / first["files"]["gradcam"]["map"])
    assert heat.shape == (224, 224) and heat.dtype == np.float32 and heat.min() >= 0 and heat.max() <= 1
    assert info["images"][1]["predicted"]["class"] in ("tabby", "tiger cat", "Egyptian cat")
    assert 0 < first["predicted"]["probability"] <= 1 and len(first["crop_box"]) == 4
    # an earlier run is not overwritten without --force
    code, _, err = run(capsys, "explain", "--method", "gradcam", photos[0], "--out", out)
    assert code == 2 and "not empty" in err and "--force" in err
    # --force replaces the earlier run's files: nothing stale is left; --crop draws on the model's crop
    code, _, err = run(capsys, "explain", "--method", "gradcam", "--crop", photos[0], "--out", out, "--force")
    assert code == 0, err
    assert sorted(p.name for p in out.glob("*.png")) == ["coffee_0_gradcam.png", "grid.png"]
    assert Image.open(out / "coffee_0_gradcam.png").size == (224, 224)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["explain", "--model", "alexnet9000", "--method", "gradcam", "x.png"], "unknown model 'alexnet9000'"),
        (["explain", "--method", "mean(G", "x.png"], "expected ')'"),
        (["explain", "--method", "gradcm", "x.png"], "unknown method 'gradcm'"),
        (["explain", "--random-weights", "--method", "gradcam", "--layer", "nope", "x.png"], "unknown layer 'nope'"),
        (["synthesize", "--data", "demo", "--metric", "nonsense"], "unknown metric"),
        (["synthesize", "--data", "demo", "--metric", "iou", "--terminals", "A,X"], "unknown terminal"),
        (["evaluate", "--data", "missing.csv", "--metrics", "iou"], "missing.csv"),
    ],
)
def test_bad_input_is_one_clear_line(tmp_path, photos, capsys, argv, message) -> None:
    argv = [str(photos[0]) if a == "x.png" else a for a in argv]
    code, _, err = run(capsys, *argv, "--out", tmp_path / "o")
    assert code == 2
    assert err.startswith("sycam: error: ") and message in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_unreadable_image(tmp_path, capsys) -> None:
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not a png")
    code, _, err = run(capsys, "explain", "--method", "gradcam", bad, "--out", tmp_path / "o")
    assert code == 2 and "cannot read image" in err and "bad.png" in err


def test_evaluate_manifest_of_real_photos(tmp_path, photos, capsys) -> None:
    manifest = tmp_path / "photos.csv"
    manifest.write_text("image,label,x1,y1,x2,y2,mask\n"
                        f"{photos[0]},espresso,90,30,480,380,\n"
                        f"{photos[1]},285,60,0,400,300,\n")
    out = tmp_path / "eval"
    code, stdout, err = run(capsys, "evaluate", "--data", manifest, "--methods", "gradcam,mean(G) * relu(D)",
                            "--metrics", "energy_pointing_game,sparseness", "--out", out)
    assert code == 0, err
    ev = json.loads((out / "evaluation.json").read_text())
    assert ev["metrics"]["energy_pointing_game"]["higher_is_better"] is True
    assert set(ev["results"]) == {"gradcam", "mean(G) * relu(D)"}
    for scores in ev["results"].values():
        assert 0.0 <= scores["energy_pointing_game"] <= 1.0 and np.isfinite(scores["sparseness"])
    assert "gradcam" in stdout and "energy_pointing_game ↑" in stdout
    assert (out / "evaluation.csv").read_text().startswith("method,energy_pointing_game,sparseness")
    assert (out / "evaluation.md").exists() and (out / "report.html").exists()
    # intervals against the reference (the best exact classic method on the first metric: the only one here)
    assert ev["reference"] == "gradcam" and ev["grouping"] == "image (2 groups)"
    e = ev["intervals"]["mean(G) * relu(D)"]["energy_pointing_game"]
    assert e["verdict"] in ("better", "not distinguishable", "worse") and len(e["ci95"]) == 2
    assert "(reference)" in stdout and "Δ" in stdout and "resampling image (2 groups)" in stdout
    html = (out / "report.html").read_text()
    assert 'id="evidence"' in html and "Δ" in html


SYNTH_ARGS = ["synthesize", "--data", "demo", "--limit", "12", "--metric", "energy_pointing_game", "--terminals",
              "A,G,D", "--max-size", "4", "--max-candidates", "60", "--gallery", "1", "--score-top-k", "8"]


def test_synthesize_on_demo_subset(tmp_path, photos, capsys) -> None:
    out = tmp_path / "syn"
    code, stdout, err = run(capsys, *SYNTH_ARGS, "--out", out)
    assert code == 0, err
    res = json.loads((out / "results.json").read_text())
    assert res["metric"]["name"] == "energy_pointing_game"
    assert res["best"]["test_score"] is not None and res["candidates_scored"] >= 1
    assert set(res["baselines"]) >= {"gradcam", "xgradcam", "ablationcam"}
    assert "best expression:" in stdout and "report:" in stdout
    # no --constraint: the objective's default guards apply, and the verdict reads every exact classic method
    assert res["guards"] == "default" and res["constraints"]
    exact = {b for b, v in res["baselines"].items() if v["exact"]}
    assert set(res["comparison"]["methods"]) == exact and res["comparison"]["n_comparisons"] == len(exact)
    assert f"in {len(exact)} comparisons with the exact classic methods" in stdout
    assert res["comparison"]["grouping"].startswith("photo (")
    html = (out / "report.html").read_text()
    assert 'id="evidence"' in html and html.count("<svg") >= 4
    assert res["best"]["expression"].replace("<", "&lt;") in html and "data:image/" in html
    # the winner can be reused at once
    code, _, err = run(capsys, "explain", "--method", res["best"]["expression"], photos[0], "--out", tmp_path / "re")
    assert code == 0, err
    # resume: continue from the checkpoint; the same settings give the same winner
    code, _, err = run(capsys, *SYNTH_ARGS, "--out", out, "--resume")
    assert code == 0, err
    again = json.loads((out / "results.json").read_text())
    assert again["best"] == res["best"] and any("resumed" in n for n in again["notes"])


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def test_force_with_a_bad_input_keeps_the_earlier_run_and_the_users_files(tmp_path, capsys) -> None:
    """Issue 22 §1: a mistyped input under --force costs nothing; a user's own explain.json is never replaced;
    explain.json lists every file written, a repeated image included."""
    photo = tmp_path / "p.png"
    Image.new("RGB", (64, 48), (120, 80, 40)).save(photo)
    out = tmp_path / "out"
    fast = ["explain", "--random-weights", "--method", "gradcam", "--quiet"]
    code, _, err = run(capsys, *fast, photo, photo, "--out", out)  # the same image twice: p and p_2
    assert code == 0, err
    listed = {f for image in json.loads((out / "explain.json").read_text())["images"]
              for files in image["files"].values() for f in files.values()}
    written = {p.name for p in out.iterdir() if p.suffix in (".png", ".npy") and p.name != "grid.png"}
    assert listed == written and len(written) == 4
    before = _snapshot(out)
    for bad in ([*fast, tmp_path / "typo.png"], [*fast, "--layer", "nope", photo]):
        code, _, err = run(capsys, *bad, "--out", out, "--force")
        assert code == 2 and len(err.strip().splitlines()) == 1, err
        assert _snapshot(out) == before, bad  # nothing deleted, nothing written
    code, _, err = run(capsys, "evaluate", "--random-weights", "--data", tmp_path / "typo.csv", "--metrics", "iou",
                       "--out", out, "--force")
    assert code == 2 and "typo.csv: no such file" in err and _snapshot(out) == before
    # a user's own explain.json in a folder sycam never wrote: refused before any work, left as it was
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "explain.json").write_text("my notes")
    code, _, err = run(capsys, *fast, photo, "--out", mine, "--force")
    assert code == 2 and "explain.json was not written by sycam" in err
    assert _snapshot(mine) == {"explain.json": b"my notes"}
