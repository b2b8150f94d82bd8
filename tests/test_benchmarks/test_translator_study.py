"""run-uda --study translators as a user runs it: the smoke study through the real CLI (numbers meaningless, but every
arm trained, exported and scored with the same settings, the report consistent with the files the stages wrote), then
the same command again, which keeps every stage's work and reproduces the report's scores."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from helpers import as_process, assert_study_pages, process_record, run_cli, run_once
from uda_trt.benchmarks.presets import PRESETS
from uda_trt.benchmarks.translator_study import TRANSLATORS
from uda_trt.runtime.fda import fda_uint8
from uda_trt.runtime.fda_translator import FdaTranslator, list_donors
from uda_trt.runtime.imageio import read_rgb, resize_rgb
from uda_trt.runtime.sidecar import file_sha256

ARMS = [*TRANSLATORS, "oracle"]
SMOKE = PRESETS["smoke"]


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """One real smoke study, then the same command again, once per session: (output folder, first report, rerun's
    report, rerun)."""

    def make(folder: Path) -> dict:
        out = folder / "study"
        command = ("run-uda", "--study", "translators", "--preset", "smoke", "--output", out)
        first = run_cli(*command)
        assert first.returncode == 0, first.stderr[-3000:]
        report = json.loads((out / "report.json").read_text())
        again = run_cli(*command)
        assert again.returncode == 0, again.stderr[-3000:]
        return {"report": report, "again": process_record(again)}

    folder, made = run_once(tmp_path_factory, "translators-smoke", make)
    out = folder / "study"
    return out, made["report"], json.loads((out / "report.json").read_text()), as_process(made["again"])


@pytest.mark.slow
def test_every_translator_gets_one_segmenter_scored_on_target_val(study):
    out, report, _, _ = study
    assert list(report["arms"]) == ARMS and report["translators"] == list(TRANSLATORS)
    for arm, entry in report["arms"].items():
        metrics = entry["metrics"]
        on_disk = json.loads((out / "eval" / arm.replace("-", "_") / "metrics.json").read_text())
        assert metrics["mean_iou"] == on_disk["mean_iou"] and metrics["fw_iou"] == on_disk["fw_iou"]
        assert metrics["images_scored"] == SMOKE.synthetic.cityscapes_val
        # FWIoU from the confusion matrix: each class's IoU weighted by its share of the ground-truth pixels
        matrix = np.array(metrics["confusion_matrix"], dtype=float)
        gt, hits = matrix.sum(1), np.diag(matrix[:, :19])
        union = gt + matrix[:, :19].sum(0) - hits
        present = gt > 0
        assert math.isclose(metrics["fw_iou"], float(np.sum(gt[present] / gt.sum() * hits[present] / union[present])))
        assert report["summary"]["miou"][arm] == metrics["mean_iou"]
        assert report["summary"]["fw_iou"][arm] == metrics["fw_iou"]
    miou = report["summary"]["miou"]
    assert report["summary"]["miou_minus_none"] == {
        a: miou[a] - miou["none"] for a in ("cyclegan", "cyclegan-sem", "fda")
    }
    assert report["summary"]["miou_minus_cyclegan"] == {a: miou[a] - miou["cyclegan"] for a in ("cyclegan-sem", "fda")}
    # identical segmenter settings: the arms differ only in their data and folders
    configs = [
        {k: v for k, v in entry["config"].items() if k not in ("data_root", "output_dir")}
        for entry in report["arms"].values()
    ]
    assert all(config == configs[0] for config in configs)
    assert {k: configs[0][k] for k in SMOKE.segmenter} == {
        k: list(v) if isinstance(v, tuple) else v for k, v in SMOKE.segmenter.items()
    }


@pytest.mark.slow
def test_semantic_cyclegan_is_plain_cyclegan_plus_the_source_segmenters_loss(study):
    out, report, _, _ = study
    plain, semantic = report["translations"]["cyclegan"], report["translations"]["cyclegan-sem"]
    differing = {k for k in plain["config"] if plain["config"][k] != semantic["config"][k]}
    assert differing == {"output", "semantic_loss", "semantic_weight"}
    segmenter = out / "segmenter_none" / "best.pt"
    assert semantic["config"]["semantic_loss"] == str(segmenter) and semantic["config"]["semantic_weight"] == 1.0
    recorded = json.loads((out / "cyclegan_sem" / "config.json").read_text())["semantic_loss"]
    assert recorded["sha256"] == file_sha256(segmenter)  # the none arm's segmenter (source labels) drove the loss
    assert " sem " in (out / "cyclegan_sem" / "train.log").read_text()
    assert " sem " not in (out / "cyclegan" / "train.log").read_text()
    for entry in (plain, semantic):
        assert entry["training_cpu_seconds_per_iteration"] > 0
        assert entry["batch_translate"]["images_translated"] == SMOKE.synthetic.gta5_count
    assert file_sha256(out / "translators" / "cyclegan" / "latest_net_G_A.onnx") != file_sha256(
        out / "translators" / "cyclegan_sem" / "latest_net_G_A.onnx"
    )


@pytest.mark.slow
def test_fda_arm_trains_on_fda_images_of_the_source_with_its_labels(study):
    out, report, _, _ = study
    fda = report["translations"]["fda"]["batch_translate"]
    assert fda["images_translated"] == SMOKE.synthetic.gta5_count and fda["fda"]["beta"] == 0.05
    source, target = out / "data" / "gta5", out / "data" / "cityscapes"
    chooser = FdaTranslator(list_donors(target), 0.05, seed=0)
    image = read_rgb(source / "images" / "00001.png")
    donor = resize_rgb(read_rgb(chooser.donor_for("00001")), (image.shape[1], image.shape[0]))
    assert np.array_equal(read_rgb(out / "translated_fda" / "images" / "00001.png"), fda_uint8(image, donor, 0.05))
    labels = out / "translated_fda" / "labels" / "00001.png"
    assert labels.read_bytes() == (source / "labels" / "00001.png").read_bytes()
    assert report["arms"]["fda"]["data"] == str(out / "translated_fda")


@pytest.mark.slow
def test_report_explains_itself(study):
    out, report, _, first_run = study
    markdown = (out / "report.md").read_text()
    assert "Smoke preset: a plumbing check only" in markdown
    for title in ("none (raw source)", "CycleGAN + semantic loss", "FDA", "oracle (target labels)"):
        assert f"| {title} |" in markdown
    miou = report["summary"]["miou"]
    assert f"| FDA | {100 * miou['fda']:.1f} | {100 * report['summary']['fw_iou']['fda']:.1f} |" in markdown
    with Image.open(out / "samples.png") as samples:
        assert samples.size[0] > 1000  # 11 columns: source, 3 translations, target, ground truth, 5 arms
    assert set(report["stage_seconds"]["cpu"]) == set(report["stage_seconds"]["wall"])
    last = first_run.stderr.strip().splitlines()[-1]
    assert all(f"{arm} {100 * miou[arm]:.1f}" in last for arm in ARMS), last


@pytest.mark.slow
def test_the_same_command_again_keeps_every_stage_and_its_scores(study):
    out, report, again, rerun = study
    assert again["summary"]["miou"] == report["summary"]["miou"]
    assert again["summary"]["fw_iou"] == report["summary"]["fw_iou"]
    assert rerun.stderr.count("nothing to do") >= len(ARMS)  # every segmenter already trained
    assert rerun.stderr.count("is the export of") >= len(ARMS) + 2  # segmenters and both CycleGANs kept
    for name in ("cyclegan", "cyclegan-sem"):  # a resumed stage did not train: no per-iteration cost is claimed
        assert again["translations"][name]["training_cpu_seconds_per_iteration"] is None


@pytest.mark.slow
def test_class_figures_index_and_the_fcn_score_of_every_translation(study):
    out, _, report, _ = study
    assert_study_pages(out, report["figures"], list(report["arms"]))
    fcn = report["fcn_score"]
    assert fcn["segmenter"] == "oracle" and set(fcn["sets"]) == {"none", "cyclegan", "cyclegan-sem", "fda"}
    assert all(entry["images_scored"] == SMOKE.synthetic.gta5_count for entry in fcn["sets"].values())
    assert "## FCN-score of the translation" in (out / "report.md").read_text()
