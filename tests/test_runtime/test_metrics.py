"""runtime.metrics: a hand-computed confusion matrix, and equality with the official Cityscapes evaluator."""

from __future__ import annotations

import copy
import json
import math

import numpy as np
import pytest
from PIL import Image

from helpers import write_cityscapes
from uda_trt.runtime.imageio import read_label
from uda_trt.runtime.labels import CLASS_NAMES, LABEL_ID_TO_TRAIN_ID, NUM_CLASSES, label_ids_to_train_ids
from uda_trt.runtime.metrics import ConfusionMatrix, confusion_matrix, joint_histogram, write_metrics

# label IDs used below: 31 (train) and 32 (motorcycle) never appear in the ground truth
GT_IDS = (0, 1, 4, 6, 7, 8, 11, 13, 17, 21, 23, 24, 26, 29, 30, 33)
# predictions: void (0, 4), ignore-in-eval (29, 30), 31 predicted though absent from GT, 32 never predicted
PRED_IDS = (0, 4, 7, 8, 11, 12, 13, 17, 21, 23, 24, 26, 29, 30, 31, 33)


def test_hand_computed_tiny_case():
    gt = np.array([0, 0, 0, 1, 1, 255, 2, 2], dtype=np.uint8)
    pred = np.array([0, 0, 1, 1, 255, 0, 2, 3], dtype=np.uint8)
    expected = np.zeros((19, 20), dtype=np.int64)
    expected[0, 0], expected[0, 1] = 2, 1
    expected[1, 1], expected[1, 19] = 1, 1  # a prediction outside the classes: false negative of class 1 only
    expected[2, 2], expected[2, 3] = 1, 1  # the void-GT pixel predicted 0 is dropped
    assert (confusion_matrix(gt, pred) == expected).all()

    cm = ConfusionMatrix()
    cm.update(gt[:4], pred[:4])
    cm.update(gt[4:], pred[4:])  # accumulation equals the one-shot matrix
    assert (cm.matrix == expected).all()
    scores = cm.scores()
    assert scores["pixel_accuracy"] == pytest.approx(4 / 7)
    assert scores["mean_accuracy"] == pytest.approx((2 / 3 + 1 / 2 + 1 / 2) / 3)
    iou = [row["iou"] for row in scores["per_class"]]
    assert iou[:4] == pytest.approx([2 / 3, 1 / 3, 1 / 2, 0.0])  # class 3: predicted, absent from GT -> 0
    assert all(math.isnan(v) for v in iou[4:])  # neither in GT nor predicted -> NaN, left out of the mean
    assert scores["mean_iou"] == pytest.approx((2 / 3 + 1 / 3 + 1 / 2 + 0) / 4)
    assert scores["fw_iou"] == pytest.approx(3 / 7 * 2 / 3 + 2 / 7 * 1 / 3 + 2 / 7 * 1 / 2)
    assert math.isnan(scores["per_class"][3]["accuracy"])
    assert [row["name"] for row in scores["per_class"]] == list(CLASS_NAMES)


def test_confusion_matrix_rejects_shape_mismatch():
    with pytest.raises(ValueError, match="differ in shape"):
        confusion_matrix(np.zeros((2, 3), np.uint8), np.zeros((3, 2), np.uint8))


def test_raw_ids_through_lookup_tables_equal_the_per_pixel_mapping():
    """The fast path (joint histogram of raw uint8 IDs folded through the tables) against the plain path
    (tables applied per pixel, then the int64 bincount): equal for random IDs and random tables, batches too."""
    rng = np.random.default_rng(7)
    gt = rng.integers(0, 256, size=(3, 37, 53), dtype=np.uint8)
    pred = rng.integers(0, 256, size=(3, 37, 53), dtype=np.uint8)
    pred_table = rng.integers(0, 256, size=256, dtype=np.uint8)
    expected = confusion_matrix(LABEL_ID_TO_TRAIN_ID[gt].astype(np.int64), pred_table[pred].astype(np.int64))
    fast = confusion_matrix(gt, pred, gt_to_train=LABEL_ID_TO_TRAIN_ID, pred_to_train=pred_table)
    assert fast.dtype == np.int64 and (fast == expected).all() and expected.sum() > 0
    assert (confusion_matrix(gt[1:], pred[1:]) == confusion_matrix(gt[1:].astype(np.int16), pred[1:])).all()


