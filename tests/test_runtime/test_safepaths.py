"""runtime.safepaths: output names derived from input names never leave the output folder; labels carried over
by batch-translate are copies."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from uda_trt.runtime.errors import SampleError
from uda_trt.runtime.safepaths import check_input_inside, output_path


@pytest.mark.parametrize("name", ["../x.png", "a/../../x.png", "/etc/x.png", "..", ""])
def test_names_that_would_leave_the_output_are_refused(tmp_path, name):
    with pytest.raises(SampleError, match="would leave the output folder"):
        output_path(tmp_path / "out", name, Path("input.png"))


@pytest.mark.parametrize(
    "name", ["a..b.png", "sub/x..png", "...png", "a//b.png", "./x.png", "caf\udce9.png", "two\nlines.png"]
)
def test_odd_but_harmless_names_stay_inside(tmp_path, name):
    out = tmp_path / "out"
    assert out in output_path(out, name, Path("input.png")).parents


def test_a_symlinked_folder_in_the_output_is_refused(tmp_path):
    out, outside = tmp_path / "out", tmp_path / "outside"
    out.mkdir()
    outside.mkdir()
    (out / "images").symlink_to(outside, target_is_directory=True)
    with pytest.raises(SampleError, match="outside"):
        output_path(out, "images/00001.png", Path("input.png"))
    inside = out / "real"
    inside.mkdir()
    (out / "alias").symlink_to(inside, target_is_directory=True)  # a link that stays inside is fine
    assert output_path(out, "alias/00001.png", Path("input.png")) == out / "alias" / "00001.png"


def test_input_symlinks_out_of_the_dataset_are_refused(tmp_path):
    root, elsewhere = tmp_path / "data", tmp_path / "elsewhere"
    (root / "images").mkdir(parents=True)
    elsewhere.mkdir()
    (elsewhere / "x.png").write_bytes(b"x")
    (root / "images" / "evil.png").symlink_to(elsewhere / "x.png")
    with pytest.raises(SampleError, match="outside the dataset"):
        check_input_inside(root / "images" / "evil.png", root)
    (root / "labels").symlink_to(elsewhere, target_is_directory=True)  # a dataset folder on another disk: fine
    check_input_inside(root / "labels" / "x.png", root)


def test_symlinked_output_folder_gets_nothing(tmp_path, cli, synthetic, shared_invert_translator, untouched):
    out, outside = tmp_path / "out", tmp_path / "outside"
    outside.mkdir()
    out.mkdir()
    (out / "images").symlink_to(outside, target_is_directory=True)
    check = untouched(tmp_path, out)
    args = ["--engine", shared_invert_translator, "--input", synthetic / "gta5", "--output", out, "--overwrite"]
    result = cli("batch-translate", *args)
    check()
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr[-2000:]
    assert not any(outside.iterdir())
    report = json.loads((out / "report.json").read_text())
    assert report["images_translated"] == 0 and report["images_skipped"] == 120
    assert "outside" in report["skipped"][0]["reason"]
    assert not (out / "labels").exists() or not any((out / "labels").iterdir())  # no label without its image


@pytest.mark.parametrize("output_size", ["original", "working"])
def test_labels_are_copies_never_symlinks(tmp_path, cli, synthetic, shared_invert_translator, output_size):
    source = tmp_path / "gta5"
    shutil.copytree(synthetic / "gta5", source)
    spare = source / "spare"  # inside the dataset: a legitimate symlink target
    spare.mkdir()
    for label in sorted((source / "labels").iterdir())[:5]:
        shutil.move(label, spare / label.name)
        label.symlink_to(spare / label.name)
    out = tmp_path / "out"
    args = ["--engine", shared_invert_translator, "--input", source, "--output", out, "--output-size", output_size]
    result = cli("batch-translate", *args)
    assert result.returncode == 0, result.stderr[-2000:]
    labels = sorted((out / "labels").iterdir())
    assert len(labels) == 120 and not any(p.is_symlink() for p in labels)
    if output_size == "original":
        for label in labels:
            assert label.read_bytes() == (source / "labels" / label.name).read_bytes()


def test_output_inside_the_input_is_refused(tmp_path, cli, user_error, synthetic, shared_invert_translator):
    source = tmp_path / "gta5"
    shutil.copytree(synthetic / "gta5", source)
    result = cli("batch-translate", "--engine", shared_invert_translator, "--input", source, "--output", source / "o")
    user_error(result, names="--output")
    assert not (source / "o").exists()
