"""batch-translate end to end through the console script, on real files in the GTA5 and folder layouts."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from helpers import write_gta5
from uda_trt.runtime.imageio import read_rgb, resize_rgb
from uda_trt.runtime.labels import PALETTE, TRAIN_ID_TO_LABEL_ID

ODD_SIZE = (41, 23)  # GTA5 images in these tests: odd sizes, like real data


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
    result = cli("batch-translate", "--engine", invert_translator, "--input", source, "--output", out)
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

    rerun = cli("batch-translate", "--engine", invert_translator, "--input", source, "--output", out)
    assert rerun.returncode == 0, rerun.stderr
    report = json.loads((out / "report.json").read_text())
    assert report["images_already_done"] == 3 and report["images_translated"] == 0


def test_original_size_copies_labels_byte_for_byte(tmp_path, cli, invert_translator):
    source = write_gta5(tmp_path / "gta5", count=2, size=ODD_SIZE)
    out = tmp_path / "out"
    result = cli(
        "batch-translate",
        "--engine",
        invert_translator,
        "--input",
        source,
        "--output",
        out,
        "--output-size",
        "original",
        "--format",
        "jpg",
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
