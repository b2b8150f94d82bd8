"""batch-translate end to end through the console script, on real files in the GTA5 and folder layouts."""

from __future__ import annotations

import json
import re
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from helpers import write_cityscapes, write_gta5
from uda_trt.runtime.imageio import read_rgb, resize_rgb
from uda_trt.runtime.jobs.workers import default_workers
from uda_trt.runtime.labels import PALETTE, TRAIN_ID_TO_LABEL_ID

ODD_SIZE = (41, 23)  # GTA5 images in these tests: odd sizes, like real data
FIRST_PROVIDER = {
    "onnxruntime-cpu": "CPUExecutionProvider",
    "onnxruntime-cuda": "CUDAExecutionProvider",
    "onnxruntime-tensorrt": "TensorrtExecutionProvider",
}


def _palette_label(size: tuple[int, int], seed: int) -> Image.Image:
    rng = np.random.default_rng(seed)
    ids = rng.choice(TRAIN_ID_TO_LABEL_ID, size=(size[1], size[0])).astype(np.uint8)
    label = Image.fromarray(ids, mode="P")
    palette = np.zeros((256, 3), np.uint8)
    palette[TRAIN_ID_TO_LABEL_ID] = PALETTE
    label.putpalette(palette.tobytes())
    return label


def test_gta5_at_working_size(tmp_path, cli, invert_translator):
    source = write_gta5(tmp_path / "gta5", size=ODD_SIZE)
    out = tmp_path / "out"
    args = ["--engine", invert_translator, "--input", source, "--output", out, "--output-size", "working"]
    result = cli("batch-translate", *args)
    assert result.returncode == 0, result.stderr
    for index in (1, 2, 3):
        name = f"{index:05d}.png"
        translated = read_rgb(out / "images" / name)
        expected = 255 - resize_rgb(read_rgb(source / "images" / name), (32, 16))
        np.testing.assert_array_equal(translated, expected)
        label = Image.open(out / "labels" / name)
        assert label.mode == "P" and label.size == (32, 16)
        original = Image.open(source / "labels" / name).resize((32, 16), Image.NEAREST)
        np.testing.assert_array_equal(np.asarray(label), np.asarray(original))
    report = json.loads((out / "report.json").read_text())
    assert report["images_translated"] == 3 and report["images_skipped"] == 0
    assert report["working_size"] == [32, 16]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "complete" and manifest["total"] == 3 and len(manifest["artifact_sha256"]) == 64
    # what ran, as ONNX Runtime reports it after opening the session (not only what was asked for)
    assert report["providers"] == manifest["providers"] and report["backend"] == manifest["backend"]
    assert report["providers"][0] == FIRST_PROVIDER[report["backend"]]

    rerun = cli("batch-translate", *args)
    assert rerun.returncode == 0, rerun.stderr
    report = json.loads((out / "report.json").read_text())
    assert report["images_already_done"] == 3 and report["images_translated"] == 0


def test_default_batch_size_is_the_backends_and_is_recorded(tmp_path, cli, invert_translator):
    """Without --batch-size the CPU runs one image per run in flight (two with two cores or more); the manifest
    records the resolved size, so the same job given it explicitly is the same job (it resumes, nothing redone),
    and another size is refused by name."""
    source = write_gta5(tmp_path / "gta5", count=5, size=ODD_SIZE)
    out = tmp_path / "out"
    args = ["--engine", invert_translator, "--input", source, "--output", out, "--backend", "onnxruntime-cpu"]
    first = cli("batch-translate", *args)
    assert first.returncode == 0, first.stderr
    expected = min(default_workers(), 2)
    report = json.loads((out / "report.json").read_text())
    assert report["batch_size"] == expected
    assert json.loads((out / "manifest.json").read_text())["identity"]["batch_size"] == expected

    same = cli("batch-translate", *args, "--batch-size", expected)
    assert same.returncode == 0, same.stderr
    assert json.loads((out / "report.json").read_text())["images_already_done"] == 5
    other = cli("batch-translate", *args, "--batch-size", expected + 1)
    assert other.returncode == 2 and f"--batch-size {expected}, this one {expected + 1}" in other.stderr


def test_by_default_the_output_has_the_source_geometry(tmp_path, cli, invert_translator):
    """Both study arms must see objects at one scale: translations come back at each input's size, labels as
    they were, so `train-segmenter --scale S` means the same on the source and on its translation."""
    source = write_gta5(tmp_path / "gta5", count=2, size=ODD_SIZE)
    out = tmp_path / "out"
    result = cli(
        "batch-translate", "--engine", invert_translator, "--input", source, "--output", out, "--format", "jpg"
    )
    assert result.returncode == 0, result.stderr
    for index in (1, 2):
        assert (out / "labels" / f"{index:05d}.png").read_bytes() == (
            source / "labels" / f"{index:05d}.png"
        ).read_bytes()
        assert read_rgb(out / "images" / f"{index:05d}.jpg").shape == (23, 41, 3)


def test_folder_layout_keeps_relative_paths_and_converts_inputs(tmp_path, cli, invert_translator):
    source = tmp_path / "photos"
    (source / "a" / "b").mkdir(parents=True)
    gray = np.full((16, 32), 100, np.uint8)
    cv2.imwrite(str(source / "a" / "b" / "gray.png"), gray)
    rgba = np.zeros((16, 32, 4), np.uint8)
    rgba[..., 2] = 200  # red in OpenCV's BGRA
    rgba[..., 3] = 10
    cv2.imwrite(str(source / "a" / "rgba.png"), rgba)
    out = tmp_path / "out"
    result = cli("batch-translate", "--engine", invert_translator, "--input", source, "--output", out)
    assert result.returncode == 0, result.stderr
    np.testing.assert_array_equal(read_rgb(out / "a" / "b" / "gray.png"), np.full((16, 32, 3), 155, np.uint8))
    red_inverted = read_rgb(out / "a" / "rgba.png")
    assert tuple(red_inverted[0, 0]) == (55, 255, 255)


