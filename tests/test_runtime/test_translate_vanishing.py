"""batch-translate (runtime.translate) with inputs that vanish while it runs: listed at the
start, deleted before the job reaches them.

The deletion happens once the job has written its first output, so the files existed when the job indexed them
and are gone when it reads them (the job writes and fsyncs one image at a time, far slower than the deletion).
Each must be a logged, counted skip naming the file, the job must finish with exit 0, and the rest must be done.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from helpers import count_visible, run_deleting


def test_batch_translate_skips_images_and_labels_that_vanish_mid_run(synthetic, invert_translator, tmp_path):
    data, out = Path(shutil.copytree(synthetic / "gta5", tmp_path / "gta5")), tmp_path / "out"
    images = sorted((data / "images").glob("*.png"))
    doomed = images[-4:] + [data / "labels" / p.name for p in images[-6:-4]]
    argv = ["batch-translate", "--engine", invert_translator, "--input", data, "--output", out]
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
