"""Tests for sycam.viz: colormaps, overlays, ground truth, grids and atomic PNG writing."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from sycam import viz


class TestColormap:
    def test_jet_known_values(self) -> None:
        out = viz.colormap(torch.tensor([0.0, 0.5, 1.0]), "jet")
        assert out.dtype == torch.uint8
        # jet(0) dark blue, jet(0.5) green, jet(1) dark red: exact values of the piecewise-linear definition.
        assert out.tolist() == [[0, 0, 128], [123, 255, 123], [128, 0, 0]]

    def test_jet_anchor_points(self) -> None:
        # At x = 0.125 green starts rising from 0 and blue is at its plateau 1; at x = 0.89 red is 1.
        out = viz.colormap(torch.tensor([0.125, 0.34, 0.89]), "jet").tolist()
        assert out[0] == [0, 0, 255]
        assert out[1][0] == 0 and out[1][2] == 255  # cyan-ish: no red, full blue
        assert out[2][0] == 255 and out[2][2] == 0

    def test_shape_clamping_and_nan(self) -> None:
        maps = torch.tensor([[[-1.0, 2.0], [float("nan"), 0.0]]])  # (1, 2, 2)
        out = viz.colormap(maps, "jet")
        assert out.shape == (1, 2, 2, 3)
        low, high = out[0, 0, 0].tolist(), out[0, 0, 1].tolist()
        assert low == [0, 0, 128] and high == [128, 0, 0]
        assert out[0, 1, 0].tolist() == low  # NaN is drawn as 0

    def test_monotone_and_device_independent(self) -> None:
        x = torch.linspace(0, 1, 257, dtype=torch.float64)
        gray = viz.colormap(x, "gray")
        assert torch.equal(gray[:, 0], gray[:, 1]) and torch.equal(gray[:, 1], gray[:, 2])
        assert (gray[1:, 0].int() - gray[:-1, 0].int() >= 0).all()
        assert gray[0].tolist() == [0, 0, 0] and gray[-1].tolist() == [255, 255, 255]
        np.testing.assert_array_equal(viz.colormap(x.numpy(), "jet").numpy(), viz.colormap(x, "jet").numpy())

    def test_viridis_inferno_endpoints(self) -> None:
        assert viz.colormap(torch.tensor([0.0, 0.5, 1.0]), "viridis").tolist() == [
            [0x44, 0x01, 0x54],
            [0x21, 0x91, 0x8C],
            [0xFD, 0xE7, 0x25],
        ]
        assert viz.colormap(torch.tensor([0.0, 1.0]), "inferno").tolist() == [[0, 0, 4], [0xFC, 0xFF, 0xA4]]

    def test_close_to_matplotlib_when_available(self) -> None:
        cm = pytest.importorskip("matplotlib").colormaps
        x = np.linspace(0, 1, 1001)
        # jet is matplotlib's own segment data, off only by matplotlib's 256-entry quantization of its steep
        # ramps (up to ~4.6/255); the perceptual maps interpolate 17 anchors of the published tables.
        for name, tol in (("jet", 5.0), ("viridis", 6.0), ("inferno", 7.5)):
            ref = cm[name](x)[:, :3] * 255
            ours = viz.colormap(torch.from_numpy(x), name).numpy().astype(float)
            assert np.abs(ours - ref).max() <= tol, name

    def test_unknown_name(self) -> None:
        with pytest.raises(ValueError, match="unknown colormap 'rainbow'"):
            viz.colormap(torch.zeros(2, 2), "rainbow")


class TestOverlay:
    def test_blend_arithmetic_on_constant_image(self) -> None:
        pixels = torch.full((3, 8, 10), 0.2)
        heat = torch.zeros(8, 10)
        heat[:, 5:] = 1.0
        img = viz.overlay(pixels, heat, alpha=0.25)
        assert isinstance(img, Image.Image) and img.mode == "RGB" and img.size == (10, 8)
        arr = np.asarray(img)
        assert arr.dtype == np.uint8 and arr.shape == (8, 10, 3)
        # 0.75 * 51 + 0.25 * jet(0) = (38.25, 38.25, 38.25 + 32) → (38, 38, 70)
        assert arr[0, 0].tolist() == [38, 38, 70]
        # 0.75 * 51 + 0.25 * jet(1) = (38.25 + 32, 38.25, 38.25) → (70, 38, 38)
        assert arr[0, 9].tolist() == [70, 38, 38]

    def test_alpha_extremes(self) -> None:
        pixels = torch.rand(3, 6, 6)
        heat = torch.rand(6, 6)
        np.testing.assert_array_equal(
            np.asarray(viz.overlay(pixels, heat, alpha=0.0)), np.asarray(viz.to_image(pixels))
        )
        expected = viz.colormap(heat, "viridis").numpy()
        np.testing.assert_array_equal(np.asarray(viz.overlay(pixels, heat, 1.0, colormap="viridis")), expected)

    def test_heatmap_resized_to_image(self) -> None:
        img = viz.overlay(torch.zeros(3, 32, 48), torch.ones(4, 6), alpha=1.0)
        assert img.size == (48, 32)
        assert np.asarray(img)[10, 10].tolist() == [128, 0, 0]

    def test_bad_shapes(self) -> None:
        with pytest.raises(ValueError, match="pixels must be"):
            viz.overlay(torch.zeros(8, 8), torch.zeros(8, 8))
        with pytest.raises(ValueError, match="heatmap must be"):
            viz.overlay(torch.zeros(3, 8, 8), torch.zeros(1, 8, 8))
        with pytest.raises(ValueError, match="alpha"):
            viz.overlay(torch.zeros(3, 8, 8), torch.zeros(8, 8), alpha=1.5)


class TestGroundTruth:
    def test_box_outline(self) -> None:
        img = Image.new("RGB", (40, 30), (0, 0, 0))
        out = np.asarray(viz.draw_ground_truth(img, boxes=torch.tensor([[10.0, 5.0, 20.0, 15.0]])))
        green = list(viz.GT_COLOR)
        assert out[5, 10].tolist() == green and out[14, 19].tolist() == green  # corners, inside the box
        assert out[10, 15].tolist() == [0, 0, 0]  # interior untouched
        assert out[4, 10].tolist() == [0, 0, 0] and out[15, 20].tolist() == [0, 0, 0]  # outside untouched
        assert np.asarray(img).max() == 0  # the input is not modified

    def test_mask_tint_and_contour(self) -> None:
        img = Image.new("RGB", (20, 20), (100, 100, 100))
        mask = torch.zeros(20, 20, dtype=torch.bool)
        mask[5:15, 5:15] = True
        out = np.asarray(viz.draw_ground_truth(img, mask=mask, tint=0.5))
        assert out[5, 5].tolist() == list(viz.GT_COLOR)  # contour
        inner = [round(0.5 * 100 + 0.5 * c) for c in viz.GT_COLOR]
        assert out[10, 10].tolist() == inner  # tinted interior
        assert out[0, 0].tolist() == [100, 100, 100]  # outside untouched

    def test_none_and_mismatch(self) -> None:
        img = Image.new("RGB", (8, 6), (1, 2, 3))
        np.testing.assert_array_equal(np.asarray(viz.draw_ground_truth(img, None, None)), np.asarray(img))
        np.testing.assert_array_equal(np.asarray(viz.draw_ground_truth(img, torch.zeros(0, 4))), np.asarray(img))
        with pytest.raises(ValueError, match="mask must be"):
            viz.draw_ground_truth(img, mask=torch.zeros(8, 6, dtype=torch.bool))


class TestGrid:
    def test_size_without_labels(self) -> None:
        im = Image.new("RGB", (50, 50), (255, 0, 0))
        g = viz.grid([[im, im, im], [im, None]], cell=40, pad=3)
        assert g.size == (3 * 40 + 4 * 3, 2 * 40 + 3 * 3)
        arr = np.asarray(g)
        assert arr[3 + 20, 3 + 20].tolist() == [255, 0, 0]  # first cell filled
        assert arr[2 * 3 + 40 + 20, 3 * 3 + 2 * 40 + 20].tolist() == [255, 255, 255]  # missing cell is blank

    def test_size_with_labels(self) -> None:
        im = Image.new("RGB", (64, 32), (0, 0, 255))
        plain = viz.grid([[im, im]], cell=(64, 64), pad=4)
        labelled = viz.grid([[im, im]], row_labels=["sample 1"], col_labels=["Grad-CAM", "synthesized"], cell=(64, 64))
        assert plain.size == (2 * 64 + 3 * 4, 64 + 2 * 4)
        assert labelled.width > plain.width and labelled.height > plain.height
        # The label band and header add the same amount to every cell, so the difference is their size.
        assert labelled.width - plain.width <= 220 + 4
        # Non-square images keep their aspect ratio: letterboxed, centred.
        arr = np.asarray(plain)
        assert arr[4 + 32, 4 + 32].tolist() == [0, 0, 255]
        assert arr[4 + 5, 4 + 32].tolist() == [255, 255, 255]

    def test_labels_drawn(self) -> None:
        im = Image.new("RGB", (10, 10), (255, 255, 255))
        g = np.asarray(viz.grid([[im]], row_labels=["row"], col_labels=["col"], cell=40))
        assert g.min() < 100  # some dark text pixels

    def test_label_count_mismatch(self) -> None:
        im = Image.new("RGB", (10, 10))
        with pytest.raises(ValueError, match="row labels"):
            viz.grid([[im]], row_labels=["a", "b"])


class TestAtomicWriting:
    def test_save_png_roundtrip(self, tmp_path: Path) -> None:
        img = viz.overlay(torch.rand(3, 12, 16), torch.rand(12, 16))
        path = viz.save_png(img, tmp_path / "sub" / "x.png")
        assert path == tmp_path / "sub" / "x.png"
        np.testing.assert_array_equal(np.asarray(Image.open(path)), np.asarray(img))
        assert [p.name for p in path.parent.iterdir()] == ["x.png"]

    def test_no_partial_file_on_error(self, tmp_path: Path) -> None:
        def explode(f: object) -> None:
            f.write(b"\x89PNG partial")  # type: ignore[attr-defined]
            raise RuntimeError("disk full")

        target = tmp_path / "out.png"
        with pytest.raises(RuntimeError, match="disk full"):
            viz.write_atomic(target, explode)
        assert list(tmp_path.iterdir()) == []

    def test_old_content_kept_on_error(self, tmp_path: Path) -> None:
        target = tmp_path / "report.html"
        viz.write_atomic(target, "old")

        class Broken:
            def save(self, f: object, format: str) -> None:
                raise OSError("cannot encode")

        with pytest.raises(OSError, match="cannot encode"):
            viz.save_png(Broken(), target)  # type: ignore[arg-type]
        assert target.read_text() == "old"
        assert [p.name for p in tmp_path.iterdir()] == ["report.html"]
