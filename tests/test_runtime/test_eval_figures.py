"""evaluate-seg's pictures on known arrays: the colour scale, the row shares, the blend, and real decodable PNGs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

from helpers import write_cityscapes
from uda_trt.runtime.eval_figures import OVERLAY_ROWS, blend, row_shares, viridis, write_eval_figures
from uda_trt.runtime.labels import IGNORE, PALETTE


def test_scale_ends_and_row_shares():
    np.testing.assert_array_equal(viridis(np.array([0.0, 1.0, 2.0])), [(68, 1, 84), (253, 231, 37), (253, 231, 37)])
    np.testing.assert_allclose(row_shares(np.array([[1, 3], [0, 0]])), [[0.25, 0.75], [0, 0]])


def test_blend_colours_evaluated_pixels_only():
    image = np.full((2, 2, 3), 100, np.uint8)
    labels = np.array([[0, IGNORE], [13, 13]], np.uint8)
    out = blend(image, labels, alpha=1.0)
    np.testing.assert_array_equal(out[0, 0], PALETTE[0])
    np.testing.assert_array_equal(out[0, 1], image[0, 1])
    np.testing.assert_array_equal(out[1, 1], PALETTE[13])


def test_figures_are_real_pictures(tmp_path: Path):
    rng = np.random.default_rng(0)
    matrix = rng.integers(0, 50, (19, 20))
    matrix[np.arange(19), np.arange(19)] += 400
    image = rng.integers(0, 256, (64, 128, 3), dtype=np.uint8)
    labels = rng.integers(0, 19, (64, 128)).astype(np.uint8)
    paths = write_eval_figures(tmp_path, matrix, [(image, labels, labels)] * 5)
    assert [p.name for p in paths] == ["confusion.png", "overlays.png"]
    for path in paths:
        with Image.open(path) as picture:
            pixels = np.asarray(picture.convert("RGB"))
        assert len(np.unique(pixels.reshape(-1, 3), axis=0)) > 20
    with Image.open(paths[1]) as overlays:
        assert overlays.size == (3 * 512, 4 * 256)  # three panels of 512 wide, at most four rows
    assert write_eval_figures(tmp_path / "x", matrix, []) == [tmp_path / "x" / "confusion.png"]


def _pictures(out: Path) -> list[str]:
    names = json.loads((out / "metrics.json").read_text())["figures"]
    for name in names:
        with Image.open(out / name) as picture:
            assert len(np.unique(np.asarray(picture.convert("RGB")).reshape(-1, 3), axis=0)) > 10, name
    return names


def test_evaluate_seg_writes_the_heatmap_and_overlays_in_both_modes(tmp_path, red_segmenter, cli):
    """--engine: heatmap and the first images' overlays; --predictions: the same with the photos, the heatmap alone
    when the Cityscapes root has no photos."""
    root = tmp_path / "cityscapes"
    truth = write_cityscapes(root, {"aachen": 3, "bochum": 3}, size=(64, 32))
    engine = cli("evaluate-seg", "--engine", red_segmenter, "--cityscapes", root, "--output", tmp_path / "engine")
    assert engine.returncode == 0, engine.stderr
    assert _pictures(tmp_path / "engine") == ["confusion.png", "overlays.png"]
    with Image.open(tmp_path / "engine" / "overlays.png") as overlays:
        assert overlays.size == (3 * 512, OVERLAY_ROWS * 256)  # 64x32 photos shown 512 wide, the first four only

    predictions = tmp_path / "predictions"
    for stem, labels in truth.items():
        city = stem.split("_")[0]
        (predictions / city).mkdir(parents=True, exist_ok=True)
        Image.fromarray(labels).save(predictions / city / f"{stem}_pred_labelIds.png")
    args = ("--predictions", predictions, "--id-type", "labelid")
    scored = cli("evaluate-seg", *args, "--cityscapes", root, "--output", tmp_path / "files")
    assert scored.returncode == 0, scored.stderr
    assert _pictures(tmp_path / "files") == ["confusion.png", "overlays.png"]

    bare = tmp_path / "labels-only"
    write_cityscapes(bare, {"aachen": 3, "bochum": 3}, size=(64, 32), images=False)
    scored = cli("evaluate-seg", *args, "--cityscapes", bare, "--output", tmp_path / "bare")
    assert scored.returncode == 0, scored.stderr
    assert _pictures(tmp_path / "bare") == ["confusion.png"]


def test_no_figures_writes_none(tmp_path, red_segmenter, cli):
    root = tmp_path / "cityscapes"
    write_cityscapes(root, {"aachen": 2}, size=(64, 32))
    out = tmp_path / "engine"
    done = cli("evaluate-seg", "--engine", red_segmenter, "--cityscapes", root, "--output", out, "--no-figures")
    assert done.returncode == 0, done.stderr
    assert json.loads((out / "metrics.json").read_text())["figures"] == []
    assert not list(out.glob("*.png"))
