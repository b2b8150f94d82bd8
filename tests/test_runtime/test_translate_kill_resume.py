"""batch-translate (runtime.translate) under fault injection: SIGKILL the real CLI at seeded random points, check
what a reader sees, rerun, compare.

A kill lands when the job has written a seeded random number of outputs (polling the output folder is more
deterministic on a loaded machine than a timer), or at its first write (startup). After every
kill, every visible image must decode and every JSON must parse; the final rerun must leave files byte-identical
to an uninterrupted run (images, labels). evaluate-seg's version is test_evaluate_kill_resume.py.
"""

from __future__ import annotations

import json
import signal

import pytest

from helpers import count_visible, kill_points, run_cli, run_until

SEED = 20261123


def test_batch_translate_killed_at_seeded_points_resumes_byte_identical(
    synthetic, invert_translator, tmp_path, files, nothing_partial
):
    argv = ["batch-translate", "--engine", invert_translator, "--input", synthetic / "gta5", "--workers", 1]
    reference_out, out = tmp_path / "reference", tmp_path / "out"
    assert run_cli(*argv, "--output", reference_out).returncode == 0
    reference = {k: v for k, v in files(reference_out).items() if not k.endswith(".json")}
    assert len(reference) == 240

    log = tmp_path / "stderr.log"
    triggers = [("startup", lambda: (out / "manifest.json").exists())]
    points = kill_points(1, 2 * 120 // 3 - 1, 5, SEED)  # output counts in [1, 2/3 of 120): each kill leaves work
    triggers += [(f"{n} images", lambda n=n: count_visible(out / "images") >= n) for n in points]
    for name, trigger in triggers:
        status = run_until([*argv, "--output", out], trigger, log)
        assert status == -signal.SIGKILL, (name, status, log.read_text()[-2000:])
        nothing_partial(out)
        manifest = json.loads((out / "manifest.json").read_text())
        assert manifest["status"] == "running" and not (out / "report.json").exists()

    final = run_cli(*argv, "--output", out)
    assert final.returncode == 0, final.stderr
    assert "Traceback" not in log.read_text() + final.stderr
    assert not list(out.rglob("*.partial"))
    assert {k: v for k, v in files(out).items() if not k.endswith(".json")} == reference
    report = json.loads((out / "report.json").read_text())
    assert report["images_translated"] + report["images_already_done"] == 120
    assert report["images_already_done"] >= 1
    assert json.loads((out / "manifest.json").read_text())["progress"] == {"total": 120, "done": 120, "skipped": 0}


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_interrupted_run_keeps_every_written_image_and_says_how_to_finish(
    synthetic, invert_translator, tmp_path, files, signum
):
    """Ctrl-C (SIGINT) or a scheduler's SIGTERM: every image already on disk is journalled, the exit code is the
    shell's (130, 143) and the one line says that rerunning finishes the job, which then redoes none of them."""
    argv = ["batch-translate", "--engine", invert_translator, "--input", synthetic / "gta5", "--workers", 1]
    reference_out, out = tmp_path / "reference", tmp_path / "out"
    assert run_cli(*argv, "--output", reference_out).returncode == 0
    log = tmp_path / "stderr.log"

    status = run_until([*argv, "--output", out], lambda: count_visible(out / "images") >= 10, log, signum=signum)
    assert status == 128 + signum, (status, log.read_text()[-2000:])
    stderr = log.read_text()
    assert "rerun the same command to finish" in stderr and "Aborted" not in stderr and "Traceback" not in stderr
    written = {p.stem for p in (out / "images").iterdir() if not p.name.startswith(".")}
    journalled = {json.loads(line)["key"] for line in (out / ".progress.jsonl").read_text().splitlines()}
    assert len(written) >= 10 and journalled == written

    final = run_cli(*argv, "--output", out)
    assert final.returncode == 0, final.stderr
    assert json.loads((out / "report.json").read_text())["images_already_done"] == len(written)
    assert {k: v for k, v in files(out).items() if not k.endswith(".json")} == {
        k: v for k, v in files(reference_out).items() if not k.endswith(".json")
    }