def test_bad_samples_are_skipped_and_counted(tmp_path, cli, invert_translator):
    source = write_gta5(tmp_path / "gta5", count=4, size=ODD_SIZE)
    (source / "images" / "00002.png").write_bytes((source / "images" / "00002.png").read_bytes()[:40])  # truncated
    _palette_label((20, 12), 7).save(source / "labels" / "00003.png")  # label size differs from its image
    out = tmp_path / "out"
    result = cli("batch-translate", "--engine", invert_translator, "--input", source, "--output", out)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    report = json.loads((out / "report.json").read_text())
    assert report["images_translated"] == 2 and report["images_skipped"] == 2
    skipped = {Path(item["image"]).name for item in report["skipped"]}
    assert skipped == {"00002.png", "00003.png"}
    for name in ("00002.png", "00003.png"):
        assert not (out / "images" / name).exists() and not (out / "labels" / name).exists()
    assert not list(out.rglob("*.partial"))

    strict = cli(
        "batch-translate", "--engine", invert_translator, "--input", source, "--output", tmp_path / "o2", "--strict"
    )
    assert strict.returncode == 2 and "Traceback" not in strict.stderr


@pytest.mark.parametrize(
    ("args", "names"),
    [
        (["--input", "missing-folder"], "missing-folder"),
        (["--size", "30x16"], "--size"),
    ],
)
def test_user_errors(tmp_path, cli, user_error, invert_translator, args, names):
    source = write_gta5(tmp_path / "gta5", count=1, size=ODD_SIZE)
    base = {"--engine": str(invert_translator), "--input": str(source), "--output": str(tmp_path / "out")}
    for flag, value in zip(args[::2], args[1::2], strict=True):
        base[flag] = str(tmp_path / value) if flag == "--input" else value
    result = cli("batch-translate", *[item for pair in base.items() for item in pair])
    user_error(result, names=names)


def test_missing_label_and_missing_sidecar(tmp_path, cli, user_error, invert_translator):
    source = write_gta5(tmp_path / "gta5", count=2, size=ODD_SIZE)
    (source / "labels" / "00002.png").unlink()
    result = cli("batch-translate", "--engine", invert_translator, "--input", source, "--output", tmp_path / "out")
    user_error(result, names="00002")
    _palette_label((41, 23), 2).save(source / "labels" / "00002.png")
    invert_translator.with_suffix(".json").unlink()
    result = cli("batch-translate", "--engine", invert_translator, "--input", source, "--output", tmp_path / "out")
    user_error(result, names="invert.json")


def test_summary_and_report_say_the_layout_split_and_labels(tmp_path, cli, invert_translator):
    gta5 = write_gta5(tmp_path / "gta5", count=1, size=ODD_SIZE)
    write_cityscapes(tmp_path / "cs", split="train")
    write_cityscapes(tmp_path / "cs", split="val")
    for source, said in ((gta5, "gta5 layout, labels carried"), (tmp_path / "cs", "cityscapes layout, split train")):
        out = tmp_path / f"out-{source.name}"
        result = cli("batch-translate", "--engine", invert_translator, "--input", source, "--output", out)
        assert result.returncode == 0, result.stderr
        assert said in result.stderr.splitlines()[-1]
        report = json.loads((out / "report.json").read_text())
        assert said in report["input"] and report["labels"] is True and report["warnings"] == []
    assert json.loads((tmp_path / "out-cs" / "report.json").read_text())["split"] == "train"


@pytest.mark.parametrize(
    ("given", "warning"),
    [
        ("gta5-unlabelled", "no labels/ folder"),  # a GTA5 root without labels/
        ("gta5/images", "pass --input {root}/gta5 to carry its labels"),
        ("cs/leftImg8bit", "pass --input {root}/cs --split SPLIT"),
        ("cs/leftImg8bit/train", "pass --input {root}/cs --split train"),
    ],
)
def test_a_guess_that_drops_labels_is_warned_about(tmp_path, cli, invert_translator, given, warning):
    write_gta5(tmp_path / "gta5", count=1, size=ODD_SIZE)
    write_gta5(tmp_path / "gta5-unlabelled", count=1, size=ODD_SIZE, labels=False)
    write_cityscapes(tmp_path / "cs", split="train")
    out = tmp_path / "out"
    result = cli("batch-translate", "--engine", invert_translator, "--input", tmp_path / given, "--output", out)
    assert result.returncode == 0, result.stderr
    assert warning.format(root=tmp_path) in result.stderr
    assert "no labels" in result.stderr.splitlines()[-1]
    report = json.loads((out / "report.json").read_text())
    assert report["labels"] is False and warning.format(root=tmp_path) in report["warnings"][0]
    assert not (out / "labels").exists() and not list(out.rglob("*gtFine*"))


def test_the_job_keeps_a_timestamped_log_and_no_bar_in_redirected_stderr(tmp_path, cli, invert_translator):
    source = write_gta5(tmp_path / "gta5", count=2, size=ODD_SIZE)
    out = tmp_path / "out"
    for _ in range(2):  # a rerun appends
        result = cli("batch-translate", "--engine", invert_translator, "--input", source, "--output", out)
        assert result.returncode == 0, result.stderr
        assert "\r" not in result.stderr
    logged = (out / "batch-translate.log").read_text().splitlines()
    assert all(re.match(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d (INFO|WARNING): ", line) for line in logged)
    summaries = [line for line in logged if "translated " in line]
    assert len(summaries) == 2 and "2 already done" in summaries[1]
