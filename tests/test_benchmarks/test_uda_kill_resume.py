"""run-uda (benchmarks.uda) under fault injection: SIGKILL at seeded stage milestones, check what a reader sees, rerun
the same command, and compare with an uninterrupted study.

run-uda is killed at 5 seeded stage milestones (files that appear when a stage starts or finishes), one in each part of
the study: data, CycleGAN training, translator export and translation, the first segmenter, the later segmenters and
evaluation. The whole process group is killed, as a scheduler or the OOM killer would end a job and its workers. After
every kill, nothing a reader picks up is partial: every visible .pt/.pth loads with torch.load(weights_only=True), every
.onnx parses, every PNG decodes, every JSON parses. The reference run is made in the folder the killed runs then use,
and moved aside, so the paths recorded in configs and states are the same and files compare byte for byte. Compared: the
report metric for metric (timings aside) and the translated images byte for byte. Another seed into the same folder is
refused. Resume bookkeeping without a study is in test_uda.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from helpers import kill_and_rerun, run_cli, visible_paths
from helpers.studies import smoke_command, smoke_study

SEED = 20261124

# Files that appear as run-uda's stages start or finish (smoke preset, synthetic data), in the order they appear,
# in five consecutive groups; one kill point is drawn from each, so every part of the study is interrupted.
RUN_UDA_MILESTONES = [
    ["data/synthetic.json", "data/gta5/images/00004.png"],
    ["cyclegan/config.json", "cyclegan/latest_net_G_A.pth"],
    ["artifacts/latest_net_G_A.onnx", "translated/manifest.json", "translated/images/00004.png"],
    ["segmenter_source_only/config.json", "segmenter_source_only/best.pt", "artifacts/source_only/best.json"],
    ["eval/source_only", "segmenter_adapted/config.json", "artifacts/adapted/best.onnx", "eval/oracle"],
]
REPORT_TIMINGS = ("elapsed_s", "images_per_s", "seconds")


def report_values(report: dict, out: Path) -> dict:
    """What run-uda's `report` of study folder OUT says, without timings and without what describes the machine or
    its progress; OUT written as "OUT" in the paths it records, so studies in two folders compare."""
    report = json.loads(json.dumps(report).replace(str(out), "OUT"))
    for arm in report["arms"].values():
        arm["metrics"] = {k: v for k, v in arm["metrics"].items() if k not in REPORT_TIMINGS}
    translate = report.pop("batch_translate")
    report["translated"] = translate["images_translated"] + translate.get("images_already_done", 0)
    for key in ("stage_seconds", "machine"):
        report.pop(key)
    return report


def translated_images(out: Path) -> dict[Path, bytes]:
    """The translated images of study folder OUT: path under translated/images -> bytes."""
    images = out / "translated" / "images"
    return {path.relative_to(images): path.read_bytes() for path in visible_paths(images)}


@pytest.mark.slow
def test_run_uda_killed_at_seeded_stages_resumes_to_the_same_report(tmp_path, tmp_path_factory):
    folder, reference = smoke_study(tmp_path_factory)
    expected = report_values(reference["report"], folder / "study")
    expected_translated = translated_images(folder / "study")
    out = tmp_path / "study"
    argv = smoke_command(out)

    rng = np.random.default_rng(SEED + 2)
    chosen = [str(rng.choice(group)) for group in RUN_UDA_MILESTONES]
    triggers = [(milestone, lambda m=milestone: (out / m).exists) for milestone in chosen]
    log = tmp_path / "stderr.log"
    kill_and_rerun(argv, out, triggers, log)
    assert report_values(json.loads((out / "report.json").read_text()), out) == expected  # metrics, configs, hashes
    assert translated_images(out) == expected_translated

    # Another seed into the same folder is refused in one line, and nothing is touched
    before = {p: p.stat().st_mtime_ns for p in visible_paths(out)}
    refused = run_cli(*argv, "--seed", 1)
    assert refused.returncode == 2 and "Traceback" not in refused.stderr, refused.stderr
    errors = [line for line in refused.stderr.splitlines() if line.startswith("Error")]
    assert len(errors) == 1 and "--seed 0, this one 1" in errors[0], refused.stderr
    assert {p: p.stat().st_mtime_ns for p in visible_paths(out)} == before
