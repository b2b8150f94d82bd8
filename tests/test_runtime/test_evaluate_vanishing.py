"""evaluate-seg (runtime.evaluate) with inputs that vanish while it runs: listed at the
start, deleted before the job reaches them.

The deletion happens once the job has written its first output, so the files existed when the job indexed them
and are gone when it reads them (the job writes and fsyncs one image at a time, far slower than the deletion).
Each must be a logged, counted skip naming the file, the job must finish with exit 0, and the rest must be done.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from helpers import run_deleting


def test_evaluate_seg_skips_images_that_vanish_mid_run(synthetic, red_segmenter, tmp_path):
    root, out = Path(shutil.copytree(synthetic / "cityscapes", tmp_path / "cityscapes")), tmp_path / "out"
    images = sorted((root / "leftImg8bit" / "val").glob("*/*.png"))
    argv = ["evaluate-seg", "--engine", red_segmenter, "--cityscapes", root, "--output", out]
    options = ["--save-predictions", "--workers", 1, "--batch-size", 1]
    result = run_deleting([*argv, *options], out / "predictions", images[-3:])

    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr[-2000:]
    metrics = json.loads((out / "metrics.json").read_text())
    reasons = {item["file"]: item["reason"] for item in metrics["skipped"]}
    assert sorted(reasons) == sorted(str(p) for p in images[-3:])
    assert all("No such file" in reason for reason in reasons.values()), reasons
    assert metrics["images_skipped"] == 3 and metrics["images_scored"] == len(images) - 3