def test_joint_histogram_is_exact_beyond_float32_counts():
    """More than 2^24 equal pairs: a float32 count would round; the count must be exact."""
    pixels = (1 << 24) + 3
    ones = np.ones(pixels, dtype=np.uint8)
    histogram = joint_histogram(ones, ones)
    assert histogram[1, 1] == pixels and histogram.sum() == pixels
    small = joint_histogram(np.array([[0, 255], [3, 3]], np.uint8), np.array([[255, 0], [4, 4]], np.uint8))
    assert (small[0, 255], small[255, 0], small[3, 4], small.sum()) == (1, 1, 2, 4)


def test_empty_matrix_scores_are_nan():
    scores = ConfusionMatrix().scores()
    assert all(math.isnan(scores[k]) for k in ("pixel_accuracy", "mean_accuracy", "mean_iou", "fw_iou"))


def make_predictions(truth: dict[str, np.ndarray], seed: int = 1) -> dict[str, np.ndarray]:
    """Label-ID predictions: the GT with ~40% of pixels replaced by draws from PRED_IDS."""
    rng = np.random.default_rng(seed)
    predictions = {}
    for stem, gt in truth.items():
        noise = rng.choice(np.array(PRED_IDS, dtype=np.uint8), size=gt.shape)
        predictions[stem] = np.where(rng.random(gt.shape) < 0.4, noise, gt).astype(np.uint8)
    return predictions


def official_scores(pred_files: list[str], gt_files: list[str]) -> dict:
    from cityscapesscripts.evaluation import evalPixelLevelSemanticLabeling as official

    args = copy.copy(official.args)
    args.quiet, args.JSONOutput, args.evalInstLevelScore, args.evalPixelAccuracy = True, False, False, False
    return official.evaluateImgLists(pred_files, gt_files, args)


def test_equals_official_evaluator_per_class(tmp_path):
    cities = {"aachen": 2, "bochum": 1, "cologne": 2}
    truth = write_cityscapes(tmp_path / "cs", cities=cities, label_ids=GT_IDS, images=False)
    predictions = make_predictions(truth)
    pred_files, gt_files, cm = [], [], ConfusionMatrix()
    for stem, pred in predictions.items():
        city = stem.split("_")[0]
        gt_file = tmp_path / "cs" / "gtFine" / "val" / city / f"{stem}_gtFine_labelIds.png"
        pred_file = tmp_path / "pred" / f"{stem}_pred.png"
        pred_file.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(pred).save(pred_file)
        pred_files.append(str(pred_file))
        gt_files.append(str(gt_file))
        cm.update(label_ids_to_train_ids(read_label(gt_file)), label_ids_to_train_ids(read_label(pred_file)))

    official = official_scores(pred_files, gt_files)
    ours = cm.scores()
    for row in ours["per_class"]:
        expected = official["classScores"][row["name"]]
        if math.isnan(expected):
            assert math.isnan(row["iou"]), row
        else:
            assert row["iou"] == pytest.approx(expected, abs=1e-12), row
    assert ours["mean_iou"] == pytest.approx(official["averageScoreClasses"], abs=1e-12)
    by_name = {row["name"]: row["iou"] for row in ours["per_class"]}
    assert by_name["train"] == 0.0 and math.isnan(by_name["motorcycle"])  # the cases the data was built for
    assert 0.2 < ours["mean_iou"] < 0.9


def test_write_metrics_json_and_markdown(tmp_path):
    cm = ConfusionMatrix()
    cm.update(np.array([0, 1, 1], np.uint8), np.array([0, 1, 200], np.uint8))
    extra = {"split": "val", "skipped": [{"file": "x.png", "reason": "empty file"}]}
    returned = write_metrics(tmp_path, cm, images_scored=1, images_skipped=1, extra=extra)
    text = (tmp_path / "metrics.json").read_text()
    assert "NaN" not in text
    data = json.loads(text)
    assert data == returned
    assert np.array(data["confusion_matrix"]).shape == (NUM_CLASSES, NUM_CLASSES + 1)
    assert data["confusion_matrix"][1][19] == 1
    assert data["per_class"][2]["iou"] is None and data["per_class"][1]["iou"] == pytest.approx(0.5)
    assert data["pixel_accuracy"] == pytest.approx(2 / 3)
    assert (data["images_scored"], data["images_skipped"], data["split"]) == (1, 1, "val")
    markdown = (tmp_path / "metrics.md").read_text()
    assert "| 1 | sidewalk | 50.00 |" in markdown and "x.png" in markdown
    assert sorted(p.name for p in tmp_path.iterdir()) == ["metrics.json", "metrics.md"]
