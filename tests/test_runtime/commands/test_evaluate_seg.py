"""`evaluate-seg` as a user runs it: official-evaluator equality, files and contents, bad input."""

from __future__ import annotations

import copy
import json
import math
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from helpers import EVAL_LABEL_IDS, VOID_LABEL_IDS, write_cityscapes
from uda_trt.runtime.imageio import read_label, read_rgb
from uda_trt.runtime.labels import colorize, label_ids_to_train_ids, train_ids_to_label_ids
from uda_trt.runtime.metrics import confusion_matrix

# 31 (train) is predicted but never in the ground truth; 32 (motorcycle) is in neither -> NaN
GT_IDS = (0, 1, 4, 6, 7, 8, 11, 13, 17, 21, 23, 24, 26, 29, 30, 33)
PRED_IDS = (0, 4, 7, 8, 11, 12, 13, 17, 21, 23, 24, 26, 29, 30, 31, 33)
CITIES = {"aachen": 2, "bochum": 1, "cologne": 2}
ALL_IDS = EVAL_LABEL_IDS + VOID_LABEL_IDS  # every label ID a ground truth may hold


def write_png(path: Path, array: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)
    return path


def gt_file(root: Path, stem: str, split: str = "val") -> Path:
    return root / "gtFine" / split / stem.split("_")[0] / f"{stem}_gtFine_labelIds.png"


def noisy_predictions(truth: dict[str, np.ndarray], seed: int = 1) -> dict[str, np.ndarray]:
    """Label-ID predictions: the ground truth with ~40% of pixels drawn from PRED_IDS."""
    rng = np.random.default_rng(seed)
    out = {}
    for stem, gt in truth.items():
        noise = rng.choice(np.array(PRED_IDS, dtype=np.uint8), size=gt.shape)
        out[stem] = np.where(rng.random(gt.shape) < 0.4, noise, gt).astype(np.uint8)
    return out


def official_class_scores(pred_files: list[Path], gt_files: list[Path]) -> dict:
    from cityscapesscripts.evaluation import evalPixelLevelSemanticLabeling as official

    args = copy.copy(official.args)
    args.quiet, args.JSONOutput, args.evalInstLevelScore, args.evalPixelAccuracy = True, False, False, False
    return official.evaluateImgLists([str(p) for p in pred_files], [str(p) for p in gt_files], args)


@pytest.fixture
def scored_tree(tmp_path):
    """A 3-city val split without images, and label-ID predictions nested by city under pred/."""
    root = tmp_path / "cityscapes"
    truth = write_cityscapes(root, cities=CITIES, label_ids=GT_IDS, images=False)
    predictions = noisy_predictions(truth)
    files = {
        stem: write_png(tmp_path / "pred" / "run1" / stem.split("_")[0] / f"{stem}_leftImg8bit.png", pred)
        for stem, pred in predictions.items()
    }
    return root, truth, predictions, files


def load_metrics(out: Path) -> dict:
    text = (out / "metrics.json").read_text()
    assert "NaN" not in text
    return json.loads(text)


def test_predictions_equal_official_evaluator(tmp_path, scored_tree, cli):
    root, truth, _, files = scored_tree
    out = tmp_path / "out"
    result = cli("evaluate-seg", "--predictions", tmp_path / "pred", "--cityscapes", root, "--output", out)
    assert result.returncode == 0, result.stderr
    assert "mIoU" in result.stdout

    official = official_class_scores(list(files.values()), [gt_file(root, stem) for stem in files])
    metrics = load_metrics(out)
    assert [row["train_id"] for row in metrics["per_class"]] == list(range(19))
    for row in metrics["per_class"]:
        expected = official["classScores"][row["name"]]
        if math.isnan(expected):
            assert row["iou"] is None, row
        else:
            assert row["iou"] == pytest.approx(expected, abs=1e-12), row
    assert metrics["mean_iou"] == pytest.approx(official["averageScoreClasses"], abs=1e-12)
    by_name = {row["name"]: row for row in metrics["per_class"]}
    assert by_name["train"]["iou"] == 0.0 and by_name["motorcycle"]["iou"] is None

    matrix = np.array(metrics["confusion_matrix"])
    assert matrix.shape == (19, 20)
    valid_pixels = sum(int((label_ids_to_train_ids(gt) != 255).sum()) for gt in truth.values())
    assert matrix.sum() == valid_pixels and matrix[:, 19].sum() > 0  # void / non-eval predictions counted as FN
    for key in ("pixel_accuracy", "mean_accuracy", "mean_iou", "fw_iou"):
        assert 0.0 < metrics[key] < 1.0, key
    assert (metrics["images_scored"], metrics["images_skipped"], metrics["skipped"]) == (5, 0, [])
    assert (metrics["split"], metrics["id_type"]) == ("val", "labelid")
    markdown = (out / "metrics.md").read_text()
    assert "| 0 | road |" in markdown and f"{100 * metrics['mean_iou']:.2f}" in markdown


