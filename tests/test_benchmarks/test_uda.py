"""run-uda's resume bookkeeping, without running a study: OUT/study.json claims the folder for one study (a rerun
of another preset, seed or data root is refused in one line), and a translation is resumed only when its manifest
names the same translator. The killed-and-rerun study itself is in test_uda_kill_resume.py.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from uda_trt.benchmarks.uda import STUDY_FILE, StudyConfig, claim_output, translation_resumable
from uda_trt.runtime.errors import UserError
from uda_trt.runtime.sidecar import file_sha256


def test_a_study_folder_is_claimed_once_and_a_different_study_is_refused(tmp_path: Path):
    source, target = tmp_path / "gta5", tmp_path / "cityscapes"
    source.mkdir(), target.mkdir()
    config = StudyConfig(output=tmp_path / "study", preset="smoke", seed=0, source_root=source, target_root=target)
    claim_output(config)
    recorded = json.loads((config.output / STUDY_FILE).read_text())
    assert recorded == {
        "preset": "smoke",
        "seed": 0,
        "source_root": str(source.resolve()),
        "target_root": str(target.resolve()),
        "cityscapes_val_split": "val",
    }
    (config.output / "cyclegan").mkdir()  # work of the study so far
    claim_output(config)  # the same study: continued
    claim_output(replace(config, source_root=tmp_path / "x" / ".." / "gta5"))  # the same root, spelt differently

    changes = {
        "used --preset smoke, this one demo": replace(config, preset="demo"),
        "--seed 0, this one 3": replace(config, seed=3),
        f"--source {source.resolve()}, this one {target.resolve()}": replace(config, source_root=target),
        "--target": replace(config, target_root=source),
    }
    for message, changed in changes.items():
        with pytest.raises(UserError) as error:
            claim_output(changed)
        text = str(error.value)
        assert message in text and str(config.output / STUDY_FILE) in text and "\n" not in text, text
    assert json.loads((config.output / STUDY_FILE).read_text()) == recorded  # a refusal changes nothing


def test_a_folder_that_is_not_a_study_is_refused(tmp_path: Path):
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "notes.txt").write_text("someone else's")
    with pytest.raises(UserError, match="not empty and holds no study.json"):
        claim_output(StudyConfig(output=busy, preset="smoke"))
    assert not (busy / STUDY_FILE).exists()

    leftovers = tmp_path / "leftovers"
    leftovers.mkdir()
    (leftovers / f".{STUDY_FILE}.partial").write_text("{")  # a killed run's temporary is not a study's work
    claim_output(StudyConfig(output=leftovers, preset="smoke"))
    assert json.loads((leftovers / STUDY_FILE).read_text())["preset"] == "smoke"

    a_file = tmp_path / "file"
    a_file.write_text("x")
    with pytest.raises(UserError, match="is not a folder"):
        claim_output(StudyConfig(output=a_file, preset="smoke"))

    damaged = tmp_path / "damaged"
    damaged.mkdir()
    (damaged / STUDY_FILE).write_text('{"preset": ')
    with pytest.raises(UserError, match="study.json: unreadable"):
        claim_output(StudyConfig(output=damaged, preset="smoke"))


def test_a_translation_is_resumed_only_with_the_same_translator(tmp_path: Path):
    translator, other = tmp_path / "a.onnx", tmp_path / "b.onnx"
    translator.write_bytes(b"translator")
    other.write_bytes(b"another translator")
    out = tmp_path / "translated"
    assert not translation_resumable(out, translator)  # nothing there yet
    out.mkdir()
    (out / "manifest.json").write_text('{"identity": {"artifact_sha')  # cut short by a kill before atomic writes
    assert not translation_resumable(out, translator)
    (out / "manifest.json").write_text(json.dumps({"identity": {"artifact_sha256": file_sha256(translator)}}))
    assert translation_resumable(out, translator)
    assert not translation_resumable(out, other)
    (out / "manifest.json").write_text("[]")
    assert not translation_resumable(out, translator)
