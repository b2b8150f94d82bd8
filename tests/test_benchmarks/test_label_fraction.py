"""run-uda --study label-fraction through the real CLI on the smoke preset (synthetic data, a few iterations): per
fraction a joint CycleGAN + F_T run and a train-segmenter baseline on the same labelled images, both with precise BN,
exported and scored on target val; the report, the mix folders, the figures and index.html say what happened; a
rerun keeps what is done and gives the same numbers; options the study cannot honour are refused in one line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from helpers import assert_study_pages, run_cli, run_once
from uda_trt.runtime.datasets import gta5_samples

FRACTIONS = ("0", "0.5", "1")


def _smoke_study_and_a_rerun(folder: Path) -> dict:
    """The smoke study, then the same command again (inside the fixture, so no test changes the shared folder)."""
    out = folder / "study"
    argv = ["--study", "label-fraction", "--preset", "smoke", "--fractions", ",".join(FRACTIONS), "--output", out]
    done = run_cli("run-uda", *argv, timeout=900, env={"OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads((out / "report.json").read_text())
    again = run_cli("run-uda", *argv, timeout=900, env={"OMP_NUM_THREADS": "1"})
    assert again.returncode == 0, again.stderr[-3000:]
    rerun = json.loads((out / "report.json").read_text())
    return {"report": report, "stderr": done.stderr, "rerun": rerun, "rerun_stderr": again.stderr}


@pytest.fixture(scope="module")
def made(tmp_path_factory) -> tuple[Path, dict]:
    """The smoke study and its rerun, once per session: (output folder, what _smoke_study_and_a_rerun returned)."""
    folder, result = run_once(tmp_path_factory, "fractions-smoke", _smoke_study_and_a_rerun)
    return folder / "study", result


@pytest.fixture(scope="module")
def study(made) -> tuple[Path, dict, str]:
    out, result = made
    return out, result["report"], result["stderr"]


def test_every_fraction_has_both_arms_scored_on_target_val(study) -> None:
    out, report, stderr = study
    miou, fwiou = report["summary"]["miou"], report["summary"]["fwiou"]
    assert list(miou) == [f"{arm}@{f}" for f in FRACTIONS for arm in ("joint", "baseline")] == list(fwiou)
    assert all(0.0 <= value <= 1.0 for value in (*miou.values(), *fwiou.values()))
    for row in report["fractions"]:
        for arm in ("joint", "baseline"):
            scores = row["arms"][arm]["scores"]
            assert scores["images_scored"] == 2 and scores["images_skipped"] == 0
            metrics = json.loads((out / "eval" / f"{arm}_{row['fraction']:g}" / "metrics.json").read_text())
            assert metrics["fw_iou"] == scores["fw_iou"] and metrics["mean_iou"] == scores["mean_iou"]
            sidecar = json.loads(Path(row["arms"][arm]["artifact"]).with_suffix(".json").read_text())
            assert sidecar["task"] == "segment"
    assert "joint@0.5" in stderr  # the CLI's summary line


def test_the_labelled_mix_holds_the_dataset_size_and_the_baseline_learns_from_it(study) -> None:
    out, report, _ = study
    expected = {0.0: (6, 0), 0.5: (3, 3), 1.0: (0, 6)}
    for row in report["fractions"]:
        labelled = row["labelled"]
        assert labelled["budget"] == 6
        assert (labelled["source_labelled"], labelled["target_labelled"]) == expected[row["fraction"]]
        name = f"{row['fraction']:g}"
        mix = json.loads((out / f"mix_{name}" / "mix.json").read_text())
        origins = [entry["image"] for entry in mix["images"].values()]
        assert sum("leftImg8bit" in path for path in origins) == labelled["target_labelled"]
        assert len(gta5_samples(out / f"mix_{name}", require_labels=True)) == 6
        joint = json.loads((out / f"joint_{name}" / "config.json").read_text())
        assert joint["joint"]["labelled"]["target_keys"] == mix["mix"]["target_keys"]
        assert row["baseline_config"]["data_root"] == str(out / f"mix_{name}")
        assert row["baseline_config"]["iterations"] == row["joint_config"]["iterations"]
        assert row["baseline_config"]["architecture"] == row["joint_config"]["joint_segmenter"]
    no_target = (out / "joint_0" / "train.log").read_text()
    assert "segG_tgt 0.0000" in no_target and "segF_tgt 0.0000" in no_target
    assert "segG_tgt" not in no_target.replace("segG_tgt 0.0000", "")  # never a non-zero target term at 0


def test_both_arms_get_the_same_precise_bn(study) -> None:
    out, report, _ = study
    for row in report["fractions"]:
        assert row["baseline_config"]["precise_bn_batches"] == row["joint_config"]["segmenter_precise_bn_batches"] == 2
        name = f"{row['fraction']:g}"
        joint = json.loads((out / f"joint_{name}" / "config.json").read_text())
        assert joint["joint"]["segmenter"]["precise_bn_batches"] == 2


def test_the_report_figures_and_index_are_written(study) -> None:
    out, report, _ = study
    text = (out / "report.md").read_text()
    assert "Smoke preset" in text and "| fraction | labelled source / target |" in text
    assert all(f"| {f} |" in text for f in FRACTIONS)
    assert "defect" not in text.lower() and "precise BN" in text
    with Image.open(out / "fractions.png") as figure:
        assert figure.width > 500
    arms = [f"{arm}_{f}" for f in FRACTIONS for arm in ("joint", "baseline")]
    assert list(report["arms"]) == arms
    assert report["figures"][0] == "fractions.png"
    assert_study_pages(out, report["figures"], arms)
    assert all(f"(confusion_{arm}.png)" in text for arm in arms) and "(per_class_iou.png)" in text
    assert "Joint vs baseline per fraction" in (out / "index.html").read_text()


@pytest.mark.slow
def test_a_rerun_keeps_the_work_and_the_numbers(made) -> None:
    _, result = made
    assert result["rerun"]["summary"] == result["report"]["summary"]
    stderr = result["rerun_stderr"]
    assert "already trained to iteration 2; nothing to do" in stderr and "; kept" in stderr


def test_options_the_study_cannot_honour_are_refused(tmp_path: Path, user_error) -> None:
    base = ["--study", "label-fraction", "--preset", "smoke"]
    user_error(
        run_cli("run-uda", *base, "--segmenter-iterations", "3", "--output", tmp_path / "a"),
        names="--segmenter-iterations",
    )
    user_error(
        run_cli("run-uda", "--study", "label-fraction", "--preset", "full", "--output", tmp_path / "b"),
        names="--preset",
    )
