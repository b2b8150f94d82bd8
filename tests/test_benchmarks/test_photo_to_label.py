"""run-uda --study photo-to-label through the real CLI (smoke preset, synthetic photo/label pairs): the report holds
PA, MPA, mIoU and FWIoU for pix2pix, the U-Net and DeepLabV3+ on the same val images, pix2pix's score is what its
drawn colour maps give with nearest-colour decoding (recomputed here from the files), the picture grid is written,
a rerun keeps the finished work, and a --target without colour label images is refused before any work."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from helpers import assert_study_pages, run_cli, run_once, write_cityscapes
from uda_trt.benchmarks.inputs import check_paired_inputs
from uda_trt.runtime.datasets import cityscapes_samples
from uda_trt.runtime.errors import UserError
from uda_trt.runtime.imageio import read_label, read_rgb
from uda_trt.runtime.labels import LABEL_ID_TO_TRAIN_ID, nearest_colors_to_train_ids
from uda_trt.runtime.metrics import confusion_matrix, scores_from_matrix

ARMS = ["pix2pix", "unet", "deeplabv3plus"]
SCORES = ("pixel_accuracy", "mean_accuracy", "mean_iou", "fw_iou")


@pytest.fixture(scope="module")
def study(tmp_path_factory) -> tuple[Path, dict]:
    """The smoke study, once per session: (output folder, report.json)."""
    out, made = run_once(tmp_path_factory, "paired-smoke", _smoke_study_and_a_rerun)
    return out / "study", made["report"]


def _smoke_study_and_a_rerun(folder: Path) -> dict:
    """The smoke study, then the same command again (inside the fixture, so no test changes the shared folder):
    the first report, the rerun's, and each artifact's modification time before and after the rerun."""
    out = folder / "study"
    command = ("run-uda", "--study", "photo-to-label", "--preset", "smoke", "--output", out)
    result = run_cli(*command)
    assert result.returncode == 0, result.stderr
    assert "pix2pix" in result.stderr and "report.md" in result.stderr
    report = json.loads((out / "report.json").read_text())
    artifacts = {arm: Path(report["arms"][arm]["artifact"]) for arm in ARMS}
    before = {arm: path.stat().st_mtime_ns for arm, path in artifacts.items()}
    again = run_cli(*command)
    assert again.returncode == 0, again.stderr
    after = {arm: path.stat().st_mtime_ns for arm, path in artifacts.items()}
    rerun = json.loads((out / "report.json").read_text())
    return {"report": report, "rerun": rerun, "stamps": [before, after]}


@pytest.mark.slow
def test_every_model_is_scored_on_the_same_val_images_with_the_four_scores(study):
    out, report = study
    assert list(report["arms"]) == ARMS and list(report["summary"]["miou"]) == ARMS
    val = cityscapes_samples(out / "data" / "cityscapes", "val")
    for arm in ARMS:
        metrics = report["arms"][arm]["metrics"]
        assert metrics["images_scored"] == len(val) and metrics["images_skipped"] == 0
        assert metrics["split"] == "val" and metrics["ground_truth_images"] == len(val)
        assert all(0.0 <= metrics[key] <= 1.0 for key in SCORES), metrics
        assert report["summary"]["miou"][arm] == metrics["mean_iou"]
        assert json.loads((out / "eval" / arm / "metrics.json").read_text())["mean_iou"] == metrics["mean_iou"]
    assert report["arms"]["pix2pix"]["metrics"]["id_type"] == "color-nearest"
    assert report["arms"]["unet"]["metrics"]["architecture"] == "unet"
    assert report["arms"]["deeplabv3plus"]["metrics"]["architecture"] == "deeplabv3plus_mobilenet"
    # one working size for all: the segmenters' scale is the pix2pix working width over the photos' width
    width = Image.open(val[0].image).width
    assert report["segmenter_scale"] == report["preset"]["working_size"][0] / width
    for arm in ("unet", "deeplabv3plus"):
        assert report["arms"][arm]["config"]["scale"] == report["segmenter_scale"]
        assert report["arms"][arm]["config"]["split"] == "train"
    assert report["arms"]["pix2pix"]["config"]["split"] == "train"


@pytest.mark.slow
def test_pix2pix_score_is_its_drawn_maps_decoded_to_the_nearest_colour(study):
    out, report = study
    drawn = Path(report["arms"]["pix2pix"]["predictions"])
    matrix = 0
    for sample in cityscapes_samples(out / "data" / "cityscapes", "val"):
        rgb = read_rgb(drawn / sample.image.relative_to(sample.image.parents[1]))
        gt = read_label(sample.label)
        assert rgb.shape[:2] == gt.shape  # written back at the photo's own size
        matrix = matrix + confusion_matrix(gt, nearest_colors_to_train_ids(rgb), gt_to_train=LABEL_ID_TO_TRAIN_ID)
    expected = scores_from_matrix(matrix)
    metrics = report["arms"]["pix2pix"]["metrics"]
    for key in SCORES:
        assert metrics[key] == pytest.approx(expected[key], nan_ok=True)


@pytest.mark.slow
def test_report_markdown_and_the_picture_grid(study):
    out, report = study
    text = (out / "report.md").read_text()
    assert "| model | PA | MPA | mIoU | FWIoU |" in text and "Smoke preset" in text
    assert "color-nearest" in text and "## Per-class IoU" in text
    for title in ("pix2pix", "U-Net", "DeepLabV3+"):
        assert f"| {title} | " in text
    assert ("beats the U-Net" in text) or ("trails the U-Net" in text) or ("ties the U-Net" in text)
    assert report["figures"][0] == "samples.png"
    with Image.open(out / "samples.png") as grid:
        assert grid.width > grid.height  # five columns: photo, three models, ground truth


@pytest.mark.slow
def test_a_rerun_keeps_the_finished_work(tmp_path_factory, study):
    _, made = run_once(tmp_path_factory, "paired-smoke", _smoke_study_and_a_rerun)
    before, after = made["stamps"]
    assert before == after  # exports kept
    assert made["rerun"]["summary"]["miou"] == made["report"]["summary"]["miou"]


def test_a_target_without_colour_label_images_is_refused_in_one_line(tmp_path: Path, user_error):
    root = tmp_path / "cityscapes"
    write_cityscapes(root, {"aachen": 1}, split="train")
    write_cityscapes(root, {"bremen": 1}, split="val")
    with pytest.raises(UserError, match=r"--target .*_gtFine_color\.png"):
        check_paired_inputs(root)
    result = run_cli("run-uda", "--study", "photo-to-label", "--target", root, "--output", tmp_path / "out")
    user_error(result, names="--target")
    assert not (tmp_path / "out" / "pix2pix").exists()  # refused before any training


def test_a_target_without_val_labels_is_refused(tmp_path: Path):
    root = tmp_path / "cityscapes"
    write_cityscapes(root, {"aachen": 1}, split="train")
    for label in (root / "gtFine" / "train").rglob("*_labelIds.png"):  # the colour image pix2pix learns from
        colour = label.with_name(label.name.replace("_labelIds", "_color"))
        Image.fromarray(np.zeros((32, 64, 3), np.uint8)).save(colour)
    check_paired_inputs(root, "train")  # train is complete
    with pytest.raises(UserError, match="--target .*val"):
        check_paired_inputs(root, "val")


@pytest.mark.slow
def test_class_figures_and_the_index_page(study):
    out, report = study
    assert_study_pages(out, report["figures"], list(report["arms"]))
