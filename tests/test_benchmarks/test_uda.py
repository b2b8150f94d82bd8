"""run-uda's bookkeeping, without running a study: OUT/study.json claims the folder for one study (a rerun of another
preset, seed, data root or iteration count is refused in one line), a translation is resumed only when its manifest
names the same translator, the iteration overrides scale a preset's schedule, and --preset full on a machine without
CUDA says how long it would take. The killed-and-rerun study itself is in test_uda_kill_resume.py.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from uda_trt.benchmarks.presets import PRESETS, with_budget
from uda_trt.benchmarks.uda import (
    STUDY_FILE,
    StudyConfig,
    claim_output,
    full_preset_cpu_warning,
    translation_resumable,
)
from uda_trt.runtime.errors import UserError
from uda_trt.runtime.sidecar import file_sha256


def test_a_study_folder_is_claimed_once_and_a_different_study_is_refused(tmp_path: Path):
    source, target = tmp_path / "gta5", tmp_path / "cityscapes"
    source.mkdir(), target.mkdir()
    config = StudyConfig(output=tmp_path / "study", preset="smoke", seed=0, source_root=source, target_root=target)
    claim_output(config)
    recorded = json.loads((config.output / STUDY_FILE).read_text())
    assert recorded == {
        "study": "translation",
        "preset": "smoke",
        "seed": 0,
        "source_root": str(source.resolve()),
        "target_root": str(target.resolve()),
        "cityscapes_val_split": "val",
        "cyclegan_iterations": 2,  # the smoke preset's budget
        "segmenter_iterations": 2,
    }
    (config.output / "cyclegan").mkdir()  # work of the study so far
    claim_output(config)  # the same study: continued
    claim_output(replace(config, source_root=tmp_path / "x" / ".." / "gta5"))  # the same root, spelt differently

    changes = {
        "used --preset smoke, this one demo": replace(config, preset="demo"),
        "--seed 0, this one 3": replace(config, seed=3),
        f"--source {source.resolve()}, this one {target.resolve()}": replace(config, source_root=target),
        "--target": replace(config, target_root=source),
        "used --cyclegan-iterations 2, this one 50": replace(config, cyclegan_iterations=50),
        "used --segmenter-iterations 2, this one 7": replace(config, segmenter_iterations=7),
    }
    for message, changed in changes.items():
        with pytest.raises(UserError) as error:
            claim_output(changed)
        text = str(error.value)
        assert message in text and str(config.output / STUDY_FILE) in text and "\n" not in text, text
    assert json.loads((config.output / STUDY_FILE).read_text()) == recorded  # a refusal changes nothing
    claim_output(replace(config, cyclegan_iterations=2))  # the preset's own count, given as a flag: the same study


def test_a_study_recorded_before_the_iteration_flags_continues_with_the_presets_budget(tmp_path: Path):
    config = StudyConfig(output=tmp_path / "study", preset="demo")
    claim_output(config)
    old = json.loads((config.output / STUDY_FILE).read_text())
    del old["cyclegan_iterations"], old["segmenter_iterations"]
    (config.output / STUDY_FILE).write_text(json.dumps(old))
    claim_output(config)
    with pytest.raises(UserError, match="used --segmenter-iterations 400, this one 40;"):
        claim_output(replace(config, segmenter_iterations=40))


def test_iteration_overrides_scale_the_schedule():
    demo = PRESETS["demo"]
    longer = with_budget(demo, cyclegan_iterations=2000, segmenter_iterations=1000)
    assert longer.cyclegan == {
        **demo.cyclegan,
        "iterations": 2000,
        "decay_iterations": 1000,  # 250 of 500: the same share decays
        "sample_every": 1000,
        "save_every": 2000,
        "log_every": 100,
    }
    assert longer.segmenter == {**demo.segmenter, "iterations": 1000, "val_every": 250, "log_every": 125}
    assert longer.translate_size == demo.translate_size and longer.synthetic == demo.synthetic

    short = with_budget(PRESETS["full"], cyclegan_iterations=3, segmenter_iterations=None)
    assert short.cyclegan["iterations"] == 3 and short.cyclegan["decay_iterations"] == 2  # round(1.5)
    assert short.cyclegan["save_every"] == short.cyclegan["sample_every"] == 1  # at least 1, at most iterations
    assert short.segmenter == PRESETS["full"].segmenter  # val_every None: ten held-out scores, whatever the length
    assert with_budget(demo, None, None) == demo
    assert StudyConfig(output=Path("x"), preset="demo", cyclegan_iterations=2000).resolved_preset().cyclegan == (
        longer.cyclegan
    )


def test_full_preset_on_the_cpu_says_roughly_how_long():
    import torch

    config = StudyConfig(output=Path("x"), preset="full")
    warning = full_preset_cpu_warning(config)
    if torch.cuda.is_available():
        assert warning is None
        return
    assert warning.startswith("--preset full without a CUDA GPU (PyTorch sees none): training runs on the CPU, roughly")
    assert "200000 CycleGAN and 3 x 40000 segmenter iterations" in warning and "--cyclegan-iterations" in warning
    shorter = full_preset_cpu_warning(replace(config, cyclegan_iterations=100, segmenter_iterations=10))
    assert "100 CycleGAN and 3 x 10 segmenter iterations" in shorter
    assert full_preset_cpu_warning(replace(config, preset="demo")) is None


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

    # with the input folder given, only a translation of that folder resumes (a moved study translates its own data)
    source = tmp_path / "gta5"
    identity = {"artifact_sha256": file_sha256(translator), "input_root": str(source.resolve())}
    (out / "manifest.json").write_text(json.dumps({"identity": identity}))
    assert translation_resumable(out, translator, source)
    assert translation_resumable(out, translator, tmp_path / "x" / ".." / "gta5")
    assert not translation_resumable(out, translator, tmp_path / "elsewhere" / "gta5")


def test_a_study_with_presets_of_its_own_records_its_own_budget():
    from uda_trt.benchmarks import photo_to_label

    own = photo_to_label.PRESETS["demo"]
    identity = StudyConfig(output=Path("x"), study="photo-to-label", preset="demo").identity()
    assert identity["study"] == "photo-to-label"
    assert (identity["cyclegan_iterations"], identity["segmenter_iterations"]) == (
        own.pix2pix["iterations"],
        own.segmenter["iterations"],
    )
    scaled = StudyConfig(output=Path("x"), study="photo-to-label", preset="demo", segmenter_iterations=7).identity()
    assert scaled["segmenter_iterations"] == 7
