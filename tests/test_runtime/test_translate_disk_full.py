"""Disk full (runtime.translate): batch-translate stops in one line (exit 1) saying how many images are complete,
leaves nothing partial, and the same command finishes the job once there is space, byte-identical to an
uninterrupted run.

The full disk is a real one: a small tmpfs mounted over the output's parent inside a private mount namespace
(`unshare`, no root needed where user namespaces are allowed); skipped where that is not possible.
"""

from __future__ import annotations

import shutil
import subprocess

import pytest

from helpers import BIN, run_cli

SCRIPT = """
set -u
mount -t tmpfs -o size=256k tmpfs "$DISK" || exit 99
"$BIN/batch-translate" --engine "$ENGINE" --input "$INPUT" --output "$DISK/out" --workers 1 2> "$SAVE/first.err"
echo $? > "$SAVE/first.rc"
cp -a "$DISK/out" "$SAVE/after_full"
mount -o remount,size=16m "$DISK"
"$BIN/batch-translate" --engine "$ENGINE" --input "$INPUT" --output "$DISK/out" --workers 1 2> "$SAVE/second.err"
echo $? > "$SAVE/second.rc"
cp -a "$DISK/out" "$SAVE/final"
"""


def _namespace_works() -> bool:
    if shutil.which("unshare") is None:
        return False
    probe = subprocess.run(["unshare", "--user", "--map-root-user", "--mount", "true"], capture_output=True)
    return probe.returncode == 0


@pytest.mark.skipif(not _namespace_works(), reason="needs unshare with user and mount namespaces")
def test_disk_full_stops_cleanly_and_a_rerun_finishes(
    tmp_path, synthetic, shared_invert_translator, files, nothing_partial
):
    reference = tmp_path / "reference"
    args = ["--engine", shared_invert_translator, "--input", synthetic / "gta5", "--output", reference, "--workers", 1]
    assert run_cli("batch-translate", *args).returncode == 0
    disk, save = tmp_path / "disk", tmp_path / "save"
    disk.mkdir()
    save.mkdir()
    env = {
        "PATH": "/usr/bin:/bin",
        "BIN": str(BIN),
        "ENGINE": str(shared_invert_translator),
        "INPUT": str(synthetic / "gta5"),
        "DISK": str(disk),
        "SAVE": str(save),
    }
    subprocess.run(["unshare", "--user", "--map-root-user", "--mount", "sh", "-c", SCRIPT], env=env, check=True)

    first = (save / "first.err").read_text()
    assert (save / "first.rc").read_text().strip() == "1", first[-2000:]
    errors = [line for line in first.splitlines() if line.startswith("Error")]
    assert len(errors) == 1 and "no space left on device" in errors[0] and "Traceback" not in first, first[-2000:]
    complete = int(errors[0].split("; ")[1].split()[0])
    assert 0 < complete < 120
    nothing_partial(save / "after_full")
    assert not list((save / "after_full").rglob("*.partial"))
    assert len(list((save / "after_full" / "images").iterdir())) >= complete

    second = (save / "second.err").read_text()
    assert (save / "second.rc").read_text().strip() == "0", second[-2000:]
    expected = {k: v for k, v in files(reference).items() if not k.endswith(".json")}
    assert {k: v for k, v in files(save / "final").items() if not k.endswith(".json")} == expected
