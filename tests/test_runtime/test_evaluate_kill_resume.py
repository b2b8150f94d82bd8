"""evaluate-seg (runtime.evaluate) under fault injection: SIGKILL the real CLI at seeded random points, check
what a reader sees, rerun, compare.

A kill lands when the job has written a seeded random number of outputs (polling the output folder is more
deterministic on a loaded machine than a timer), or at its first write (startup). After every
kill, every visible image must decode and every JSON must parse; the final rerun must leave predictions byte-identical
to an uninterrupted run and metrics equal value for value.
"""

from __future__ import annotations

import json
import signal
from pathlib import Path

from helpers import count_visible, kill_points, run_cli, run_until

SEED = 20261123


def test_evaluate_seg_killed_at_seeded_points_reruns_to_identical_metrics(
    synthetic, red_segmenter, tmp_path, files, nothing_partial
):
    root = synthetic / "cityscapes"
    argv = ["evaluate-seg", "--engine", red_segmenter, "--cityscapes", root, "--save-predictions"]
    reference_out, out = tmp_path / "reference", tmp_path / "out"
    assert run_cli(*argv, "--output", reference_out).returncode == 0
    varying = ("elapsed_s", "images_per_s", "predictions_saved_to")  # timings, and the output folder itself

    def metrics(folder: Path) -> dict:
        return {k: v for k, v in json.loads((folder / "metrics.json").read_text()).items() if k not in varying}

    log = tmp_path / "stderr.log"
    triggers = [("first output", lambda: out.exists())]
    points = kill_points(1, 2 * 40 // 3 - 1, 5, SEED + 1)  # output counts in [1, 2/3 of 40): each kill leaves work
    triggers += [(f"{n} predictions", lambda n=n: count_visible(out / "predictions") >= n) for n in points]
    for name, trigger in triggers:
        status = run_until([*argv, "--output", out], trigger, log)
        assert status == -signal.SIGKILL, (name, status, log.read_text()[-2000:])
        nothing_partial(out)
        assert not (out / "metrics.json").exists()  # written last, only by a run that finished

    final = run_cli(*argv, "--output", out)
    assert final.returncode == 0, final.stderr
    assert "Traceback" not in log.read_text() + final.stderr
    assert not list(out.rglob("*.partial"))
    assert metrics(out) == metrics(reference_out)
    assert files(out / "predictions") == files(reference_out / "predictions")
