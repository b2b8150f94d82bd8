"""Inputs that vanish while a job runs: listed at the start, deleted before the job reaches them.

The deletion happens once the job has written its first output, so the files existed when the job indexed them
and are gone when it reads them (the job writes and fsyncs one image at a time, far slower than the deletion).
Each must be a logged, counted skip naming the file, the job must finish with exit 0, and the rest must be done.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from pathlib import Path

from tests.test_reliability.test_kill_resume import BIN, count_visible


def run_deleting(argv: list, started: Path, doomed: list[Path], timeout: float = 120) -> subprocess.CompletedProcess:
    """Run `argv`; delete `doomed` the moment a visible file appears under `started`; return the finished run."""
    process = subprocess.Popen([str(a) for a in argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + timeout
    while count_visible(started) == 0 and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.0005)
    assert process.poll() is None, "the job finished before the files could vanish"
    for path in doomed:
        path.unlink()
    stdout, stderr = process.communicate(timeout=timeout)
    return subprocess.CompletedProcess(argv, process.returncode, stdout, stderr)


def test_batch_translate_skips_images_and_labels_that_vanish_mid_run(synthetic, invert_translator, tmp_path):
    data, out = Path(shutil.copytree(synthetic / "gta5", tmp_path / "gta5")), tmp_path / "out"
    images = sorted((data / "images").glob("*.png"))
    doomed = images[-4:] + [data / "labels" / p.name for p in images[-6:-4]]
    argv = [BIN / "batch-translate", "--engine", invert_translator, "--input", data, "--output", out]
    result = run_deleting([*argv, "--workers", 1, "--batch-size", 1], out / "images", doomed)

    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr[-2000:]
    report = json.loads((out / "report.json").read_text())
    skipped = {Path(item["image"]).name: item["reason"] for item in report["skipped"]}
    assert sorted(skipped) == sorted(p.name for p in images[-6:])
    for path in doomed:
        assert str(path) in skipped[path.name] and "No such file" in skipped[path.name], skipped
        assert str(path) in result.stderr
    assert report["images_skipped"] == 6 and report["images_translated"] == len(images) - 6
    assert count_visible(out / "images") == count_visible(out / "labels") == len(images) - 6


def test_evaluate_seg_skips_images_that_vanish_mid_run(synthetic, red_segmenter, tmp_path):
    root, out = Path(shutil.copytree(synthetic / "cityscapes", tmp_path / "cityscapes")), tmp_path / "out"
    images = sorted((root / "leftImg8bit" / "val").glob("*/*.png"))
    argv = [BIN / "evaluate-seg", "--engine", red_segmenter, "--cityscapes", root, "--output", out]
    options = ["--save-predictions", "--workers", 1, "--batch-size", 1]
    result = run_deleting([*argv, *options], out / "predictions", images[-3:])

    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr[-2000:]
    metrics = json.loads((out / "metrics.json").read_text())
    reasons = {item["file"]: item["reason"] for item in metrics["skipped"]}
    assert sorted(reasons) == sorted(str(p) for p in images[-3:])
    assert all("No such file" in reason for reason in reasons.values()), reasons
    assert metrics["images_skipped"] == 3 and metrics["images_scored"] == len(images) - 3
