"""run-uda's dataset roots are checked before any work: every split a stage reads, with the stages' own readers, and a
mistake is one line naming the flag and the root. The command-line side (exit 2, nothing trained) is in
commands/test_run_uda.py.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from helpers import write_cityscapes, write_gta5
from uda_trt.benchmarks.inputs import check_study_inputs
from uda_trt.runtime.errors import UserError


@pytest.fixture
def roots(tmp_path: Path) -> tuple[Path, Path]:
    """A labelled GTA5-layout source and a Cityscapes-layout target with train images and labelled val."""
    source = write_gta5(tmp_path / "gta5", count=2)
    target = tmp_path / "cityscapes"
    write_cityscapes(target, split="train")
    write_cityscapes(target, split="val")
    return source, target


def refused(source: Path, target: Path, split: str = "val") -> str:
    with pytest.raises(UserError) as error:
        check_study_inputs(source, target, split)
    message = error.value.format_message()
    assert "\n" not in message, message
    return message


def test_good_roots_pass(roots):
    check_study_inputs(*roots)


def test_each_missing_part_is_named_with_its_flag(roots, tmp_path: Path):
    source, target = roots
    message = refused(tmp_path / "nowhere", target)
    assert message.startswith(f"--source {tmp_path / 'nowhere'}: no such folder"), message

    message = refused(source, source)  # the source given as target: the mistake of the user study
    assert message.startswith(f"--target {source}: not a Cityscapes-layout root with leftImg8bit/train"), message

    message = refused(target, target)  # the other way round
    assert message.startswith(f"--source {target}: not a GTA5-layout root"), message

    message = refused(source, target, split="test")
    assert message.startswith(f"--target {target}: not a Cityscapes-layout root with gtFine/test labels"), message


def test_labels_are_required_where_a_stage_needs_them(roots):
    source, target = roots
    shutil.rmtree(source / "labels")  # the source-only segmenter trains on them
    assert refused(source, target).startswith(f"--source {source}: not a GTA5-layout root with images/ and labels/")

    write_gta5(source, count=2)
    check_study_inputs(source, target)
    label = next((target / "gtFine" / "val").rglob("*_gtFine_labelIds.png"))
    label.unlink()  # a val image without its ground truth
    assert "label file missing" in refused(source, target)

    shutil.rmtree(target / "gtFine" / "train")  # the translator needs train images only
    write_cityscapes(target, split="val")
    check_study_inputs(source, target)
