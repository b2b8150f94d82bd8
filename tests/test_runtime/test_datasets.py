"""runtime.datasets: layout detection, sample listing, and one-line user errors naming the file."""

from __future__ import annotations

from pathlib import Path

import pytest

from helpers import write_cityscapes, write_gta5
from uda_trt.runtime.datasets import (
    Sample,
    cityscapes_ground_truth,
    cityscapes_samples,
    detect_layout,
    folder_samples,
    gta5_samples,
    samples_for,
)
from uda_trt.runtime.errors import UserError


def touch(path: Path, data: bytes = b"x") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def one_line(exc: pytest.ExceptionInfo) -> str:
    message = exc.value.format_message()
    assert "\n" not in message
    return message


def test_gta5_samples_sorted_with_labels_and_junk_ignored(tmp_path):
    write_gta5(tmp_path, 3)
    touch(tmp_path / "images" / ".00004.png.partial")
    touch(tmp_path / "images" / "notes.txt")
    touch(tmp_path / "manifest.json")
    assert detect_layout(tmp_path) == "gta5"
    samples = gta5_samples(tmp_path)
    assert [s.key for s in samples] == ["00001", "00002", "00003"]
    assert samples[0] == Sample("00001", tmp_path / "images/00001.png", tmp_path / "labels/00001.png")
    assert samples_for(tmp_path) == ("gta5", samples)


def test_gta5_suffixes_match_in_any_case(tmp_path):
    """Images are found as .PNG, so their labels are too (a root saved by a tool that writes upper-case suffixes)."""
    write_gta5(tmp_path, 2)
    for folder in ("images", "labels"):
        for path in (tmp_path / folder).iterdir():
            path.rename(path.with_suffix(".PNG"))
    samples = gta5_samples(tmp_path)
    assert [(s.image.name, s.label.name) for s in samples] == [("00001.PNG", "00001.PNG"), ("00002.PNG", "00002.PNG")]
    touch(tmp_path / "labels" / "00001.png")
    with pytest.raises(UserError, match="00001.png: same name as .*00001.PNG apart from the suffix's case"):
        gta5_samples(tmp_path)


def test_gta5_missing_label_names_first_file_and_count(tmp_path):
    write_gta5(tmp_path, 3)
    (tmp_path / "labels" / "00002.png").unlink()
    (tmp_path / "labels" / "00003.png").unlink()
    with pytest.raises(UserError) as info:
        gta5_samples(tmp_path)
    message = one_line(info)
    assert str(tmp_path / "labels" / "00002.png") in message and "2 label(s) missing" in message
    assert [s.label for s in gta5_samples(tmp_path, require_labels=False)][1:] == [None, None]


def test_gta5_missing_folders(tmp_path):
    with pytest.raises(UserError, match="no such folder") as info:
        gta5_samples(tmp_path / "nope")
    assert str(tmp_path / "nope") in one_line(info)
    touch(tmp_path / "images" / "00001.png")
    with pytest.raises(UserError) as info:
        gta5_samples(tmp_path)
    assert str(tmp_path / "labels") in one_line(info)
    (tmp_path / "images" / "00001.png").unlink()
    (tmp_path / "labels").mkdir()
    with pytest.raises(UserError, match="no .png or .jpg images"):
        gta5_samples(tmp_path)


def test_cityscapes_samples_and_ground_truth(tmp_path):
    write_cityscapes(tmp_path, split="val", cities={"lindau": 2, "frankfurt": 1})
    touch(tmp_path / "leftImg8bit" / "val" / "lindau" / "readme.txt")
    assert detect_layout(tmp_path) == "cityscapes"
    samples = cityscapes_samples(tmp_path, "val")
    assert [s.key for s in samples] == [
        "frankfurt/frankfurt_000000_000019",
        "lindau/lindau_000000_000019",
        "lindau/lindau_000001_000020",
    ]
    assert samples[0].label == tmp_path / "gtFine/val/frankfurt/frankfurt_000000_000019_gtFine_labelIds.png"
    gt = cityscapes_ground_truth(tmp_path, "val")
    assert [stem for stem, _ in gt] == [s.key.split("/")[1] for s in samples]
    assert samples_for(tmp_path, split="val")[0] == "cityscapes"


def test_cityscapes_errors_name_the_path(tmp_path):
    write_cityscapes(tmp_path, split="val", cities={"lindau": 2})
    with pytest.raises(UserError) as info:
        cityscapes_samples(tmp_path, "train")
    message = one_line(info)
    assert str(tmp_path / "leftImg8bit" / "train") in message and "splits present: val" in message
    missing = tmp_path / "gtFine/val/lindau/lindau_000001_000020_gtFine_labelIds.png"
    missing.unlink()
    with pytest.raises(UserError) as info:
        cityscapes_samples(tmp_path, "val")
    assert str(missing) in one_line(info)
    with pytest.raises(UserError) as info:
        cityscapes_ground_truth(tmp_path / "elsewhere", "val")
    assert str(tmp_path / "elsewhere") in one_line(info)


def test_folder_samples_recursive_sorted_and_ignoring_junk(tmp_path):
    for name in ("b.jpg", "a.PNG", "sub/c.tif", "sub/deeper/d.bmp"):
        touch(tmp_path / name)
    for name in (".hidden.png", ".cache/e.png", "f.png.partial", "report.json", "g.txt"):
        touch(tmp_path / name)
    assert detect_layout(tmp_path) == "folder"
    samples = folder_samples(tmp_path)
    assert [s.key for s in samples] == ["a", "b", "sub/c", "sub/deeper/d"]
    assert all(s.label is None for s in samples)
    touch(tmp_path / "sub" / "c.png")
    with pytest.raises(UserError, match="apart from the suffix"):
        folder_samples(tmp_path)


def test_folder_without_images_and_unknown_layout(tmp_path):
    touch(tmp_path / "notes.txt")
    with pytest.raises(UserError, match="no images found"):
        folder_samples(tmp_path)
    with pytest.raises(UserError, match="unknown layout"):
        samples_for(tmp_path, layout="kitti")
    with pytest.raises(UserError, match="no such folder"):
        samples_for(tmp_path / "missing")