def test_id_types_give_the_same_matrix(tmp_path, scored_tree, cli):
    root, _, predictions, _ = scored_tree
    matrices = {}
    for id_type in ("labelid", "trainid", "color"):
        folder = tmp_path / id_type
        for stem, pred in predictions.items():
            train_ids = label_ids_to_train_ids(pred)
            encoded = {"labelid": pred, "trainid": train_ids, "color": colorize(train_ids)}[id_type]
            write_png(folder / f"{stem}_{id_type}.png", encoded)
        out = tmp_path / f"out_{id_type}"
        args = ["--predictions", folder, "--cityscapes", root, "--id-type", id_type, "--output", out]
        result = cli("evaluate-seg", *args)
        assert result.returncode == 0, result.stderr
        matrices[id_type] = load_metrics(out)["confusion_matrix"]
    assert matrices["labelid"] == matrices["trainid"] == matrices["color"]


def test_train_id_predictions_scored_as_label_ids_are_refused(tmp_path, scored_tree, cli, user_error):
    """Train IDs (0..18) read as label IDs would score near 0 % and pass silently; no value above 18 gives it away."""
    root, _, predictions, _ = scored_tree
    folder = tmp_path / "trainids"
    for stem, pred in predictions.items():
        write_png(folder / f"{stem}_pred.png", label_ids_to_train_ids(pred))
    out = tmp_path / "out"
    refused = cli("evaluate-seg", "--predictions", folder, "--cityscapes", root, "--output", out)
    user_error(refused, names="--id-type trainid")
    assert not (out / "metrics.json").exists()
    scored = cli("evaluate-seg", "--predictions", folder, "--cityscapes", root, "--id-type", "trainid", "--output", out)
    assert scored.returncode == 0, scored.stderr


def test_missing_prediction_is_skipped_or_strict_error(tmp_path, scored_tree, cli, user_error):
    root, _, _, files = scored_tree
    files["bochum_000000_000019"].unlink()
    missing_gt = gt_file(root, "bochum_000000_000019")
    out = tmp_path / "out"
    result = cli("evaluate-seg", "--predictions", tmp_path / "pred", "--cityscapes", root, "--output", out)
    assert result.returncode == 0, result.stderr
    assert str(missing_gt) in result.stderr and "Traceback" not in result.stderr
    metrics = load_metrics(out)
    assert (metrics["images_scored"], metrics["images_skipped"]) == (4, 1)
    assert metrics["skipped"][0]["file"] == str(missing_gt) and "no prediction" in metrics["skipped"][0]["reason"]

    strict = cli("evaluate-seg", "--predictions", tmp_path / "pred", "--cityscapes", root, "--output", out, "--strict")
    user_error(strict, names=str(missing_gt))


def test_unreadable_and_wrong_size_predictions_are_skipped(tmp_path, scored_tree, cli):
    root, _, _, files = scored_tree
    garbage, small = files["aachen_000000_000019"], files["cologne_000001_000020"]
    garbage.write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    write_png(small, np.zeros((16, 32), dtype=np.uint8))
    out = tmp_path / "out"
    result = cli("evaluate-seg", "--predictions", tmp_path / "pred", "--cityscapes", root, "--output", out)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    for path in (garbage, small):
        assert len([line for line in result.stderr.splitlines() if str(path) in line]) == 1, result.stderr
    metrics = load_metrics(out)
    assert (metrics["images_scored"], metrics["images_skipped"]) == (3, 2)
    reasons = {item["file"]: item["reason"] for item in metrics["skipped"]}
    assert "not a readable" in reasons[str(garbage)]
    assert "32x16 differs" in reasons[str(small)] and "64x32" in reasons[str(small)]


def test_nothing_scored_fails_the_job(tmp_path, cli):
    root = tmp_path / "cityscapes"
    write_cityscapes(root, cities={"ulm": 1}, images=False, label_ids=ALL_IDS)
    write_png(tmp_path / "pred" / "ulm_000000_000019.png", np.zeros((5, 5), dtype=np.uint8))
    out = tmp_path / "out"
    result = cli("evaluate-seg", "--predictions", tmp_path / "pred", "--cityscapes", root, "--output", out)
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr and "no image could be scored" in result.stderr
    assert load_metrics(out)["images_scored"] == 0


