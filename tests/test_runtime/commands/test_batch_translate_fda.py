"""batch-translate --fda end to end through the console script: outputs, manifest, rerun, resume, refusals."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from PIL import Image

from helpers import write_cityscapes, write_gta5
from uda_trt.runtime.fda import fda_uint8
from uda_trt.runtime.fda_translator import donor_index
from uda_trt.runtime.imageio import read_rgb, resize_rgb

BETA = "0.1"


@pytest.fixture
def data(tmp_path):
    """A GTA5 root of 5 images, one of them another size than the rest, and a Cityscapes root with 3 train images."""
    source = write_gta5(tmp_path / "gta5", count=5, size=(41, 23))
    other = write_gta5(tmp_path / "other", count=2, size=(30, 20), seed=1)
    for folder in ("images", "labels"):
        shutil.copy(other / folder / "00002.png", source / folder / "00002.png")
    target = tmp_path / "cityscapes"
    write_cityscapes(target, {"aachen": 2, "bremen": 1}, size=(64, 32), seed=2, split="train")
    return source, target


def translate(cli, source, target, out, *extra):
    return cli("batch-translate", "--fda", target, "--beta", BETA, "--input", source, "--output", out, *extra)


def visible_files(out):
    return {p.relative_to(out).as_posix(): p.read_bytes() for p in sorted(out.rglob("*.png"))}


def test_fda_run_rerun_and_resume(cli, data, tmp_path):
    source, target = data
    out = tmp_path / "out"
    result = translate(cli, source, target, out, "--workers", "1")
    assert result.returncode == 0, result.stderr

    donors = sorted((target / "leftImg8bit" / "train").glob("*/*_leftImg8bit.png"))
    for index in range(1, 6):
        name = f"{index:05d}.png"
        image = read_rgb(source / "images" / name)
        donor = donors[donor_index(f"{index:05d}", 0, len(donors))]
        expected = fda_uint8(image, resize_rgb(read_rgb(donor), image.shape[1::-1]), float(BETA))
        translated = read_rgb(out / "images" / name)
        assert translated.dtype == np.uint8 and translated.shape == image.shape
        np.testing.assert_array_equal(translated, expected)
        assert not np.array_equal(translated, image)
        assert (out / "labels" / name).read_bytes() == (source / "labels" / name).read_bytes()
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "complete" and manifest["artifact_sha256"] is None and manifest["backend"] == "fda"
    assert manifest["fda"]["donors"] == 3 and len(manifest["fda"]["donors_sha256"]) == 64
    assert manifest["fda"]["beta"] == float(BETA) and manifest["fda"]["seed"] == 0
    assert manifest["fda"]["target_layout"] == "cityscapes" and manifest["fda"]["target_split"] == "train"
    assert manifest["identity"]["fda_donors_sha256"] == manifest["fda"]["donors_sha256"]
    report = json.loads((out / "report.json").read_text())
    assert report["images_translated"] == 5 and report["working_size"] is None and report["fda"] == manifest["fda"]
    reference = visible_files(out)

    # the same command again: nothing to do, nothing rewritten
    mtimes = {p: p.stat().st_mtime_ns for p in (out / "images").iterdir()}
    rerun = translate(cli, source, target, out)
    assert rerun.returncode == 0, rerun.stderr
    assert json.loads((out / "report.json").read_text())["images_already_done"] == 5
    assert {p: p.stat().st_mtime_ns for p in (out / "images").iterdir()} == mtimes

    # a killed run: two samples journalled, one output gone; resumed with other batching and threads
    journal = out / ".progress.jsonl"
    journal.write_text("".join(journal.read_text().splitlines(keepends=True)[:2]))
    (out / "images" / "00005.png").unlink()
    resumed = translate(cli, source, target, out, "--batch-size", "3", "--workers", "2")
    assert resumed.returncode == 0, resumed.stderr
    report = json.loads((out / "report.json").read_text())
    assert report["images_already_done"] == 2 and report["images_translated"] == 3
    assert visible_files(out) == reference

    # another beta into the same folder is refused, naming the flag
    changed = cli("batch-translate", "--fda", target, "--beta", "0.2", "--input", source, "--output", out)
    assert changed.returncode == 2 and "--beta" in changed.stderr, changed.stderr


def test_fda_refusals(cli, user_error, data, tmp_path):
    source, target = data
    both = translate(cli, source, target, tmp_path / "a", "--engine", tmp_path / "model.onnx")
    user_error(both, names="--fda")
    (tmp_path / "empty").mkdir()
    user_error(translate(cli, source, tmp_path / "empty", tmp_path / "b"), names="--fda")
    beta = cli("batch-translate", "--fda", target, "--beta", "0.6", "--input", source, "--output", tmp_path / "c")
    user_error(beta, names="--beta")
    assert not (tmp_path / "a").exists() and not (tmp_path / "c").exists()


def test_fda_at_a_working_size(cli, data, tmp_path):
    """--size: every source is resized to it and its donor with it; --output-size working keeps that size."""
    source, target = data
    out = tmp_path / "out"
    result = translate(cli, source, target, out, "--size", "20x12", "--output-size", "working", "--seed", "3")
    assert result.returncode == 0, result.stderr
    donors = sorted((target / "leftImg8bit" / "train").glob("*/*_leftImg8bit.png"))
    for index in (1, 2):
        name = f"{index:05d}.png"
        donor = resize_rgb(read_rgb(donors[donor_index(f"{index:05d}", 3, len(donors))]), (20, 12))
        expected = fda_uint8(resize_rgb(read_rgb(source / "images" / name), (20, 12)), donor, float(BETA))
        np.testing.assert_array_equal(read_rgb(out / "images" / name), expected)
        assert Image.open(out / "labels" / name).size == (20, 12)
    assert json.loads((out / "report.json").read_text())["working_size"] == [20, 12]


def test_an_unreadable_donor_skips_the_samples_that_draw_it(cli, data, tmp_path):
    source, target = data
    donors = sorted((target / "leftImg8bit" / "train").glob("*/*_leftImg8bit.png"))
    bad = donors[donor_index("00001", 0, len(donors))]
    bad.write_bytes(bad.read_bytes()[:60])  # truncated: same name, listed, not decodable
    drawing = {f"{i:05d}" for i in range(1, 6) if donors[donor_index(f"{i:05d}", 0, len(donors))] == bad}
    out = tmp_path / "out"
    result = translate(cli, source, target, out)
    assert result.returncode == 0, result.stderr
    report = json.loads((out / "report.json").read_text())
    assert report["images_skipped"] == len(drawing) and report["images_translated"] == 5 - len(drawing)
    assert all(str(bad) in skip["reason"] for skip in report["skipped"])
    assert {p.stem for p in (out / "images").iterdir()} == {f"{i:05d}" for i in range(1, 6)} - drawing
    assert {p.stem for p in (out / "labels").iterdir()} == {f"{i:05d}" for i in range(1, 6)} - drawing
