"""batch-translate --ray and evaluate-seg --ray (runtime.ray_translate, runtime.ray_evaluate) through the console
scripts, each on a private local Ray instance (`--ray local`), against the single-process run on the same files: the
same bytes, a SIGKILLed Ray run that resumes (with or without --ray) to the same bytes, the same metrics. Every Ray
process a test started is gone when it ends (its RAY_TMPDIR tells them apart from anything else on the machine).
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

import pytest

from helpers import KILLED, processes_left, run_until, write_cityscapes, write_gta5

VARYING = ("elapsed_s", "images_per_s", "predictions_saved_to", "ray")  # timings, the folder, how it ran


@pytest.fixture
def ray_local(monkeypatch):
    """A short private RAY_TMPDIR (Ray's socket paths must stay short) for the CLIs this test starts; afterwards,
    asserts that their Ray processes ended, ending any that did not (by pid) so no test leaves one behind."""
    pytest.importorskip("ray")
    folder = tempfile.mkdtemp(prefix="uray", dir="/tmp")
    marker = f"RAY_TMPDIR={folder}"
    monkeypatch.setenv("RAY_TMPDIR", folder)
    yield marker
    left = processes_left(marker)
    shutil.rmtree(folder, ignore_errors=True)
    assert not left, f"Ray processes left running: {left}"


def _outputs(files, folder: Path) -> dict[str, bytes]:
    return {k: v for k, v in files(folder).items() if not k.endswith(".json")}


@pytest.mark.slow
def test_killed_ray_run_resumes_to_the_single_process_bytes(
    cli, invert_translator, tmp_path, files, nothing_partial, ray_local
):
    """SIGKILL of the Ray run's whole process group once it has journalled a few images; the rerun with --ray keeps
    them and finishes byte-identical to one process, with the same report and manifest; a rerun without --ray then
    finds everything done. Batches of 2 over 21 images (the last batch short), a corrupt image skipped by both.

    Together the two Ray runs are one Ray job from an empty folder (the kept images are the first run's, the rest
    the second's), so no uninterrupted Ray run of its own is needed: a Ray start is most of a Ray test's time."""
    source = write_gta5(tmp_path / "gta5", count=21, size=(41, 23))
    (source / "images" / "00004.png").write_bytes(b"not a png")
    argv = ["--engine", invert_translator, "--input", source, "--batch-size", 2]
    single = cli("batch-translate", *argv, "--output", tmp_path / "single")
    assert single.returncode == 0, single.stderr
    out, log = tmp_path / "ray", tmp_path / "stderr.log"
    journal = out / ".progress.jsonl"

    def journalled() -> int:
        return journal.read_bytes().count(b"\n") if journal.exists() else 0

    status = run_until(["batch-translate", *argv, "--output", out, "--ray", "local"], lambda: journalled() >= 3, log,
                       group=True)  # fmt: skip
    assert status == KILLED, (status, log.read_text()[-3000:])
    kept = journalled()
    assert 3 <= kept < 20
    nothing_partial(out)

    resumed = cli("batch-translate", *argv, "--output", out, "--ray", "local")
    assert resumed.returncode == 0, resumed.stderr
    assert "Traceback" not in log.read_text() + resumed.stderr
    assert not list(out.rglob("*.partial"))
    assert _outputs(files, out) == _outputs(files, tmp_path / "single")
    assert len(_outputs(files, out)) == 40  # 20 images and their labels
    report, expected = (json.loads((tmp_path / name / "report.json").read_text()) for name in ("ray", "single"))
    assert report["images_already_done"] == kept  # a kept image in a batch redone is inferred, not rewritten
    assert report["images_already_done"] + report["images_translated"] == expected["images_translated"] == 20
    for key in ("images_skipped", "images_total", "backend", "providers", "working_size"):
        assert report[key] == expected[key], key
    assert [s["image"] for s in report["skipped"]] == [s["image"] for s in expected["skipped"]]  # the corrupt one
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["ray"]["target"] == "local" and manifest["ray"]["actors"] >= 1 and report["ray"]["nodes"] == 1
    assert manifest["identity"] == json.loads((tmp_path / "single" / "manifest.json").read_text())["identity"]

    again = cli("batch-translate", *argv, "--output", out)  # --ray is not part of the job: one process resumes it
    assert again.returncode == 0, again.stderr
    assert json.loads((out / "report.json").read_text())["images_already_done"] == 20


@pytest.mark.slow
def test_evaluate_seg_on_ray_gives_the_single_process_metrics(cli, red_segmenter, tmp_path, files, ray_local):
    """Two image sizes (batches never mix them) and a corrupt image: the same metrics, skips, predictions and
    pictures."""
    root = tmp_path / "cityscapes"
    write_cityscapes(root, {"aachen": 3, "bremen": 2})
    write_cityscapes(root, {"zurich": 3}, size=(48, 32), seed=1)
    (root / "leftImg8bit" / "val" / "bremen" / "bremen_000001_000020_leftImg8bit.png").write_bytes(b"broken")
    argv = ["--engine", red_segmenter, "--cityscapes", root, "--batch-size", 2, "--save-predictions"]
    single = cli("evaluate-seg", *argv, "--output", tmp_path / "single")
    assert single.returncode == 0, single.stderr
    on_ray = cli("evaluate-seg", *argv, "--output", tmp_path / "ray", "--ray", "local")
    assert on_ray.returncode == 0, on_ray.stderr
    assert on_ray.stdout.split(" -> ")[0] == single.stdout.split(" -> ")[0]  # the mIoU line

    metrics, expected = (json.loads((tmp_path / name / "metrics.json").read_text()) for name in ("ray", "single"))
    assert metrics["images_scored"] == 7 and metrics["images_skipped"] == 1
    assert {k: v for k, v in metrics.items() if k not in VARYING} == {
        k: v for k, v in expected.items() if k not in VARYING
    }
    assert metrics["ray"]["target"] == "local"
    pictures = ("predictions/", "confusion.png", "overlays.png")
    same = {k: v for k, v in files(tmp_path / "ray").items() if k.startswith(pictures)}
    assert same == {k: v for k, v in files(tmp_path / "single").items() if k.startswith(pictures)}
    assert len(same) == 9


def test_ray_refusals_are_one_line(cli, user_error, tmp_path):
    """--ray runs artifacts: with --fda or --predictions it is refused before any cluster starts."""
    source = write_gta5(tmp_path / "gta5", count=1)
    fda = cli("batch-translate", "--fda", source / "images", "--input", source, "--output", tmp_path / "o1",
              "--ray", "local")  # fmt: skip
    user_error(fda, names="--ray")
    root = tmp_path / "cityscapes"
    write_cityscapes(root)
    predictions = cli("evaluate-seg", "--predictions", root, "--cityscapes", root, "--output", tmp_path / "o2",
                      "--ray", "local")  # fmt: skip
    user_error(predictions, names="--ray")
