"""batch-translate resumes: the same command finishes a job, a changed one is refused, damage is repaired.

Real CLI runs (subprocess) on a tiny GTA5-layout dataset with a real ONNX translator.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
from pathlib import Path

import pytest

from helpers import write_gta5


def translate(cli, artifact, source, out, *extra):
    return cli("batch-translate", "--engine", artifact, "--input", source, "--output", out, "--workers", 1, *extra)


COUNT = 12  # images in `gta5`: the damage test names samples up to 00012


@pytest.fixture(scope="module")
def gta5(tmp_path_factory):
    """The input most tests translate (GTA5 layout, labels carried); never modified."""
    return write_gta5(tmp_path_factory.mktemp("gta5"), count=COUNT, size=(48, 24), seed=3)


@pytest.fixture(scope="module")
def finished(cli, gta5, shared_invert_translator, tmp_path_factory) -> Path:
    """The folder an uninterrupted run over `gta5` wrote; tests that start from a finished job work on copies."""
    out = tmp_path_factory.mktemp("finished") / "out"
    result = translate(cli, shared_invert_translator, gta5, out)
    assert result.returncode == 0, result.stderr
    return out


def copy_of(folder: Path, tmp_path: Path) -> Path:
    """TMP_PATH/out, a copy of `folder` with its file times (the journal checks them), symlinks as symlinks."""
    return Path(shutil.copytree(folder, tmp_path / "out", symlinks=True))


def outputs(files, out):
    return {k: v for k, v in files(out).items() if not k.endswith(".json")}


def report(out):
    return json.loads((out / "report.json").read_text())


def test_rerun_of_a_finished_job_changes_nothing(cli, gta5, shared_invert_translator, finished, tmp_path, files):
    out = copy_of(finished, tmp_path)
    before = {p: p.stat().st_mtime_ns for p in (out / "images").iterdir()}
    result = translate(cli, shared_invert_translator, gta5, out)
    assert result.returncode == 0, result.stderr
    assert report(out)["images_already_done"] == COUNT and report(out)["images_translated"] == 0
    assert {p: p.stat().st_mtime_ns for p in (out / "images").iterdir()} == before
    assert outputs(files, out) == outputs(files, finished)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "complete" and manifest["progress"] == {"total": COUNT, "done": COUNT, "skipped": 0}


def test_damage_and_leftovers_are_repaired(cli, gta5, shared_invert_translator, finished, tmp_path, files):
    out = copy_of(finished, tmp_path)
    # what a kill (or a careless user) leaves: temporaries, a torn journal line, an output cut short, one deleted,
    # a label replaced by a symlink
    (out / "images" / ".00007.png.partial").write_bytes(b"\x89PNG half")
    (out / ".manifest.json.partial").write_bytes(b"{")
    with open(out / ".progress.jsonl", "ab") as journal:
        journal.write(b'{"key": "00099", "fi')
    damaged = out / "images" / "00003.png"
    damaged.write_bytes(damaged.read_bytes()[:50])
    (out / "labels" / "00005.png").unlink()
    (out / "images" / "00011.png").unlink()
    label = out / "labels" / "00012.png"
    label.unlink()
    label.symlink_to(gta5 / "labels" / "00012.png")

    result = translate(cli, shared_invert_translator, gta5, out)
    assert result.returncode == 0, result.stderr
    assert "removed 2 temporary file(s)" in result.stderr
    assert not list(out.rglob("*.partial"))
    assert report(out)["images_translated"] == 4
    assert not label.is_symlink()
    assert outputs(files, out) == outputs(files, finished)


@pytest.mark.parametrize(
    ("extra", "flag"),
    [
        (["--png-compression", "6"], "--png-compression"),
        (["--size", "64x32"], "--size"),
        (["--format", "jpg"], "--format"),
        (["--batch-size", "3"], "--batch-size"),
    ],
)
def test_changed_options_are_refused_unless_overwrite(
    cli, user_error, gta5, shared_invert_translator, finished, tmp_path, extra, flag
):
    out = copy_of(finished, tmp_path)
    user_error(translate(cli, shared_invert_translator, gta5, out, *extra), names=flag)
    result = translate(cli, shared_invert_translator, gta5, out, *extra, "--overwrite")
    assert result.returncode == 0, result.stderr
    assert report(out)["images_translated"] == COUNT
    # the new options are now the recorded ones: the same command resumes again
    assert translate(cli, shared_invert_translator, gta5, out, *extra).returncode == 0
    assert report(out)["images_already_done"] == COUNT


def test_changed_artifact_is_refused(cli, user_error, gta5, shared_invert_translator, finished, tmp_path):
    out = copy_of(finished, tmp_path)
    other = tmp_path / "other"
    shutil.copytree(shared_invert_translator.parent, other)
    artifact = other / shared_invert_translator.name
    from onnx import load, save

    model = load(artifact)
    model.doc_string = "re-exported"  # same behaviour, different bytes: a new artifact all the same
    save(model, artifact)
    sidecar = json.loads(artifact.with_suffix(".json").read_text())
    from uda_trt.runtime.sidecar import file_sha256

    sidecar["artifacts"]["onnx"]["sha256"] = file_sha256(artifact)
    artifact.with_suffix(".json").write_text(json.dumps(sidecar))
    user_error(translate(cli, artifact, gta5, out), names="--engine")


def test_foreign_folder_corrupt_manifest_and_busy_folder_are_refused(
    cli, user_error, gta5, shared_invert_translator, tmp_path
):
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    user_error(translate(cli, shared_invert_translator, gta5, out), names=str(out))
    assert translate(cli, shared_invert_translator, gta5, out, "--overwrite").returncode == 0
    assert (out / "notes.txt").read_text() == "mine"

    (out / "manifest.json").write_text('{"command": "batch-tr')
    user_error(translate(cli, shared_invert_translator, gta5, out), names="manifest.json")

    (out / "manifest.json").unlink()
    fd = os.open(out / ".lock", os.O_WRONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        user_error(translate(cli, shared_invert_translator, gta5, out, "--overwrite"), names=str(out))
    finally:
        os.close(fd)


def test_overwrite_removes_what_earlier_runs_wrote_and_nothing_else(cli, shared_invert_translator, tmp_path, files):
    """An --overwrite run into a folder that held a bigger run at another size ends with exactly its own samples:
    the earlier run's files go (those its journal lists), a file the user put there stays."""
    big = write_gta5(tmp_path / "big", count=5, size=(48, 24), seed=1)
    small = write_gta5(tmp_path / "small", count=2, size=(40, 20), seed=2)
    out = tmp_path / "out"
    assert translate(cli, shared_invert_translator, big, out, "--format", "jpg").returncode == 0
    (out / "images" / "notes.txt").write_text("mine")
    result = translate(cli, shared_invert_translator, small, out, "--overwrite")
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in (out / "images").iterdir()) == ["00001.png", "00002.png", "notes.txt"]
    assert sorted(p.name for p in (out / "labels").iterdir()) == ["00001.png", "00002.png"]
    assert translate(cli, shared_invert_translator, small, tmp_path / "fresh").returncode == 0
    expected = outputs(files, tmp_path / "fresh")
    assert {k: v for k, v in outputs(files, out).items() if not k.endswith(".txt")} == expected


