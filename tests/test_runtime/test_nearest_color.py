"""Nearest-palette-colour decoding (`evaluate-seg --id-type color-nearest`), for colour label maps drawn by a model:
every palette colour decodes to its class and every void colour to ignore, the quantised table agrees with a
brute-force nearest colour wherever the nearest colour is not a near-tie, and a GAN-like noisy map scores as its
labels through the real CLI while exact matching (`--id-type color`) throws it away."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from helpers import write_cityscapes
from uda_trt.runtime.labels import (
    IGNORE,
    LABEL_ID_TO_TRAIN_ID,
    NUM_CLASSES,
    PALETTE,
    VOID_COLOURS,
    colorize,
    colors_to_train_ids,
    nearest_colors_to_train_ids,
)


def test_every_palette_colour_is_its_class_and_every_void_colour_is_ignored():
    assert nearest_colors_to_train_ids(PALETTE[None]).tolist() == [list(range(NUM_CLASSES))]
    assert nearest_colors_to_train_ids(VOID_COLOURS[None]).tolist() == [[IGNORE] * len(VOID_COLOURS)]


def test_known_off_palette_colours_go_to_the_nearest_one():
    rgb = np.array(
        [
            [
                (130, 60, 125),  # road (128, 64, 128) give or take a few levels
                (5, 75, 104),  # train (0, 80, 100), not bus (0, 60, 100)
                (2, 58, 97),  # bus
                (10, 5, 8),  # unlabeled black: void
                (240, 30, 225),  # sidewalk (244, 35, 232)
                (0, 0, 118),  # 8 from trailer (0, 0, 110), a void colour, 24 from car (0, 0, 142): void
            ]
        ],
        dtype=np.uint8,
    )
    assert nearest_colors_to_train_ids(rgb).tolist() == [[0, 16, 15, IGNORE, 1, IGNORE]]


def _brute_force(colours: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(nearest train ID or IGNORE, margin between the two nearest distances) by full float distances."""
    table = np.concatenate([PALETTE, VOID_COLOURS]).astype(np.float64)
    ids = np.concatenate([np.arange(NUM_CLASSES), np.full(len(VOID_COLOURS), IGNORE)])
    distances = np.sqrt(((colours[:, None, :].astype(np.float64) - table[None]) ** 2).sum(axis=2))
    order = np.sort(distances, axis=1)
    return ids[distances.argmin(axis=1)], order[:, 1] - order[:, 0]


def test_the_table_agrees_with_brute_force_nearest_colour_away_from_ties():
    colours = np.random.default_rng(0).integers(0, 256, size=(20000, 3), dtype=np.uint8)
    expected, margin = _brute_force(colours)
    decoded = nearest_colors_to_train_ids(colours[:, None, :])[:, 0]
    # quantising a channel to 6 bits moves a colour by at most 2 levels per channel (2 * sqrt(3) in distance), so the
    # decision can only differ where the two nearest colours are within twice that of each other
    clear = margin > 4 * np.sqrt(3)
    assert clear.sum() > 10_000  # most random colours are clear of a tie
    assert np.array_equal(decoded[clear], expected[clear])
    assert (decoded == expected).mean() > 0.95  # measured 0.98 on these colours


def test_a_noisy_colour_map_scores_as_its_labels_only_with_nearest_decoding(tmp_path: Path, cli):
    root = tmp_path / "cityscapes"
    truth = write_cityscapes(root, {"aachen": 2}, size=(48, 24), seed=3)
    predictions = tmp_path / "predictions"
    rng = np.random.default_rng(1)
    for stem, label_ids in truth.items():
        train_ids = LABEL_ID_TO_TRAIN_ID[label_ids]
        drawn = colorize(train_ids).astype(np.int16) + rng.integers(-6, 7, size=(*train_ids.shape, 3))
        drawn = np.clip(drawn, 0, 255).astype(np.uint8)  # what a GAN draws: never exactly the palette
        assert (colors_to_train_ids(drawn) == IGNORE).mean() > 0.9
        predictions.joinpath("aachen").mkdir(parents=True, exist_ok=True)
        Image.fromarray(drawn).save(predictions / "aachen" / f"{stem}_drawn.png")

    scores = {}
    for id_type in ("color-nearest", "color"):
        out = tmp_path / f"eval-{id_type}"
        result = cli("evaluate-seg", "--predictions", predictions, "--id-type", id_type, "--cityscapes", root,
                     "--split", "val", "--output", out)  # fmt: skip
        assert result.returncode == 0, result.stderr
        scores[id_type] = json.loads((out / "metrics.json").read_text())
    nearest = scores["color-nearest"]
    assert nearest["images_scored"] == 2
    assert nearest["pixel_accuracy"] == 1.0 and nearest["mean_iou"] == 1.0 and nearest["fw_iou"] == pytest.approx(1.0)
    assert scores["color"]["pixel_accuracy"] < 0.1
