"""runtime.jobs.folders: an output folder is claimed or refused in one line naming the flag."""

from __future__ import annotations

import pytest

from uda_trt.runtime.errors import UserError
from uda_trt.runtime.jobs.folders import claim_output_folder, refuse_changed


def test_new_and_empty_folders_are_claimed(tmp_path):
    assert claim_output_folder(tmp_path / "new" / "deep", marker="m.json", command="job") is False
    assert (tmp_path / "new" / "deep").is_dir()
    (tmp_path / "hidden").mkdir()
    (tmp_path / "hidden" / ".lock").write_text("")
    assert claim_output_folder(tmp_path / "hidden", marker="m.json", command="job") is False


def test_a_previous_run_is_recognised_by_its_marker(tmp_path):
    (tmp_path / "m.json").write_text("{}")
    (tmp_path / "outputs.png").write_bytes(b"x")
    assert claim_output_folder(tmp_path, marker="m.json", command="job") is True


def test_a_file_is_refused(tmp_path):
    (tmp_path / "f").write_text("")
    with pytest.raises(UserError, match=r"^--output: .*/f exists and is not a folder$"):
        claim_output_folder(tmp_path / "f", marker="m.json", command="job")


@pytest.mark.parametrize(("overwrite", "remedy"), [(None, "choose an empty folder$"), (False, "pass --overwrite")])
def test_a_foreign_folder_is_refused_naming_the_remedy(tmp_path, overwrite, remedy):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(UserError, match=rf"^--out: .* holds no m.json of a job run; .*{remedy}"):
        claim_output_folder(tmp_path, marker="m.json", command="job", flag="--out", overwrite=overwrite)
    assert claim_output_folder(tmp_path, marker="m.json", command="job", overwrite=True) is False
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_refuse_changed_names_the_flag_of_the_first_difference(tmp_path):
    record = tmp_path / "study.json"
    previous = {"seed": 0, "preset": "demo"}
    refuse_changed(record, previous, {"seed": 0}, {"seed": "--seed"}, "do something else")
    with pytest.raises(UserError) as error:
        refuse_changed(record, previous, {"seed": 0, "preset": "full"}, {"preset": "--preset"}, "do something else")
    assert str(error.value) == f"{record}: the previous run used --preset demo, this one full; do something else"
    with pytest.raises(UserError, match="used --size null, this one "):
        refuse_changed(record, previous, {"size": [1024, 512]}, {"size": "--size"}, "x")
