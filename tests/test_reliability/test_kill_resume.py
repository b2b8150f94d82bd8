"""Fault injection: SIGKILL the real CLIs at seeded random points, check what a reader sees, rerun, compare.

A kill lands when the job has written a seeded random number of outputs (polling the output folder is more
deterministic on a loaded machine than a timer), or at its first write (startup). After every
kill, every visible image must decode and every JSON must parse; the final rerun must leave files byte-identical
to an uninterrupted run (images, labels, predictions) and metrics equal value for value.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

BIN = Path(sys.executable).parent
SEED = 20261123


def count_visible(folder: Path) -> int:
    """Visible files under `folder` (recursive); 0 when it does not exist yet."""
    if not folder.is_dir():
        return 0
    return sum(1 for _, _, names in os.walk(folder) for name in names if not name.startswith("."))


def run_until(argv: list, trigger: Callable[[], bool], log: Path, timeout: float = 120) -> int:
    """Start `argv`; SIGKILL it the moment `trigger()` is true. Returns the exit status (-9 when killed)."""
    with open(log, "ab") as stderr:
        process = subprocess.Popen([str(a) for a in argv], stdout=subprocess.DEVNULL, stderr=stderr)
        deadline = time.monotonic() + timeout
        while process.poll() is None and time.monotonic() < deadline:
            if trigger():
                process.send_signal(signal.SIGKILL)
                break
            time.sleep(0.0005)
        return process.wait(timeout=timeout)


def kill_points(total: int, count: int, seed: int) -> list[int]:
    """`count` distinct seeded output counts in [1, 2/3 of total], ascending: kills leave work for the next run."""
    rng = np.random.default_rng(seed)
    return sorted(int(n) for n in rng.choice(np.arange(1, 2 * total // 3), size=count, replace=False))


def test_batch_translate_killed_at_seeded_points_resumes_byte_identical(
    synthetic, invert_translator, tmp_path, files, nothing_partial
):
    argv = ["batch-translate", "--engine", invert_translator, "--input", synthetic / "gta5", "--workers", 1]
    argv[0] = BIN / argv[0]
    reference_out, out = tmp_path / "reference", tmp_path / "out"
    subprocess.run([str(a) for a in [*argv, "--output", reference_out]], check=True, capture_output=True)
    reference = {k: v for k, v in files(reference_out).items() if not k.endswith(".json")}
    assert len(reference) == 240

    log = tmp_path / "stderr.log"
    triggers = [("startup", lambda: (out / "manifest.json").exists())]
    triggers += [(f"{n} images", lambda n=n: count_visible(out / "images") >= n) for n in kill_points(120, 5, SEED)]
    for name, trigger in triggers:
        status = run_until([*argv, "--output", out], trigger, log)
        assert status == -signal.SIGKILL, (name, status, log.read_text()[-2000:])
        nothing_partial(out)
        manifest = json.loads((out / "manifest.json").read_text())
        assert manifest["status"] == "running" and not (out / "report.json").exists()

    final = subprocess.run([str(a) for a in [*argv, "--output", out]], capture_output=True, text=True)
    assert final.returncode == 0, final.stderr
    assert "Traceback" not in log.read_text() + final.stderr
    assert not list(out.rglob("*.partial"))
    assert {k: v for k, v in files(out).items() if not k.endswith(".json")} == reference
    report = json.loads((out / "report.json").read_text())
    assert report["images_translated"] + report["images_already_done"] == 120
    assert report["images_already_done"] >= 1
    assert json.loads((out / "manifest.json").read_text())["progress"] == {"total": 120, "done": 120, "skipped": 0}


def test_evaluate_seg_killed_at_seeded_points_reruns_to_identical_metrics(
    synthetic, red_segmenter, tmp_path, files, nothing_partial
):
    root = synthetic / "cityscapes"
    argv = [BIN / "evaluate-seg", "--engine", red_segmenter, "--cityscapes", root, "--save-predictions"]
    reference_out, out = tmp_path / "reference", tmp_path / "out"
    subprocess.run([str(a) for a in [*argv, "--output", reference_out]], check=True, capture_output=True)
    varying = ("elapsed_s", "images_per_s", "predictions_saved_to")  # timings, and the output folder itself

    def metrics(folder: Path) -> dict:
        return {k: v for k, v in json.loads((folder / "metrics.json").read_text()).items() if k not in varying}

    log = tmp_path / "stderr.log"
    triggers = [("first output", lambda: out.exists())]
    triggers += [
        (f"{n} predictions", lambda n=n: count_visible(out / "predictions") >= n) for n in kill_points(40, 5, SEED + 1)
    ]
    for name, trigger in triggers:
        status = run_until([*argv, "--output", out], trigger, log)
        assert status == -signal.SIGKILL, (name, status, log.read_text()[-2000:])
        nothing_partial(out)
        assert not (out / "metrics.json").exists()  # written last, only by a run that finished

    final = subprocess.run([str(a) for a in [*argv, "--output", out]], capture_output=True, text=True)
    assert final.returncode == 0, final.stderr
    assert "Traceback" not in log.read_text() + final.stderr
    assert not list(out.rglob("*.partial"))
    assert metrics(out) == metrics(reference_out)
    assert files(out / "predictions") == files(reference_out / "predictions")