def test_changed_and_removed_inputs_are_redone_or_removed(cli, shared_invert_translator, tmp_path, files):
    """The journal records each sample's inputs: regenerated inputs are translated again, and outputs of inputs
    deleted since are removed, so the folder always equals a fresh run on the current input."""
    source = write_gta5(tmp_path / "gta5", count=4, size=(48, 24), seed=1)
    out = tmp_path / "out"
    assert translate(cli, shared_invert_translator, source, out).returncode == 0
    for name in ("images/00004.png", "labels/00004.png"):
        (source / name).unlink()
    old = {name: (source / "labels" / name).stat().st_mtime_ns for name in ("00001.png", "00002.png")}
    regenerated = write_gta5(tmp_path / "new", count=2, size=(48, 24), seed=7)
    for kind in ("images", "labels"):
        for name in ("00001.png", "00002.png"):
            shutil.copyfile(regenerated / kind / name, source / kind / name)
            os.utime(source / kind / name, ns=(old[name] + 10**9, old[name] + 10**9))  # coarse clocks tick too

    result = translate(cli, shared_invert_translator, source, out)
    assert result.returncode == 0, result.stderr
    assert report(out)["images_translated"] == 2 and report(out)["images_already_done"] == 1
    assert translate(cli, shared_invert_translator, source, tmp_path / "fresh").returncode == 0
    assert outputs(files, out) == outputs(files, tmp_path / "fresh")


def test_cleanup_never_follows_a_symlinked_folder_out_of_the_output(cli, shared_invert_translator, tmp_path, files):
    source = write_gta5(tmp_path / "gta5", count=2, size=(48, 24), seed=1)
    out, elsewhere = tmp_path / "out", tmp_path / "elsewhere"
    assert translate(cli, shared_invert_translator, source, out).returncode == 0
    shutil.move(out / "images", elsewhere)  # same names and sizes as the journal records, outside OUT
    (out / "images").symlink_to(elsewhere, target_is_directory=True)
    before = files(elsewhere)
    translate(cli, shared_invert_translator, source, out, "--overwrite")
    assert files(elsewhere) == before