def test_bad_invocations_are_one_line_user_errors(tmp_path, scored_tree, cli, user_error):
    root, _, _, files = scored_tree
    out = tmp_path / "out"
    pred = tmp_path / "pred"
    missing = tmp_path / "no_such_folder"
    user_error(cli("evaluate-seg", "--predictions", missing, "--cityscapes", root, "--output", out), names=str(missing))
    # a GTA5-layout folder given as the Cityscapes root
    gta5 = tmp_path / "gta5"
    write_png(gta5 / "images" / "00001.png", np.zeros((4, 4, 3), dtype=np.uint8))
    write_png(gta5 / "labels" / "00001.png", np.zeros((4, 4), dtype=np.uint8))
    user_error(
        cli("evaluate-seg", "--predictions", pred, "--cityscapes", gta5, "--output", out),
        names=str(gta5 / "gtFine" / "val"),
    )
    user_error(
        cli("evaluate-seg", "--predictions", pred, "--cityscapes", root, "--split", "test", "--output", out),
        names=str(root / "gtFine" / "test"),
    )
    user_error(cli("evaluate-seg", "--cityscapes", root, "--output", out), names="--predictions")
    empty = tmp_path / "empty"
    empty.mkdir()
    user_error(cli("evaluate-seg", "--predictions", empty, "--cityscapes", root, "--output", out), names=str(empty))
    duplicate = write_png(pred / "other" / "aachen_000000_000019_x.png", np.zeros((32, 64), dtype=np.uint8))
    user_error(cli("evaluate-seg", "--predictions", pred, "--cityscapes", root, "--output", out), names=str(duplicate))
    assert not out.exists()


# ------------------------------------------------------------------------------------------------ engine mode


def test_engine_mode_scores_saves_and_round_trips(tmp_path, cli, red_segmenter):
    root = tmp_path / "cityscapes"
    write_cityscapes(root, cities={"aachen": 3}, size=(64, 32), seed=1, label_ids=ALL_IDS)
    # a second size: batches must not mix
    write_cityscapes(root, cities={"bochum": 2}, size=(48, 40), seed=2, label_ids=ALL_IDS)
    broken = root / "leftImg8bit" / "val" / "bochum" / "bochum_000001_000020_leftImg8bit.png"
    broken.write_bytes(b"")
    model = red_segmenter
    out = tmp_path / "out"
    args = ["--engine", model, "--cityscapes", root, "--output", out, "--batch-size", "2", "--save-predictions"]
    result = cli("evaluate-seg", *args)
    assert result.returncode == 0, result.stderr
    assert str(broken) in result.stderr and "Traceback" not in result.stderr

    expected = np.zeros((19, 20), dtype=np.int64)
    for image_path in sorted((root / "leftImg8bit" / "val").glob("*/*.png")):
        if image_path == broken:
            continue
        stem = image_path.name[: -len("_leftImg8bit.png")]
        labels = read_rgb(image_path)[..., 0] // 14
        gt = label_ids_to_train_ids(read_label(gt_file(root, stem)))
        expected += confusion_matrix(gt, labels)
        saved = out / "predictions" / stem.split("_")[0] / f"{stem}_pred_labelIds.png"
        assert (read_label(saved) == train_ids_to_label_ids(labels)).all(), saved
    metrics = load_metrics(out)
    assert (np.array(metrics["confusion_matrix"]) == expected).all()
    assert (metrics["images_scored"], metrics["images_skipped"]) == (4, 1)
    assert metrics["skipped"][0]["file"] == str(broken)
    assert metrics["mode"] == "engine" and metrics["backend"].startswith("onnxruntime")
    assert metrics["providers"][-1] == "CPUExecutionProvider"  # what ONNX Runtime ran it on, from the session
    if metrics["backend"] == "onnxruntime-cpu":
        assert metrics["providers"] == ["CPUExecutionProvider"]
    # what a person reads says what was scored, and the job's log keeps its warnings and result with times
    summary = (out / "metrics.md").read_text()
    assert str(model) in summary and metrics["backend"] in summary and "split val (5 images)" in summary
    logged = (out / "evaluate-seg.log").read_text().splitlines()
    assert any(str(broken) in line for line in logged) and "mIoU" in logged[-1]
    assert all(re.match(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d (INFO|WARNING): ", line) for line in logged)
    assert "\r" not in result.stderr  # no progress bar redrawn into a redirected stderr

    # the saved predictions are official-evaluator files: scoring them gives the same matrix
    again = tmp_path / "again"
    result = cli("evaluate-seg", "--predictions", out / "predictions", "--cityscapes", root, "--output", again)
    assert result.returncode == 0, result.stderr
    assert load_metrics(again)["confusion_matrix"] == metrics["confusion_matrix"]


def test_engine_mode_refuses_a_translator(tmp_path, invert_translator, cli, user_error):
    root = tmp_path / "cityscapes"
    write_cityscapes(root, cities={"aachen": 1}, label_ids=ALL_IDS)
    result = cli("evaluate-seg", "--engine", invert_translator, "--cityscapes", root, "--output", tmp_path / "out")
    user_error(result, names=str(invert_translator))
